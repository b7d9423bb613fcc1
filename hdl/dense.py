"""The dense layer of SPEC §2b: a stream of vectors in, P MAC lanes, a stream of vectors out."""

from __future__ import annotations

import math
from dataclasses import dataclass

from amaranth.hdl import Cat, Module, Mux, ResetSignal, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hdl.fixed import (
    MUL_LATENCY,
    ROUND_LATENCY,
    Rom,
    bits_for,
    delay,
    fmt_shape,
    pick,
    product,
    round_stages,
    vector_stream,
)
from hdl.host import connect_banks, core_host_bus, mem_host_signature
from model.qmodel import DenseLayer, exact_sum


def valid_dense_lanes(output_size: int) -> list[int]:
    """Lane counts a dense core can build: the divisors of its output size (each lane owns
    the same number of output rows, so every lane finishes a step in the same cycle)."""
    return [p for p in range(1, output_size + 1) if output_size % p == 0]


def check_dense_lanes(layer: DenseLayer, lanes, *, name: str = "dense1") -> int:
    """``lanes`` as an int, or a ValueError that names the layer and the counts that work."""
    ok = valid_dense_lanes(layer.output_size)
    if isinstance(lanes, bool) or not isinstance(lanes, int) or lanes not in ok:
        raise ValueError(
            f"{name}: lanes = {lanes!r} cannot be built for output_size {layer.output_size}: "
            f"each lane owns the same number of output rows, so lanes must divide "
            f"{layer.output_size}; choose one of {ok} ([{name}.hardware] lanes)"
        )
    return lanes


def out_sum(layer: DenseLayer) -> tuple[int, int]:
    """(fractional bits, signed width) of the exact sum ``W u + b`` (SPEC §2b)."""
    return exact_sum(layer.sums()["out"])


class DenseMacLane(wiring.Component):
    """``act(W u + b)`` of a few output rows, one row after another, rounded once into ``out``.

    For each row the lane takes ``K`` (the layer's input size) beats on ``i``: ``operand`` is
    element ``column`` of ``u`` (the layer's input format), ``addr`` the beat's place in the
    lane's weight ROM (``row_slot * K + column``), ``slot`` the row's place in ``rows``,
    ``first``/``last`` the row's first and last column. The sum starts from the bias and
    takes every product exactly; ``o`` then carries ``slot``, ``acc`` (the exact sum at
    :func:`out_sum` fractional bits, before the activation) and ``out`` (relu, if the layer
    has it, then one rounding into ``out``).

    Handshake: ``always_ready`` streams, no stall. ``o.valid`` pulses :attr:`latency`
    cycles after the beat with ``last``; rows may follow each other with no gap. The
    weight ROM's word and the operand are registered before the multiplier and the product
    after it (the DSP block's input and output registers), and the rounding takes
    :data:`hdl.fixed.ROUND_LATENCY` register stages.

    With ``host`` the weight and bias memories are RAMs with a host port each
    (:func:`hdl.host.mem_host_signature`): ``host_w`` (word ``slot * K + j``: ``w[row][j]``)
    and ``host_b`` (word ``slot``: ``b[row]``).
    """

    latency = 4 + MUL_LATENCY + ROUND_LATENCY

    def __init__(self, *, layer: DenseLayer, rows, host: bool = False):
        if not isinstance(layer, DenseLayer):
            raise TypeError(f"layer must be a model.qmodel.DenseLayer, not {layer!r}")
        rows = [int(r) for r in rows]
        n = layer.output_size
        if not rows or any(not 0 <= r < n for r in rows):
            raise ValueError(f"rows must be a non-empty list of rows in [0, {n}), not {rows}")
        self._layer = layer
        self._rows = tuple(rows)
        k = layer.input_size
        self._acc_frac, self._acc_w = out_sum(layer)
        self._beat = beat = data.StructLayout(
            {
                "addr": unsigned(bits_for(len(rows) * k - 1)),
                "slot": unsigned(bits_for(len(rows) - 1)),
                "first": 1,
                "last": 1,
                "operand": fmt_shape(layer.in_fmt),
            }
        )
        result = data.StructLayout(
            {
                "slot": unsigned(bits_for(len(rows) - 1)),
                "out": fmt_shape(layer.out_fmt),
                "acc": signed(self._acc_w),
            }
        )
        members = {
            "i": In(stream.Signature(beat, always_ready=True)),
            "o": Out(stream.Signature(result, always_ready=True)),
        }
        self._host = bool(host)
        if self._host:
            members["host_w"] = Out(
                mem_host_signature(len(rows) * k, fmt_shape(layer.formats["w"]))
            )
            members["host_b"] = Out(mem_host_signature(len(rows), fmt_shape(layer.formats["b"])))
        super().__init__(members)

    @property
    def rows(self) -> tuple[int, ...]:
        return self._rows

    def elaborate(self, platform):
        la = self._layer
        f = la.formats
        m = Module()
        beat = self.i.payload

        coefs = [int(v) for r in self._rows for v in la.w[r]]
        host_w, host_b = (self.host_w, self.host_b) if self._host else (None, None)
        rd_w = Rom(m, "weights", fmt_shape(f["w"]), coefs, host=host_w)
        rd_b = Rom(m, "bias", fmt_shape(f["b"]), [la.b[r] for r in self._rows], host=host_b)
        m.d.comb += [rd_w.addr.eq(beat.addr), rd_b.addr.eq(beat.slot)]

        # stage 1: the ROM words arrive; the beat's fields are registered alongside
        s1 = Signal(self._beat, name="s1", reset_less=True)
        v1 = Signal(name="v1")
        m.d.sync += [s1.eq(beat), v1.eq(self.i.valid)]

        # stage 2: the ROM word in a register (a block RAM's output goes nowhere else)
        weight = Signal(fmt_shape(f["w"]), name="weight", reset_less=True)
        operand = Signal(fmt_shape(la.in_fmt), name="operand", reset_less=True)
        bias = Signal(fmt_shape(f["b"]), name="bias", reset_less=True)
        m.d.sync += [weight.eq(rd_w.data), operand.eq(s1.operand), bias.eq(rd_b.data)]
        s2 = delay(m, s1, 1, name="s2", reset_less=True)
        v2 = delay(m, v1, 1, name="v2")

        # stage 3: the DSP block (input and pipeline registers), then a fabric register, and
        # the starting value of the sum alongside
        sx = self._acc_frac - f["w"].frac - la.in_fmt.frac
        sb = self._acc_frac - f["b"].frac
        dsp = product(m, weight, operand, name="product")
        prod = delay(m, dsp, 1, name="prod", reset_less=True)
        start = delay(m, bias << sb, 1 + MUL_LATENCY, name="start", reset_less=True)
        s3 = delay(m, s2, 1 + MUL_LATENCY, name="s3", reset_less=True)
        v3 = delay(m, v2, 1 + MUL_LATENCY, name="v3")

        # stage 4: accumulate, exactly
        acc = Signal(signed(self._acc_w), name="acc", reset_less=True)
        s4 = Signal(self._beat, name="s4", reset_less=True)
        v4 = Signal(name="v4")
        with m.If(v3):
            m.d.sync += acc.eq(Mux(s3.first, start, acc) + (prod << sx))
        m.d.sync += [s4.eq(s3), v4.eq(v3)]

        # stages 5, 6: the activation on the exact sum, then the one rounding into out
        act = Signal(signed(self._acc_w), name="activated")
        m.d.comb += act.eq(Mux(acc[-1], 0, acc) if la.activation == "relu" else acc)
        out, stages = round_stages(m, act, self._acc_frac, la.out_fmt, name="out_rounded")
        m.d.comb += self.o.payload.out.eq(out)
        m.d.sync += [
            self.o.valid.eq(delay(m, v4 & s4.last, stages - 1, name="ends")),
            self.o.payload.slot.eq(delay(m, s4.slot, stages - 1, name="slot", reset_less=True)),
            self.o.payload.acc.eq(delay(m, acc, stages - 1, name="acc_out", reset_less=True)),
        ]
        return m


@dataclass(frozen=True)
class DenseSchedule:
    """Cycle counts of :class:`DenseCore` for a layer and a lane count."""

    lanes: int
    groups: int  # G = n / P output rows per lane
    columns: int  # K: the layer's input size
    min_cycles: int  # ceil(n K / P)
    pipeline_depth: int

    @classmethod
    def of(cls, layer: DenseLayer, lanes: int, *, name: str = "dense1") -> DenseSchedule:
        lanes = check_dense_lanes(layer, lanes, name=name)
        n, k = layer.output_size, layer.input_size
        return cls(
            lanes=lanes,
            groups=n // lanes,
            columns=k,
            min_cycles=math.ceil(n * k / lanes),
            pipeline_depth=DenseMacLane.latency + 2,
        )

    @property
    def mac_cycles(self) -> int:
        return self.groups * self.columns

    @property
    def cycles_per_step(self) -> int:
        """Cycles between the starts of two vectors when input and output never wait."""
        return self.mac_cycles + self.pipeline_depth

    @property
    def latency(self) -> int:
        """Cycles from an input beat's transfer to its output beat's valid, when idle."""
        return self.cycles_per_step + 2

    def hardware(self) -> dict:
        """This layer's entry of the manifest's ``hardware.layers``."""
        return {
            "kind": "dense",
            "lanes": self.lanes,
            "cycles_per_step": self.cycles_per_step,
            "latency": self.latency,
            "mac_cycles_per_step": self.mac_cycles,
            "min_cycles_per_step": self.min_cycles,
            "pipeline_depth": self.pipeline_depth,
        }


class DenseCore(wiring.Component):
    """One dense layer of SPEC §2b between two streams (:func:`hdl.fixed.vector_stream`).

    ``i``: one beat per vector ``u`` (``input_size`` codes of the layer's input format), with
    ``last``; ``o``: one beat per input beat, ``y = act(W u + b)`` (``output_size`` codes of
    ``out``), ``last`` copied from the input beat. It applies to whatever reaches it: every
    step's ``h`` of a ``sequence`` network, once per sequence for ``last``. ``o`` comes
    straight from registers, ``i.ready`` from a register and ``rst``.

    Schedule: ``lanes`` = P :class:`DenseMacLane` s (P divides ``output_size``); lane l owns
    rows ``l, l + P, ...`` (``G = output_size / P`` of them) and takes one element of ``u``
    per cycle, so a vector issues ``G * K`` MAC cycles; then

        cycles_per_step = G * K + DenseMacLane.latency + 2
        latency         = cycles_per_step + 2   (input transfer to output valid, when idle)

    (:class:`DenseSchedule`). Back-pressure stalls the end of a vector; an input beat waits
    in a one-beat holding register.

    ``probe`` (for a testbench): for each lane ``l``, while ``trace<l>_valid`` is high,
    ``trace<l>_index`` is the output element k just finished, ``trace<l>_out`` its ``out``
    code and ``trace<l>_acc`` its exact sum before the activation.

    With ``host`` (run-time weights, SPEC §5b) the lanes' weight and bias memories are RAMs
    behind ``host`` (:func:`hdl.host.host_bus_signature`), banks laid out as
    :func:`hdl.host.dense_routes` says.
    """

    def __init__(self, layer: DenseLayer, *, lanes: int = 1, name: str = "dense1",
                 host: bool = False):  # fmt: skip
        self._MustUse__silence = True  # until built: a rejected core is not an unused one
        if not isinstance(layer, DenseLayer):
            raise TypeError(f"layer must be a model.qmodel.DenseLayer, not {layer!r}")
        self._layer = layer
        self._name = name
        self._lanes = check_dense_lanes(layer, lanes, name=name)
        probes = {}
        for lane in range(self._lanes):
            probes[f"trace{lane}_valid"] = Out(1)
            probes[f"trace{lane}_index"] = Out(unsigned(bits_for(layer.output_size - 1)))
            probes[f"trace{lane}_out"] = Out(fmt_shape(layer.out_fmt))
            probes[f"trace{lane}_acc"] = Out(signed(out_sum(layer)[1]))
        members = {
            "i": In(vector_stream(layer.input_size, layer.in_fmt)),
            "o": Out(vector_stream(layer.output_size, layer.out_fmt)),
            "probe": Out(wiring.Signature(probes)),
        }
        self._host = bool(host)
        if self._host:
            members["host"] = Out(core_host_bus(layer, self._lanes, name=name))
        super().__init__(members)
        self._MustUse__silence = False

    @property
    def layer(self) -> DenseLayer:
        return self._layer

    @property
    def lanes(self) -> int:
        return self._lanes

    @property
    def schedule(self) -> DenseSchedule:
        return DenseSchedule.of(self._layer, self._lanes, name=self._name)

    @property
    def cycles_per_step(self) -> int:
        return self.schedule.cycles_per_step

    @property
    def latency(self) -> int:
        return self.schedule.latency

    def hardware(self) -> dict:
        return self.schedule.hardware()

    def elaborate(self, platform):
        la = self._layer
        n_in, n_out = la.input_size, la.output_size
        sch = self.schedule
        p, g_len, k_len = self._lanes, sch.groups, sch.columns
        m = Module()

        u_shape, y_shape = fmt_shape(la.in_fmt), fmt_shape(la.out_fmt)
        # data registers carry no reset: only valid bits and counters do
        u_next = [Signal(u_shape, name=f"u_next_{k}", reset_less=True) for k in range(n_in)]
        u_next_valid = Signal(name="u_next_valid")
        u_next_last = Signal(name="u_next_last", reset_less=True)
        u_cur = [Signal(u_shape, name=f"u_cur_{k}", reset_less=True) for k in range(n_in)]
        cur_last = Signal(name="cur_last", reset_less=True)
        y_work = [Signal(y_shape, name=f"y_work_{k}", reset_less=True) for k in range(n_out)]
        busy = Signal(name="busy")
        issuing = Signal(name="issuing")
        addr = Signal(unsigned(bits_for(g_len * k_len - 1)), name="mac_addr")
        col = Signal(unsigned(bits_for(k_len - 1)), name="mac_col")
        grp = Signal(unsigned(bits_for(g_len - 1)), name="mac_group")
        groups_left = Signal(unsigned(bits_for(g_len)), name="groups_left")
        finished = Signal(name="vector_finished")  # every row of the vector is in y_work

        # ---- input holding register: ready comes from a register (and is low in reset)
        m.d.comb += self.i.ready.eq(~u_next_valid & ~ResetSignal())
        with m.If(self.i.valid & self.i.ready):
            w = la.in_fmt.width
            for k in range(n_in):
                m.d.sync += u_next[k].eq(self.i.payload.data[k * w : (k + 1) * w])
            m.d.sync += [u_next_valid.eq(1), u_next_last.eq(self.i.payload.last)]

        # ---- the MAC lanes: one element of u per cycle, shared by all lanes. u rotates
        # through a shift register (element ``col`` sits in u_cur[0]), so no K:1 multiplexer
        # sits before the lanes.
        with m.If(issuing):
            m.d.sync += [u_cur[k].eq(u_cur[(k + 1) % n_in]) for k in range(n_in)]
        lanes = []
        for lane in range(p):
            rows = [g * p + lane for g in range(g_len)]
            m.submodules[f"lane{lane}"] = mac = DenseMacLane(layer=la, rows=rows, host=self._host)
            lanes.append(mac)
            beat = mac.i.payload
            m.d.comb += [
                mac.i.valid.eq(issuing),
                beat.addr.eq(addr),
                beat.slot.eq(grp),
                beat.first.eq(col == 0),
                beat.last.eq(col == k_len - 1),
                beat.operand.eq(u_cur[0]),
            ]
            res = mac.o.payload
            index = Signal(unsigned(bits_for(n_out - 1)), name=f"lane{lane}_index")
            m.d.comb += index.eq(pick(rows, res.slot))
            probe = self.probe
            m.d.comb += [
                getattr(probe, f"trace{lane}_valid").eq(mac.o.valid),
                getattr(probe, f"trace{lane}_index").eq(index),
                getattr(probe, f"trace{lane}_out").eq(res.out),
                getattr(probe, f"trace{lane}_acc").eq(res.acc),
            ]
        # the lanes finish a row group together (row g*P + l in lane l): the group's P outputs
        # enter the top of y_work and everything moves down by P, so after G groups row r sits
        # in y_work[r]; no lane needs a G-way write decode
        with m.If(lanes[0].o.valid):
            # a register, not a compare in front of the commit: the commit reaches wide enables
            m.d.sync += [groups_left.eq(groups_left - 1), finished.eq(groups_left == 1)]
            for r in range(n_out):
                src = y_work[r + p] if r + p < n_out else lanes[r + p - n_out].o.payload.out
                m.d.sync += y_work[r].eq(src)
        with m.If(issuing):
            m.d.sync += addr.eq(addr + 1)
            with m.If(col == k_len - 1):
                m.d.sync += [col.eq(0), grp.eq(grp + 1)]
            with m.Else():
                m.d.sync += col.eq(col + 1)
            with m.If(addr == g_len * k_len - 1):
                m.d.sync += issuing.eq(0)

        if self._host:
            connect_banks(
                m, self.host, [mac.host_w for mac in lanes] + [mac.host_b for mac in lanes]
            )

        # ---- the end of a vector: offer y, start the next one
        # a vector commits once the previous output beat has gone (o.valid low): from
        # registers only, so the next stage's ready never reaches the wide loads below
        out_free = ~self.o.valid
        commit = Signal(name="vector_commit")
        start = Signal(name="vector_start")
        m.d.comb += [
            commit.eq(finished & out_free),
            start.eq((~busy | commit) & u_next_valid),
        ]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(commit):
            m.d.sync += [
                finished.eq(0),
                busy.eq(0),
                self.o.payload.data.eq(Cat(*y_work)),
                self.o.payload.last.eq(cur_last),
                self.o.valid.eq(1),
            ]
        # start takes the beat; the cycle after (launch, a register) loads u and the
        # counters: start is a decision of several registers, launch a clean fan-out
        launch = Signal(name="vector_launch")
        m.d.sync += launch.eq(start)
        with m.If(start):
            m.d.sync += [cur_last.eq(u_next_last), u_next_valid.eq(0), busy.eq(1)]
        with m.If(launch):
            m.d.sync += [u_cur[k].eq(u_next[k]) for k in range(n_in)]
            m.d.sync += [
                issuing.eq(1),
                addr.eq(0),
                col.eq(0),
                grp.eq(0),
                groups_left.eq(g_len),
            ]
        return m
