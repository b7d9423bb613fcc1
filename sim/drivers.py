"""AXI4-Stream source and sink for the testbench, and the pause generators that stall them.

Both are *cycle-stepped*: the testbench awaits one rising edge per cycle and calls
:meth:`StreamSource.edge` and :meth:`StreamSink.edge` right after it. cocotb reads, right
after ``RisingEdge``, the values the edge sampled (on Verilator and on Icarus), so a
transfer is seen exactly when ``tvalid && tready`` held at that edge; what the drivers write
then is what the next edge samples. One await per cycle for the whole bench instead of one
per driver keeps long runs fast, and the source and sink stamp every transfer with its
cycle, which the timing checks need.

Pause generators follow cocotbext-axi's ``set_pause_generator``: an iterator yielding one
bool per cycle, ``True`` meaning "hold off this cycle". A source that is paused does not
start a new beat (a beat it already presents stays until taken: valid never waits for
ready); a paused sink drives ``tready`` low (back-pressure).
"""

from __future__ import annotations

import itertools
import random
from collections import deque
from collections.abc import Iterator

PAUSE_KINDS = ("none", "pattern", "random")


def pause_generator(spec: str | None, *, seed: int = 0) -> Iterator[bool] | None:
    """A pause generator from its description.

    ``"none"`` (or None): never pause. ``"pattern:1101000"``: that pattern of pause (1)
    and go (0) cycles, repeated. ``"random:0.3"``: pause each cycle with probability 0.3,
    from a generator seeded with ``seed``.
    """
    if spec is None or spec == "none":
        return None
    kind, _, arg = spec.partition(":")
    if kind == "pattern":
        if not arg or set(arg) - {"0", "1"}:
            raise ValueError(f"pause pattern must be a string of 0 and 1, not {arg!r}")
        return itertools.cycle([c == "1" for c in arg])
    if kind == "random":
        try:
            p = float(arg)
        except ValueError:
            p = -1.0
        if not 0.0 <= p < 1.0:
            raise ValueError(f"random pause probability must be in [0, 1), not {arg!r}")
        rng = random.Random(seed)
        return (rng.random() < p for _ in itertools.count())
    raise ValueError(f"pause must be 'none', 'pattern:<0/1 string>' or 'random:<p>', not {spec!r}")


class ProtocolError(AssertionError):
    """The design broke an AXI4-Stream rule on its output."""


def _read(handle) -> int | None:
    """The integer value of a signal, or None when it holds X or Z."""
    value = handle.value
    try:
        return int(value)
    except ValueError:
        return None


class StreamSource:
    """Drives ``<prefix>_tdata/tvalid/tlast`` and watches ``<prefix>_tready``.

    Beats are ``(data, last, tag)``; ``edge`` returns the tag of the beat that transferred
    at this edge, if any.
    """

    def __init__(self, dut, prefix: str = "s_axis", pause: Iterator[bool] | None = None):
        self.tdata = getattr(dut, f"{prefix}_tdata")
        self.tvalid = getattr(dut, f"{prefix}_tvalid")
        self.tready = getattr(dut, f"{prefix}_tready")
        self.tlast = getattr(dut, f"{prefix}_tlast")
        self.queue: deque = deque()
        self.pause = pause
        self.beat = None  # the beat being presented, until it transfers
        self.hold = False  # set by the bench: start no new beat, whatever the pause says
        self.waiting = False  # this edge saw our beat offered and not taken
        self._valid = 0
        self.tvalid.value = 0
        self.tlast.value = 0
        self.tdata.value = 0

    def put(self, data: int, last: bool, tag) -> None:
        self.queue.append((data, last, tag))

    @property
    def idle(self) -> bool:
        return self.beat is None and not self.queue

    def edge(self):
        taken = None
        self.waiting = False
        if self._valid:
            if _read(self.tready) == 1:
                taken = self.beat[2]
                self.beat = None
            else:
                self.waiting = True
        paused = next(self.pause) if self.pause is not None else False
        if self.beat is None:
            if self.queue and not paused and not self.hold:
                self.beat = self.queue.popleft()
                self.tdata.value = self.beat[0]
                self.tlast.value = int(self.beat[1])
                if not self._valid:
                    self.tvalid.value = self._valid = 1
            elif self._valid:
                self.tvalid.value = self._valid = 0
        return taken

    def halt(self):
        """Stop presenting (for a reset): returns the beat that was presented, untaken."""
        beat, self.beat = self.beat, None
        self.tvalid.value = self._valid = 0
        return beat


class StreamSink:
    """Drives ``<prefix>_tready`` and takes beats off ``<prefix>_tdata/tvalid/tlast``.

    ``edge`` returns ``(data, last, first_valid_cycle)`` for a beat transferred at this
    edge. It also checks the design's side of AXI4-Stream: once ``tvalid`` is high it stays
    high, with ``tdata`` and ``tlast`` unchanged, until the transfer.
    """

    def __init__(self, dut, prefix: str = "m_axis", pause: Iterator[bool] | None = None):
        self.tdata = getattr(dut, f"{prefix}_tdata")
        self.tvalid = getattr(dut, f"{prefix}_tvalid")
        self.tready = getattr(dut, f"{prefix}_tready")
        self.tlast = getattr(dut, f"{prefix}_tlast")
        self.prefix = prefix
        self.pause = pause
        self._ready = 0
        self._held = None  # (data, last) presented and not yet taken
        self._first_valid = None
        self.seen_valid = False  # this edge saw tvalid high
        self.violations: list[str] = []
        self.tready.value = 0

    def edge(self, cycle: int):
        beat = None
        valid = _read(self.tvalid)
        self.seen_valid = valid != 0
        if valid is None:
            self._violation(cycle, "tvalid is X or Z")
        elif valid:
            data, last = _read(self.tdata), _read(self.tlast)
            if data is None or last is None:
                self._violation(cycle, "tdata or tlast holds X or Z while tvalid is high")
            if self._held is not None and self._held != (data, last):
                self._violation(cycle, "tdata/tlast changed while tvalid was high without tready")
            if self._first_valid is None:
                self._first_valid = cycle
            if self._ready:
                beat = (data or 0, bool(last), self._first_valid)
                self._held = self._first_valid = None
            else:
                self._held = (data, last)
        elif self._held is not None:
            self._violation(cycle, "tvalid fell before the beat was taken")
            self._held = self._first_valid = None
        ready = 0 if (self.pause is not None and next(self.pause)) else 1
        if ready != self._ready:
            self.tready.value = self._ready = ready
        return beat

    def halt(self) -> None:
        """Stop taking beats and forget the one in progress (for a reset)."""
        self.tready.value = self._ready = 0
        self._held = self._first_valid = None

    def _violation(self, cycle: int, what: str) -> None:
        if len(self.violations) < 20:
            self.violations.append(f"cycle {cycle}: {self.prefix}: {what}")
