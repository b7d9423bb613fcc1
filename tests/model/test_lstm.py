"""model/lstm.py: lstm_fixed bit for bit against the naive SPEC §2-§3 model; lstm_float.

``naive_lstm`` (this directory) recomputes every quantization point in Fractions, one element
at a time, from the model's integer codes only. The random configurations below reach every
Q and O mode at every quantization point, overflowing narrow formats, saturating inputs,
peepholes, both outputs, lookup/uniform/non-uniform/random tables, and each of the model's
dot-product paths (float32, float64, int64); ``test_the_random_configs_reach_*`` checks that
they do, so a change to the generator cannot quietly shrink what is tested.
"""

from __future__ import annotations

import dataclasses

import naive_lstm
import numpy as np
import pytest
from random_parts import TYPICAL_INT_BITS, random_codes, random_format, random_table

import model.lstm as lstm_module
from model.formats import O_MODES, Q_MODES, Format, parse_format, quantize
from model.intgemm import pmadd_lanes
from model.lstm import (
    TRACE,
    FloatLSTM,
    _gemm_kind,
    _lut,
    _Plan,
    _round_block,
    _rounding,
    lstm_fixed,
    lstm_float,
)
from model.pwl import PwlTable, uniform_table
from model.qmodel import ACTIVATIONS, DEFAULT_FORMATS, POINTS, LstmLayer


def random_model(rng, *, i_size, h_size, peephole, widths=(3, 12), formats=None) -> LstmLayer:
    """A random valid model; formats not given are drawn until the 62-bit check passes."""
    for _ in range(100):
        f = {name: random_format(rng, name, widths=widths) for name in TYPICAL_INT_BITS}
        f.update(formats or {})
        try:
            tables = {
                act: random_table(rng, func, f[src], f[dst])
                for act, (src, dst, func) in ACTIVATIONS.items()
            }
            return LstmLayer(
                i_size,
                h_size,
                f,
                random_codes(rng, f["w"], (4 * h_size, i_size)),
                random_codes(rng, f["r"], (4 * h_size, h_size)),
                random_codes(rng, f["b"], 4 * h_size),
                tables,
                p=random_codes(rng, f["p"], 3 * h_size) if peephole else None,
            )
        except ValueError:
            continue
    raise AssertionError("no valid random model in 100 draws")


def random_inputs(rng, qm: LstmLayer, n: int, t_len: int) -> np.ndarray:
    fmt = qm.formats["x"]
    x = random_codes(rng, fmt, (n, t_len, qm.input_size))
    if rng.random() < 0.3:  # saturating inputs: the extreme codes
        pick = rng.random(x.shape) < 0.5
        x[pick] = rng.choice([fmt.code_min, fmt.code_max], size=int(pick.sum()))
    return x


def assert_matches_naive(qm: LstmLayer, x: np.ndarray, *, last: bool = False):
    """lstm_fixed (with and without trace) equals the naive model exactly; returns the latter."""
    want = naive_lstm.run(qm, x, last=last)
    got = lstm_fixed(qm, x, last=last, trace=True)
    np.testing.assert_array_equal(got.codes, np.array(want.h_codes, dtype=np.int64))
    assert got.overflow == want.overflow
    assert set(got.trace) == set(TRACE) == set(naive_lstm.TRACE_NAMES)
    for name in TRACE:
        np.testing.assert_array_equal(got.trace[name], np.array(want.trace[name]), err_msg=name)
    plain = lstm_fixed(qm, x, last=last)
    assert plain.trace is None
    np.testing.assert_array_equal(plain.codes, got.codes)
    assert plain.overflow == got.overflow
    return want


def config(seed: int):
    """Random configuration number ``seed``: a model and inputs small enough for the naive run."""
    rng = np.random.default_rng(seed)
    i_size = int(rng.choice([1, 2, 3, 5]))
    h_size = int(rng.choice([1, 2, 3, 4]))
    widths = [(3, 8), (4, 12), (8, 16), (12, 20)][seed % 4]
    qm = random_model(
        rng,
        i_size=i_size,
        h_size=h_size,
        peephole=bool(seed % 2),
        widths=widths,
    )
    x = random_inputs(rng, qm, int(rng.integers(1, 4)), int(rng.integers(1, 10)))
    return qm, x, seed % 5 == 0  # every fifth gives only h_T


SEEDS = range(60)


@pytest.mark.parametrize("seed", SEEDS)
def test_random_config_matches_naive(seed):
    qm, x, last = config(seed)
    assert_matches_naive(qm, x, last=last)


def test_the_random_configs_reach_every_mode_and_path():
    """What the seeds above cover: a shrinking generator fails here, not silently."""
    quantizing = ("preact", "gate", "cand", "cell", "tanh_cell", "h")
    seen_q = {(name, q) for name in quantizing for q in Q_MODES}
    seen_o = {(name, o) for name in quantizing for o in O_MODES}
    overflowed = {(name, o): 0 for name in POINTS for o in ("WRAP", "SAT")}
    kinds, tables, flags = set(), set(), set()
    for seed in SEEDS:
        qm, x, last = config(seed)
        for name in quantizing:
            fmt = qm.formats[name]
            seen_q.discard((name, fmt.q))
            seen_o.discard((name, fmt.o))
        kinds.add(_gemm_kind(qm))
        tables.update(t.info.get("kind") for t in qm.tables.values())
        flags.update({("peephole", qm.peephole), ("last", last)})
        for point, count in lstm_fixed(qm, x, last=last).overflow.items():
            o = qm.formats[point].o  # each point is named after its format
            if count and o in ("WRAP", "SAT"):
                overflowed[(point, o)] += 1
    assert not seen_q, sorted(seen_q)
    assert not seen_o, sorted(seen_o)
    assert {"float32", "float64"} <= kinds, kinds
    assert {"uniform", "lut", "random", "plan", "hard"} <= tables, tables
    assert len(flags) == 4
    # narrow formats overflow under both WRAP and SAT at most points
    assert sum(1 for v in overflowed.values() if v) >= 8, overflowed


@pytest.mark.parametrize("seed", SEEDS)
def test_random_config_matches_naive_on_the_float_paths(monkeypatch, seed):
    """The random configurations again with the int16 GEMM off: every config that took it
    above now takes a float (or int64) path, which must stay exact too."""
    monkeypatch.setattr(lstm_module, "PAIRS", False)
    qm, x, last = config(seed)
    assert _Plan(qm).kind == _gemm_kind(qm)
    assert_matches_naive(qm, x, last=last)


@pytest.mark.skipif(not pmadd_lanes(), reason="no pmaddwd on this CPU: the int16 GEMM is off")
def test_the_random_configs_reach_the_int16_gemm():
    """Most small random configs take the int16 GEMM (so test_random_config_matches_naive
    checks it), and some do not (so it checks the fallback too)."""
    kinds = [_Plan(config(seed)[0]).kind for seed in SEEDS]
    assert 10 <= kinds.count("int16") <= len(kinds) - 10, kinds


@pytest.mark.skipif(not pmadd_lanes(), reason="no pmaddwd on this CPU: the int16 GEMM is off")
def test_int16_gemm_at_the_edge_of_its_bound():
    """Typical 16-bit formats with weights at the largest magnitude the int32 bound allows
    and inputs at the format's extremes: the int16 GEMM, still exact; one code more in the
    weights and the plan falls back to float64."""
    rng = np.random.default_rng(17)
    typical = {k: parse_format(v) for k, v in DEFAULT_FORMATS.items()}
    h_size, i_size = 8, 6
    qm = random_model(rng, i_size=i_size, h_size=h_size, peephole=False, formats=typical)
    plan = _Plan(qm)
    assert plan.kind == "int16"
    # scale W so the first column's bound sits just below 2**31
    x_fmt = typical["x"]
    a_max = max(-x_fmt.code_min, x_fmt.code_max)
    rest = 2**31 - 1 - (_pair_bound(qm) - int(np.abs(qm.w[0]).sum()) * a_max)
    w = qm.w.copy()
    w[0] = np.sign(w[0] + 0.5).astype(np.int64) * (rest // (a_max * i_size))
    assert np.abs(w[0]).max() < 2**15
    edge = dataclasses.replace(qm, w=w)
    assert _pair_bound(edge) < 2**31 and _Plan(edge).kind == "int16"
    x = random_inputs(rng, edge, 3, 12)
    up = w[0] > 0  # the first column's sums at their largest, then at their lowest
    x[:, ::2] = np.where(up, x_fmt.code_max, x_fmt.code_min)
    x[:, 1::2] = np.where(up, x_fmt.code_min, x_fmt.code_max)
    assert_matches_naive(edge, x)
    over = w.copy()
    over[0] += np.sign(w[0]) * (2**31 - _pair_bound(edge) + a_max) // a_max
    over = dataclasses.replace(qm, w=over)
    assert _pair_bound(over) >= 2**31 and _Plan(over).kind == "float64"
    assert_matches_naive(over, x)


@pytest.mark.skipif(not pmadd_lanes(), reason="no pmaddwd on this CPU: the int16 GEMM is off")
def test_int16_gemm_by_the_input_at_hand():
    """Weights too large for the x format's worst case, inputs small enough (a layer above
    another sees |h| <= 1): the int16 GEMM by the input's own bound, exact; inputs at the
    format's extremes take float64, exact too; an input outside the format still raises."""
    rng = np.random.default_rng(18)
    typical = {k: parse_format(v) for k, v in DEFAULT_FORMATS.items()}
    qm = random_model(rng, i_size=40, h_size=4, peephole=True, formats=typical)
    w = np.where(qm.w >= 0, 2000, -2000)  # 40 * 2000 * 2**15 > 2**31 > 40 * 2000 * 2**10
    qm = dataclasses.replace(qm, w=w)
    assert _Plan(qm).kind == "float64"
    x = rng.integers(-(2**10), 2**10 + 1, (3, 9, 40))
    assert lstm_module._plan_for(qm, x).kind == "int16"
    assert_matches_naive(qm, x)
    x[0, 0] = typical["x"].code_min
    assert lstm_module._plan_for(qm, x).kind == "float64"
    assert_matches_naive(qm, x)
    x[0, 0, 0] = typical["x"].code_max + 1
    with pytest.raises(ValueError, match="outside"):
        lstm_fixed(qm, x)


def _pair_bound(qm: LstmLayer) -> int:
    """The int16 GEMM's bound on the first output column (w*x, r*h share one fraction here)."""
    h_max = lstm_module._h_max(qm)
    x = qm.formats["x"]
    b = int(qm.b[0]) << (qm.formats["w"].frac + x.frac - qm.formats["b"].frac)
    b_hi, b_lo = b >> 14, b & (2**14 - 1)
    return (
        int(np.abs(qm.w[0]).sum()) * max(-x.code_min, x.code_max)
        + abs(b_hi) * 2**14
        + b_lo
        + int(np.abs(qm.r[0]).sum()) * h_max
    )


def test_int64_path_matches_naive():
    """Dot products wider than 53 bits cannot go through float64 BLAS exactly."""
    rng = np.random.default_rng(7)
    wide = {
        "x": Format(True, 28, 8, "RND", "SAT"),
        "w": Format(True, 28, 4, "TRN", "WRAP"),
        "r": Format(True, 12, 2, "RND_CONV", "SAT"),
        "h": Format(True, 12, 3, "RND", "SAT_SYM"),
        "b": Format(True, 20, 6, "RND", "SAT"),
        "preact": Format(True, 20, 6, "RND_INF", "SAT"),
    }
    qm = random_model(rng, i_size=3, h_size=2, peephole=True, widths=(6, 14), formats=wide)
    assert _gemm_kind(qm) == "int64"
    x = random_inputs(rng, qm, 2, 6)
    x[0, 0] = qm.formats["x"].code_max  # the worst case for the sums
    assert_matches_naive(qm, x)


def test_float32_and_float64_paths_are_chosen_by_width():
    rng = np.random.default_rng(8)
    narrow = {k: Format(True, 6, 2, "RND", "SAT") for k in ("x", "w", "r", "h", "b", "p")}
    assert _gemm_kind(random_model(rng, i_size=4, h_size=4, peephole=False, formats=narrow)) == (
        "float32"
    )
    typical = {k: Format(True, 16, 3, "RND", "SAT") for k in ("x", "w", "r", "h", "b", "p")}
    assert _gemm_kind(random_model(rng, i_size=4, h_size=4, peephole=False, formats=typical)) == (
        "float64"
    )


@pytest.mark.parametrize(
    ("i_size", "h_size", "t_len", "peephole"),
    [(1, 1, 300, True), (1, 2, 150, False), (2, 1, 200, True)],
)
def test_long_sequences_match_naive(i_size, h_size, t_len, peephole):
    rng = np.random.default_rng(100 * i_size + t_len)
    formats = {
        "x": Format(True, 8, 3, "RND", "SAT"),
        "cell": Format(True, 10, 4, "RND_CONV", "SAT"),
        "h": Format(True, 8, 2, "RND", "WRAP"),
        "preact": Format(True, 10, 4, "TRN", "SAT"),
    }
    qm = random_model(
        rng, i_size=i_size, h_size=h_size, peephole=peephole, widths=(6, 12), formats=formats
    )
    x = random_inputs(rng, qm, 2, t_len)
    assert_matches_naive(qm, x)


def test_a_wider_batch_matches_naive():
    """More sequences and rows than the parallel kernel has threads, typical formats."""
    rng = np.random.default_rng(11)
    typical = {
        "x": Format(True, 16, 6, "RND", "SAT"),
        "w": Format(True, 16, 3, "RND", "SAT"),
        "r": Format(True, 16, 3, "RND", "SAT"),
        "b": Format(True, 16, 6, "RND", "SAT"),
        "p": Format(True, 16, 3, "RND", "SAT"),
        "preact": Format(True, 16, 6, "RND", "SAT"),
        "gate": Format(False, 16, 1, "RND", "SAT"),
        "cand": Format(True, 16, 1, "RND", "SAT"),
        "cell": Format(True, 16, 6, "RND", "SAT"),
        "tanh_cell": Format(True, 16, 1, "RND", "SAT"),
        "h": Format(True, 16, 6, "RND", "SAT"),
    }
    qm = random_model(rng, i_size=6, h_size=12, peephole=True, formats=typical)
    x = random_inputs(rng, qm, 9, 5)
    assert_matches_naive(qm, x)


def test_output_last_is_the_last_step_of_sequence():
    rng = np.random.default_rng(12)
    qm = random_model(rng, i_size=3, h_size=4, peephole=True)
    x = random_inputs(rng, qm, 5, 7)
    seq = lstm_fixed(qm, x)
    last = lstm_fixed(qm, x, last=True)
    assert seq.codes.shape == (5, 7, 4) and last.codes.shape == (5, 4)
    np.testing.assert_array_equal(last.codes, seq.codes[:, -1])
    assert last.overflow == seq.overflow


def test_sequences_are_independent_of_their_batch():
    """Each sequence starts from h = c = 0 and never sees its neighbours."""
    rng = np.random.default_rng(13)
    qm = random_model(rng, i_size=2, h_size=3, peephole=True, widths=(8, 16))
    x = random_inputs(rng, qm, 20, 8)  # several tasks, on more than one thread
    batch = lstm_fixed(qm, x, trace=True)
    for s in range(x.shape[0]):
        alone = lstm_fixed(qm, x[s : s + 1], trace=True)
        np.testing.assert_array_equal(alone.codes[0], batch.codes[s])
        for name in TRACE:
            np.testing.assert_array_equal(alone.trace[name][0], batch.trace[name][s])
    # and the answer does depend on the input: the comparison above is not vacuous
    assert len({batch.codes[s].tobytes() for s in range(x.shape[0])}) > 1


def test_chunking_does_not_change_the_result(monkeypatch):
    """GEMMs of a few rows (a wide model), chunks and tasks of any size: the same codes."""
    rng = np.random.default_rng(15)
    qm = random_model(rng, i_size=100, h_size=64, peephole=True, widths=(8, 16))
    x = random_inputs(rng, qm, 13, 3)
    want = lstm_fixed(qm, x, trace=True)
    for chunk, tasks in [(1, 1), (3, 2), (5, 16), (13, 1)]:
        monkeypatch.setattr(lstm_module, "CHUNK", chunk)
        monkeypatch.setattr(lstm_module, "TASKS_PER_THREAD", tasks)
        got = lstm_fixed(qm, x, trace=True)
        np.testing.assert_array_equal(got.codes, want.codes)
        assert got.overflow == want.overflow
        for name in TRACE:
            np.testing.assert_array_equal(got.trace[name], want.trace[name])


@pytest.mark.parametrize("seed", range(0, 60, 7))
def test_two_gemms_per_step_match_naive(monkeypatch, seed):
    """Where one GEMM of 8 rows on [x_t | 1 | h_{t-1}] is too big for GEMM_MAX_MACS the step
    runs two, W x_t + b and R h_{t-1}, and adds them: the same codes. (The float paths: the
    int16 one, where it applies, is always one GEMM.)"""
    monkeypatch.setattr(lstm_module, "PAIRS", False)
    monkeypatch.setattr(lstm_module, "GEMM_MAX_MACS", 1)
    qm, x, last = config(seed)
    assert not _Plan(qm).joint
    assert_matches_naive(qm, x, last=last)


def test_one_gemm_per_step_is_the_default_for_small_layers(monkeypatch):
    monkeypatch.setattr(lstm_module, "PAIRS", False)  # the float paths
    rng = np.random.default_rng(16)
    assert _Plan(random_model(rng, i_size=32, h_size=64, peephole=False)).joint
    assert not _Plan(random_model(rng, i_size=100, h_size=64, peephole=False)).joint


def test_overflow_is_counted_per_point():
    """A narrow WRAP h and SAT cell under saturating inputs: counts equal the naive model's."""
    rng = np.random.default_rng(14)
    formats = {
        "x": Format(True, 8, 6, "RND", "SAT"),
        "w": Format(True, 8, 4, "RND", "SAT"),
        "preact": Format(True, 6, 3, "RND", "WRAP"),
        "cell": Format(True, 5, 1, "RND", "SAT"),
        "h": Format(True, 2, -2, "RND", "WRAP"),
    }
    qm = random_model(rng, i_size=2, h_size=2, peephole=False, formats=formats)
    x = random_inputs(rng, qm, 2, 6)
    x[:, ::2] = qm.formats["x"].code_max
    want = assert_matches_naive(qm, x)
    assert want.overflow["preact"] > 0 and want.overflow["cell"] > 0 and want.overflow["h"] > 0


# --------------------------------------------------------------------------- kernel parts


def rounding_cases(rng, shift: int, fmt: Format) -> np.ndarray:
    """Exact sums that stress a right shift by ``shift``: ties, off-by-one around ties and
    around the format's range, zero, and random values of every size below 2**62."""
    vals = [0, 1, -1, (1 << 62) - 1, -(1 << 62) + 1]
    s = max(shift, 0)
    half = 1 << (s - 1) if s else 0
    for code in (
        fmt.code_min,
        fmt.code_max,
        0,
        1,
        -1,
        2,
        -2,
        3,
        fmt.code_min - 1,
        fmt.code_max + 1,
    ):
        for rem in {0, 1, half - 1, half, half + 1, (1 << s) - 1} if s else {0}:
            v = (code << s) + rem
            if abs(v) < (1 << 62):
                vals.append(v)
    for bits in range(0, 62, 3):
        vals.extend(int(v) for v in rng.integers(-(1 << bits), 1 << bits, size=4))
    return np.array(vals, dtype=np.int64)


@pytest.mark.parametrize("q", Q_MODES)
def test_block_rounding_is_formats_quantize(q):
    """The kernel's branch-free rounding equals SPEC §1's one quantize routine, code for code
    and overflow for overflow, in every O mode and for shifts on both sides of its range."""
    rng = np.random.default_rng(Q_MODES.index(q))
    checked = 0
    for o in O_MODES:
        for signed in (True, False):
            for width in (1, 2, 5, 16, 31, 32):
                for shift in (-5, -1, 0, 1, 2, 9, 31, 61, 62, 63, 70):
                    fmt = Format(signed, width, int(rng.integers(-3, width + 3)), q, o)
                    src_frac = fmt.frac + shift
                    vals = rounding_cases(rng, shift, fmt)
                    want = [quantize(int(v), src_frac, *fmt.args()) for v in vals]
                    got = np.empty((1, vals.shape[0]), dtype=np.int64)
                    n_over = _round_block(
                        vals[None], 0, got, 0, vals.shape[0], _rounding(src_frac, fmt)
                    )
                    assert got[0].tolist() == [c for c, _ in want], (fmt, shift)
                    assert n_over == sum(over for _, over in want), (fmt, shift)
                    checked += vals.shape[0]
    assert checked > 50_000


def test_rounding_takes_the_fast_path_for_ordinary_shifts():
    fmt = Format(True, 16, 6, "RND", "SAT")
    assert [int(_rounding(fmt.frac + s, fmt)[0]) for s in (-1, 0, 1, 62, 63)] == [0, 1, 1, 1, 0]


def test_luts_cover_narrow_inputs_and_clamp_wide_ones():
    """Three ways to evaluate a table: a LUT over the whole input format, a LUT over
    [b_0, x_hi] with a clamp, and no LUT; each is exercised below against the naive model."""
    narrow = uniform_table(
        "tanh", "fixed<12,4,RND,SAT>", "fixed<16,1,RND,SAT>", range_log2=2, segments=8
    )
    lut, lo, clamp_hi = _lut(narrow)
    assert lut.shape[0] == 1 << 12 and lo == -(1 << 11) and clamp_hi == lo + lut.shape[0]
    wide = uniform_table(
        "tanh", "fixed<24,8,RND,SAT>", "fixed<16,1,RND,SAT>", range_log2=-4, segments=4
    )
    lut, lo, clamp_hi = _lut(wide)
    assert lo == wide.breakpoints[0] and clamp_hi == wide.x_hi and lut.shape[0] < 1 << 16
    too_wide = uniform_table(
        "tanh", "fixed<24,8,RND,SAT>", "fixed<16,1,RND,SAT>", range_log2=3, segments=4
    )
    assert _lut(too_wide)[0].shape[0] == 0
    wide_out = uniform_table(
        "tanh", "fixed<12,4,RND,SAT>", "fixed<31,1,RND,SAT>", range_log2=2, segments=8
    )
    assert _lut(wide_out)[0].shape[0] == 0


@pytest.mark.parametrize(
    ("preact", "gate", "cell", "span", "sizes"),
    [
        ("fixed<24,8,RND,SAT>", "ufixed<31,1,RND,SAT>", "fixed<20,6,RND_CONV,WRAP>", 2, (0, 0, 0)),
        ("fixed<20,4,TRN,SAT_SYM>", "ufixed<16,1,RND,SAT>", "fixed<12,4,RND,SAT>", -1, (1, 1, 2)),
    ],
)
def test_tables_without_a_whole_format_lut_match_naive(preact, gate, cell, span, sizes):
    """Wide inputs (clamped LUTs or none) and outputs too wide for a LUT."""
    rng = np.random.default_rng(40)
    fm = {"preact": parse_format(preact), "gate": parse_format(gate), "cell": parse_format(cell)}
    tables = {
        "sigmoid": uniform_table("sigmoid", fm["preact"], fm["gate"], range_log2=span, segments=8),
        "tanh": uniform_table(
            "tanh", fm["preact"], "fixed<16,1,RND,SAT>", range_log2=span, segments=8
        ),
        "tanh_cell": uniform_table(
            "tanh", fm["cell"], "fixed<16,1,RND,SAT>", range_log2=span, segments=8
        ),
    }
    typical = {
        "x": Format(True, 12, 4, "RND", "SAT"),
        "w": Format(True, 12, 2, "RND", "SAT"),
        "r": Format(True, 12, 2, "RND", "SAT"),
        "b": Format(True, 12, 4, "RND", "SAT"),
        "p": Format(True, 12, 2, "RND", "SAT"),
        "cand": Format(True, 16, 1, "RND", "SAT"),
        "tanh_cell": Format(True, 16, 1, "RND", "SAT"),
        "h": Format(True, 12, 4, "RND", "SAT"),
    }
    formats = dict(typical, **fm)
    h_size, i_size = 3, 2
    qm = LstmLayer(
        i_size,
        h_size,
        formats,
        random_codes(rng, formats["w"], (4 * h_size, i_size), spread=0.5),
        random_codes(rng, formats["r"], (4 * h_size, h_size), spread=0.5),
        random_codes(rng, formats["b"], 4 * h_size, spread=0.2),
        tables,
        p=random_codes(rng, formats["p"], 3 * h_size, spread=0.5),
    )
    plan = _Plan(qm)
    # 0: no LUT, 1: a clamped LUT over [b_0, x_hi], 2: a LUT over the whole input format
    kinds = [
        0 if lut.shape[0] == 0 else 1 if hi != lo + lut.shape[0] else 2
        for lut, lo, hi in zip(plan.luts, plan.lut_lo, plan.lut_hi)
    ]
    assert tuple(kinds) == sizes
    assert_matches_naive(qm, random_inputs(rng, qm, 3, 8))


# --------------------------------------------------------------------------- the naive model


@pytest.mark.parametrize(
    ("q", "codes"),
    [
        # values -2.5, -1.5, -0.5, 0.5, 1.5, 2.5 and -1.25, 1.75 into fixed<8,8,Q,SAT>
        ("TRN", [-3, -2, -1, 0, 1, 2, -2, 1]),
        ("TRN_ZERO", [-2, -1, 0, 0, 1, 2, -1, 1]),
        ("RND", [-2, -1, 0, 1, 2, 3, -1, 2]),
        ("RND_ZERO", [-2, -1, 0, 0, 1, 2, -1, 2]),
        ("RND_MIN_INF", [-3, -2, -1, 0, 1, 2, -1, 2]),
        ("RND_INF", [-3, -2, -1, 1, 2, 3, -1, 2]),
        ("RND_CONV", [-2, -2, 0, 0, 2, 2, -1, 2]),
    ],
)
def test_naive_quantization_follows_the_q_table(q, codes):
    from fractions import Fraction

    fmt = naive_lstm.Fmt(True, 8, 8, q, "SAT")
    values = [Fraction(v) for v in ("-5/2", "-3/2", "-1/2", "1/2", "3/2", "5/2", "-5/4", "7/4")]
    assert [naive_lstm.to_code(v, fmt)[0] for v in values] == codes


def test_naive_quantization_follows_the_o_table_and_spec_examples():
    from fractions import Fraction

    half = Fraction(-1, 2)
    assert naive_lstm.to_code(half, naive_lstm.Fmt(False, 4, 4, "TRN_ZERO", "WRAP")) == (0, False)
    assert naive_lstm.to_code(half, naive_lstm.Fmt(False, 4, 4, "TRN", "WRAP")) == (15, True)
    big = Fraction(9)  # fixed<4,4>: codes -8..7
    for o, want in [("WRAP", -7), ("SAT", 7), ("SAT_ZERO", 0), ("SAT_SYM", 7)]:
        assert naive_lstm.to_code(big, naive_lstm.Fmt(True, 4, 4, "TRN", o)) == (want, True)
    assert naive_lstm.to_code(Fraction(-8), naive_lstm.Fmt(True, 4, 4, "TRN", "SAT_SYM")) == (
        -7,
        True,
    )
    assert naive_lstm.to_code(Fraction(-8), naive_lstm.Fmt(True, 4, 4, "TRN", "SAT")) == (-8, False)
    # a rounding carry overflows: 7.5 rounds to 8, out of fixed<4,4>
    assert naive_lstm.to_code(Fraction(15, 2), naive_lstm.Fmt(True, 4, 4, "RND", "SAT")) == (
        7,
        True,
    )


def test_naive_step_by_hand():
    """One step of a 1x1 cell, worked out on paper, so the naive model is not only self-made.

    Lookup tables with one segment make σ and tanh constants: i = f = o = 0.5, g = 0.75,
    tanh(c) = 0.25. Then c_1 = 0.5·0 + 0.5·0.75 = 0.375 and h_1 = 0.5·0.25 = 0.125;
    c_2 = 0.5·0.375 + 0.375 = 0.5625, in cell fixed<8,4> (LSB 1/16): 9 codes,
    exactly; h_2 = 0.125 again. preact = w·x + b with w = 1, b = 0.25 (plus r·h).
    """
    f8 = Format(True, 8, 4, "TRN", "WRAP")
    fm = {name: f8 for name in TYPICAL_INT_BITS}

    def const(out, v):
        return PwlTable(f8, out, f8, f8, [-128], 127, [int(v * 16)], [0])

    tables = {"sigmoid": const(f8, 0.5), "tanh": const(f8, 0.75), "tanh_cell": const(f8, 0.25)}
    w = np.full((4, 1), 16)
    r = np.full((4, 1), 8)  # 0.5
    b = np.full(4, 4)  # 0.25
    qm = LstmLayer(1, 1, fm, w, r, b, tables)
    x = np.array([[[16], [-16]]])  # x = 1, then -1
    res = naive_lstm.run(qm, x)
    assert res.trace["c"][0] == [[6], [9]]
    assert res.trace["h"][0] == [[2], [2]]
    # preact, step 1: 1·1 + 0.5·0 + 0.25 = 1.25 (20); step 2: -1 + 0.5·0.125 + 0.25 = -0.6875
    # (-11 exactly: -0.6875·16)
    assert res.trace["preact"][0] == [[20] * 4, [-11] * 4]
    assert_matches_naive(qm, x)


# --------------------------------------------------------------------------- lstm_float


def numpy_lstm(w, r, b, p, x):
    """SPEC §2 in float64, written out gate by gate."""
    n, t_len, _ = x.shape
    h_size = r.shape[1]

    def sig(v):
        return 1.0 / (1.0 + np.exp(-v))

    wi, wf, wg, wo = np.split(w, 4)
    ri, rf, rg, ro = np.split(r, 4)
    bi, bf, bg, bo = np.split(b, 4)
    pi, pf, po = np.split(p, 3) if p is not None else (0.0, 0.0, 0.0)
    h = np.zeros((n, h_size))
    c = np.zeros((n, h_size))
    out = np.zeros((n, t_len, h_size))
    for t in range(t_len):
        xt = x[:, t]
        i = sig(xt @ wi.T + h @ ri.T + bi + pi * c)
        f = sig(xt @ wf.T + h @ rf.T + bf + pf * c)
        g = np.tanh(xt @ wg.T + h @ rg.T + bg)
        c = f * c + i * g
        o = sig(xt @ wo.T + h @ ro.T + bo + po * c)
        h = o * np.tanh(c)
        out[:, t] = h
    return out


@pytest.mark.parametrize("peephole", [False, True])
def test_lstm_float_matches_numpy(peephole):
    rng = np.random.default_rng(20 + peephole)
    i_size, h_size = 3, 5
    w = rng.normal(size=(4 * h_size, i_size))
    r = rng.normal(size=(4 * h_size, h_size)) * 0.5
    b = rng.normal(size=4 * h_size) * 0.3
    p = rng.normal(size=3 * h_size) if peephole else None
    x = rng.normal(size=(4, 9, i_size))
    model = FloatLSTM(w, r, b, p)
    want = numpy_lstm(w, r, b, p, x)
    got, tr = lstm_float(model, x, trace=True)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    np.testing.assert_allclose(lstm_float(model, x, output="last"), want[:, -1], rtol=0, atol=1e-12)
    np.testing.assert_allclose(tr["h"], want, rtol=0, atol=1e-12)
    assert set(tr) == set(TRACE)
    assert tr["preact"].shape == (4, 9, 4 * h_size)
    if peephole:  # the peepholes matter at this tolerance
        plain = numpy_lstm(w, r, b, None, x)
        assert np.abs(plain - want).max() > 1e-3


def test_lstm_float_with_tables_as_functions():
    """Replacing σ/tanh with other functions reaches every gate: hard σ changes the output."""
    rng = np.random.default_rng(22)
    model = FloatLSTM(rng.normal(size=(8, 2)), rng.normal(size=(8, 2)), rng.normal(size=8))
    x = rng.normal(size=(2, 6, 2))
    exact = lstm_float(model, x)
    hard = lstm_float(model, x, sigmoid=lambda v: np.clip(0.2 * v + 0.5, 0, 1))
    assert np.abs(exact - hard).max() > 1e-3
    same = lstm_float(model, x, tanh_cell=np.tanh)
    np.testing.assert_array_equal(same, exact)


# --------------------------------------------------------------------------- errors


@pytest.fixture(scope="module")
def small_model():
    return random_model(np.random.default_rng(30), i_size=3, h_size=2, peephole=False)


@pytest.mark.parametrize(
    ("shape", "words"),
    [((5, 3), "[N, T, I=3]"), ((2, 5, 4), "[N, T, I=3]"), ((2, 0, 3), "at least one")],
)
def test_bad_input_shapes_are_named(small_model, shape, words):
    with pytest.raises(ValueError, match=r"\[2, 5, 4\]|\[5, 3\]|at least one") as err:
        lstm_fixed(small_model, np.zeros(shape, dtype=np.int64))
    assert words in str(err.value)
    if len(shape) == 3 and shape[1]:
        with pytest.raises(ValueError, match="I=3"):
            lstm_float(FloatLSTM(np.zeros((8, 3)), np.zeros((8, 2)), np.zeros(8)), np.zeros(shape))


def test_out_of_range_and_float_codes_are_refused(small_model):
    fmt = small_model.formats["x"]
    x = np.zeros((2, 4, 3), dtype=np.int64)
    x[1, 2, 0] = fmt.code_max + 1
    with pytest.raises(ValueError, match=rf"{fmt.code_max + 1} at index \(1, 2, 0\)"):
        lstm_fixed(small_model, x)
    with pytest.raises(ValueError, match="integer codes"):
        lstm_fixed(small_model, np.zeros((2, 4, 3)))


def test_accumulator_over_62_bits_names_the_formats():
    rng = np.random.default_rng(31)
    wide = {"x": Format(True, 32, 8, "RND", "SAT"), "w": Format(True, 32, 2, "RND", "SAT")}
    qm = random_model(rng, i_size=2, h_size=1, peephole=False)
    f = dict(qm.formats, **wide)
    with pytest.raises(ValueError, match=r"preact sum needs \d+ bits.*w, x") as err:
        LstmLayer(2, 1, f, qm.w, qm.r, qm.b, qm.tables)
    assert "62" in str(err.value)
