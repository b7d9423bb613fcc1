"""model/pwl.py: table evaluation against the naive SPEC §3 evaluator, the builders, errors.

Evaluation is checked on every input code: 16-bit input formats for the built tables, and
random tables (random breakpoints, coefficients over their formats' whole range, every
Out Q/O mode) on narrower ones.
"""

import contextlib
import itertools
import math
import os
import re
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import naive
import numpy as np
import pytest

from model import pwl
from model.formats import O_MODES, Q_MODES, Format, parse_format
from model.pwl import (
    FITS,
    FUNCTIONS,
    PwlTable,
    describe,
    error_bound,
    evaluate,
    fit_table,
    hard_table,
    plan_table,
    smallest_uniform_table,
    uniform_grid,
    uniform_table,
)

WIDE = "fixed<24,2,RND,SAT>"  # coefficient formats that hold PLAN's numbers exactly


def all_codes(fmt) -> np.ndarray:
    return np.arange(fmt.code_min, fmt.code_max + 1, dtype=np.int64)


def assert_matches_naive(table: PwlTable) -> None:
    codes = all_codes(table.in_fmt)
    got = table(codes)
    nt = naive.Table.of(table)
    want = np.array([naive.pwl(int(c), nt) for c in codes], dtype=np.int64)
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, (
        f"{bad.size} codes differ, first at input {codes[bad[0]]}: "
        f"got {got[bad[0]]}, want {want[bad[0]]}"
    )


# --------------------------------------------------------------------------- evaluation

BUILT = {
    "uniform-sigmoid-minimax": lambda: uniform_table(
        "sigmoid", "fixed<16,6,RND,SAT>", "ufixed<16,1,RND,SAT>", range_log2=3, segments=32
    ),
    "uniform-tanh-lsq": lambda: uniform_table(
        "tanh",
        "fixed<16,4,TRN,WRAP>",
        "fixed<12,1,RND_CONV,SAT_SYM>",
        range_log2=2,
        segments=16,
        fit="lsq",
        intercept_format="fixed<20,2,RND,SAT>",
        slope_format="fixed<14,1,TRN,SAT>",
    ),
    "uniform-tanh-interp-unsigned-in": lambda: uniform_table(
        "tanh",
        "ufixed<16,4,RND,SAT>",
        "fixed<8,2,RND_INF,WRAP>",
        range_log2=3,
        segments=8,
        fit="interp",
    ),
    "lookup-sigmoid": lambda: uniform_table(
        "sigmoid",
        "fixed<16,6,RND,SAT>",
        "ufixed<8,0,RND_ZERO,SAT_ZERO>",
        range_log2=4,
        segments=64,
        lookup=True,
    ),
    "plan-sigmoid": lambda: plan_table("sigmoid", "fixed<16,6,RND,SAT>", "ufixed<16,1,RND,SAT>"),
    "plan-tanh": lambda: plan_table(
        "tanh", "fixed<16,3,RND,SAT>", "fixed<16,1,TRN_ZERO,SAT>", slope_format="fixed<12,4>"
    ),
    "hard-sigmoid": lambda: hard_table(
        "sigmoid", "fixed<16,6,RND,SAT>", "ufixed<10,1,RND_MIN_INF,SAT_SYM>"
    ),
    "hard-tanh": lambda: hard_table("tanh", "fixed<16,8,RND,SAT>", "fixed<6,2,RND,WRAP>"),
    "non-uniform-random": lambda: _random_table(
        np.random.default_rng(7),
        Format(True, 16, 5),
        Format(True, 10, 3, "RND_CONV", "WRAP"),
        segments=12,
    ),
}


@pytest.mark.parametrize("name", BUILT)
def test_table_matches_naive_on_every_16bit_code(name):
    table = BUILT[name]()
    assert table.in_fmt.width == 16
    assert_matches_naive(table)


def _random_format(rng, max_w, q="TRN", o="WRAP", signed=None):
    w = int(rng.integers(1, max_w + 1))
    s = bool(rng.integers(2)) if signed is None else signed
    return Format(s, w, int(rng.integers(-6, w + 7)), q, o)


def _random_table(rng, in_fmt, out_fmt, segments):
    """Random breakpoints over the input range and coefficients over their whole formats."""
    for _ in range(100):
        ca = _random_format(rng, 32)
        cb = _random_format(rng, 32)
        n_codes = in_fmt.code_max - in_fmt.code_min + 1
        k = min(segments, n_codes)
        bps = np.sort(rng.choice(n_codes, size=k, replace=False)) + in_fmt.code_min
        x_hi = int(rng.integers(bps[-1], in_fmt.code_max + 1))
        a = rng.integers(ca.code_min, ca.code_max + 1, size=k, dtype=np.int64)
        b = rng.integers(cb.code_min, cb.code_max + 1, size=k, dtype=np.int64)
        a[: k // 3] = ca.code_min  # the extremes too
        b[: k // 4] = cb.code_max
        try:
            return PwlTable(in_fmt, out_fmt, ca, cb, bps, x_hi, a, b)
        except ValueError as e:
            assert "bit exact sum" in str(e)
    raise AssertionError("no random table under the 62-bit limit")


@pytest.mark.parametrize("q,o", list(itertools.product(Q_MODES, O_MODES)))
def test_random_tables_every_out_mode(q, o):
    """Random tables (any breakpoints, coefficients over their whole range, so outputs
    overflow) on every code of narrower input formats, and the kernel's overflow flag."""
    rng = np.random.default_rng(100 + Q_MODES.index(q) * 10 + O_MODES.index(o))
    for _ in range(4):
        in_fmt = _random_format(rng, 11)
        out_fmt = _random_format(rng, 32, q, o)
        table = _random_table(rng, in_fmt, out_fmt, int(rng.integers(1, 9)))
        assert_matches_naive(table)
        nt = naive.Table.of(table)
        for x in rng.integers(in_fmt.code_min, in_fmt.code_max + 1, size=20):
            want = naive.to_code_flagged(naive.pwl_exact(int(x), nt), out_fmt)
            assert evaluate(int(x), *table.kernel_args()) == want


def test_out_of_range_inputs_clamp():
    table = PwlTable(
        Format(True, 8, 8),
        Format(True, 16, 16),
        Format(True, 8, 8),
        Format(True, 8, 8),
        breakpoints=[-10, 0, 7],
        x_hi=20,
        intercepts=[100, -3, 5],
        slopes=[-1, 2, 1],
    )
    # below b_0: as b_0; in segment 0..2; past x_hi: as x_hi (d = 13 in segment 2)
    got = table([-128, -11, -10, -9, -1, 0, 6, 7, 8, 20, 21, 127]).tolist()
    assert got == [100, 100, 100, 99, 91, -3, 9, 5, 6, 18, 18, 18]


def test_evaluate_keeps_shape_and_dtype():
    table = BUILT["plan-sigmoid"]()
    codes = np.arange(-6, 6).reshape(3, 4)
    out = table(codes)
    assert out.shape == (3, 4) and out.dtype == np.int64
    assert out.ravel().tolist() == table(codes.ravel()).tolist()


# --------------------------------------------------------------------------- builders


def plan_sigmoid(x: Fraction) -> Fraction:
    """PLAN as published (Amin, Curtis, Hayes-Gill 1997)."""
    ax = abs(x)
    if ax >= 5:
        y = Fraction(1)
    elif ax >= Fraction(19, 8):
        y = ax / 32 + Fraction(27, 32)
    elif ax >= 1:
        y = ax / 8 + Fraction(5, 8)
    else:
        y = ax / 4 + Fraction(1, 2)
    return y if x >= 0 else 1 - y


EXACT = {
    ("plan", "sigmoid"): plan_sigmoid,
    ("plan", "tanh"): lambda x: 2 * plan_sigmoid(2 * x) - 1,
    ("hard", "tanh"): lambda x: min(max(x, Fraction(-1)), Fraction(1)),
}

# Input formats where the functions' ends (PLAN σ ±5, PLAN tanh ±2.5, hard tanh ±1) are
# codes or out of range. There the table is the function itself at every code, also where a
# breakpoint is not a code (2.375 with F <= 2, 1.1875 with F <= 3) or the range cuts the
# function (fixed<8,2>, ufixed).
EXACT_INPUTS = [
    "fixed<13,6,RND,SAT>",
    "fixed<12,4,TRN,WRAP>",
    "fixed<8,7,RND,SAT>",
    "fixed<8,7,TRN,WRAP>",
    "fixed<8,2,RND,SAT>",
    "fixed<8,2,TRN,WRAP>",
    "ufixed<8,4,RND,SAT>",
    "fixed<6,1,RND,SAT>",
]
EXACT_CASES = [(k, f, i) for k, f in EXACT for i in EXACT_INPUTS] + [
    ("plan", "sigmoid", "fixed<8,8,RND,SAT>"),  # F = 0
    ("hard", "tanh", "fixed<8,8,TRN,SAT>"),
    ("hard", "tanh", "fixed<4,1,TRN,SAT>"),  # -1 is the first code, +1 past the last
]


@pytest.mark.parametrize("kind,func,in_text", EXACT_CASES)
def test_plan_and_hard_tanh_are_the_function_itself(kind, func, in_text):
    """Wide coefficient formats hold PLAN's numbers exactly, so every output code is the
    exact function's value quantized into Out: no error beyond Out's own rounding."""
    build = plan_table if kind == "plan" else hard_table
    out_fmt = parse_format("fixed<16,2,RND_CONV,SAT>")
    table = build(func, in_text, out_fmt, intercept_format=WIDE, slope_format=WIDE)
    codes = all_codes(table.in_fmt)
    f = EXACT[(kind, func)]
    want = [naive.to_code(f(naive.value_of(int(c), table.in_fmt)), out_fmt) for c in codes]
    assert table(codes).tolist() == want


def test_hard_sigmoid_within_one_code():
    """0.2 is not a binary fraction: within one output code of the exact clip(0.2x + 0.5)."""
    for in_text in ("fixed<13,6,RND,SAT>", "fixed<8,2,RND,SAT>", "ufixed<8,4,TRN,WRAP>"):
        out_fmt = parse_format("ufixed<16,1,RND,SAT>")
        table = hard_table("sigmoid", in_text, out_fmt, intercept_format=WIDE, slope_format=WIDE)
        codes = all_codes(table.in_fmt)

        def f(x):
            return min(max(x / 5 + Fraction(1, 2), Fraction(0)), Fraction(1))

        want = np.array(
            [naive.to_code(f(naive.value_of(int(c), table.in_fmt)), out_fmt) for c in codes]
        )
        assert np.abs(table(codes) - want).max() <= 1, in_text


@pytest.mark.parametrize("func", ["sigmoid", "tanh"])
def test_uniform_fits(func):
    """The grid is what was asked; every fit is second order (twice the segments, about a
    quarter of the error); minimax beats interpolation; interpolation is continuous."""
    in_fmt = parse_format("fixed<16,6,RND,SAT>")
    out_fmt = parse_format("fixed<16,1,RND,SAT>")
    max_abs = {}
    for fit in ("minimax", "lsq", "interp"):
        errs = []
        for segments in (16, 32):
            table = uniform_table(func, in_fmt, out_fmt, range_log2=3, segments=segments, fit=fit)
            step = 16384 // segments
            assert table.breakpoints.tolist() == [-8192 + step * s for s in range(segments)]
            assert table.x_hi == 8191
            assert table.uniform_log2 == step.bit_length() - 1
            assert table.info["function"] == func and table.info["fit"] == fit
            errs.append(table.error()["max_abs"])
        assert errs[0] / errs[1] > 3.3, (fit, errs)
        max_abs[fit] = errs[1]
        if fit == "interp":  # each line ends (one segment later) where the next one starts
            seg = 2.0 ** (step.bit_length() - 1 - in_fmt.frac)  # segment width in value
            ca, cb = table.ca_fmt, table.cb_fmt
            ends = ca.codes_to_values(table.intercepts) + cb.codes_to_values(table.slopes) * seg
            starts = ca.codes_to_values(table.intercepts)
            assert np.abs(ends[:-1] - starts[1:]).max() < 2 * (ca.lsb + cb.lsb * seg)
    assert max_abs["minimax"] < max_abs["interp"]


def test_uniform_grid_is_cut_to_the_format():
    bps, x_hi = uniform_grid(parse_format("fixed<8,3>"), 10, 4)  # range past the format
    assert bps.tolist() == [-128, -64, 0, 64] and x_hi == 127
    bps, x_hi = uniform_grid(parse_format("ufixed<8,3>"), 1, 2)  # [0, 2) at F = 5
    assert bps.tolist() == [0, 32] and x_hi == 63
    bps, x_hi = uniform_grid(parse_format("fixed<8,3>"), 0, 1)
    assert bps.tolist() == [-32] and x_hi == 31


def test_lookup_table_has_no_slopes():
    table = uniform_table(
        "tanh", "fixed<12,4,RND,SAT>", "fixed<10,1,RND,SAT>", range_log2=2, segments=32, lookup=True
    )
    assert not table.slopes.any()
    assert table.info["kind"] == "lut"
    assert_matches_naive(table)


def test_uniform_log2():
    assert BUILT["plan-sigmoid"]().uniform_log2 is None
    one = PwlTable(*[Format(True, 8, 8)] * 4, breakpoints=[-5], x_hi=10, intercepts=[0], slopes=[1])
    assert one.uniform_log2 == 4  # 16 codes: a 4-bit d
    gap = PwlTable(
        *[Format(True, 8, 8)] * 4,
        breakpoints=[0, 4, 8],
        x_hi=20,
        intercepts=[0] * 3,
        slopes=[0] * 3,
    )
    assert gap.uniform_log2 is None  # the last segment is longer than the others


def test_json_round_trip():
    table = BUILT["uniform-tanh-lsq"]()
    obj = table.to_json()
    back = PwlTable.from_json(obj)
    assert back.to_json() == obj
    codes = all_codes(table.in_fmt)
    assert (back(codes) == table(codes)).all()
    del obj["slopes"]
    with pytest.raises(ValueError, match="tanh table is missing the key 'slopes'"):
        PwlTable.from_json(obj, what="tanh")


# --------------------------------------------------------------------------- error report


def _direct_error(table: PwlTable, func: str):
    f = {"sigmoid": lambda x: 1.0 / (1.0 + math.exp(-x)), "tanh": math.tanh}[func]
    codes = all_codes(table.in_fmt)
    errs = []
    for c, out in zip(codes.tolist(), table(codes).tolist()):
        x = float(naive.value_of(c, table.in_fmt))
        y = float(naive.value_of(out, table.out_fmt))
        errs.append(abs(y - f(x)))
    return errs


@pytest.mark.parametrize("name", ["uniform-sigmoid-minimax", "plan-tanh", "hard-tanh"])
def test_error_report_against_direct_computation(name):
    table = BUILT[name]()
    func = table.info["function"]
    errs = _direct_error(table, func)
    rep = table.error()
    lsb = 2.0**-table.out_fmt.frac
    assert rep["function"] == func
    assert rep["segments"] == len(table.breakpoints)
    assert rep["max_abs"] == pytest.approx(max(errs), rel=1e-9, abs=1e-15)
    assert rep["mean_abs"] == pytest.approx(sum(errs) / len(errs), rel=1e-9)
    assert rep["max_lsb"] == pytest.approx(max(errs) / lsb, rel=1e-9)
    assert rep["mean_lsb"] == pytest.approx(sum(errs) / len(errs) / lsb, rel=1e-9)
    worst = rep["worst_input_code"] - table.in_fmt.code_min
    assert errs[worst] == pytest.approx(max(errs), rel=1e-9, abs=1e-15)


def test_error_needs_a_function():
    table = PwlTable(*[Format(True, 8, 8)] * 4, breakpoints=[0], x_hi=0, intercepts=[0], slopes=[0])
    with pytest.raises(ValueError, match="'sigmoid' or 'tanh'"):
        table.error()
    assert table.error("tanh")["max_abs"] > 0


# --------------------------------------------------------------------------- smallest table

SMALLEST_CASES = [
    ("sigmoid", "minimax", False, 2.0),
    ("tanh", "lsq", False, 1.0),
    ("tanh", "minimax", True, 4.0),
]


@pytest.mark.parametrize("func,fit,lookup,target", SMALLEST_CASES)
def test_smallest_uniform_table(func, fit, lookup, target):
    in_fmt, out_fmt = "fixed<12,4,RND,SAT>", "fixed<10,1,RND,SAT>"
    table = smallest_uniform_table(
        func, in_fmt, out_fmt, max_error_lsb=target, fit=fit, lookup=lookup
    )
    segments = len(table.breakpoints)
    assert table.error(func)["max_lsb"] <= target
    assert segments > 1 and segments & (segments - 1) == 0
    assert table.info["max_error_lsb"] == target
    # no range with half the segments reaches the target (the search tries ranges up to the
    # format's own range)
    for range_log2 in range(-8, 4):
        try:
            half = uniform_table(
                func,
                in_fmt,
                out_fmt,
                range_log2=range_log2,
                segments=segments // 2,
                fit=fit,
                lookup=lookup,
            )
        except ValueError:
            continue
        assert half.error(func)["max_lsb"] > target, range_log2


def test_smallest_uniform_table_unreachable():
    with pytest.raises(ValueError, match=r"no uniform tanh table of up to 4 segments") as info:
        smallest_uniform_table(
            "tanh", "fixed<10,4,RND,SAT>", "fixed<16,1,RND,SAT>", max_error_lsb=1, max_segments=4
        )
    assert "best:" in str(info.value) and "max_segments" in str(info.value)


# --------------------------------------------------------------------------- bad input


def test_segments_must_be_a_power_of_two():
    for bad in (0, 3, 6, -4):
        with pytest.raises(ValueError, match=f"power of two, not {bad}"):
            uniform_table("tanh", "fixed<16,6>", "fixed<16,1>", range_log2=2, segments=bad)


def test_grid_limits():
    with pytest.raises(ValueError, match="use at most 256 segments"):
        uniform_grid(parse_format("fixed<8,3>"), 5, 512)
    with pytest.raises(ValueError, match="below one LSB"):
        uniform_grid(parse_format("fixed<8,3>"), -6, 1)


@pytest.mark.parametrize(
    "bps,x_hi,msg",
    [
        ([0, 0, 4], 10, "increase strictly"),
        ([0, 5, 4], 10, "increase strictly"),
        ([0, 5], 3, "x_hi 3 is below the last breakpoint 5"),
        ([-200, 0], 10, "outside"),
        ([0, 5], 128, "outside"),
    ],
)
def test_bad_breakpoints(bps, x_hi, msg):
    f = Format(True, 8, 8)
    n = len(bps)
    with pytest.raises(ValueError, match=msg):
        PwlTable(f, f, f, f, bps, x_hi, [0] * n, [0] * n)
    with pytest.raises(ValueError, match=msg):  # the fitter says the same, before fitting
        fit_table("tanh", f, f, bps, x_hi)


def test_bad_coefficients():
    f = Format(True, 8, 8)
    with pytest.raises(ValueError, match="one intercept and one slope each"):
        PwlTable(f, f, f, f, [0, 4], 10, [0], [0, 0])
    with pytest.raises(ValueError, match="PWL intercepts holds code 128"):
        PwlTable(f, f, f, f, [0], 10, [128], [0])
    with pytest.raises(ValueError, match="PWL slopes holds code -129"):
        PwlTable(f, f, f, f, [0], 10, [0], [-129])


def test_table_needing_more_than_62_bits():
    in_fmt = Format(True, 16, -20)  # F_In = 36
    cb = Format(True, 32, 0)  # F_CB = 32: B·d sits at 68 fractional bits
    ca = Format(True, 32, 32)  # F_CA = 0: A is shifted left by 68
    with pytest.raises(ValueError, match="needs a 100-bit exact sum") as info:
        PwlTable(in_fmt, in_fmt, ca, cb, [0], 100, [2**31 - 1], [1])
    assert str(ca) in str(info.value) and str(cb) in str(info.value)
    # the same table with an intercept of 0 and a small slope fits
    ok = PwlTable(in_fmt, in_fmt, Format(True, 8, -60), cb, [0], 100, [3], [1])
    assert ok.exact_bits() <= 62


def test_bad_function_and_fit():
    with pytest.raises(ValueError, match="'sigmoid' or 'tanh', not 'relu'"):
        plan_table("relu", "fixed<16,6>", "fixed<16,1>")
    with pytest.raises(ValueError, match="fit must be one of"):
        uniform_table("tanh", "fixed<16,6>", "fixed<16,1>", range_log2=2, segments=4, fit="l2")


# --------------------------------------------------------------------------- wide input formats
#
# Over an input format of more than EXHAUSTIVE_MAX_CODES codes a table is fitted and checked
# from a few codes per segment, and error() is an upper bound. Up to that, every code.


def _reference_fit(func, in_fmt, bps, x_hi, cb_fmt, fit, slope_zero):
    """fit_table's fit as it was before wide formats: every code of every segment."""
    f = FUNCTIONS[func]
    ends = np.append(bps[1:] - 1, x_hi)
    scale = in_fmt.lsb
    slopes_v, inter_v = np.zeros(bps.shape[0]), np.zeros(bps.shape[0])
    for s, (b0, b1) in enumerate(zip(bps, ends)):
        d = np.arange(0, int(b1 - b0) + 1, dtype=np.float64)
        y = f((b0 + d) * scale)
        dv = d * scale
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
    return inter_v, slopes_v


def _reference_error(table, func):
    """error() as it was before wide formats: every input code."""
    codes = all_codes(table.in_fmt)
    got = table.out_fmt.codes_to_values(table(codes))
    err = np.abs(got - FUNCTIONS[func](table.in_fmt.codes_to_values(codes)))
    lsb = table.out_fmt.lsb
    return {
        "function": func,
        "segments": int(table.breakpoints.shape[0]),
        "max_abs": float(err.max()),
        "mean_abs": float(err.mean()),
        "max_lsb": float(err.max() / lsb),
        "mean_lsb": float(err.mean() / lsb),
        "worst_input_code": int(codes[int(err.argmax())]),
    }


NARROW_INPUTS = [
    "fixed<16,6,RND,SAT>",
    "ufixed<16,4,TRN,WRAP>",
    "fixed<12,2,RND,SAT>",
    "fixed<8,3>",
]


@pytest.mark.parametrize("in_text", NARROW_INPUTS)
def test_narrow_tables_are_bit_identical_to_the_exhaustive_fit(in_text):
    """Up to 16 bits nothing changed: the same coefficients and the same error report."""
    in_fmt = parse_format(in_text)
    cb_fmt = parse_format("fixed<18,2,RND,SAT>")
    for func, fit, lookup, segments in itertools.product(
        ("sigmoid", "tanh"), FITS, (False, True), (1, 16, 128)
    ):
        table = uniform_table(
            func,
            in_fmt,
            "ufixed<16,1,RND,SAT>" if func == "sigmoid" else "fixed<16,1,RND,SAT>",
            range_log2=3,
            segments=segments,
            fit=fit,
            lookup=lookup,
        )
        inter_v, slopes_v = _reference_fit(
            func, in_fmt, table.breakpoints, table.x_hi, cb_fmt, fit, lookup
        )
        assert table.intercepts.tolist() == table.ca_fmt.from_float(inter_v).tolist()
        assert table.slopes.tolist() == cb_fmt.from_float(slopes_v).tolist()
        rep = table.error()
        assert rep.pop("method") == "exhaustive"
        assert rep == _reference_error(table, func)


def test_narrow_smallest_table_is_the_exhaustive_search():
    """The search on a 14-bit input picks what the exhaustive search picks."""
    in_fmt, out_fmt = parse_format("fixed<14,5,RND,SAT>"), parse_format("ufixed<12,1,RND,SAT>")
    table = smallest_uniform_table("sigmoid", in_fmt, out_fmt, max_error_lsb=1.5)
    want = None
    for segments in (1, 2, 4, 8, 16, 32, 64, 128, 256):
        for range_log2 in range(-1, 5):
            ref = uniform_table(
                "sigmoid", in_fmt, out_fmt, range_log2=range_log2, segments=segments
            )
            if _reference_error(ref, "sigmoid")["max_lsb"] <= 1.5:
                want = ref
                break
        if want is not None:
            break
    assert table.to_json() == want.to_json()


@contextlib.contextmanager
def _exhaustive_up_to(codes):
    old = pwl.EXHAUSTIVE_MAX_CODES
    pwl.EXHAUSTIVE_MAX_CODES = codes
    try:
        yield
    finally:
        pwl.EXHAUSTIVE_MAX_CODES = old


def _medium_tables():
    """Tables over 18-20-bit inputs of every kind and fit, across Out's Q and O modes."""
    gate, cand = "ufixed<16,1,RND,SAT>", "fixed<16,1,RND,SAT>"
    yield uniform_table("sigmoid", "fixed<20,6,RND,SAT>", gate, range_log2=4, segments=64)
    yield uniform_table("tanh", "fixed<18,4,TRN,SAT>", cand, range_log2=2, segments=16, fit="lsq")
    yield uniform_table(
        "tanh", "ufixed<19,4,RND,SAT>", "fixed<10,1,TRN,SAT_SYM>", range_log2=3, segments=8
    )
    yield uniform_table(
        "sigmoid",
        "fixed<18,8,RND,SAT>",
        "ufixed<12,1,TRN_ZERO,SAT>",
        range_log2=3,
        segments=32,
        fit="interp",
    )
    yield uniform_table(
        "tanh",
        "fixed<20,6,RND,SAT>",
        "fixed<8,1,RND_CONV,SAT>",
        range_log2=3,
        segments=64,
        lookup=True,
    )
    yield uniform_table(
        "tanh", "fixed<19,5,RND,SAT>", "fixed<14,0,RND,SAT_ZERO>", range_log2=4, segments=32
    )
    # a table whose rounding carries out of ufixed<12,0> near 1 and wraps to 0
    yield uniform_table(
        "sigmoid",
        "fixed<18,6,RND,SAT>",
        "ufixed<12,0,RND,WRAP>",
        range_log2=5,
        segments=16,
        lookup=True,
    )
    yield uniform_table(
        "sigmoid", "fixed<18,2,RND,SAT>", "ufixed<16,1,RND,SAT>", range_log2=0, segments=1
    )  # clamped far inside the function's range
    yield plan_table("sigmoid", "fixed<20,6,RND,SAT>", gate)
    yield plan_table("tanh", "fixed<18,3,RND,SAT>", "fixed<16,1,TRN,SAT>")
    yield hard_table("sigmoid", "fixed<18,6,RND,SAT>", "ufixed<10,1,RND_MIN_INF,SAT_SYM>")
    yield hard_table("tanh", "fixed<19,8,RND,SAT>", "fixed<6,2,RND,WRAP>")


def test_medium_inputs_bound_is_at_least_the_exhaustive_error():
    """On 18-20-bit inputs the bound is never below the error over every code, and never
    more than the output's rounding above it where nothing wraps."""
    for table in _medium_tables():
        func = table.info["function"]
        with _exhaustive_up_to(1 << 20):
            exact = table.error()
        with _exhaustive_up_to(0):
            bound = table.error()
        assert exact["method"] == "exhaustive" and bound["method"] == "bound"
        assert bound["max_abs"] >= exact["max_abs"], (str(table.out_fmt), bound, exact)
        if exact["max_lsb"] < 1.5:
            assert bound["max_lsb"] <= exact["max_lsb"] + 1.0 + 1e-6, (bound, exact)
        if table.out_fmt.o != "WRAP":
            assert bound["max_lsb"] <= exact["max_lsb"] + 1.0 + 1e-6, (bound, exact)
        assert bound["mean_abs"] == pytest.approx(exact["mean_abs"], rel=0.05, abs=1e-9)
        assert error_bound(table, func)[0] == bound["max_abs"]


def test_wrapping_output_bound_sees_the_wrap():
    table = uniform_table(
        "sigmoid",
        "fixed<18,6,RND,SAT>",
        "ufixed<12,0,RND,WRAP>",
        range_log2=5,
        segments=16,
        lookup=True,
    )
    with _exhaustive_up_to(1 << 20):
        exact = table.error()
    assert exact["max_abs"] > 0.9  # a wrap to 0 where sigmoid is near 1
    with _exhaustive_up_to(0):
        assert table.error()["max_abs"] >= exact["max_abs"]


@pytest.mark.parametrize("fit", FITS)
def test_medium_inputs_fit_from_few_codes_matches_every_code(fit):
    """The fit from a segment's ends and extremes (or the lsq quadrature) gives the
    coefficients of the fit over every code, within one coefficient code."""
    for func, in_text, segments, lookup in [
        ("sigmoid", "fixed<18,6,RND,SAT>", 1, False),
        ("sigmoid", "ufixed<19,4,RND,SAT>", 8, True),
        ("tanh", "fixed<20,3,TRN,WRAP>", 64, False),
        ("tanh", "fixed<18,6,RND,SAT>", 1024, False),
    ]:
        kw = dict(range_log2=3, segments=segments, fit=fit, lookup=lookup)
        with _exhaustive_up_to(1 << 20):
            every = uniform_table(func, in_text, "fixed<16,1,RND,SAT>", **kw)
        with _exhaustive_up_to(0):
            few = uniform_table(func, in_text, "fixed<16,1,RND,SAT>", **kw)
        assert np.abs(every.intercepts - few.intercepts).max() <= 1, (func, in_text, segments)
        assert np.abs(every.slopes - few.slopes).max() <= 1, (func, in_text, segments)


@pytest.mark.parametrize(
    "func,in_text,out_text,target",
    [
        ("sigmoid", "fixed<18,6,RND,SAT>", "ufixed<16,1,RND,SAT>", 4.0),
        ("tanh", "fixed<20,4,RND,SAT>", "fixed<12,1,TRN,SAT>", 2.0),
    ],
)
def test_medium_inputs_smallest_table_from_the_bound_is_valid(func, in_text, out_text, target):
    """The search on the bound picks a table that meets the target on every code, with no
    more segments than twice what the exhaustive search needs."""
    with _exhaustive_up_to(0):
        table = smallest_uniform_table(func, in_text, out_text, max_error_lsb=target)
    with _exhaustive_up_to(1 << 20):
        assert table.error()["max_lsb"] <= target
        exhaustive = smallest_uniform_table(func, in_text, out_text, max_error_lsb=target)
    assert len(table.breakpoints) <= 2 * len(exhaustive.breakpoints)


def test_auto_table_over_a_24bit_input():
    """An auto table over a 24-bit input is chosen from bounds (no 2**24-element arrays), and
    its output matches the exact function within the bound on codes spread over the input."""
    in_fmt = parse_format("fixed<24,8,RND,SAT>")
    for func, out_text in (("sigmoid", "ufixed<16,1,RND,SAT>"), ("tanh", "fixed<16,1,RND,SAT>")):
        table = smallest_uniform_table(func, in_fmt, out_text, max_error_lsb=2.0)
        rep = table.error()
        assert rep["method"] == "bound" and rep["max_lsb"] <= 2.0
        codes = np.concatenate(
            [
                np.linspace(in_fmt.code_min, in_fmt.code_max, 1 << 16).astype(np.int64),
                (table.breakpoints[:, None] + np.arange(-3, 4))
                .ravel()
                .clip(in_fmt.code_min, in_fmt.code_max),
            ]
        )
        err = np.abs(
            table.out_fmt.codes_to_values(table(codes))
            - FUNCTIONS[func](in_fmt.codes_to_values(codes))
        )
        assert err.max() <= rep["max_abs"]
        assert "64 segments" in describe(table) or "segments over" in describe(table)


def test_tables_over_32bit_inputs_build_in_bounded_memory():
    """A 32-bit preact (SPEC allows it) into the gate and cand formats: every builder, the
    error report and describe run under a 2 GiB address-space limit (one element per input
    code would be 32 GiB)."""
    script = textwrap.dedent(
        """
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
        from model.pwl import describe, hard_table, plan_table, smallest_uniform_table
        from model.pwl import uniform_table
        x = "fixed<32,6,RND,SAT>"
        gate, cand = "ufixed<16,1,RND,SAT>", "fixed<16,1,RND,SAT>"
        tables = [
            uniform_table("sigmoid", x, gate, range_log2=4, segments=64),
            uniform_table("tanh", x, cand, range_log2=3, segments=64, fit="lsq"),
            uniform_table("tanh", x, cand, range_log2=3, segments=256, lookup=True),
            smallest_uniform_table("sigmoid", x, gate, max_error_lsb=4.0),
            smallest_uniform_table("tanh", x, cand, max_error_lsb=4.0, fit="interp"),
            plan_table("sigmoid", x, gate),
            hard_table("tanh", x, cand),
        ]
        for t in tables:
            e = t.error()
            print(e["method"], round(e["max_lsb"], 3), describe(t))
        """
    )
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(root), OPENBLAS_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=root, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert len(lines) == 7 and all(line.startswith("bound ") for line in lines), lines
    auto_sigmoid, auto_tanh = (float(line.split()[1]) for line in lines[3:5])
    assert auto_sigmoid <= 4.0 and auto_tanh <= 4.0


# --------------------------------------------------------------------------- messages


def _suggested(msg: str, key: str) -> int:
    return int(re.search(rf"set {key} = (-?\d+)", msg).group(1))


@pytest.mark.parametrize(
    "in_text,range_log2,segments",
    [
        ("fixed<16,6>", -12, 4),
        ("fixed<16,6>", -8, 64),
        ("ufixed<12,4>", -6, 16),
        ("fixed<32,6,RND,SAT>", -30, 64),
    ],
)
def test_grid_errors_name_a_range_log2_that_works(in_text, range_log2, segments):
    with pytest.raises(ValueError, match=r"set range_log2 = -?\d+ or more") as info:
        uniform_table("tanh", in_text, "fixed<16,1>", range_log2=range_log2, segments=segments)
    works = _suggested(str(info.value), "range_log2")
    table = uniform_table("tanh", in_text, "fixed<16,1>", range_log2=works, segments=segments)
    assert len(table.breakpoints) == segments
    with pytest.raises(ValueError, match="range_log2"):  # and it is the least that works
        uniform_table("tanh", in_text, "fixed<16,1>", range_log2=works - 1, segments=segments)
    fewer = re.search(r"at most (\d+) segments", str(info.value))
    if fewer:
        uniform_table("tanh", in_text, "fixed<16,1>", range_log2=range_log2, segments=int(fewer[1]))


@pytest.mark.parametrize(
    "func,in_text,out_text,target,words",
    [
        # a gate format with too few integer bits for sigmoid's range
        ("sigmoid", "fixed<32,6,RND,SAT>", "ufixed<8,-1,RND,SAT>", 4.0, "up to 1"),
        ("sigmoid", "fixed<16,6,RND,SAT>", "ufixed<16,-2,TRN,SAT>", 1.0, "up to 1"),
        # tanh into a format whose max is below 1 - the tolerance
        ("tanh", "fixed<16,6,RND,SAT>", "fixed<16,0,RND,SAT>", 0.5, "up to 1"),
        ("tanh", "fixed<24,6,RND,SAT>", "fixed<12,0,RND,SAT_SYM>", 0.25, "up to 1"),
        # tanh into an unsigned format
        ("tanh", "fixed<16,6,RND,SAT>", "ufixed<16,1,RND,SAT>", 4.0, "down to -1"),
    ],
)
def test_auto_refuses_an_output_format_that_cannot_hold_the_function(
    func, in_text, out_text, target, words
):
    with pytest.raises(ValueError, match="the output format cannot hold the function") as info:
        smallest_uniform_table(func, in_text, out_text, max_error_lsb=target)
    msg = str(info.value)
    assert words in msg and out_text in msg and "max_error_lsb" in msg
    suggested = re.search(r"e\.g\. (u?fixed<[^>]+>)", msg)[1]
    pwl._check_output_holds(func, parse_format(in_text), parse_format(suggested), target)


def test_auto_unreachable_names_the_keys():
    with pytest.raises(ValueError, match="no uniform tanh table of up to 4 segments") as info:
        smallest_uniform_table(
            "tanh", "fixed<10,4,RND,SAT>", "fixed<16,1,RND,SAT>", max_error_lsb=1, max_segments=4
        )
    msg = str(info.value)
    for key in ("segments = 4", "range_log2 = ", "max_error_lsb = ", "max_segments"):
        assert key in msg
    reachable = float(re.search(r"max_error_lsb = ([\d.]+)", msg)[1])
    smallest_uniform_table(
        "tanh",
        "fixed<10,4,RND,SAT>",
        "fixed<16,1,RND,SAT>",
        max_error_lsb=reachable,
        max_segments=4,
    )
