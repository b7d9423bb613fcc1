"""Fixed-point formats and the one quantize routine (shared/SPEC.md §1).

A format is ``fixed<W,I,Q,O>`` (signed) or ``ufixed<W,I,Q,O>``. A value is an integer
*code* ``k`` meaning ``k * 2**-F`` with ``F = W - I``. Every narrowing in lstmfx goes
through :func:`quantize`, a Numba kernel that takes an exact integer value ``v`` with
``src_frac`` fractional bits and returns the code in the target format plus whether it
overflowed. Formats reach kernels as plain integers (see :meth:`Format.args`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
from numba import njit

Q_MODES = ("TRN", "TRN_ZERO", "RND", "RND_ZERO", "RND_MIN_INF", "RND_INF", "RND_CONV")
O_MODES = ("WRAP", "SAT", "SAT_ZERO", "SAT_SYM")
TRN, TRN_ZERO, RND, RND_ZERO, RND_MIN_INF, RND_INF, RND_CONV = range(7)
WRAP, SAT, SAT_ZERO, SAT_SYM = range(4)

MAX_WIDTH = 32
#: |I| bound: far past any useful format, and keeps every shift of a kernel inside int64
MAX_INT_BITS = 1 << 16
#: Exact intermediate values must stay below 2**ACC_LIMIT in magnitude (SPEC §2: 62 bits
#: including the sign), so int64 never wraps inside a kernel.
ACC_BITS = 62

_FORMAT_RE = re.compile(
    r"^\s*(u?fixed)\s*<\s*(-?\d+)\s*,\s*(-?\d+)\s*(?:,\s*([A-Z_]+)\s*)?(?:,\s*([A-Z_]+)\s*)?>\s*$"
)


class FormatError(ValueError):
    """A format string or a format parameter is not valid."""


@dataclass(frozen=True)
class Format:
    """One fixed-point format. Construct with :func:`parse_format` or directly."""

    signed: bool
    width: int
    int_bits: int
    q: str = "TRN"
    o: str = "WRAP"

    def __post_init__(self):
        if not isinstance(self.width, int) or not 1 <= self.width <= MAX_WIDTH:
            raise FormatError(
                f"format width W must be an integer from 1 to {MAX_WIDTH}, not {self.width!r}"
            )
        if not isinstance(self.int_bits, int) or abs(self.int_bits) > MAX_INT_BITS:
            raise FormatError(
                f"format integer bits I must be an integer from {-MAX_INT_BITS} to "
                f"{MAX_INT_BITS}, not {self.int_bits!r}"
            )
        if self.q not in Q_MODES:
            raise FormatError(
                f"quantization mode must be one of {', '.join(Q_MODES)}, not {self.q!r}"
            )
        if self.o not in O_MODES:
            raise FormatError(f"overflow mode must be one of {', '.join(O_MODES)}, not {self.o!r}")

    @property
    def frac(self) -> int:
        """F = W - I, the number of fractional bits (may be negative or exceed W)."""
        return self.width - self.int_bits

    @property
    def code_min(self) -> int:
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def code_max(self) -> int:
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1

    @property
    def lsb(self) -> float:
        return math.ldexp(1.0, -self.frac)

    @property
    def value_min(self) -> float:
        return math.ldexp(self.code_min, -self.frac)

    @property
    def value_max(self) -> float:
        return math.ldexp(self.code_max, -self.frac)

    @property
    def max_abs_code(self) -> int:
        """The largest magnitude a code can have."""
        return max(-self.code_min, self.code_max)

    def args(self) -> tuple[int, int, int, int, int]:
        """(signed, W, F, Q, O) as integers, the way kernels take a format."""
        return (
            int(self.signed),
            self.width,
            self.frac,
            Q_MODES.index(self.q),
            O_MODES.index(self.o),
        )

    def __str__(self) -> str:
        kind = "fixed" if self.signed else "ufixed"
        return f"{kind}<{self.width},{self.int_bits},{self.q},{self.o}>"

    def codes_to_values(self, codes) -> np.ndarray:
        """Codes to float64 values (exact: a code has at most 32 significant bits)."""
        return np.ldexp(np.asarray(codes, dtype=np.float64), -self.frac)

    def from_float(self, values, *, what: str = "value") -> np.ndarray:
        """Float values to codes of this format (SPEC §1: exact value, then Q, then O).

        NaN and +-Inf are an error that names ``what``.
        """
        codes, _ = self.from_float_counted(values, what=what)
        return codes

    def from_float_counted(self, values, *, what: str = "value") -> tuple[np.ndarray, int]:
        """As :meth:`from_float`, also returning how many values overflowed the format."""
        arr = np.asarray(values, dtype=np.float64)
        bad = ~np.isfinite(arr)
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"{what} holds {arr[where]!r} at index {where}: NaN or Inf has no fixed-point "
                f"code; clean the data or the model before quantizing"
            )
        out = np.empty(arr.shape, dtype=np.int64)
        n_over = _from_float_array(arr.ravel(), out.reshape(-1), *self.args())
        return out, int(n_over)

    def convert(self, codes, src: Format) -> np.ndarray:
        """Codes of format ``src`` to codes of this format."""
        return self.from_exact(codes, src.frac)[0]

    def from_exact(self, values, src_frac: int) -> tuple[np.ndarray, int]:
        """Exact integers ``values`` meaning ``v * 2**-src_frac`` to codes of this format, and
        how many overflowed (SPEC §1: Q, then O)."""
        arr = np.ascontiguousarray(values, dtype=np.int64)
        out = np.empty(arr.shape, dtype=np.int64)
        n_over = _convert_array(arr.reshape(-1), src_frac, out.reshape(-1), *self.args())
        return out, int(n_over)

    def check_codes(self, codes, *, what: str = "codes") -> np.ndarray:
        """Return ``codes`` as int64, or raise naming the first code out of range."""
        arr = np.asarray(codes)
        if arr.dtype.kind not in "iu":
            raise ValueError(f"{what} must be integer codes of {self}, not dtype {arr.dtype}")
        arr = arr.astype(np.int64)
        bad = (arr < self.code_min) | (arr > self.code_max)
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"{what} holds code {int(arr[where])} at index {where}, outside "
                f"[{self.code_min}, {self.code_max}] of {self}"
            )
        return arr


def parse_format(text) -> Format:
    """Parse ``fixed<W,I[,Q[,O]]>`` or ``ufixed<...>``; Q defaults to TRN, O to WRAP."""
    if isinstance(text, Format):
        return text
    m = _FORMAT_RE.match(str(text))
    if not m:
        raise FormatError(
            f"cannot read {text!r} as a format: write fixed<W,I,Q,O> or ufixed<W,I,Q,O>, "
            f"for example 'fixed<16,6,RND,SAT>'"
        )
    kind, w, i, q, o = m.groups()
    return Format(kind == "fixed", int(w), int(i), q or "TRN", o or "WRAP")


# --------------------------------------------------------------------------- kernels


@njit(cache=True, inline="always")
def _round_shift(v, s, q_mode):
    """floor/round ``v / 2**s`` for s > 0 by the Q rules; ties look at the sign of v."""
    if s >= 63:
        # |v| < 2**62 <= 2**(s-1): the value is below half an LSB, never a tie.
        if q_mode == 0 and v < 0:
            return np.int64(-1)
        return np.int64(0)
    q = v >> s
    rem = v - (q << s)
    if rem == 0:
        return q
    if q_mode == 0:  # TRN
        return q
    if q_mode == 1:  # TRN_ZERO
        return q + 1 if v < 0 else q
    half = np.int64(1) << (s - 1)
    if rem > half:
        return q + 1
    if rem < half:
        return q
    # exact tie between q and q + 1
    if q_mode == 2:  # RND: toward +inf
        return q + 1
    if q_mode == 3:  # RND_ZERO
        return q + 1 if v < 0 else q
    if q_mode == 4:  # RND_MIN_INF
        return q
    if q_mode == 5:  # RND_INF: away from zero
        return q if v < 0 else q + 1
    # RND_CONV: to the even code
    return q + 1 if (q & 1) != 0 else q


@njit(cache=True)
def quantize(v, src_frac, signed, width, frac, q_mode, o_mode):
    """Exact value ``v * 2**-src_frac`` (|v| < 2**62) to a code of the target format.

    Returns ``(code, overflowed)``: quantization first (Q), then overflow (O), SPEC §1.
    With SAT_SYM (signed, W >= 2) the code -2**(W-1) counts as out of range too.
    """
    v = np.int64(v)
    if signed:
        hi = (np.int64(1) << (width - 1)) - 1
        lo = -hi if (o_mode == 3 and width >= 2) else -hi - 1
    else:
        lo = np.int64(0)
        hi = (np.int64(1) << width) - 1
    mask = (np.int64(1) << width) - 1
    shift = src_frac - frac
    big = False  # the quantized value is far outside any 32-bit range
    wrapped = np.int64(0)
    if shift > 0:
        q = _round_shift(v, shift, q_mode)
    elif shift == 0:
        q = v
    else:
        up = -shift
        if v == 0:
            q = np.int64(0)
        elif up >= 40 or abs(v) >= (np.int64(1) << (61 - up)):
            big = True
            q = np.int64(0)
            if up < width:
                wrapped = (v & (mask >> up)) << up
        else:
            q = v << up
    if not big and lo <= q <= hi:
        return q, False
    if o_mode == 0:  # WRAP: the low W bits, as two's complement when signed
        code = wrapped if big else (q & mask)
        if signed and code > hi:
            code -= mask + 1
        return code, True
    if o_mode == 2:  # SAT_ZERO
        return np.int64(0), True
    negative = v < 0 if big else q < lo
    return (lo if negative else hi), True


@njit(cache=True)
def float_to_code(x, signed, width, frac, q_mode, o_mode):
    """A finite float64, taken exactly (mantissa * 2**exp), to a code."""
    if x == 0.0:
        return np.int64(0), False
    m, e = math.frexp(x)  # x = m * 2**e, 0.5 <= |m| < 1
    mant = np.int64(m * 9007199254740992.0)  # m * 2**53, exact
    return quantize(mant, 53 - e, signed, width, frac, q_mode, o_mode)


@njit(cache=True)
def _from_float_array(xs, out, signed, width, frac, q_mode, o_mode):
    n_over = 0
    for k in range(xs.shape[0]):
        code, over = float_to_code(xs[k], signed, width, frac, q_mode, o_mode)
        out[k] = code
        n_over += over
    return n_over


@njit(cache=True)
def _convert_array(codes, src_frac, out, signed, width, frac, q_mode, o_mode):
    n_over = 0
    for k in range(codes.shape[0]):
        code, over = quantize(codes[k], src_frac, signed, width, frac, q_mode, o_mode)
        out[k] = code
        n_over += over
    return n_over
