"""The streaming LSTM layer: a stream of x_t in, P MAC lanes, cell updates, a stream of h out."""

from __future__ import annotations

import math
from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, ResetSignal, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hdl.cell import TRACE, CellUpdate
from hdl.fixed import bits_for, fmt_shape, pick, vector_stream
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
    cell_units: int  # cell updates side by side, one per four lanes
    min_cycles: int  # ceil(4H(I+H) / P): no design with P lanes takes fewer cycles per step
    pipeline_depth: int

    @classmethod
    def of(cls, layer: LstmLayer, lanes: int, *, name: str = "lstm1") -> Schedule:
        lanes = check_lanes(layer, lanes, name=name)
        h, k = layer.hidden_size, layer.input_size + layer.hidden_size
        return cls(
            lanes=lanes,
            groups=4 * h // lanes,
            columns=k,
            cell_units=max(1, lanes // 4),
            min_cycles=math.ceil(4 * h * k / lanes),
            pipeline_depth=GateMacLane.latency + CellUpdate.latency_for(layer) + 1,
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
    with ``"last"``. After a step with ``last`` the state is zero again. ``o.valid``,
    ``o.payload`` come straight from registers, ``i.ready`` from a register and ``rst`` (low
    while in reset). The core knows nothing of the layers around it
    (:class:`hdl.network.NetworkCore` composes the chain).

    Schedule: ``lanes`` = P :class:`hdl.mac.GateMacLane` s each own ``4H / P`` gate rows
    (unit-major: row group k of lane l is gate ``(kP + l) % 4`` of unit ``(kP + l) // 4``)
    and take one column of ``[x_t ; h_{t-1}]`` per cycle, so a step issues
    ``G * K = (4H / P) * (I + H)`` = ``ceil(4H(I+H) / P)`` MAC cycles. A hidden unit's
    pre-activations go to one of ``max(1, P / 4)`` :class:`hdl.cell.CellUpdate` s as soon
    as its four rows finish, overlapping the MACs of later units. A step ends when every
    unit's ``c_t``, ``h_t`` is written; the next step starts in the same cycle. Hence

        cycles_per_step = G * K + GateMacLane.latency + CellUpdate.latency + 1
        latency         = cycles_per_step + 2   (input transfer to output valid, when idle)

    (:class:`Schedule`). Output back-pressure stalls the step's end; input beats wait in a
    one-beat holding register.

    With ``host`` (run-time weights, SPEC §5b) the lanes' weight and bias memories are RAMs
    behind ``host`` (:func:`hdl.host.host_bus_signature`), banks laid out as
    :func:`hdl.host.lstm_routes` says.

    ``probe`` (for a testbench; nothing reads it, so it costs nothing after synthesis): for
    each cell update ``u`` (0 to ``Schedule.cell_units - 1``): while ``trace<u>_valid`` is
    high, ``trace<u>_unit`` is the hidden unit j that just finished and ``trace<u>_pre_i``,
    ``_pre_f``, ``_pre_g``, ``_pre_o`` (after its peephole term), ``_i``, ``_f``, ``_g``,
    ``_o``, ``_c``, ``_tanh_cell``, ``_h`` are its codes of this step, as in
    :func:`model.lstm.lstm_fixed`'s trace. ``cell_state_<j>`` and ``h_state_<j>`` hold
    ``c_{t-1}``, ``h_{t-1}`` of the running step; ``step_start`` and ``step_commit`` pulse
    when a step begins and ends. Submodules: ``lane<l>`` (MAC lanes), ``cell<u>`` (cell
    updates).
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
        probes = {}
        for u in range(self.schedule.cell_units):
            probes[f"trace{u}_valid"] = Out(1)
            probes[f"trace{u}_unit"] = Out(unsigned(bits_for(h - 1)))
            for k in (*TRACE, "c", "h"):
                probes[f"trace{u}_{k}"] = Out(fmt_shape(shapes[k]))
        for j in range(h):
            probes[f"cell_state_{j}"] = Out(fmt_shape(f["cell"]))
            probes[f"h_state_{j}"] = Out(fmt_shape(f["h"]))
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
        p, g_len, k_len, u_len = self._lanes, sch.groups, sch.columns, sch.cell_units
        per_unit = max(1, 4 // p)  # row groups per hidden unit when P < 4
        m = Module()
        probe = self.probe

        # ---- state
        x_shape, h_shape, c_shape = fmt_shape(f["x"]), fmt_shape(f["h"]), fmt_shape(f["cell"])
        x_next = [Signal(x_shape, name=f"x_next_{k}") for k in range(n_in)]
        x_next_valid = Signal(name="x_next_valid")
        x_next_last = Signal(name="x_next_last")
        x_cur = [Signal(x_shape, name=f"x_cur_{k}") for k in range(n_in)]
        cur_last = Signal(name="cur_last")
        h_state = [Signal(h_shape, name=f"h_prev_{j}") for j in range(h)]
        h_work = [Signal(h_shape, name=f"h_work_{j}") for j in range(h)]
        cell_state = [Signal(c_shape, name=f"c_prev_{j}") for j in range(h)]
        for j in range(h):
            m.d.comb += [
                getattr(probe, f"cell_state_{j}").eq(cell_state[j]),
                getattr(probe, f"h_state_{j}").eq(h_state[j]),
            ]
        busy = Signal(name="busy")
        issuing = Signal(name="issuing")
        addr = Signal(unsigned(bits_for(g_len * k_len - 1)), name="mac_addr")
        col = Signal(unsigned(bits_for(k_len - 1)), name="mac_col")
        grp = Signal(unsigned(bits_for(g_len - 1)), name="mac_group")
        done = Signal(unsigned(bits_for(h)), name="units_done")

        # ---- input holding register: tready comes from a register
        # (low during reset too: a beat offered then would be lost)
        m.d.comb += self.i.ready.eq(~x_next_valid & ~ResetSignal())
        with m.If(self.i.valid & self.i.ready):
            wx = f["x"].width
            for k in range(n_in):
                m.d.sync += x_next[k].eq(self.i.payload.data[k * wx : (k + 1) * wx])
            m.d.sync += [x_next_valid.eq(1), x_next_last.eq(self.i.payload.last)]

        # ---- the MAC lanes: one column of [x_t ; h_{t-1}] per cycle, shared by all lanes
        opw = operand_width(qm)
        operand = Signal(signed(opw), name="mac_operand")
        m.d.comb += operand.eq(pick([*x_cur, *h_state], col))
        lanes = []
        for lane in range(p):
            rows = [self._row(k, lane)[0] for k in range(g_len)]
            m.submodules[f"lane{lane}"] = mac = GateMacLane(layer=qm, rows=rows, host=self._host)
            lanes.append(mac)
            beat = mac.i.payload
            m.d.comb += [
                mac.i.valid.eq(issuing),
                beat.addr.eq(addr),
                beat.slot.eq(grp),
                beat.first.eq(col == 0),
                beat.last.eq(col == k_len - 1),
                beat.is_h.eq(col >= n_in),
                beat.operand.eq(operand),
            ]
            if mac.peephole:
                units = [self._row(k, lane)[1] for k in range(g_len)]
                m.d.comb += beat.cell.eq(pick([cell_state[j] for j in units], grp))
        with m.If(issuing):
            m.d.sync += addr.eq(addr + 1)
            with m.If(col == k_len - 1):
                m.d.sync += [col.eq(0), grp.eq(grp + 1)]
            with m.Else():
                m.d.sync += col.eq(col + 1)
            with m.If(addr == g_len * k_len - 1):
                m.d.sync += issuing.eq(0)

        # ---- gather a unit's four rows; P < 4 stages the early ones in registers
        out0 = lanes[0].o
        slot = out0.payload.slot
        phase = slot[: (per_unit - 1).bit_length()] if per_unit > 1 else 0
        cells = []
        for u in range(u_len):
            m.submodules[f"cell{u}"] = cell = CellUpdate(layer=qm, host=self._host)
            cells.append(cell)
            ci = cell.i.payload
            for gate, name in enumerate(("pre_i", "pre_f", "pre_g", "pre_o")):
                lane_ix = 4 * u + gate if p >= 4 else gate % p
                field = "acc" if (gate == 3 and qm.peephole) else "preact"
                value = getattr(lanes[lane_ix].o.payload, field)
                if p < 4 and gate // p < per_unit - 1:
                    staged = Signal(value.shape(), name=f"staged_{name}")
                    with m.If(out0.valid & (phase == gate // p)):
                        m.d.sync += staged.eq(value)
                    value = staged
                m.d.comb += getattr(ci, name).eq(value)
            units = [self._row(k, 4 * u if p >= 4 else 0)[1] for k in range(g_len)]
            unit = Signal(ci.unit.shape(), name=f"cell{u}_unit")
            m.d.comb += [
                unit.eq(pick(units, slot)),
                ci.unit.eq(unit),
                ci.cell.eq(pick([cell_state[j] for j in units], slot)),
                cell.i.valid.eq(out0.valid & (phase == per_unit - 1)),
            ]
            res = cell.o.payload
            # named copies for a testbench: this unit's values of SPEC §2 as it finishes
            shown = {"valid": cell.o.valid, "unit": res.unit, "c": res.c, "h": res.h}
            shown.update({name: getattr(cell, f"trace_{name}") for name in TRACE})
            for name, value in shown.items():
                m.d.comb += getattr(probe, f"trace{u}_{name}").eq(value)
            for j in range(h):
                if j % u_len != u:
                    continue
                with m.If(cell.o.valid & (res.unit == j)):
                    m.d.sync += [cell_state[j].eq(res.c), h_work[j].eq(res.h)]
        with m.If(cells[0].o.valid):
            m.d.sync += done.eq(done + u_len)

        if self._host:  # the banks in the order of hdl.host.lstm_routes
            banks = [mac.host_w for mac in lanes] + [mac.host_b for mac in lanes]
            if qm.peephole:
                banks += [mac.host_p if mac.peephole else None for mac in lanes]
                banks.append([cell.host_po for cell in cells])
            connect_banks(m, self.host, banks)

        # ---- the end of a step: commit the state, offer h_t, start the next step
        emit = Const(1, 1) if self._output == "sequence" else cur_last
        out_free = ~self.o.valid | self.o.ready
        commit = Signal(name="step_commit")
        start = Signal(name="step_start")
        m.d.comb += [
            commit.eq(busy & ~issuing & (done == h) & (out_free | ~emit)),
            start.eq((~busy | commit) & x_next_valid),
            probe.step_commit.eq(commit),
            probe.step_start.eq(start),
        ]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(commit):
            m.d.sync += [done.eq(0), busy.eq(0)]
            for j in range(h):
                m.d.sync += h_state[j].eq(h_work[j])
            with m.If(cur_last):  # the next sequence starts from zero
                m.d.sync += [v.eq(0) for v in (*h_state, *cell_state)]
            with m.If(emit):
                m.d.sync += [
                    self.o.payload.data.eq(Cat(*h_work)),
                    self.o.valid.eq(1),
                    self.o.payload.last.eq(cur_last),
                ]
        with m.If(start):
            m.d.sync += [x_cur[k].eq(x_next[k]) for k in range(n_in)]
            m.d.sync += [
                cur_last.eq(x_next_last),
                x_next_valid.eq(0),
                busy.eq(1),
                issuing.eq(1),
                addr.eq(0),
                col.eq(0),
                grp.eq(0),
            ]
        return m
