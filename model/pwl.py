"""Piecewise-linear activation tables (shared/SPEC.md §3): evaluation, builders, errors.

A :class:`PwlTable` maps input codes (format ``in_fmt``) to output codes (``out_fmt``)::

    x_c = min(max(x, b_0), x_hi);  s = largest s with b_s <= x_c;  d = x_c - b_s
    y   = A_s * 2**-F_CA + B_s * d * 2**-(F_CB + F_In)   (exact)
    out = code of y in out_fmt

How a table is fitted is this module's business; how it is evaluated is fixed by the SPEC,
and :func:`evaluate` is the one implementation the LSTM kernels call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
from numba import njit

from model.formats import ACC_BITS, Format, parse_format, quantize

FUNCTIONS = {
    "sigmoid": lambda x: 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64))),
    "tanh": lambda x: np.tanh(np.asarray(x, dtype=np.float64)),
}
FITS = ("minimax", "lsq", "interp")


@dataclass(frozen=True, eq=False)
class PwlTable:
    """A PWL table of SPEC §3, all numbers as integer codes."""

    in_fmt: Format
    out_fmt: Format
    ca_fmt: Format
    cb_fmt: Format
    breakpoints: np.ndarray
    x_hi: int
    intercepts: np.ndarray
    slopes: np.ndarray
    #: how the table was made, for reports only; evaluation never reads it
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        for name in ("breakpoints", "intercepts", "slopes"):
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=np.int64))
        bps = self.breakpoints
        k = bps.shape[0]
        if k == 0 or self.intercepts.shape != (k,) or self.slopes.shape != (k,):
            raise ValueError(
                f"a PWL table needs K >= 1 breakpoints with one intercept and one slope each; "
                f"got {k} breakpoints, {self.intercepts.shape[0]} intercepts, "
                f"{self.slopes.shape[0]} slopes"
            )
        _check_grid(self.in_fmt, bps, self.x_hi)
        self.ca_fmt.check_codes(self.intercepts, what="PWL intercepts")
        self.cb_fmt.check_codes(self.slopes, what="PWL slopes")
        bits = self.exact_bits()
        if bits > ACC_BITS:
            raise ValueError(
                f"PWL table {self.in_fmt} -> {self.out_fmt} needs a {bits}-bit exact sum, more "
                f"than {ACC_BITS}; narrow intercept_format {self.ca_fmt} or slope_format "
                f"{self.cb_fmt}"
            )

    # -- the evaluation constants of SPEC §3

    @property
    def sum_frac(self) -> int:
        """Fractional bits of the exact sum: the finer of the two terms."""
        return max(self.ca_fmt.frac, self.cb_fmt.frac + self.in_fmt.frac)

    @property
    def shifts(self) -> tuple[int, int]:
        """Left shifts that align ``A`` and ``B*d`` to :attr:`sum_frac`."""
        f = self.sum_frac
        return f - self.ca_fmt.frac, f - self.cb_fmt.frac - self.in_fmt.frac

    @property
    def max_d(self) -> int:
        ends = np.append(self.breakpoints[1:] - 1, self.x_hi)
        return int(np.max(np.minimum(ends, self.x_hi) - self.breakpoints))

    def exact_bits(self) -> int:
        """Bits (with sign) of the exact sum A<<sa + B*d<<sb in the worst case."""
        sa, sb = self.shifts
        bound = (int(np.max(np.abs(self.intercepts))) << sa) + (
            int(np.max(np.abs(self.slopes))) * self.max_d << sb
        )
        return bound.bit_length() + 1

    @property
    def uniform_log2(self) -> int | None:
        """log2 of the breakpoint spacing when the breakpoints are a power-of-two grid."""
        bps = self.breakpoints
        if bps.shape[0] == 1:
            span = self.x_hi - int(bps[0]) + 1
            return max(span - 1, 0).bit_length()
        step = int(bps[1] - bps[0])
        if step & (step - 1) or np.any(np.diff(bps) != step):
            return None
        if self.x_hi > int(bps[-1]) + step - 1:
            return None
        return step.bit_length() - 1

    def __call__(self, codes) -> np.ndarray:
        """Evaluate on an array of input codes (SPEC §3)."""
        arr = np.ascontiguousarray(codes, dtype=np.int64)
        out = np.empty(arr.shape, dtype=np.int64)
        _evaluate_array(arr.reshape(-1), out.reshape(-1), *self.kernel_args())
        return out

    def kernel_args(self) -> tuple:
        """The table as the flat arguments :func:`evaluate` takes."""
        sa, sb = self.shifts
        return (
            self.breakpoints,
            np.int64(self.x_hi),
            self.intercepts,
            self.slopes,
            sa,
            sb,
            self.sum_frac,
            *self.out_fmt.args(),
        )

    def to_json(self) -> dict:
        return {
            "in": str(self.in_fmt),
            "out": str(self.out_fmt),
            "intercept_format": str(self.ca_fmt),
            "slope_format": str(self.cb_fmt),
            "breakpoints": [int(v) for v in self.breakpoints],
            "x_hi": int(self.x_hi),
            "intercepts": [int(v) for v in self.intercepts],
            "slopes": [int(v) for v in self.slopes],
        }

    @classmethod
    def from_json(cls, obj: dict, *, what: str = "activation") -> PwlTable:
        try:
            return cls(
                in_fmt=parse_format(obj["in"]),
                out_fmt=parse_format(obj["out"]),
                ca_fmt=parse_format(obj["intercept_format"]),
                cb_fmt=parse_format(obj["slope_format"]),
                breakpoints=obj["breakpoints"],
                x_hi=int(obj["x_hi"]),
                intercepts=obj["intercepts"],
                slopes=obj["slopes"],
            )
        except KeyError as e:
            raise ValueError(f"{what} table is missing the key {e.args[0]!r}") from None

    def error(self, func: str | None = None) -> dict:
        """Exhaustive error over every input code against the exact function."""
        func = func or self.info.get("function")
        if func not in FUNCTIONS:
            raise ValueError(f"error() needs the function, 'sigmoid' or 'tanh', not {func!r}")
        codes = np.arange(self.in_fmt.code_min, self.in_fmt.code_max + 1, dtype=np.int64)
        got = self.out_fmt.codes_to_values(self(codes))
        err = np.abs(got - FUNCTIONS[func](self.in_fmt.codes_to_values(codes)))
        lsb = self.out_fmt.lsb
        return {
            "function": func,
            "segments": int(self.breakpoints.shape[0]),
            "max_abs": float(err.max()),
            "mean_abs": float(err.mean()),
            "max_lsb": float(err.max() / lsb),
            "mean_lsb": float(err.mean() / lsb),
            "worst_input_code": int(codes[int(err.argmax())]),
        }


def _check_grid(in_fmt: Format, bps: np.ndarray, x_hi: int) -> None:
    """Breakpoints strictly increasing, x_hi at or above the last, all codes of ``in_fmt``."""
    if bps.ndim != 1 or bps.shape[0] == 0:
        raise ValueError(f"PWL breakpoints must be a non-empty list of codes, not {bps.tolist()}")
    if np.any(np.diff(bps) <= 0):
        raise ValueError(f"PWL breakpoints must increase strictly, got {bps.tolist()}")
    if x_hi < bps[-1]:
        raise ValueError(f"PWL x_hi {x_hi} is below the last breakpoint {bps[-1]}")
    in_fmt.check_codes(np.append(bps, x_hi), what="PWL breakpoints and x_hi")


@njit(cache=True)
def evaluate(x, bps, x_hi, a, b, sa, sb, sum_frac, signed, width, frac, q_mode, o_mode):
    """One input code through a table (SPEC §3). Returns ``(code, overflowed)``."""
    if x < bps[0]:
        x = bps[0]
    if x > x_hi:
        x = x_hi
    lo = 0
    hi = bps.shape[0] - 1
    while lo < hi:  # the largest s with bps[s] <= x
        mid = (lo + hi + 1) >> 1
        if bps[mid] <= x:
            lo = mid
        else:
            hi = mid - 1
    d = x - bps[lo]
    y = (a[lo] << sa) + ((b[lo] * d) << sb)
    return quantize(y, sum_frac, signed, width, frac, q_mode, o_mode)


@njit(cache=True)
def _evaluate_array(xs, out, bps, x_hi, a, b, sa, sb, sum_frac, signed, width, frac, qm, om):
    for k in range(xs.shape[0]):
        out[k] = evaluate(xs[k], bps, x_hi, a, b, sa, sb, sum_frac, signed, width, frac, qm, om)[0]


# --------------------------------------------------------------------------- builders

DEFAULT_INTERCEPT = "fixed<18,2,RND,SAT>"
DEFAULT_SLOPE = "fixed<18,2,RND,SAT>"


def _coef_formats(ca_fmt, cb_fmt) -> tuple[Format, Format]:
    return parse_format(ca_fmt or DEFAULT_INTERCEPT), parse_format(cb_fmt or DEFAULT_SLOPE)


def _check_function(func: str) -> None:
    if func not in FUNCTIONS:
        raise ValueError(f"activation function must be 'sigmoid' or 'tanh', not {func!r}")


def uniform_grid(in_fmt: Format, range_log2: int, segments: int) -> tuple[np.ndarray, int]:
    """Breakpoints and x_hi of ``segments`` equal segments over [-2**range_log2, 2**range_log2).

    The range is cut to the input format's own range. Raises when a segment would be
    narrower than one input code or ``segments`` is not a power of two.
    """
    if segments < 1 or segments & (segments - 1):
        raise ValueError(f"segments must be a power of two, not {segments!r}")
    # range in codes: 2**(range_log2 + F); cut to the format
    top_log2 = range_log2 + in_fmt.frac
    fmt_log2 = in_fmt.width - 1 if in_fmt.signed else in_fmt.width
    top_log2 = min(top_log2, fmt_log2)
    if top_log2 < 0:
        raise ValueError(
            f"range 2**{range_log2} is below one LSB of the input format {in_fmt}; "
            f"choose a larger range"
        )
    lo = -(1 << top_log2) if in_fmt.signed else 0
    span_log2 = top_log2 + 1 if in_fmt.signed else top_log2
    step_log2 = span_log2 - (segments.bit_length() - 1)
    if step_log2 < 0:
        raise ValueError(
            f"{segments} segments over 2**{span_log2} input codes of {in_fmt} leaves less "
            f"than one code per segment; use at most {1 << span_log2} segments"
        )
    bps = lo + (np.arange(segments, dtype=np.int64) << step_log2)
    x_hi = lo + (1 << span_log2) - 1
    return bps, int(x_hi)


def fit_table(
    func: str,
    in_fmt,
    out_fmt,
    breakpoints,
    x_hi: int,
    *,
    fit: str = "minimax",
    slope_zero: bool = False,
    intercept_format=None,
    slope_format=None,
    info: dict | None = None,
) -> PwlTable:
    """Fit one line per segment to ``func`` over every input code of the segment.

    ``fit``: ``minimax`` (chord slope, intercept centred on the residual: the minimax line
    for a convex or concave segment), ``lsq`` (least squares), ``interp`` (through the
    function at the segment ends: continuous). With ``slope_zero`` the table is a lookup
    table (minimax: mid-range, lsq: mean, interp: value at the segment start). After the
    slope is quantized, the intercept is re-fitted for it, then quantized.
    """
    _check_function(func)
    if fit not in FITS:
        raise ValueError(f"fit must be one of {', '.join(FITS)}, not {fit!r}")
    in_fmt, out_fmt = parse_format(in_fmt), parse_format(out_fmt)
    ca_fmt, cb_fmt = _coef_formats(intercept_format, slope_format)
    f = FUNCTIONS[func]
    bps = np.asarray(breakpoints, dtype=np.int64)
    _check_grid(in_fmt, bps, int(x_hi))
    ends = np.append(bps[1:] - 1, x_hi)
    scale = in_fmt.lsb
    slopes_v = np.zeros(bps.shape[0])
    inter_v = np.zeros(bps.shape[0])
    for s, (b0, b1) in enumerate(zip(bps, ends)):
        d = np.arange(0, int(b1 - b0) + 1, dtype=np.float64)
        y = f((b0 + d) * scale)
        dv = d * scale  # input value offset from the segment start
        if slope_zero:
            slope = 0.0
        elif fit == "lsq" and d.shape[0] > 1:
            slope = float(np.polyfit(dv, y, 1)[0])
        elif fit == "interp":
            slope = float((f((b1 + 1) * scale) - y[0]) / ((b1 + 1 - b0) * scale))
        else:
            slope = float((y[-1] - y[0]) / dv[-1]) if d.shape[0] > 1 else 0.0
        slope_q = float(cb_fmt.codes_to_values(cb_fmt.from_float(slope)))
        slopes_v[s] = slope_q
        resid = y - slope_q * dv
        if fit == "minimax":
            inter_v[s] = 0.5 * (resid.max() + resid.min())
        elif fit == "lsq":
            inter_v[s] = resid.mean()
        else:
            inter_v[s] = resid[0]
    meta = {"function": func, "fit": fit, "lookup": slope_zero}
    meta.update(info or {})
    return PwlTable(
        in_fmt,
        out_fmt,
        ca_fmt,
        cb_fmt,
        bps,
        int(x_hi),
        ca_fmt.from_float(inter_v, what="PWL intercepts"),
        cb_fmt.from_float(slopes_v, what="PWL slopes"),
        info=meta,
    )


def uniform_table(
    func: str,
    in_fmt,
    out_fmt,
    *,
    range_log2: int,
    segments: int,
    fit: str = "minimax",
    lookup: bool = False,
    intercept_format=None,
    slope_format=None,
) -> PwlTable:
    """Equal power-of-two segments over [-2**range_log2, 2**range_log2); see :func:`fit_table`.

    With ``lookup`` all slopes are 0: the lookup-table scheme of hls4ml.
    """
    in_fmt = parse_format(in_fmt)
    bps, x_hi = uniform_grid(in_fmt, range_log2, segments)
    return fit_table(
        func,
        in_fmt,
        out_fmt,
        bps,
        x_hi,
        fit=fit,
        slope_zero=lookup,
        intercept_format=intercept_format,
        slope_format=slope_format,
        info={"kind": "lut" if lookup else "uniform", "range_log2": range_log2},
    )


def _table_from_lines(func, kind, in_fmt, out_fmt, starts, lines, top, ca, cb, *, open_below=0):
    """A table of the piecewise-linear function ``y = m_s·x + c_s`` from ``start_s`` to
    ``start_{s+1}``, held at its end values outside ``[start_0, top]``.

    Segment ``s`` takes the input codes at or above ``start_s``; for ``0 < s < open_below``
    only those above it (a mirrored negative half owns its upper end, not its lower one).
    A start that is not a code thus moves to the next code, and the intercept is the line's
    value *there*. Starts below the format's range move to its first code (the last of them
    wins); segments starting past ``top`` or the range are dropped; ``x_hi`` is the last code
    at or below ``top``. Where the starts and ``top`` are codes or out of range, the table is
    the function at every code, up to the rounding of its coefficients.
    """
    in_fmt, out_fmt = parse_format(in_fmt), parse_format(out_fmt)
    ca_fmt, cb_fmt = _coef_formats(ca, cb)
    scale = Fraction(2) ** in_fmt.frac  # codes per unit of input value
    x_hi = min(max(math.floor(Fraction(top) * scale), in_fmt.code_min), in_fmt.code_max)
    firsts = [
        max(
            math.floor(Fraction(x) * scale) + 1
            if 0 < s < open_below
            else math.ceil(Fraction(x) * scale),
            in_fmt.code_min,
        )
        for s, x in enumerate(starts)
    ]
    bps, inter, slopes = [], [], []
    for first, (m, c) in zip(firsts, lines):
        if bps and first <= bps[-1]:  # a later start on the same code supersedes
            bps.pop(), inter.pop(), slopes.pop()
        if first > x_hi and bps:
            break
        bps.append(min(first, x_hi))
        inter.append(m * float(Fraction(bps[-1]) / scale) + c)  # the line at its first code
        slopes.append(m)
    return PwlTable(
        in_fmt,
        out_fmt,
        ca_fmt,
        cb_fmt,
        np.array(bps, dtype=np.int64),
        int(x_hi),
        ca_fmt.from_float(inter, what=f"{kind} intercepts"),
        cb_fmt.from_float(slopes, what=f"{kind} slopes"),
        info={"function": func, "kind": kind},
    )


def plan_table(func: str, in_fmt, out_fmt, *, intercept_format=None, slope_format=None):
    """PLAN (Amin, Curtis, Hayes-Gill 1997) σ; for tanh, 2·PLAN(2x) − 1."""
    _check_function(func)
    pos = [(0.0, 0.25, 0.5), (1.0, 0.125, 0.625), (2.375, 0.03125, 0.84375), (5.0, 0.0, 1.0)]
    if func == "tanh":  # tanh(x) = 2σ(2x) − 1
        pos = [(x / 2, 2 * 2 * m, 2 * c - 1) for x, m, c in pos]
    top = pos[-1][0]
    # the negative half mirrors: y(−x) = 1 − y(x) for σ, −y(x) for tanh
    odd = 0.0 if func == "tanh" else 1.0
    points, lines = [], []
    for (end, _, _), (_, m, c) in zip(pos[1:][::-1], pos[:-1][::-1]):
        points.append(-end)  # [start, end) mirrored is (−end, −start]
        lines.append((m, odd - c))  # y = odd − (m·(−x) + c) = m·x + (odd − c)
    for start, m, c in pos[:-1]:
        points.append(start)
        lines.append((m, c))
    # PLAN jumps at ±2.375, so which side owns the code −2.375 matters: the outer one
    return _table_from_lines(
        func,
        "plan",
        in_fmt,
        out_fmt,
        points,
        lines,
        top,
        intercept_format,
        slope_format,
        open_below=len(pos) - 1,
    )


def hard_table(func: str, in_fmt, out_fmt, *, intercept_format=None, slope_format=None):
    """Hard σ (clip(0.2x + 0.5, 0, 1), the Keras form) or hard tanh (clip(x, −1, 1))."""
    _check_function(func)
    half = 2.5 if func == "sigmoid" else 1.0
    line = (0.2, 0.5) if func == "sigmoid" else (1.0, 0.0)
    return _table_from_lines(
        func, "hard", in_fmt, out_fmt, [-half], [line], half, intercept_format, slope_format
    )


def smallest_uniform_table(
    func: str,
    in_fmt,
    out_fmt,
    *,
    max_error_lsb: float = 1.0,
    fit: str = "minimax",
    lookup: bool = False,
    max_segments: int = 4096,
    intercept_format=None,
    slope_format=None,
) -> PwlTable:
    """The uniform table with the fewest segments whose exhaustive max error is within
    ``max_error_lsb`` output LSBs; among equal counts, the narrowest range that meets it.

    Raises when no table of up to ``max_segments`` segments meets the target.
    """
    in_fmt, out_fmt = parse_format(in_fmt), parse_format(out_fmt)
    top = (in_fmt.width - 1 if in_fmt.signed else in_fmt.width) - in_fmt.frac
    lowest = max(top - 8, -in_fmt.frac)
    best = None
    segments = 1
    while segments <= max_segments:
        for range_log2 in range(lowest, top + 1):
            try:
                table = uniform_table(
                    func,
                    in_fmt,
                    out_fmt,
                    range_log2=range_log2,
                    segments=segments,
                    fit=fit,
                    lookup=lookup,
                    intercept_format=intercept_format,
                    slope_format=slope_format,
                )
            except ValueError:
                continue
            err = table.error(func)
            if best is None or err["max_lsb"] < best[0]:
                best = (err["max_lsb"], segments, range_log2)
            if err["max_lsb"] <= max_error_lsb:
                table.info.update(max_error_lsb=max_error_lsb)
                return table
        segments *= 2
    raise ValueError(
        f"no uniform {func} table of up to {max_segments} segments reaches "
        f"{max_error_lsb} LSB of {out_fmt} (best: {best[0]:.3g} LSB with {best[1]} segments "
        f"over +-2**{best[2]}); allow more LSBs, widen intercept_format/slope_format, or "
        f"raise max_segments"
        if best
        else f"no uniform {func} table fits the input format {in_fmt}"
    )


def describe(table: PwlTable) -> str:
    """One line about a table: kind, segments, range."""
    lo = table.in_fmt.codes_to_values(table.breakpoints[0])
    hi = table.in_fmt.codes_to_values(table.x_hi)
    kind = table.info.get("kind", "table")
    return f"{kind}, {table.breakpoints.shape[0]} segments over [{lo:g}, {hi:g}]"
