"""The testbench: clock, reset, AXI4-Stream source and sink, scoreboard, timing, probes.

:class:`TB` drives the generated network core through its SPEC §5 interface. It sends
sequences of input codes back to back (random garbage in the bus's pad bits above
``I * W_x``, which the core must ignore), checks every output beat against the network's
output codes, pad bits 0 (:class:`Scoreboard`), stamps every transfer with its cycle to
measure cycles per step and latency, can reset the core in the middle of a sequence, and
with :class:`Probes` records each layer's internal quantization points for diagnosis.
The expected codes come from ``model/`` (computed by the caller, see :mod:`sim.job`);
nothing here recomputes a layer.
"""

from __future__ import annotations

import random
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field

from cocotb.clock import Clock
from cocotb.triggers import First, RisingEdge, Timer
from cocotb.utils import get_sim_time

from model.formats import Format
from model.qmodel import QuantizedNetwork
from sim.drivers import StreamSink, StreamSource

CLOCK_NS = 10
RESET_CYCLES = 3
#: input beats queued ahead of the core (whole sequences: a long one is queued at once)
FEED_BEATS = 64
#: quantization points of SPEC §2 in the order data flows through one step of an LSTM layer
POINTS = ("preact", "i", "f", "g", "c", "o", "tanh_cell", "h")
#: and of a dense layer (SPEC §2b)
DENSE_POINTS = ("out",)
POINT_FORMAT = {
    "preact": "preact",
    "i": "gate",
    "f": "gate",
    "o": "gate",
    "g": "cand",
    "c": "cell",
    "tanh_cell": "tanh_cell",
    "h": "h",
    "out": "out",
}


def bus_width(bits: int) -> int:
    """SPEC §5: a bus carrying ``bits`` bits of codes is padded to whole bytes."""
    return 8 * -(-bits // 8)


def pack(codes, width: int) -> int:
    """Codes (element k in bits [k*width +: width]) as one unsigned integer word."""
    mask = (1 << width) - 1
    word = 0
    for k, c in enumerate(codes):
        word |= (int(c) & mask) << (k * width)
    return word


def unpack(word: int, n: int, fmt: Format) -> list[int]:
    """The ``n`` codes of ``fmt`` packed in ``word``."""
    return [to_code(word >> (k * fmt.width), fmt) for k in range(n)]


def to_code(bits: int, fmt: Format) -> int:
    """The low ``fmt.width`` bits of ``bits`` as a code of ``fmt`` (signed or not)."""
    w = fmt.width
    bits &= (1 << w) - 1
    if fmt.signed and bits >> (w - 1):
        bits -= 1 << w
    return bits


class Stalled(RuntimeError):
    """The core stopped transferring: a deadlock or a lost beat."""


@dataclass
class Expect:
    phase: str
    seq: int
    step: int
    word: int
    last: bool


@dataclass
class Scoreboard:
    """The network's output beats in order; each beat from the core is checked against the
    next, pad bits above ``size * fmt.width`` included (SPEC §5: they are 0).

    A mismatch records the sequence, step and elements that differ (and the pad bits, if
    they are not 0). Only the first ``keep`` mismatches are kept in full; all are counted.
    """

    size: int
    fmt: Format
    keep: int = 20
    pending: deque = field(default_factory=deque)
    mismatches: list = field(default_factory=list)
    mismatched: int = 0
    checked: int = 0

    def expect(self, e: Expect) -> None:
        self.pending.append(e)

    def check(self, data: int, last: bool, cycle: int) -> bool:
        self.checked += 1
        if not self.pending:
            self._record(
                {"cycle": cycle, "what": "a beat nobody expected", "got": hex(data), "last": last}
            )
            return False
        e = self.pending.popleft()
        if data == e.word and last == e.last:
            return True
        got = unpack(data, self.size, self.fmt)
        want = unpack(e.word, self.size, self.fmt)
        rec = {
            "phase": e.phase,
            "sequence": e.seq,
            "step": e.step,
            "cycle": cycle,
            "elements": [[k, g, w] for k, (g, w) in enumerate(zip(got, want)) if g != w],
        }
        if last != e.last:
            rec["tlast"] = [int(last), int(e.last)]
        pad = data >> (self.size * self.fmt.width)
        if pad:
            rec["pad"] = hex(pad)
        self._record(rec)
        return False

    def drop(self, phase: str, seq: int) -> int:
        """Forget the beats of a sequence cut short by a reset; return how many."""
        before = len(self.pending)
        self.pending = deque(e for e in self.pending if (e.phase, e.seq) != (phase, seq))
        return before - len(self.pending)

    def _record(self, rec: dict) -> None:
        self.mismatched += 1
        if len(self.mismatches) < self.keep:
            self.mismatches.append(rec)


class Probes:
    """Each layer's internal quantization points, recorded as the core writes them.

    ``groups`` is a list of strobes, each ``{"layer": name, "valid": path, "index": path,
    "fields": [[point, path, offset], ...]}``: on every cycle where ``valid`` is high,
    element ``index + offset`` of each field's point of that layer takes that field's code,
    for the step in progress. The k-th write of an element since reset belongs to the k-th
    step since reset (for a dense layer after an output "last" network: the k-th sequence).
    (:func:`sim.diagnose.probe_groups` finds the groups of a design.)
    """

    def __init__(self, dut, net: QuantizedNetwork, groups: list[dict]):
        self.groups = []
        self.points = set()  # (layer, point)
        layers = dict(zip(net.layer_names, net.layers))
        for g in groups:
            name = g.get("layer", net.layer_names[0])
            layer = layers[name]
            fields = []
            for point, path, offset in g["fields"]:
                fmt = layer.formats[POINT_FORMAT[point]]
                fields.append(((name, point), resolve(dut, path), int(offset), fmt))
                self.points.add((name, point))
            self.groups.append((resolve(dut, g["valid"]), resolve(dut, g["index"]), fields))
        self.reset()

    def reset(self) -> None:
        self.count: dict = {}
        self.values: dict = {}  # ((layer, point), step, element) -> (code, cycle)

    def sample(self, cycle: int) -> None:
        for valid, index, fields in self.groups:
            try:
                if int(valid.value) != 1:
                    continue
                k = int(index.value)
            except ValueError:
                continue  # X or Z: nothing written this cycle
            for point, data, offset, fmt in fields:
                try:
                    code = to_code(int(data.value), fmt)
                except ValueError:
                    code = None
                key = (point, k + offset)
                step = self.count.get(key, 0)
                self.count[key] = step + 1
                self.values[(point, step, k + offset)] = (code, cycle)


def resolve(dut, path: str):
    """The handle at a dotted hierarchical path below the top (``lstm1.mac.acc``)."""
    h = dut
    for part in path.split("."):
        h = h._id(part, extended=False)
    return h


class TB:
    """Drives one core: ``await tb.start()``, then :meth:`run_phase` for each batch.

    ``interface`` lists how the core's bus widths differ from SPEC §5 (empty when right);
    the bench still runs, padding to the widths the core has.
    """

    def __init__(self, dut, net: QuantizedNetwork, *, seed: int = 0, progress=None, label=""):
        self.dut = dut
        self.net = net
        self.hw = net.hardware
        self.fx, self.fy = net.in_fmt, net.out_fmt
        self.rng = random.Random(seed)
        self.seed = seed
        self.cycle = 0
        self.steps_done = 0
        self._fed = 0  # sequences of the running phase queued so far
        self.source = StreamSource(dut, "s_axis")
        self.sink = StreamSink(dut, "m_axis")
        self.scoreboard = Scoreboard(net.output_size, self.fy)
        self.interface: list[str] = []
        self.x_bits = net.input_size * self.fx.width
        self.x_pad = self._check_width("s_axis_tdata", self.x_bits) - self.x_bits
        self._check_width("m_axis_tdata", net.output_size * self.fy.width)
        self.probes: Probes | None = None
        self.progress = progress
        self.label = label
        self._edge = RisingEdge(dut.clk)
        self.timing = {"intervals": Counter(), "latencies": Counter()}

    def _check_width(self, port: str, bits: int) -> int:
        """The port's width; a width other than SPEC §5's byte-padded one is recorded."""
        width = len(getattr(self.dut, port))
        if width != bus_width(bits):
            self.interface.append(
                f"{port} is {width} bits; SPEC §5 says 8*ceil({bits}/8) = {bus_width(bits)}"
            )
        return width

    def input_word(self, codes) -> int:
        """One input beat: the codes, and random garbage in the pad bits above them."""
        word = pack(codes, self.fx.width)
        if self.x_pad > 0:
            word |= self.rng.getrandbits(self.x_pad) << self.x_bits
        return word

    async def start(self) -> None:
        Clock(self.dut.clk, CLOCK_NS, unit="ns", impl="gpi").start(start_high=False)
        self.idle_weight_bus()
        await self.reset()

    def idle_weight_bus(self) -> None:
        """A design with run-time weights (SPEC §5b) has an AXI4-Lite slave this bench does
        not use: no request on it, and ready for any response (undriven, Icarus would feed
        it z)."""
        if not hasattr(self.dut, "s_axil_awvalid"):
            return
        for name in ("awaddr", "awvalid", "wdata", "wstrb", "wvalid", "araddr", "arvalid"):
            getattr(self.dut, f"s_axil_{name}").value = 0
        self.dut.s_axil_bready.value = 1
        self.dut.s_axil_rready.value = 1

    async def reset(self, cycles: int = RESET_CYCLES) -> None:
        """Hold ``rst`` high for ``cycles`` edges with both streams idle."""
        self.dut.rst.value = 1
        self.source.halt()
        self.sink.halt()
        for _ in range(cycles):
            await self._edge
        self.cycle = self.now()
        self.dut.rst.value = 0
        if self.probes is not None:
            self.probes.reset()

    def now(self) -> int:
        """The number of the clock edge we are at (from the simulation time)."""
        return int(get_sim_time("ns")) // CLOCK_NS

    def stall_limit(self) -> int:
        cps = int(self.hw.get("cycles_per_step", 0) or 0)
        lat = int(self.hw.get("latency", 0) or 0)
        if cps:
            return 20 * (cps + lat) + 2000
        work = sum(
            4 * la.hidden_size * (la.input_size + la.hidden_size + 4)
            if la.kind == "lstm"
            else la.output_size * (la.input_size + 4)
            for la in self.net.layers
        )
        return 40 * work + 2000

    async def run_phase(self, phase: dict, sequences, expected, *, pauses=(None, None)) -> dict:
        """Send ``sequences`` back to back, check every output; return the phase's numbers.

        ``phase`` carries the name, ``resets`` ({seq: steps}), ``timing`` (measure: the
        intervals between input transfers, or with ``isolated`` the latency of each
        sequence's first step) and ``isolated`` (hold each sequence until the core is
        idle); ``expected`` holds the network's output beats in order (``[beats, n]``).
        """
        name = phase["name"]
        resets = {int(s): int(a) for s, a in phase.get("resets", {}).items()}
        self.source.pause, self.sink.pause = pauses
        per_seq = self.net.output == "sequence"
        beats = sum(len(x) for x in sequences) if per_seq else len(sequences)
        if beats != len(expected):
            raise ValueError(
                f"phase {name}: {beats} output beats expected, the job has {len(expected)}"
            )
        # sequences are queued a few at a time, so memory stays flat in their number
        feed = self._feed(name, sequences, expected, per_seq)
        self._fed = 0
        queue = self.source.queue

        start_cycle, start_wall = self.cycle, time.perf_counter()
        mism_before, steps_before = self.scoreboard.mismatched, self.steps_done
        sent: deque = deque()  # input handshake cycles not yet matched with an output
        last_in = None
        last_out = self.cycle
        reset_at = None
        timing, isolated = bool(phase.get("timing")), bool(phase.get("isolated"))
        cut: set[int] = set()
        limit = self.stall_limit()
        last_progress = self.cycle
        next_report = start_wall + 2.0
        edge, source, sink, board = self._edge, self.source, self.sink, self.scoreboard
        probes = self.probes
        wake = (RisingEdge(source.tready), RisingEdge(sink.tvalid))
        iterations = 0
        while feed is not None or not source.idle or board.pending or reset_at is not None:
            if feed is not None and len(queue) < FEED_BEATS:
                feed = feed if next(feed, None) else None
            await edge
            self.cycle = cycle = self.now()
            if probes is not None:
                probes.sample(cycle)
            head = source.queue[0][2] if source.queue else None
            if head is None:
                source.hold = False
            elif reset_at is not None:
                # while a reset is due, the source must not start the next sequence
                source.hold = head[0] != reset_at[1]
            elif isolated and head[1] == 0:
                # each sequence meets an idle core: all earlier outputs out, a few cycles
                source.hold = not self._earlier_done(name, head[0]) or cycle - last_out < 4
            else:
                source.hold = False
            tag = source.edge()
            if tag is not None:
                last_progress = cycle
                self.steps_done += 1
                s, t = tag
                if last_in is not None and timing and not isolated:
                    self.timing["intervals"][cycle - last_in] += 1
                last_in = cycle
                if per_seq or t == len(sequences[s]) - 1:
                    sent.append((cycle, t))
                if resets.get(s) == t + 1:
                    reset_at = (cycle + self.rng.randrange(0, 2 * self._step_cycles() + 1), s)
            got = sink.edge(cycle)
            if got is not None:
                last_progress = last_out = cycle
                board.check(got[0], got[1], cycle)
                if sent:
                    t_in, t = sent.popleft()
                    if timing and isolated and t == 0:
                        self.timing["latencies"][got[2] - t_in] += 1
            if (
                reset_at is not None
                and cycle >= reset_at[0]
                and self._earlier_done(name, reset_at[1])
            ):
                s = reset_at[1]
                await self._reset_mid_sequence(name, s, sequences)
                cut.add(s)
                sent.clear()
                last_in = None
                reset_at = None
                last_progress = self.cycle
            if cycle - last_progress > limit:
                raise Stalled(self._stall_report(name, limit))
            if (
                probes is None
                and reset_at is None
                and not sink.seen_valid
                and (source.waiting or (source.beat is None and not source.queue))
            ):
                # nothing can happen until the core raises tready or tvalid: skip to it
                # (both come from registers, so they change just after an edge)
                await First(*(wake if source.waiting else wake[1:]), Timer(limit * CLOCK_NS, "ns"))
            iterations += 1
            if self.progress is not None and iterations & 255 == 0:
                now = time.perf_counter()
                if now >= next_report:
                    next_report = now + 2.0
                    rate = (self.steps_done - steps_before) / (now - start_wall)
                    self.progress(self._progress_line(name, sequences, rate))
        wall = time.perf_counter() - start_wall
        return {
            "name": name,
            "sequences": len(sequences),
            "steps": self.steps_done - steps_before,
            "cut_by_reset": sorted(cut),
            "mismatched_beats": board.mismatched - mism_before,
            "cycles": self.cycle - start_cycle,
            "seconds": wall,
        }

    def _feed(self, name: str, sequences, expected, per_seq: bool):
        """Queue input beats and their expected outputs up to :data:`FEED_BEATS` ahead, whole
        sequences at a time, each time the generator is advanced; yields True while any
        are left."""
        source, board, width = self.source, self.scoreboard, self.fy.width
        beat = 0
        for s, x in enumerate(sequences):
            t_len = len(x)
            for t in range(t_len):
                source.put(self.input_word(x[t]), t == t_len - 1, (s, t))
                if per_seq or t == t_len - 1:
                    word = pack(expected[beat], width)
                    board.expect(Expect(name, s, t, word, t == t_len - 1 or not per_seq))
                    beat += 1
            self._fed = s + 1
            if len(source.queue) >= FEED_BEATS and s + 1 < len(sequences):
                yield True

    def _step_cycles(self) -> int:
        h = max(la.hidden_size for la in self.net.lstm_layers)
        return int(self.hw.get("cycles_per_step", 0) or 4 * h)

    async def _reset_mid_sequence(self, phase: str, seq: int, sequences) -> None:
        presented = self.source.halt()
        # the rest of the cut sequence is never sent; what it produced so far was checked
        queue = self.source.queue  # in place: run_phase holds on to it
        rest = [b for b in queue if b[2][0] != seq]
        queue.clear()
        if presented is not None and presented[2][0] != seq:
            queue.append(presented)
        queue.extend(rest)
        self.scoreboard.drop(phase, seq)
        await self.reset()

    def _stall_report(self, phase: str, limit: int) -> str:
        src = self.source.beat
        nxt = self.scoreboard.pending[0] if self.scoreboard.pending else None
        parts = [f"phase {phase}: no transfer for {limit} cycles (cycle {self.cycle})"]
        if src is not None:
            parts.append(f"input: presenting sequence {src[2][0]} step {src[2][1]}, not taken")
        elif self.source.queue:
            parts.append("input: beats waiting")
        if nxt is not None:
            parts.append(f"output: waiting for sequence {nxt.seq} step {nxt.step}")
        return "; ".join(parts)

    def _earlier_done(self, phase: str, seq: int) -> bool:
        """Whether every output of the sequences before ``seq`` has come out."""
        head = self.scoreboard.pending[0] if self.scoreboard.pending else None
        return head is None or head.phase != phase or head.seq >= seq

    def _progress_line(self, phase: str, sequences, rate: float) -> str:
        done = self.source.queue[0][2][0] if self.source.queue else self._fed
        return (
            f"{self.label}{phase}: {done}/{len(sequences)} sequences, "
            f"{self.scoreboard.mismatched} mismatches, {rate:,.0f} steps/s"
        )


def stderr_progress(line: str) -> None:
    end = "\r" if sys.__stderr__.isatty() else "\n"
    sys.__stderr__.write(line + end)
    sys.__stderr__.flush()
