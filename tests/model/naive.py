"""Slow, obvious references of shared/SPEC.md §1 (quantization) and §3 (PWL evaluation).

Written from the SPEC text in Python integers and ``fractions.Fraction``, not from
``model/``: the fast Numba kernels are tested against these. A format here is anything
with the attributes ``signed``, ``width``, ``int_bits``, ``q``, ``o`` (a ``model.formats.Format``
or a :class:`Fmt`).
"""

from __future__ import annotations

import bisect
import functools
import math
from fractions import Fraction
from typing import NamedTuple


class Fmt(NamedTuple):
    signed: bool
    width: int
    int_bits: int
    q: str = "TRN"
    o: str = "WRAP"


def frac_bits(fmt) -> int:
    return fmt.width - fmt.int_bits


def code_range(fmt) -> tuple[int, int]:
    """The codes a format can hold (SPEC §1, second bullet)."""
    if fmt.signed:
        return -(2 ** (fmt.width - 1)), 2 ** (fmt.width - 1) - 1
    return 0, 2**fmt.width - 1


@functools.lru_cache(maxsize=4096)
def pow2(k: int) -> Fraction:
    """2**k exactly, also for k < 0."""
    return Fraction(2) ** k


def value_of(code: int, fmt) -> Fraction:
    """A code means ``k * 2**-F``."""
    return code * pow2(-frac_bits(fmt))


def _round(scaled: Fraction, q: str, negative: bool) -> int:
    """``scaled`` (the value in target LSBs) to an integer by the Q table of SPEC §1.

    ``negative`` is the sign of the *source* value: ties and TRN_ZERO look at it.
    """
    down = math.floor(scaled)
    up = math.ceil(scaled)
    if down == up:  # nothing dropped
        return down
    if q == "TRN":
        return down
    if q == "TRN_ZERO":
        return up if negative else down
    dropped = scaled - down  # strictly between 0 and 1
    if dropped < Fraction(1, 2):
        return down
    if dropped > Fraction(1, 2):
        return up
    # an exact tie between down and up
    if q == "RND":
        return up
    if q == "RND_ZERO":
        return up if negative else down
    if q == "RND_MIN_INF":
        return down
    if q == "RND_INF":
        return down if negative else up
    if q == "RND_CONV":
        return down if down % 2 == 0 else up
    raise ValueError(f"unknown Q mode {q!r}")


def _in_range(k: int, fmt) -> bool:
    lo, hi = code_range(fmt)
    if fmt.o == "SAT_SYM" and fmt.signed and fmt.width >= 2:
        lo = -hi
    return lo <= k <= hi


def _overflow(k: int, fmt) -> int:
    """The code of an out-of-range integer by the O table of SPEC §1."""
    lo, hi = code_range(fmt)
    if fmt.o == "WRAP":
        low_bits = k % 2**fmt.width  # Python's % is never negative here
        if fmt.signed and low_bits >= 2 ** (fmt.width - 1):
            return low_bits - 2**fmt.width
        return low_bits
    if fmt.o == "SAT_ZERO":
        return 0
    if fmt.o == "SAT_SYM" and fmt.signed and fmt.width >= 2:
        lo = -hi
    elif fmt.o not in ("SAT", "SAT_SYM"):
        raise ValueError(f"unknown O mode {fmt.o!r}")
    return lo if k < lo else hi


def to_code_flagged(value, fmt) -> tuple[int, bool]:
    """An exact value (int, Fraction or a finite float) to ``(code, overflowed)``."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("NaN or Inf has no code")
    value = Fraction(value)  # a float is taken exactly
    scaled = value * pow2(frac_bits(fmt))
    k = _round(scaled, fmt.q, value < 0)  # quantization first...
    if _in_range(k, fmt):
        return k, False
    return _overflow(k, fmt), True  # ...then overflow, so a rounding carry can overflow


def to_code(value, fmt) -> int:
    return to_code_flagged(value, fmt)[0]


def convert(code: int, src, dst) -> int:
    """A code of ``src`` to a code of ``dst``."""
    return to_code(value_of(code, src), dst)


def quantize(v: int, src_frac: int, dst) -> tuple[int, bool]:
    """The exact value ``v * 2**-src_frac`` to ``(code, overflowed)`` of ``dst``."""
    return to_code_flagged(v * pow2(-src_frac), dst)


# --------------------------------------------------------------------------- SPEC §3


class Table(NamedTuple):
    """A table of SPEC §3: formats, and codes as Python integers."""

    in_fmt: object
    out_fmt: object
    ca_fmt: object
    cb_fmt: object
    breakpoints: list
    x_hi: int
    intercepts: list
    slopes: list

    @classmethod
    def of(cls, t) -> Table:
        """From any object with these fields (a ``model.pwl.PwlTable``)."""
        ints = [[int(v) for v in getattr(t, k)] for k in ("breakpoints", "intercepts", "slopes")]
        bps, intercepts, slopes = ints
        fmts = (t.in_fmt, t.out_fmt, t.ca_fmt, t.cb_fmt)
        return cls(*fmts, bps, int(t.x_hi), intercepts, slopes)


def pwl_exact(x: int, t: Table) -> Fraction:
    """The exact ``y`` of SPEC §3 for input code ``x``."""
    bps = t.breakpoints
    x_c = min(max(x, bps[0]), t.x_hi)
    s = bisect.bisect_right(bps, x_c) - 1  # the largest s with b_s <= x_c
    d = x_c - bps[s]
    assert d >= 0
    f_a = frac_bits(t.ca_fmt)
    f_bd = frac_bits(t.cb_fmt) + frac_bits(t.in_fmt)
    a = t.intercepts[s] * pow2(-f_a)
    b = t.slopes[s] * d * pow2(-f_bd)
    return a + b


def pwl(x: int, t: Table) -> int:
    """The output code of SPEC §3 for input code ``x``."""
    return to_code(pwl_exact(x, t), t.out_fmt)
