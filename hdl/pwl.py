"""The piecewise-linear activation unit of SPEC §3."""

from __future__ import annotations

from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hdl.fixed import Rom, fmt_shape, round_into
from model.pwl import PwlTable


class PwlUnit(wiring.Component):
    """One PWL table (SPEC §3) as a pipeline that accepts one input code per cycle.

    ``i.payload`` is an input code (``table.in_fmt``), ``o.payload`` its output code
    (``table.out_fmt``), bit-equal to :meth:`model.pwl.PwlTable.__call__`.

    Handshake: both streams are ``always_ready``; ``o.valid`` is ``i.valid`` delayed by
    :attr:`latency` (4) cycles and ``o.payload`` belongs to the input of that cycle. There
    is no back-pressure: the unit never stalls.

    Segment select is a bit slice of ``x_c - b_0`` when the breakpoints are a power-of-two
    grid (:attr:`model.pwl.PwlTable.uniform_log2`), a row of comparators otherwise; the
    intercepts and slopes sit in a ROM read synchronously.
    """

    latency = 4

    def __init__(self, *, table: PwlTable):
        if not isinstance(table, PwlTable):
            raise TypeError(f"table must be a model.pwl.PwlTable, not {table!r}")
        self._table = table
        super().__init__(
            {
                "i": In(stream.Signature(fmt_shape(table.in_fmt), always_ready=True)),
                "o": Out(stream.Signature(fmt_shape(table.out_fmt), always_ready=True)),
            }
        )

    @property
    def table(self) -> PwlTable:
        return self._table

    @property
    def comparators(self) -> bool:
        """True when segments are chosen by comparators (breakpoints not a 2**k grid)."""
        return self._table.uniform_log2 is None

    def elaborate(self, platform):
        t = self._table
        m = Module()
        bps = [int(b) for b in t.breakpoints]
        n_seg = len(bps)
        x_hi = int(t.x_hi)
        in_shape = fmt_shape(t.in_fmt)
        s_shape = unsigned(max(1, (n_seg - 1).bit_length()))
        d_shape = unsigned(max(1, t.max_d.bit_length()))

        # stage 1: clamp
        x = self.i.payload
        x_c = Signal(in_shape, name="x_c")
        v1 = Signal(name="v1")
        lo_clamp = (x < bps[0]) if bps[0] > t.in_fmt.code_min else 0
        hi_clamp = (x > x_hi) if x_hi < t.in_fmt.code_max else 0
        with m.If(lo_clamp):
            m.d.sync += x_c.eq(bps[0])
        with m.Elif(hi_clamp):
            m.d.sync += x_c.eq(x_hi)
        with m.Else():
            m.d.sync += x_c.eq(x)
        m.d.sync += v1.eq(self.i.valid)

        # stage 2: segment and offset; the coefficient ROM is addressed here
        seg = Signal(s_shape, name="segment")
        d_next = Signal(d_shape, name="d_next")
        log2 = t.uniform_log2
        if log2 is not None:
            off = Signal(unsigned(max(1, (x_hi - bps[0]).bit_length())), name="offset")
            m.d.comb += off.eq(x_c - bps[0])
            if n_seg > 1:
                m.d.comb += seg.eq(off[log2:])
            m.d.comb += d_next.eq(off[:log2] if log2 > 0 else 0)
        else:
            base = Signal(in_shape, name="seg_base")
            m.d.comb += [seg.eq(0), base.eq(bps[0])]
            for k in range(1, n_seg):  # the last true comparison wins: the largest b_s <= x_c
                with m.If(x_c >= bps[k]):
                    m.d.comb += [seg.eq(k), base.eq(bps[k])]
            m.d.comb += d_next.eq(x_c - base)

        ca_shape, cb_shape = fmt_shape(t.ca_fmt), fmt_shape(t.cb_fmt)
        rd_a = Rom(m, "intercepts", ca_shape, t.intercepts)
        rd_b = Rom(m, "slopes", cb_shape, t.slopes)
        m.d.comb += [rd_a.addr.eq(seg), rd_b.addr.eq(seg)]
        d = Signal(d_shape, name="d")
        v2 = Signal(name="v2")
        m.d.sync += [d.eq(d_next), v2.eq(v1)]

        # stage 3: slope times offset
        prod_w = len(rd_b.data) + len(d) + 1
        prod = Signal(signed(prod_w), name="slope_d")
        a = Signal(ca_shape, name="intercept")
        v3 = Signal(name="v3")
        m.d.sync += [prod.eq(rd_b.data * d), a.eq(rd_a.data), v3.eq(v2)]

        # stage 4: the exact sum, rounded once into the output format
        sa, sb = t.shifts
        y_w = max(len(a) + 1 + sa, prod_w + sb) + 1
        y = Signal(signed(y_w), name="y")
        m.d.comb += y.eq((a << sa) + (prod << sb))
        out = round_into(m, y, t.sum_frac, t.out_fmt, name="out")
        m.d.sync += [self.o.payload.eq(out), self.o.valid.eq(v3)]
        return m
