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

from model.formats import ACC_BITS, MAX_WIDTH, Format, parse_format, quantize

FUNCTIONS = {
    "sigmoid": lambda x: 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64))),
    "tanh": lambda x: np.tanh(np.asarray(x, dtype=np.float64)),
}
FITS = ("minimax", "lsq", "interp")

#: An input format with at most this many codes is fitted and checked on every code. A wider
#: one (up to 2**32 codes) is fitted and checked on the codes that matter: each segment's ends
#: and the codes next to the extremum of the error between them, plus a bound for the output's
#: rounding. Nothing then has one array element per input code.
EXHAUSTIVE_MAX_CODES = 1 << 17
#: codes spread evenly over a wide input format on which the mean error is estimated
MEAN_SAMPLE = 1 << 16
#: float64 noise in a computed error, added to a bound so that it stays a bound
_FLOAT_SLACK = 1e-14


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
        """The error against the exact function over every input code of ``in_fmt``.

        An input format of up to :data:`EXHAUSTIVE_MAX_CODES` codes is evaluated on every
        code (``"method": "exhaustive"``). Over a wider one ``max_abs`` is an upper bound
        (``"method": "bound"``, see :func:`error_bound`), ``worst_input_code`` is where that
        bound is reached, and the means are over :data:`MEAN_SAMPLE` codes spread evenly over
        the format.
        """
        func = func or self.info.get("function")
        if func not in FUNCTIONS:
            raise ValueError(f"error() needs the function, 'sigmoid' or 'tanh', not {func!r}")
        lsb = self.out_fmt.lsb
        if not _exhaustive(self.in_fmt):
            max_abs, worst = error_bound(self, func)
            codes = spread_codes(self.in_fmt, MEAN_SAMPLE + 1)
            got = self.out_fmt.codes_to_values(self(codes))
            err = np.abs(got - FUNCTIONS[func](self.in_fmt.codes_to_values(codes)))
            return {
                "function": func,
                "segments": int(self.breakpoints.shape[0]),
                "max_abs": max_abs,
                "mean_abs": float(err.mean()),
                "max_lsb": max_abs / lsb,
                "mean_lsb": float(err.mean() / lsb),
                "worst_input_code": worst,
                "method": "bound",
            }
        codes = np.arange(self.in_fmt.code_min, self.in_fmt.code_max + 1, dtype=np.int64)
        got = self.out_fmt.codes_to_values(self(codes))
        err = np.abs(got - FUNCTIONS[func](self.in_fmt.codes_to_values(codes)))
        return {
            "function": func,
            "segments": int(self.breakpoints.shape[0]),
            "max_abs": float(err.max()),
            "mean_abs": float(err.mean()),
            "max_lsb": float(err.max() / lsb),
            "mean_lsb": float(err.mean() / lsb),
            "worst_input_code": int(codes[int(err.argmax())]),
            "method": "exhaustive",
        }

    def flagged(self, codes) -> tuple[np.ndarray, np.ndarray]:
        """Output codes and overflow flags (as :func:`evaluate`) for an array of input codes."""
        arr = np.ascontiguousarray(codes, dtype=np.int64).reshape(-1)
        out = np.empty(arr.shape, dtype=np.int64)
        over = np.empty(arr.shape, dtype=np.bool_)
        _evaluate_flagged(arr, out, over, *self.kernel_args())
        return out, over


def spread_codes(fmt: Format, n: int) -> np.ndarray:
    """Every code of ``fmt`` if it has at most ``n``, else ``n`` codes spread evenly over its
    range, first and last included: what to plot or sample a wide format on."""
    if fmt.code_max - fmt.code_min + 1 <= n:
        return np.arange(fmt.code_min, fmt.code_max + 1, dtype=np.int64)
    return np.unique(np.round(np.linspace(fmt.code_min, fmt.code_max, n)).astype(np.int64))


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


@njit(cache=True)
def _evaluate_flagged(
    xs, out, over, bps, x_hi, a, b, sa, sb, sum_frac, signed, width, frac, qm, om
):
    for k in range(xs.shape[0]):
        out[k], over[k] = evaluate(
            xs[k], bps, x_hi, a, b, sa, sb, sum_frac, signed, width, frac, qm, om
        )


# --------------------------------------------------------------------------- wide input formats


def _exhaustive(in_fmt: Format) -> bool:
    """Whether tables over ``in_fmt`` are fitted and checked on every input code."""
    return in_fmt.code_max - in_fmt.code_min + 1 <= EXHAUSTIVE_MAX_CODES


def _stationary(func: str, m) -> np.ndarray:
    """The input value x > 0 where the function's slope is ``m`` (the other one is -x); NaN
    where no input has that slope. Written to stay accurate for slopes near 0 and the peak."""
    m = np.asarray(m, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        if func == "sigmoid":  # sigmoid'(x) = (1 - t*t)/4 with t = tanh(x/2)
            t = np.sqrt(1.0 - 4.0 * m)
            x = np.where(t < 0.5, 2.0 * np.arctanh(t), 2.0 * np.log((1.0 + t) / (2.0 * np.sqrt(m))))
        else:  # tanh'(x) = 1 - t*t with t = tanh(x)
            t = np.sqrt(1.0 - m)
            x = np.where(t < 0.5, np.arctanh(t), np.log((1.0 + t) / np.sqrt(m)))
    return np.where(m > 0, x, np.nan)


def _extremes(func: str, lo, hi, base, m, scale: float) -> tuple[np.ndarray, ...]:
    """Max and min of ``h(x) = f(x*scale) - m*(x - base)*scale`` over the integer codes
    ``lo..hi`` of each segment, and the codes where they are: ``(max, at_max, min, at_min)``.

    sigmoid and tanh are convex below 0 and concave above, and so is h. On each side the
    extremes are at the side's ends or at the codes next to the one point where f' = m; these
    13 codes per segment give the extremes over every code of it.
    """
    f = FUNCTIONS[func]
    lo, hi, base = (np.asarray(v, dtype=np.int64) for v in (lo, hi, base))
    m = np.asarray(m, dtype=np.float64)
    lo_f, hi_f = lo - 2.0, hi + 2.0
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        at = _stationary(func, m) / scale  # in codes
    cands = [lo, hi, np.full_like(lo, -1), np.zeros_like(lo), np.ones_like(lo)]
    for c in (at, -at):
        c = np.floor(np.clip(np.where(np.isnan(c), lo_f, c), lo_f, hi_f)).astype(np.int64)
        cands += [c - 1, c, c + 1, c + 2]
    codes = np.clip(np.stack(cands, axis=1), lo[:, None], hi[:, None])
    h = f(codes * scale) - m[:, None] * ((codes - base[:, None]) * scale)
    rows = np.arange(codes.shape[0])
    i_max, i_min = h.argmax(axis=1), h.argmin(axis=1)
    return h[rows, i_max], codes[rows, i_max], h[rows, i_min], codes[rows, i_min]


#: a segment of up to this many codes is fitted by least squares on every code
LSQ_EVERY_CODE = 256
#: a longer one's sums of the function come from composite Gauss-Legendre quadrature:
#: this many panels of this many nodes per segment
_LSQ_PANELS, _LSQ_NODES = 32, 8


def _lsq_wide(func, bps, ends, scale, slope_q=None) -> np.ndarray:
    """Least-squares slopes (values) over each segment's codes or, given the quantized slopes
    ``slope_q``, the mean residuals: the intercepts.

    The sums of ``1, t, t*t`` over the codes ``t = 0..n-1`` are exact. The sums of ``y`` and
    ``t*y`` are taken over every code for ``n <= LSQ_EVERY_CODE``; above that they are the
    integrals over the codes' cells ``[-1/2, n - 1/2]`` (the midpoint rule, whose error is
    ``f''/24`` of a code squared per code), by quadrature.
    """
    f = FUNCTIONS[func]
    n = (ends - bps + 1).astype(np.float64)
    sum_t, sum_tt = n * (n - 1) / 2, (n - 1) * n * (2 * n - 1) / 6
    sum_y, sum_ty = np.zeros(n.shape), np.zeros(n.shape)
    every = n <= LSQ_EVERY_CODE
    j = np.arange(LSQ_EVERY_CODE)
    nodes, weights = np.polynomial.legendre.leggauss(_LSQ_NODES)
    panel = (np.arange(_LSQ_PANELS)[:, None] + (nodes[None, :] + 1) / 2).ravel()
    for s0 in range(0, n.shape[0], 2048):
        sl = slice(s0, s0 + 2048)
        b, ns, ev = bps[sl], n[sl], every[sl]
        # every code: t = 0..n-1, weight 1 (0 past the segment's end)
        t = np.broadcast_to(j, (b.shape[0], j.shape[0])).astype(np.float64)
        w = np.where(ev[:, None] & (t < ns[:, None]), 1.0, 0.0)
        # quadrature: nodes over [-1/2, n - 1/2] in panels of n / PANELS codes
        width = ns / _LSQ_PANELS
        tq = -0.5 + width[:, None] * panel[None, :]
        wq = np.where(ev[:, None], 0.0, (width / 2)[:, None] * np.tile(weights, _LSQ_PANELS))
        t, w = np.concatenate([t, tq], axis=1), np.concatenate([w, wq], axis=1)
        y = f((b[:, None] + t) * scale) * w
        sum_y[sl], sum_ty[sl] = y.sum(axis=1), (y * t).sum(axis=1)
    if slope_q is not None:  # mean of y - slope*t*scale
        return (sum_y - slope_q * scale * sum_t) / n
    with np.errstate(divide="ignore", invalid="ignore"):
        per_code = (n * sum_ty - sum_t * sum_y) / (n * sum_tt - sum_t * sum_t)
    return np.where(n > 1, per_code / scale, 0.0)


def _fit_wide(func, bps, ends, scale, fit, slope_zero, cb_fmt) -> tuple[np.ndarray, np.ndarray]:
    """:func:`fit_table`'s slopes and intercepts (values) over a wide input format, from a few
    codes per segment: minimax and interp need only the segment's ends and the extremes of the
    residual (exact, :func:`_extremes`); lsq needs sums over the codes (:func:`_lsq_wide`)."""
    f = FUNCTIONS[func]
    y0 = f(bps * scale)
    with np.errstate(divide="ignore", invalid="ignore"):
        if slope_zero:
            slope = np.zeros(bps.shape[0])
        elif fit == "interp":
            slope = (f((ends + 1) * scale) - y0) / ((ends + 1 - bps) * scale)
        elif fit == "lsq":
            slope = _lsq_wide(func, bps, ends, scale)
        else:
            slope = np.where(ends > bps, (f(ends * scale) - y0) / ((ends - bps) * scale), 0.0)
    slope_q = cb_fmt.codes_to_values(cb_fmt.from_float(slope))
    if fit == "minimax":
        h_max, _, h_min, _ = _extremes(func, bps, ends, bps, slope_q, scale)
        return slope_q, 0.5 * (h_max + h_min)
    if fit == "lsq":
        return slope_q, _lsq_wide(func, bps, ends, scale, slope_q)
    return slope_q, y0


def _out_range(fmt: Format) -> tuple[float, float]:
    """The lowest and highest value an output of ``fmt`` can take after its O rule."""
    if fmt.o == "SAT_SYM" and fmt.signed and fmt.width >= 2:
        return -fmt.value_max, fmt.value_max
    return fmt.value_min, fmt.value_max


def _rounding(fmt: Format, sum_frac: int, l_lo, l_hi) -> tuple:
    """How far ``fmt``'s Q rule can move an exact sum (``sum_frac`` fractional bits) up and
    down, for sums between ``l_lo`` and ``l_hi`` (per segment)."""
    if sum_frac <= fmt.frac:
        return 0.0, 0.0  # the sum is on the output's grid: nothing is dropped
    step = fmt.lsb - math.ldexp(1.0, -sum_frac)  # the most a truncation drops
    if fmt.q == "TRN":
        return 0.0, step
    if fmt.q == "TRN_ZERO":  # towards 0: down for positive sums, up for negative ones
        return np.where(l_lo >= 0, 0.0, step), np.where(l_hi <= 0, 0.0, step)
    return fmt.lsb / 2, fmt.lsb / 2


def error_bound(table: PwlTable, func: str) -> tuple[float, int]:
    """An upper bound of ``table``'s error against ``func`` over every input code, and the input
    code where the bound is reached. The work grows with the segments, not with the codes.

    In segment ``s`` the output is ``O(Q(L(x)))`` with the line ``L(x) = A_s + B_s*(x - b_s)``.
    The line's own error ``max |L - f|`` is exact (:func:`_extremes`). Q moves ``L`` by at most
    what the output's Q mode allows (``RND*``: half an LSB; ``TRN``: under one LSB). A
    saturating O clamps into the output's range, which only brings the output nearer to a
    function value inside it. Where a wrapping or zeroing O happens at all (``L`` is monotone
    on a segment, so it happens at one of its ends if anywhere), the output may be anywhere in
    the output's range (``WRAP``) or 0 (``SAT_ZERO``). Below ``b_0`` and above ``x_hi`` the
    output is constant and the function monotone: there the error is exact, at the ends of the
    format's range.
    """
    _check_function(func)
    f = FUNCTIONS[func]
    in_fmt, out_fmt = table.in_fmt, table.out_fmt
    scale = in_fmt.lsb
    bps = table.breakpoints
    ends = np.append(bps[1:] - 1, table.x_hi)
    a = table.ca_fmt.codes_to_values(table.intercepts)
    m = table.cb_fmt.codes_to_values(table.slopes)
    h_max, at_h_max, h_min, at_h_min = _extremes(func, bps, ends, bps, m, scale)
    # L = a + m*(x - b)*scale = a + f - h, so L - f = a - h
    l_end = a + m * ((ends - bps) * scale)
    up, down = _rounding(out_fmt, table.sum_frac, np.minimum(a, l_end), np.maximum(a, l_end))
    above = a - h_min + up  # the most the output is above f, at at_h_min
    below = h_max - a + down  # the most it is below f, at at_h_max
    err = np.maximum(above, below)
    worst = np.where(above >= below, at_h_min, at_h_max)
    lo_v, hi_v = _out_range(out_fmt)
    f_b, f_e = f(bps * scale), f(ends * scale)  # increasing: the least and the most of f
    if out_fmt.o in ("SAT", "SAT_SYM"):
        for gap, code in ((f_e - hi_v, ends), (lo_v - f_b, bps)):
            worst = np.where(gap > err, code, worst)
            err = np.maximum(err, gap)
    else:
        wraps = table.flagged(bps)[1] | table.flagged(ends)[1]
        if out_fmt.o == "SAT_ZERO":  # an overflowed output is 0: the error is |f| there
            lands, far = np.maximum(-f_b, f_e), np.where(-f_b >= f_e, bps, ends)
        else:  # a wrapped output is anywhere in the range
            lands = np.maximum(hi_v - f_b, f_e - lo_v)
            far = np.where(hi_v - f_b >= f_e - lo_v, bps, ends)
        worst = np.where(wraps & (lands > err), far, worst)
        err = np.where(wraps, np.maximum(err, lands), err)
    # the exact error where it is cheap: the segment ends, and the clamped ends of the range
    codes = np.concatenate([bps, ends, [in_fmt.code_min, in_fmt.code_max]])
    exact = np.abs(out_fmt.codes_to_values(table(codes)) - f(codes * scale))
    errs = np.concatenate([err + _FLOAT_SLACK, exact])
    i = int(errs.argmax())
    return float(errs[i]), int(np.concatenate([worst, codes])[i])


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
    narrower than one input code or ``segments`` is not a power of two; the message names
    a ``range_log2`` or ``segments`` that works.
    """
    if segments < 1 or segments & (segments - 1):
        raise ValueError(f"segments must be a power of two, not {segments!r}")
    # range in codes: 2**(range_log2 + F); cut to the format
    fmt_log2 = in_fmt.width - 1 if in_fmt.signed else in_fmt.width
    top_log2 = min(range_log2 + in_fmt.frac, fmt_log2)
    seg_log2 = segments.bit_length() - 1
    # the smallest top_log2 with at least one code in the range and one per segment
    need_log2 = max(seg_log2 - 1 if in_fmt.signed else seg_log2, 0)
    if need_log2 > fmt_log2:
        span_log2 = fmt_log2 + 1 if in_fmt.signed else fmt_log2
        raise ValueError(
            f"{segments} segments over the 2**{span_log2} input codes of {in_fmt} leaves less "
            f"than one code per segment; use at most {1 << span_log2} segments"
        )
    if top_log2 < need_log2:
        works = need_log2 - in_fmt.frac
        if top_log2 < 0:
            raise ValueError(
                f"range_log2 = {range_log2} puts the range 2**{range_log2} below one LSB "
                f"(2**{-in_fmt.frac}) of the input format {in_fmt}; set range_log2 = {works} "
                f"or more"
            )
        fewer = 1 << (top_log2 + 1 if in_fmt.signed else top_log2)
        raise ValueError(
            f"{segments} segments over the range 2**{range_log2} of {in_fmt} leaves less than "
            f"one input code per segment; set range_log2 = {works} or more, or use at most "
            f"{fewer} segments"
        )
    lo = -(1 << top_log2) if in_fmt.signed else 0
    span_log2 = top_log2 + 1 if in_fmt.signed else top_log2
    step_log2 = span_log2 - seg_log2
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

    Over an input format wider than :data:`EXHAUSTIVE_MAX_CODES` the same fits come from a
    few codes per segment: minimax, interp and the lookup fits exactly (the segment ends and
    the residual's extremes), lsq from exact sums or quadrature (:func:`_lsq_wide`).
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
    if not _exhaustive(in_fmt):
        slopes_v, inter_v = _fit_wide(func, bps, ends, scale, fit, slope_zero, cb_fmt)
    else:  # every code of every segment
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
    """The uniform table with the fewest segments whose max error over every input code is
    within ``max_error_lsb`` output LSBs; among equal counts, the narrowest range that meets it.
    Over a wide input format (see :data:`EXHAUSTIVE_MAX_CODES`) the max error is
    :func:`error_bound`'s, so the table chosen meets the target on every code.

    Raises when the output format cannot hold the function within the target (no table can
    work) or when no table of up to ``max_segments`` segments meets it.
    """
    _check_function(func)
    in_fmt, out_fmt = parse_format(in_fmt), parse_format(out_fmt)
    _check_output_holds(func, in_fmt, out_fmt, max_error_lsb)
    wide = not _exhaustive(in_fmt)
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
            if wide:
                max_lsb = error_bound(table, func)[0] / out_fmt.lsb
            else:
                max_lsb = table.error(func)["max_lsb"]
            if best is None or max_lsb < best[0]:
                best = (max_lsb, segments, range_log2)
            if max_lsb <= max_error_lsb:
                table.info.update(max_error_lsb=max_error_lsb)
                return table
        segments *= 2
    if best is None:
        raise ValueError(f"no uniform {func} table fits the input format {in_fmt}")
    reachable = math.ceil(best[0] * 100) / 100
    raise ValueError(
        f"no uniform {func} table of up to {max_segments} segments reaches "
        f"{max_error_lsb} LSB of {out_fmt} (best: {best[0]:.3g} LSB with segments = "
        f"{best[1]}, range_log2 = {best[2]}); set max_error_lsb = {reachable:g}, "
        f"widen intercept_format/slope_format, or raise max_segments"
    )


def _check_output_holds(func: str, in_fmt: Format, out_fmt: Format, max_error_lsb) -> None:
    """Refuse a target that no table can meet because ``out_fmt`` cannot hold ``func``'s
    values over ``in_fmt``'s range: every output is in ``out_fmt``'s range, the function is
    monotone, so the error at one end of the input range is at least its distance from it."""
    y_lo, y_hi = (float(v) for v in FUNCTIONS[func](np.array([in_fmt.value_min, in_fmt.value_max])))
    lo_v, hi_v = _out_range(out_fmt)
    short = max(y_hi - hi_v, lo_v - y_lo)
    if short <= max_error_lsb * out_fmt.lsb:
        return
    if y_hi - hi_v >= lo_v - y_lo:
        reach, held = f"up to {y_hi:.9g}", f"at most {hi_v:.9g}"
    else:
        reach, held = f"down to {y_lo:.9g}", f"at least {lo_v:.9g}"
    fix = _holding_format(out_fmt, y_lo, y_hi, max_error_lsb)
    fix = f"an output format with more integer bits, e.g. {fix}" if fix else "a wider output format"
    raise ValueError(
        f"no {func} table can be within {max_error_lsb:g} LSB of {out_fmt}: the output format "
        f"cannot hold the function ({func} reaches {reach} over the input range of {in_fmt}, "
        f"{out_fmt} holds {held}: {short / out_fmt.lsb:.3g} LSB short); use {fix}, or a "
        f"larger max_error_lsb"
    )


def _holding_format(fmt: Format, y_lo: float, y_hi: float, max_error_lsb) -> Format | None:
    """``fmt`` with as few more integer bits as hold [y_lo, y_hi] within the target, keeping
    its fractional bits while the width allows (signed if the values go below 0)."""
    signed = fmt.signed or y_lo < 0
    grow = int(signed and not fmt.signed)  # a sign bit
    for extra in range(grow, 64):
        width = min(fmt.width + extra, MAX_WIDTH)
        cand = Format(signed, width, fmt.int_bits + extra, fmt.q, fmt.o)
        lo_v, hi_v = _out_range(cand)
        if max(y_hi - hi_v, lo_v - y_lo) <= max_error_lsb * cand.lsb:
            return cand
    return None


def describe(table: PwlTable) -> str:
    """One line about a table: kind, segments, range."""
    lo = table.in_fmt.codes_to_values(table.breakpoints[0])
    hi = table.in_fmt.codes_to_values(table.x_hi)
    kind = table.info.get("kind", "table")
    return f"{kind}, {table.breakpoints.shape[0]} segments over [{lo:g}, {hi:g}]"
