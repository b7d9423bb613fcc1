"""The skid buffer: a registered stream stage whose ``ready`` comes from a register."""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out


class SkidBuffer(wiring.Component):
    """A two-entry stream stage between a core and a port whose ``ready`` it must not see.

    ``i`` and ``o`` carry ``payload`` (any shape). ``o.valid`` and ``o.payload`` come from
    registers; ``i.ready`` comes from a register (low while the spare entry holds a beat),
    so the sink's ``ready`` reaches only this stage's registers, never the source's state.
    A beat takes one cycle from ``i`` to ``o``; with the sink always ready, one beat passes
    per cycle. Order is kept and nothing is lost: a beat that arrives while ``o`` is
    stalled waits in the spare entry, and ``i.ready`` drops the next cycle.

    Only the valid bits have a reset: the payload registers carry none.
    """

    latency = 1

    def __init__(self, payload):
        super().__init__(
            {
                "i": In(stream.Signature(payload)),
                "o": Out(stream.Signature(payload)),
            }
        )
        self._payload = payload

    def elaborate(self, platform):
        m = Module()
        spare = Signal(self._payload, name="spare", reset_less=True)
        spare_valid = Signal(name="spare_valid")
        out = Signal(self._payload, name="out", reset_less=True)
        m.d.comb += [
            self.i.ready.eq(~spare_valid),
            self.o.payload.eq(out),
        ]
        take = self.i.valid & self.i.ready
        with m.If(~self.o.valid | self.o.ready):  # the output register is free this edge
            with m.If(spare_valid):
                m.d.sync += [out.eq(spare), self.o.valid.eq(1), spare_valid.eq(0)]
            with m.Elif(take):
                m.d.sync += [out.eq(self.i.payload), self.o.valid.eq(1)]
            with m.Else():
                m.d.sync += self.o.valid.eq(0)
        with m.Elif(take):
            m.d.sync += [spare.eq(self.i.payload), spare_valid.eq(1)]
        return m
