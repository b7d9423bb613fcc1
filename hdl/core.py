"""The streaming LSTM layer: a stream of x_t in, P MAC lanes, cell updates, a stream of h out."""

from __future__ import annotations

import math
from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Mux, ResetSignal, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hdl.cell import TRACE, CellUpdate
from hdl.fixed import bits_for, fmt_shape, vector_stream
from hdl.host import connect_banks, core_host_bus
from hdl.mac import GateMacLane, operand_width
from model.qmodel import LstmLayer


def valid_lanes(hidden_size: int) -> list[int]:
    """Lane counts the core can build for ``hidden_size``: 1, 2 and multiples of 4 dividing 4H."""
    h4 = 4 * hidden_size
    return [p for p in range(1, h4 + 1) if h4 % p == 0 and (p in (1, 2) or p % 4 == 0)]


def check_lanes(layer: LstmLayer, lanes, *, name: str = "lstm1") -> int:
    """``lanes`` as an int, or a ValueError that names the layer and the lane counts that work."""
    ok = valid_lanes(layer.hidden_size)
    if isinstance(lanes, bool) or not isinstance(lanes, int) or lanes not in ok:
        raise ValueError(
            f"{name}: lanes = {lanes!r} cannot be built for hidden_size "
            f"{layer.hidden_size}: each lane owns whole rows of the 4H = "
            f"{4 * layer.hidden_size} gate rows and a hidden unit's four gates must finish "
            f"together, so lanes must be 1, 2 or a multiple of 4 that divides 4H; choose one "
            f"of {ok} ([{name}.hardware] lanes)"
        )
    return lanes


@dataclass(frozen=True)
class Schedule:
    """Cycle counts of :class:`LstmCore` for a model and a lane count (see its docstring)."""

    lanes: int
    groups: int  # G: row groups per step; each lane computes G rows
    columns: int  # K = I + H: products per row
    cell_units: int  # cell updates: one per layer, whatever the lane count
    min_cycles: int  # ceil(4H(I+H) / P): no design with P lanes takes fewer cycles per step
    pipeline_depth: int

    @classmethod
    def of(cls, layer: LstmLayer, lanes: int, *, name: str = "lstm1") -> Schedule:
        lanes = check_lanes(layer, lanes, name=name)
        h, k = layer.hidden_size, layer.input_size + layer.hidden_size
        drain = lanes // 4 if lanes >= 4 else 0  # the last group's units, one per cycle
        return cls(
            lanes=lanes,
            groups=4 * h // lanes,
            columns=k,
            cell_units=1,
            min_cycles=math.ceil(4 * h * k / lanes),
            pipeline_depth=GateMacLane.latency + drain + CellUpdate.latency_for(layer) + 3,
        )

    @property
    def mac_cycles(self) -> int:
        """G * K cycles in which the lanes issue products."""
        return self.groups * self.columns

    @property
    def cycles_per_step(self) -> int:
        """Cycles between the starts of two steps when input and output never wait."""
        return self.mac_cycles + self.pipeline_depth

    @property
    def latency(self) -> int:
        """Cycles from an input beat's transfer to its output beat's tvalid, when idle."""
        return self.cycles_per_step + 2

    def hardware(self) -> dict:
        """This layer's entry in the manifest's ``hardware.layers``."""
        return {
            "kind": "lstm",
            "lanes": self.lanes,
            "cell_units": self.cell_units,
            "cycles_per_step": self.cycles_per_step,
            "latency": self.latency,
            "mac_cycles_per_step": self.mac_cycles,
            "min_cycles_per_step": self.min_cycles,
            "pipeline_depth": self.pipeline_depth,
        }


class LstmCore(wiring.Component):
    """One LSTM layer of SPEC §2 between two streams (:func:`hdl.fixed.vector_stream`).

    ``i``: one beat per step, ``data`` = ``x_t`` (``I`` codes of ``x``), ``last`` on a
    sequence's last step. ``o``: ``h`` codes (``H`` codes of ``h``): one beat per step with
    ``output == "sequence"`` (``last`` on the last step), one beat with ``h_T`` per sequence
    with ``"last"``. After a step with ``last`` the next step reads ``h_{t-1} = c_{t-1} = 0``
    (a flag: no memory is cleared). ``o.valid``, ``o.payload`` come straight from registers,
    ``i.ready`` from a register and ``rst`` (low while in reset). The core knows nothing of
    the layers around it (:class:`hdl.network.NetworkCore` composes the chain).

    Schedule: ``lanes`` = P :class:`hdl.mac.GateMacLane` s (one multiplier each) each own
    ``G = 4H / P`` gate rows (unit-major: row group k of lane l is gate ``(kP + l) % 4`` of
    unit ``(kP + l) // 4``) and take one column of ``[x_t ; h_{t-1}]`` per cycle: ``x_t``
    from a rotating shift register, ``h_{t-1}`` from a RAM (two banks, one read while this
    step's ``h_t`` fills the other). A step issues ``G * K = (4H / P) * (I + H)`` =
    ``ceil(4H(I+H) / P)`` MAC cycles. At each row group's end the P exact sums are latched
    into a chain of registers that feeds the one :class:`hdl.cell.CellUpdate` a hidden unit
    (four sums) per cycle (P < 4: the early gates wait in registers), overlapping the MACs
    of the next group. Each finished ``h_t[j]`` goes to the ``h`` RAM and into the output
    shift register. A step ends when every unit has left the cell update; the next step
    starts in the same cycle. Hence

        cycles_per_step = G * K + GateMacLane.latency + (P / 4 if P >= 4 else 0)
                          + CellUpdate.latency + 3
        latency         = cycles_per_step + 2   (input transfer to output valid, when idle)

    (:class:`Schedule`). Output back-pressure stalls the step's end; input beats wait in a
    one-beat holding register.

    ``probe`` (for a testbench; nothing reads it, so it costs nothing after synthesis):
    while ``trace0_valid`` is high, ``trace0_unit`` is the hidden unit j that just finished
    and ``trace0_pre_i``, ``_pre_f``, ``_pre_g``, ``_pre_o`` (after their peephole terms),
    ``_i``, ``_f``, ``_g``, ``_o``, ``_c``, ``_tanh_cell``, ``_h`` are its codes of this step,
    as in :func:`model.lstm.lstm_fixed`'s trace. ``step_start`` and ``step_commit`` pulse
    when a step begins and ends. Submodules: ``lane<l>`` (MAC lanes), ``cell0`` (the cell
    update).
    """

    def __init__(self, layer: LstmLayer, *, lanes: int = 1, output: str = "sequence",
                 name: str = "lstm1", host: bool = False):  # fmt: skip
        self._MustUse__silence = True  # until built: a rejected core is not an unused one
        if not isinstance(layer, LstmLayer):
            raise TypeError(f"layer must be a model.qmodel.LstmLayer, not {layer!r}")
        if output not in ("sequence", "last"):
            raise ValueError(f"output must be 'sequence' or 'last', not {output!r}")
        self._layer = layer
        self._output = output
        self._name = name
        self._lanes = check_lanes(layer, lanes, name=name)
        f = layer.formats
        h = layer.hidden_size
        shapes = {name: f["preact"] for name in ("pre_i", "pre_f", "pre_g", "pre_o")}
        shapes.update({name: f["gate"] for name in ("i", "f", "o")})
        shapes.update({"g": f["cand"], "tanh_cell": f["tanh_cell"], "c": f["cell"], "h": f["h"]})
        probes = {"trace0_valid": Out(1), "trace0_unit": Out(unsigned(bits_for(h - 1)))}
        for k in (*TRACE, "c", "h"):
            probes[f"trace0_{k}"] = Out(fmt_shape(shapes[k]))
        probes["step_start"] = Out(1)
        probes["step_commit"] = Out(1)
        members = {
            "i": In(vector_stream(layer.input_size, f["x"])),
            "o": Out(vector_stream(h, f["h"])),
            "probe": Out(wiring.Signature(probes)),
        }
        self._host = bool(host)
        if self._host:
            members["host"] = Out(core_host_bus(layer, self._lanes, name=name))
        super().__init__(members)
        self._MustUse__silence = False

    # ------------------------------------------------------------------ the schedule

    @property
    def layer(self) -> LstmLayer:
        return self._layer

    @property
    def output(self) -> str:
        return self._output

    @property
    def lanes(self) -> int:
        return self._lanes

    @property
    def schedule(self) -> Schedule:
        return Schedule.of(self._layer, self._lanes, name=self._name)

    @property
    def cycles_per_step(self) -> int:
        return self.schedule.cycles_per_step

    @property
    def latency(self) -> int:
        return self.schedule.latency

    def hardware(self) -> dict:
        """This layer's entry of the manifest's ``hardware.layers``."""
        return self.schedule.hardware()

    def _row(self, group: int, lane: int) -> tuple[int, int, int]:
        """(model row, unit, gate) of lane ``lane`` in row group ``group``."""
        r = group * self._lanes + lane
        unit, gate = divmod(r, 4)
        return gate * self._layer.hidden_size + unit, unit, gate

    # ------------------------------------------------------------------ the circuit

    def elaborate(self, platform):
        qm = self._layer
        f = qm.formats
        n_in, h = qm.input_size, qm.hidden_size
        sch = self.schedule
        p, g_len, k_len = self._lanes, sch.groups, sch.columns
        m = Module()
        probe = self.probe

        def reg(shape, name):
            return Signal(shape, name=name, reset_less=True)

        # ---- control state (reset) and the step's input (data: no reset)
        x_shape, h_shape = fmt_shape(f["x"]), fmt_shape(f["h"])
        x_next = [reg(x_shape, f"x_next_{k}") for k in range(n_in)]
        x_next_valid = Signal(name="x_next_valid")
        x_next_last = Signal(name="x_next_last")
        x_cur = [reg(x_shape, f"x_cur_{k}") for k in range(n_in)]  # rotates once per row
        cur_last = Signal(name="cur_last")
        first_step = Signal(init=1, name="first_step")  # h_{t-1} = c_{t-1} = 0
        bank = Signal(name="h_bank")  # the h RAM bank that holds h_{t-1}
        busy = Signal(name="busy")
        issuing = Signal(name="issuing")
        addr = Signal(unsigned(bits_for(g_len * k_len - 1)), name="mac_addr")
        col = Signal(unsigned(bits_for(k_len - 1)), name="mac_col")
        grp = Signal(unsigned(bits_for(g_len - 1)), name="mac_group")
        unit_bits = bits_for(h - 1)
        hcol = Signal(unsigned(unit_bits), name="h_col")
        all_done = Signal(name="all_done")  # every unit of the step has left the cell update

        # ---- input holding register: tready comes from a register
        # (low during reset too: a beat offered then would be lost)
        m.d.comb += self.i.ready.eq(~x_next_valid & ~ResetSignal())
        # (the load ignores rst: a reset clears x_next_valid anyway, and keeping rst and the
        # tready output buffer out of this enable keeps it a register-side path)
        with m.If(self.i.valid & ~x_next_valid):
            wx = f["x"].width
            for k in range(n_in):
                m.d.sync += x_next[k].eq(self.i.payload.data[k * wx : (k + 1) * wx])
            m.d.sync += [x_next_valid.eq(1), x_next_last.eq(self.i.payload.last)]

        # ---- h_{t-1}: a RAM of two banks (h_t fills the other one while this one is read)
        # the read and the written bank always differ: no read-during-write logic
        m.submodules.h_ram = h_ram = Memory(
            shape=h_shape, depth=2 << unit_bits, init=[], attrs={"no_rw_check": 1}
        )
        h_rd = h_ram.read_port()
        h_wr = h_ram.write_port()

        # ---- issue, stage A: the counters; the h RAM is read one cycle ahead
        m.d.comb += h_rd.addr.eq(Cat(hcol, bank))
        # (every counter wraps to 0 at the step's last issue: a step start touches none)
        with m.If(issuing):
            m.d.sync += addr.eq(addr + 1)
            with m.If(col == k_len - 1):
                m.d.sync += [col.eq(0), grp.eq(grp + 1)]
            with m.Else():
                m.d.sync += col.eq(col + 1)
            with m.If(col >= n_in):
                m.d.sync += hcol.eq(Mux(hcol == h - 1, 0, hcol + 1))
            with m.If(addr == g_len * k_len - 1):
                m.d.sync += [issuing.eq(0), addr.eq(0), grp.eq(0)]

        # ---- stages B1, B: the beat every lane takes (x from the shift register, h from
        # the RAM, whose word is registered first: a block RAM's output is slow)
        ctl = Cat(addr, grp, col == 0, col == k_len - 1, col >= n_in)
        ctl1, ctl2 = reg(ctl.shape(), "beat_ctl1"), reg(ctl.shape(), "beat_ctl")
        beat_valid1, beat_valid = Signal(name="beat_valid1"), Signal(name="beat_valid")
        h_word = reg(h_shape, "h_word")
        m.d.sync += [
            ctl1.eq(ctl),
            ctl2.eq(ctl1),
            beat_valid1.eq(issuing),
            beat_valid.eq(beat_valid1),
            h_word.eq(h_rd.data),
        ]
        aw, gw = len(addr), len(grp)
        beat_addr, beat_slot = ctl2[:aw], ctl2[aw : aw + gw]
        beat_first, beat_last, beat_is_h = ctl2[aw + gw], ctl2[aw + gw + 1], ctl2[aw + gw + 2]
        opw = operand_width(qm)
        operand = Signal(signed(opw), name="mac_operand")
        h_prev = Mux(first_step, 0, h_word)
        m.d.comb += operand.eq(Mux(beat_is_h, h_prev, x_cur[0]))
        with m.If(beat_valid & ~beat_is_h):  # rotate: back in order after I columns
            m.d.sync += [x_cur[k].eq(x_cur[(k + 1) % n_in]) for k in range(n_in)]
        with m.Elif(~issuing & ~beat_valid1 & ~beat_valid):  # between steps: the next beat
            m.d.sync += [x_cur[k].eq(x_next[k]) for k in range(n_in)]

        lanes = []
        for lane in range(p):
            rows = [self._row(k, lane)[0] for k in range(g_len)]
            m.submodules[f"lane{lane}"] = mac = GateMacLane(layer=qm, rows=rows, host=self._host)
            lanes.append(mac)
            beat = mac.i.payload
            m.d.comb += [
                mac.i.valid.eq(beat_valid),
                beat.addr.eq(beat_addr),
                beat.slot.eq(beat_slot),
                beat.first.eq(beat_first),
                beat.last.eq(beat_last),
                beat.is_h.eq(beat_is_h),
                beat.operand.eq(operand),
            ]

        # ---- the exact sums of a group go to the one cell update, a unit per cycle
        m.submodules.cell0 = cell = CellUpdate(layer=qm, host=self._host)
        if self._host:  # the banks in the order of hdl.host.lstm_routes
            banks = [mac.host_w for mac in lanes] + [mac.host_b for mac in lanes]
            if qm.peephole:
                banks += [cell.host_pi, cell.host_pf, cell.host_po]
            connect_banks(m, self.host, banks)
        ci = cell.i.payload
        sums_valid = lanes[0].o.valid  # every lane finishes a row in the same cycle
        unit_in = Signal(unsigned(unit_bits), name="unit_in")
        acc_shape = lanes[0].o.payload.shape()
        gate_names = ("acc_i", "acc_f", "acc_g", "acc_o")
        if p >= 4:
            # a chain of P/4 slots (a unit's four sums each), loaded at the group's end and
            # shifted toward the cell update one slot per cycle
            n_slots = p // 4
            chain = [[reg(acc_shape, f"chain{u}_{g}") for g in gate_names] for u in range(n_slots)]
            left = Signal(unsigned(bits_for(n_slots)), name="drain_left")
            with m.If(sums_valid):
                for u in range(n_slots):
                    m.d.sync += [chain[u][g].eq(lanes[4 * u + g].o.payload) for g in range(4)]
                m.d.sync += left.eq(n_slots)
            with m.Else():  # shift every other cycle: a register selects, nothing enables
                for u in range(n_slots - 1):
                    m.d.sync += [chain[u][g].eq(chain[u + 1][g]) for g in range(4)]
                with m.If(left != 0):
                    m.d.sync += left.eq(left - 1)
            cell_valid = left != 0
            sums = chain[0]
        else:
            per_unit = 4 // p  # row groups per hidden unit
            phase = Signal(range(per_unit), name="gate_phase")
            with m.If(sums_valid):
                m.d.sync += phase.eq(Mux(phase == per_unit - 1, 0, phase + 1))
            sums = []
            for gate, gname in enumerate(gate_names):
                value = lanes[gate % p].o.payload
                if gate // p < per_unit - 1:
                    staged = reg(acc_shape, f"staged_{gname}")
                    with m.If(sums_valid & (phase == gate // p)):
                        m.d.sync += staged.eq(value)
                    value = staged
                sums.append(value)
            cell_valid = sums_valid & (phase == per_unit - 1)
        m.d.comb += [getattr(ci, g).eq(v) for g, v in zip(gate_names, sums)]
        m.d.comb += [cell.i.valid.eq(cell_valid), ci.unit.eq(unit_in), ci.zero.eq(first_step)]
        with m.If(cell_valid):
            m.d.sync += unit_in.eq(Mux(unit_in == h - 1, 0, unit_in + 1))

        # ---- a finished unit: h_t to the RAM's other bank and into the output shift register
        res = cell.o.payload
        out_shift = [reg(h_shape, f"h_out_{j}") for j in range(h)]
        m.d.comb += [
            h_wr.addr.eq(Cat(res.unit, ~bank)),
            h_wr.data.eq(res.h),
            h_wr.en.eq(cell.o.valid),
        ]
        with m.If(cell.o.valid):  # units finish in increasing order: unit 0 ends up at 0
            m.d.sync += [out_shift[j].eq(out_shift[j + 1]) for j in range(h - 1)]
            m.d.sync += out_shift[h - 1].eq(res.h)
            with m.If(res.unit == h - 1):
                m.d.sync += all_done.eq(1)
        # named copies for a testbench: this unit's values of SPEC §2 as it finishes
        shown = {"valid": cell.o.valid, "unit": res.unit, "c": res.c, "h": res.h}
        shown.update({name: getattr(cell, f"trace_{name}") for name in TRACE})
        for name, value in shown.items():
            m.d.comb += getattr(probe, f"trace0_{name}").eq(value)

        # ---- the end of a step: offer h_t, swap the banks, start the next step
        emit = Const(1, 1) if self._output == "sequence" else cur_last
        out_data = reg(self.o.payload.data.shape(), "out_data")
        m.d.comb += self.o.payload.data.eq(out_data)
        commit = Signal(name="step_commit")
        start = Signal(name="step_start")
        m.d.comb += [
            # from registers only: an offered beat must be gone (o.ready reaches nothing but
            # o.valid, so it fans out to no enable)
            commit.eq(all_done & ~(self.o.valid & emit)),  # all_done only while busy
            start.eq((~busy | commit) & x_next_valid),
            probe.step_commit.eq(commit),
            probe.step_start.eq(start),
        ]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(commit):
            m.d.sync += [all_done.eq(0), busy.eq(0), bank.eq(~bank), first_step.eq(cur_last)]
            with m.If(emit):
                m.d.sync += [self.o.valid.eq(1), self.o.payload.last.eq(cur_last)]
        # the H codes load when the step is complete and no beat is offered: two registers
        # drive that enable (commit follows in the same cycle when the step emits)
        with m.If(all_done & ~self.o.valid):
            m.d.sync += out_data.eq(Cat(*out_shift))
        with m.If(start):
            m.d.sync += [cur_last.eq(x_next_last), x_next_valid.eq(0), busy.eq(1), issuing.eq(1)]
        return m
