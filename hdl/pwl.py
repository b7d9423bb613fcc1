"""The piecewise-linear activation unit of SPEC §3."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hdl.fixed import ROUND_LATENCY, Rom, delay, fmt_shape, pick, round_stages
from model.pwl import PwlTable

#: tables of at most this many segments are LUT logic, larger ones a ROM (block RAM)
LOGIC_SEGMENTS = 64


class PwlUnit(wiring.Component):
    """One PWL table (SPEC §3) as a pipeline that accepts one input code per cycle.

    ``i.payload`` is an input code (``table.in_fmt``), ``o.payload`` its output code
    (``table.out_fmt``), bit-equal to :meth:`model.pwl.PwlTable.__call__`.

    Handshake: both streams are ``always_ready``; ``o.valid`` is ``i.valid`` delayed by
    :attr:`latency` cycles (:meth:`latency_for`: 8 + the depth of the slope product's adder
    tree, one more for a table in a ROM) and ``o.payload`` belongs to the input of that
    cycle. There is no back-pressure.

    Segment select is a bit slice of ``x_c - b_0`` when the breakpoints are a power-of-two
    grid (:attr:`model.pwl.PwlTable.uniform_log2`), a row of comparators otherwise; the
    intercepts and slopes are LUT logic up to :data:`LOGIC_SEGMENTS` segments, a ROM read
    synchronously above (one cycle more); either way their words are registered. The
    slope times the offset ``d`` (a few bits) is shift-and-add in LUTs, one register per
    adder level, so the unit costs no DSP block; the rounding is :func:`round_stages`.
    """

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

    @staticmethod
    def _d_bits(table: PwlTable) -> int:
        return max(1, int(table.max_d).bit_length())

    @classmethod
    def latency_for(cls, table: PwlTable) -> int:
        """Cycles from ``i.valid`` to ``o.valid`` for ``table``, without building the unit."""
        levels = max(1, (cls._d_bits(table) - 1).bit_length())
        rom = len(table.breakpoints) > LOGIC_SEGMENTS  # one more register after a RAM
        return 5 + levels + ROUND_LATENCY + (1 if rom else 0)

    @property
    def latency(self) -> int:
        return self.latency_for(self._table)

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
        d_bits = self._d_bits(t)
        d_shape = unsigned(d_bits)

        def reg(shape, name):
            return Signal(shape, name=name, reset_less=True)

        # stage 1: clamp
        x = self.i.payload
        x_c = reg(in_shape, "x_c")
        lo_clamp = (x < bps[0]) if bps[0] > t.in_fmt.code_min else 0
        hi_clamp = (x > x_hi) if x_hi < t.in_fmt.code_max else 0
        with m.If(lo_clamp):
            m.d.sync += x_c.eq(bps[0])
        with m.Elif(hi_clamp):
            m.d.sync += x_c.eq(x_hi)
        with m.Else():
            m.d.sync += x_c.eq(x)

        # stage 2: the segment (a slice, or comparators); stage 3: the offset d, and the
        # coefficient ROM read with the segment as address
        seg = reg(s_shape, "segment")
        d = reg(d_shape, "d")
        log2 = t.uniform_log2
        if log2 is not None:
            off = Signal(unsigned(max(1, (x_hi - bps[0]).bit_length())), name="offset")
            m.d.comb += off.eq(x_c - bps[0])
            d_early = reg(d_shape, "d_early")
            if n_seg > 1:
                m.d.sync += seg.eq(off[log2:])
            m.d.sync += [d_early.eq(off[:log2] if log2 > 0 else 0), d.eq(d_early)]
        else:
            seg_next = Signal(s_shape, name="segment_next")
            m.d.comb += seg_next.eq(0)
            for k in range(1, n_seg):  # the last true comparison wins: the largest b_s <= x_c
                with m.If(x_c >= bps[k]):
                    m.d.comb += seg_next.eq(k)
            x_c2 = reg(in_shape, "x_c2")
            m.d.sync += [seg.eq(seg_next), x_c2.eq(x_c)]
            m.d.sync += d.eq(x_c2 - pick(bps, seg))

        ca_shape, cb_shape = fmt_shape(t.ca_fmt), fmt_shape(t.cb_fmt)
        if n_seg <= LOGIC_SEGMENTS:  # a small table is logic: a LUT multiplexer, registered
            word_a, word_b = reg(ca_shape, "intercept_word"), reg(cb_shape, "slope_word")
            m.d.sync += [
                word_a.eq(pick([int(v) for v in t.intercepts], seg)),
                word_b.eq(pick([int(v) for v in t.slopes], seg)),
            ]
        else:  # a block RAM, whose registered word crosses the fabric in one more register
            rd_a = Rom(m, "intercepts", ca_shape, t.intercepts)
            rd_b = Rom(m, "slopes", cb_shape, t.slopes)
            m.d.comb += [rd_a.addr.eq(seg), rd_b.addr.eq(seg)]
            word_a, word_b = reg(ca_shape, "intercept_word"), reg(cb_shape, "slope_word")
            m.d.sync += [word_a.eq(rd_a.data), word_b.eq(rd_b.data)]
            d = delay(m, d, 1, name="d_rom", reset_less=True)

        # stage 4: the ROM words, registered (a block RAM's output is slow)
        a = reg(ca_shape, "intercept")
        b = reg(cb_shape, "slope")
        d4 = reg(d_shape, "d4")
        m.d.sync += [a.eq(word_a), b.eq(word_b), d4.eq(d)]

        # stages 5..: slope * d by shift-and-add, a register after each level of the tree
        prod_w = len(b) + d_bits + 1
        terms = [Mux(d4[k], b << k, 0) for k in range(d_bits)]
        level = 0
        while True:
            level += 1
            sums = []
            for j in range(0, len(terms), 2):
                s = reg(signed(prod_w), f"slope_d_{level}_{j // 2}")
                m.d.sync += s.eq(terms[j] + terms[j + 1] if j + 1 < len(terms) else terms[j])
                sums.append(s)
            a = delay(m, a, 1, name=f"intercept_{level}", reset_less=True)
            terms = sums
            if len(terms) == 1:
                break
        prod = terms[0]

        # then the exact sum, registered, and the one rounding into the output format
        sa, sb = t.shifts
        y_w = max(len(a) + 1 + sa, prod_w + sb) + 1
        y = reg(signed(y_w), "y")
        m.d.sync += y.eq((a << sa) + (prod << sb))
        out, _ = round_stages(m, y, t.sum_frac, t.out_fmt, name="out")
        m.d.comb += [
            self.o.payload.eq(out),
            self.o.valid.eq(delay(m, self.i.valid, self.latency, name="valid")),
        ]
        return m
