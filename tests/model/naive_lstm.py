"""A slow, obvious LSTM of shared/SPEC.md §1-§3, for testing ``model.lstm.lstm_fixed``.

Written from the SPEC text alone, one element at a time in ``fractions.Fraction``: its own
quantization (value -> code, every Q and O mode), its own PWL evaluation, its own cell.
From ``model/`` it takes only numbers: the weight codes of an ``LstmLayer``, each format
as (signed, W, I, Q, O), and each table's integer data. It shares no code with the fast
model and none with ``tests/model/naive.py`` (a second, independent reading of §1 and §3).
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import NamedTuple

#: quantization points whose overflows are counted (the names of SPEC §2's table)
POINTS = ("preact", "gate", "cand", "cell", "tanh_cell", "h")
#: trace names, per step: preact holds the 4H rows i, f, g, o; the rest H values each
TRACE_NAMES = ("preact", "i", "f", "g", "o", "c", "tanh_cell", "h")


class Fmt(NamedTuple):
    signed: bool
    width: int
    int_bits: int
    q: str
    o: str

    @property
    def frac(self) -> int:
        return self.width - self.int_bits

    @property
    def lowest(self) -> int:
        return -(2 ** (self.width - 1)) if self.signed else 0

    @property
    def highest(self) -> int:
        return 2 ** (self.width - 1) - 1 if self.signed else 2**self.width - 1


def fmt_of(fmt) -> Fmt:
    """Any object with signed, width, int_bits, q, o (a model Format) as plain numbers."""
    return Fmt(bool(fmt.signed), int(fmt.width), int(fmt.int_bits), str(fmt.q), str(fmt.o))


def value(code: int, fmt: Fmt) -> Fraction:
    """Code k of a format means k * 2**-F."""
    return Fraction(int(code)) * Fraction(2) ** -fmt.frac


def _quantize_q(scaled: Fraction, q: str, source_negative: bool) -> int:
    """The Q table of SPEC §1 on ``scaled`` = value in units of the target LSB."""
    if scaled.denominator == 1:
        return int(scaled)
    lower = math.floor(scaled)
    upper = lower + 1
    if q == "TRN":
        return lower
    if q == "TRN_ZERO":
        return upper if source_negative else lower
    to_lower = scaled - lower
    to_upper = upper - scaled
    if to_lower != to_upper:
        return lower if to_lower < to_upper else upper
    tie = {
        "RND": upper,
        "RND_ZERO": upper if source_negative else lower,
        "RND_MIN_INF": lower,
        "RND_INF": lower if source_negative else upper,
        "RND_CONV": lower if lower % 2 == 0 else upper,
    }
    return tie[q]


def to_code(v: Fraction, fmt: Fmt) -> tuple[int, bool]:
    """An exact value to ``(code, overflowed)``: Q first, then O (SPEC §1)."""
    k = _quantize_q(v * Fraction(2) ** fmt.frac, fmt.q, v < 0)
    lowest, highest = fmt.lowest, fmt.highest
    symmetric = fmt.o == "SAT_SYM" and fmt.signed and fmt.width >= 2
    if symmetric:
        lowest = -highest
    if lowest <= k <= highest:
        return k, False
    if fmt.o == "WRAP":
        low_bits = k & (2**fmt.width - 1)  # Python's & on a negative int is two's complement
        if fmt.signed and low_bits >= 2 ** (fmt.width - 1):
            low_bits -= 2**fmt.width
        return low_bits, True
    if fmt.o == "SAT_ZERO":
        return 0, True
    assert fmt.o in ("SAT", "SAT_SYM"), fmt.o
    return (lowest if k < lowest else highest), True


class Table(NamedTuple):
    in_fmt: Fmt
    out_fmt: Fmt
    ca_fmt: Fmt
    cb_fmt: Fmt
    breakpoints: list[int]
    x_hi: int
    intercepts: list[int]
    slopes: list[int]


def table_of(t) -> Table:
    """A model PwlTable's integer data as plain Python numbers."""
    return Table(
        fmt_of(t.in_fmt),
        fmt_of(t.out_fmt),
        fmt_of(t.ca_fmt),
        fmt_of(t.cb_fmt),
        [int(v) for v in t.breakpoints],
        int(t.x_hi),
        [int(v) for v in t.intercepts],
        [int(v) for v in t.slopes],
    )


def pwl(x: int, t: Table) -> tuple[int, bool]:
    """SPEC §3: one input code through a table, ``(code, overflowed)``."""
    x_c = min(max(x, t.breakpoints[0]), t.x_hi)
    s = max(k for k, b in enumerate(t.breakpoints) if b <= x_c)
    d = x_c - t.breakpoints[s]
    y = value(t.intercepts[s], t.ca_fmt) + Fraction(t.slopes[s] * d) * Fraction(2) ** -(
        t.cb_fmt.frac + t.in_fmt.frac
    )
    return to_code(y, t.out_fmt)


class NaiveResult(NamedTuple):
    h_codes: list  # [N][T][H] for "sequence", [N][H] for "last"
    overflow: dict  # point -> count
    trace: dict  # name -> [N][T][width] codes


def run(qm, x_codes, *, last: bool = False) -> NaiveResult:
    """The LSTM of SPEC §2 over ``x_codes`` [N][T][I], element by element; ``h`` of every
    step, or of the last one only (``last``)."""
    f = {name: fmt_of(fm) for name, fm in qm.formats.items()}
    tables = {name: table_of(t) for name, t in qm.tables.items()}
    h_size = int(qm.hidden_size)
    w = [[value(v, f["w"]) for v in row] for row in qm.w.tolist()]
    r = [[value(v, f["r"]) for v in row] for row in qm.r.tolist()]
    b = [value(v, f["b"]) for v in qm.b.tolist()]
    p = None if qm.p is None else [value(v, f["p"]) for v in qm.p.tolist()]
    overflow = dict.fromkeys(POINTS, 0)

    def store(v: Fraction, point: str, fmt: Fmt) -> int:
        code, over = to_code(v, fmt)
        overflow[point] += over
        return code

    def activate(x: int, table: str, point: str) -> int:
        code, over = pwl(x, tables[table])
        overflow[point] += over
        return code

    out = []
    trace = {name: [] for name in TRACE_NAMES}
    for seq in x_codes.tolist() if hasattr(x_codes, "tolist") else x_codes:
        h = [0] * h_size
        c = [0] * h_size
        hs = []
        seq_trace = {name: [] for name in TRACE_NAMES}
        for x_t in seq:
            xv = [value(v, f["x"]) for v in x_t]
            hv = [value(v, f["h"]) for v in h]
            cv = [value(v, f["cell"]) for v in c]

            def row_sum(k, xv=xv, hv=hv):
                """Row k of W x_t + R h_{t-1} + b, exactly."""
                return (
                    sum(wk * v for wk, v in zip(w[k], xv))
                    + sum(rk * v for rk, v in zip(r[k], hv))
                    + b[k]
                )

            pre = [0] * (4 * h_size)
            i_t, f_t, g_t, o_t, c_t, tc_t, h_t = ([0] * h_size for _ in range(7))
            for j in range(h_size):
                ri, rf, rg, ro = (gate * h_size + j for gate in range(4))
                si, sf, sg = row_sum(ri), row_sum(rf), row_sum(rg)
                if p is not None:  # i and f see c_{t-1}
                    si += p[j] * cv[j]
                    sf += p[h_size + j] * cv[j]
                pre[ri] = store(si, "preact", f["preact"])
                pre[rf] = store(sf, "preact", f["preact"])
                pre[rg] = store(sg, "preact", f["preact"])
                i_t[j] = activate(pre[ri], "sigmoid", "gate")
                f_t[j] = activate(pre[rf], "sigmoid", "gate")
                g_t[j] = activate(pre[rg], "tanh", "cand")
                c_new = value(f_t[j], f["gate"]) * cv[j] + value(i_t[j], f["gate"]) * value(
                    g_t[j], f["cand"]
                )
                c_t[j] = store(c_new, "cell", f["cell"])
                so = row_sum(ro)
                if p is not None:  # o sees c_t, the new cell state
                    so += p[2 * h_size + j] * value(c_t[j], f["cell"])
                pre[ro] = store(so, "preact", f["preact"])
                o_t[j] = activate(pre[ro], "sigmoid", "gate")
                tc_t[j] = activate(c_t[j], "tanh_cell", "tanh_cell")
                h_new = value(o_t[j], f["gate"]) * value(tc_t[j], f["tanh_cell"])
                h_t[j] = store(h_new, "h", f["h"])
            h, c = h_t, c_t  # every row of this step read the old h and c
            hs.append(h)
            for name, v in zip(TRACE_NAMES, (pre, i_t, f_t, g_t, o_t, c_t, tc_t, h_t)):
                seq_trace[name].append(v)
        out.append(hs[-1] if last else hs)
        for name in TRACE_NAMES:
            trace[name].append(seq_trace[name])
    return NaiveResult(out, overflow, trace)
