"""The LSTM of SPEC §2: a float64 reference and the bit-accurate fixed-point model.

Both run a batch of sequences ``[N, T, I]`` from ``h_0 = c_0 = 0``. The fixed-point model
runs tasks of whole sequences on Python threads, each through one Numba kernel that
releases the GIL. Per step, ``W x_t + R h_{t-1} + b`` is one exact GEMM on
``[x_t | 1 | h_{t-1}]`` (two, on ``[x_t | 1]`` and ``h_{t-1}``, for wide layers), in the
first of these that is exact for the layer:

- int16 operands with int32 sums (:mod:`model.intgemm`, x86's ``pmaddwd``), where codes fit
  16 bits and the layer's own weights bound every sum below 2**31 (:func:`_pair_weights`;
  ``h`` is bounded by its tables, |o * tanh(c)| <= 1 for the usual ones);
- BLAS in float32 or float64 when the formats' worst case fits in 24 or 53 bits (every
  partial sum is then an exact integer);
- int64 loops.

The rest of the step goes one quantization point at a time over a chunk of sequences:
rounding without data-dependent branches (equal to :func:`model.formats.quantize`, which
it falls back to for unusual shifts) and the PWL tables from LUTs built by
:func:`model.pwl.evaluate`.

Where the time goes (:func:`profile_fixed`, ``bench/model_throughput.py --profile``): for
the bench's layer (I=32, H=64, typical 16-bit formats), one thread of an AVX-512 Xeon, the
float64 GEMMs took 16 ms (at the core's float64 FMA peak) and the rest of the step 12; the
int16 GEMM takes 5 ms (8 with AVX2's width), which leaves the rest of the step, 10 ms, the
larger part (about 40% of it in the scalar LUT loads: vector gathers are slower than loads
on current x86). float32 cannot take the GEMM exactly, whole or split: a sum of 16-bit
by 16-bit codes needs 37 bits, and splitting an operand so each partial sum fits 24 bits
takes twice the float32 GEMMs, no fewer operations than one float64 GEMM.
"""

from __future__ import annotations

import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import ClassVar

import numba
import numpy as np
from numba import njit, types
from numba.extending import overload

from model.formats import quantize
from model.intgemm import TILES, fits_int32, pack_pairs, pmadd_lanes, pmadd_tile
from model.pwl import FUNCTIONS, evaluate
from model.qmodel import POINTS, LstmLayer, SumTerm, exact_sum

try:  # numba's np.dot calls BLAS through SciPy; without it the GEMM runs in int64 loops
    import scipy.linalg.cython_blas  # noqa: F401

    _HAVE_BLAS = True
except ImportError:  # pragma: no cover
    _HAVE_BLAS = False

#: the widest signed integer sum each float dtype holds exactly (every partial sum included)
FLOAT_EXACT_BITS = {"float32": 24, "float64": 53}
#: tables whose clamped input range [b_0, x_hi] has at most this many codes are evaluated
#: once into a LUT
LUT_MAX_ENTRIES = 1 << 16
#: sequences that go through a step together: few enough that their arrays stay in the
#: core's caches
CHUNK = 8
#: tasks per thread: a batch splits into more tasks than threads to balance the load
TASKS_PER_THREAD = 4
#: multiply-adds per GEMM call at most: OpenBLAS (SciPy's BLAS, which numba calls) runs a
#: GEMM this small on the calling thread; a larger one starts BLAS threads of its own, and
#: those fight the kernel's threads for the cores
GEMM_MAX_MACS = 1 << 18
#: take the int16 GEMM (:func:`_pair_weights`) where it is exact; False keeps to the float
#: and int64 paths (tests run both)
PAIRS = True
#: trace entries of the fixed model: name -> per-step width as a multiple of H
TRACE = {"preact": 4, "i": 1, "f": 1, "g": 1, "o": 1, "c": 1, "tanh_cell": 1, "h": 1}


@dataclass
class FloatLSTM:
    """Float weights in SPEC order: w [4H, I], r [4H, H], b [4H], p [3H] (i, f, o) or None."""

    w: np.ndarray
    r: np.ndarray
    b: np.ndarray
    p: np.ndarray | None = None
    name: str = "lstm"

    kind: ClassVar[str] = "lstm"

    def __post_init__(self):
        self.w = np.asarray(self.w, dtype=np.float64)
        self.r = np.asarray(self.r, dtype=np.float64)
        self.b = np.asarray(self.b, dtype=np.float64)
        if self.p is not None:
            self.p = np.asarray(self.p, dtype=np.float64)
        h4 = self.r.shape[0]
        if h4 % 4 or self.r.shape != (h4, h4 // 4):
            raise ValueError(f"recurrent weights r must be [4H, H], not {self.r.shape}")
        h = h4 // 4
        if self.w.ndim != 2 or self.w.shape[0] != h4:
            raise ValueError(f"input weights w must be [4H={h4}, I], not {self.w.shape}")
        if self.b.shape != (h4,):
            raise ValueError(f"bias b must be [4H={h4}], not {self.b.shape}")
        if self.p is not None and self.p.shape != (3 * h,):
            raise ValueError(f"peephole p must be [3H={3 * h}], not {self.p.shape}")
        for k in ("w", "r", "b", "p"):
            arr = getattr(self, k)
            if arr is not None and not np.all(np.isfinite(arr)):
                raise ValueError(f"weights {k!r} hold NaN or Inf; the model file is damaged")

    @property
    def input_size(self) -> int:
        return self.w.shape[1]

    @property
    def hidden_size(self) -> int:
        return self.r.shape[1]

    @property
    def output_size(self) -> int:
        return self.hidden_size


def _sigmoid(x):
    return FUNCTIONS["sigmoid"](x)


def lstm_float(
    model: FloatLSTM,
    x,
    *,
    output: str = "sequence",
    sigmoid=_sigmoid,
    tanh=np.tanh,
    tanh_cell=None,
    trace: bool = False,
):
    """One float64 LSTM layer of SPEC §2 over ``x`` [N, T, I]; exact σ and tanh by default.

    ``sigmoid``, ``tanh`` (for ``g``) and ``tanh_cell`` may be replaced, for instance by PWL
    tables evaluated in float, to separate the error of the tables from that of the
    arithmetic. Returns ``h`` [N, T, H] (or [N, H] for ``last``), and with ``trace`` also
    a dict of per-step arrays named as in :data:`TRACE`.
    """
    x = _check_batch(x, model.input_size, float)
    tanh_cell = tanh_cell or tanh
    n, t_len, _ = x.shape
    h_size = model.hidden_size
    h = np.zeros((n, h_size))
    c = np.zeros((n, h_size))
    hs = np.empty((n, t_len, h_size))
    tr = {k: np.empty((n, t_len, m * h_size)) for k, m in TRACE.items()} if trace else None
    xw = x @ model.w.T
    p = model.p
    for t in range(t_len):
        pre = xw[:, t] + h @ model.r.T + model.b
        blocks = [pre[:, k * h_size : (k + 1) * h_size] for k in range(4)]
        if p is not None:
            blocks[0] = blocks[0] + p[:h_size] * c
            blocks[1] = blocks[1] + p[h_size : 2 * h_size] * c
        i, f, g = sigmoid(blocks[0]), sigmoid(blocks[1]), tanh(blocks[2])
        c = f * c + i * g
        if p is not None:
            blocks[3] = blocks[3] + p[2 * h_size :] * c
        o = sigmoid(blocks[3])
        tc = tanh_cell(c)
        h = o * tc
        hs[:, t] = h
        if trace:
            pre_all = np.concatenate(blocks, axis=1)
            for k, v in zip(TRACE, (pre_all, i, f, g, o, c, tc, h)):
                tr[k][:, t] = v
    out = hs if output == "sequence" else hs[:, -1]
    return (out, tr) if trace else out


@dataclass
class FixedResult:
    """What one layer of the bit-accurate model gives: its output ``codes`` (``h`` of an LSTM
    layer, ``y`` of a dense layer), overflow counts per quantization point, and an optional
    trace (codes at every quantization point)."""

    codes: np.ndarray
    overflow: dict[str, int]
    trace: dict[str, np.ndarray] | None = field(default=None)


def _check_batch(x, input_size: int, kind) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 3 or arr.shape[2] != input_size:
        raise ValueError(
            f"input must be [N, T, I={input_size}] (sequences, steps, features), not "
            f"{list(arr.shape)}"
        )
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"input must hold at least one sequence of one step, not {arr.shape}")
    if kind is float:
        arr = arr.astype(np.float64)
        if not np.all(np.isfinite(arr)):
            where = tuple(int(v) for v in np.argwhere(~np.isfinite(arr))[0])
            raise ValueError(f"input holds {arr[where]} at index {where}: clean the data first")
    return arr


def _input_codes(qm: LstmLayer, x_codes) -> np.ndarray:
    """``x_codes`` as C-contiguous int64 codes: as they are when they already are (a layer's
    input is often the layer below's output), the kernel then checks their range as it
    reads them (see :func:`_check_range`); else converted and checked here."""
    x = _check_batch(x_codes, qm.input_size, int)
    if x.dtype == np.int64 and x.flags.c_contiguous:
        return x
    return np.ascontiguousarray(qm.formats["x"].check_codes(x, what="input codes"))


def _check_range(qm: LstmLayer, x: np.ndarray, x_range: np.ndarray) -> None:
    """Raise naming the first input code outside the ``x`` format when the kernel saw one
    (``x_range`` holds each task's lowest and highest input code)."""
    fmt = qm.formats["x"]
    if x_range[:, 0].min() < fmt.code_min or x_range[:, 1].max() > fmt.code_max:
        fmt.check_codes(x, what="input codes")


def _plan_for(qm: LstmLayer, x: np.ndarray) -> _Plan:
    """The plan for input codes ``x``: where the x format's bound keeps the layer from the
    int16 GEMM, the largest |x| code of this input may not (a layer above another gets
    codes of ``h``, |h| <= 1, in a format that reaches 32 or 64): one pass over ``x`` to
    find it, which also checks the input's range up front."""
    fmt = qm.formats["x"]
    if not PAIRS or not pmadd_lanes() or fmt.code_min < -(1 << 15) or fmt.code_max >= 1 << 15:
        return _Plan(qm)
    if _pair_weights(qm, *_Plan.shifted_weights(qm)) is not None:
        return _Plan(qm)  # the format's bound will do
    lo, hi = _code_range(x)  # bound by memory bandwidth: more threads do not help
    if lo < fmt.code_min or hi > fmt.code_max:
        fmt.check_codes(x, what="input codes")
    return _Plan(qm, x_max=max(-int(lo), int(hi)))


@njit(cache=True, nogil=True)
def _code_range(x):
    """The lowest and highest code in ``x``."""
    flat = x.ravel()
    lo, hi = flat[0], flat[0]
    for v in flat:
        lo = min(lo, v)
        hi = max(hi, v)
    return lo, hi


def lstm_fixed(qm: LstmLayer, x_codes, *, last: bool = False, trace: bool = False) -> FixedResult:
    """One bit-accurate LSTM layer of SPEC §2 on input codes [N, T, I] (int).

    Returns ``h`` codes [N, T, H] (every step) or [N, H] (``last``: only ``h_T``), the
    number of values that overflowed at each quantization point, and with ``trace`` the
    codes at every quantization point per step (see :data:`TRACE`).
    """
    x = _input_codes(qm, x_codes)
    h_size = qm.hidden_size
    plan = _plan_for(qm, x)
    h_out, overflow, tr, x_range = _launch(plan, x, last, trace, False)
    _check_range(qm, x, x_range)
    traced = None
    if trace:
        traced, col = {}, 0
        for k, m in TRACE.items():
            traced[k] = np.ascontiguousarray(tr[:, :, col : col + m * h_size])
            col += m * h_size
    return FixedResult(h_out if not last else h_out[:, 0], overflow, traced)


def profile_fixed(qm: LstmLayer, x_codes, *, repeats: int = 5, clock=None) -> dict:
    """Where :func:`lstm_fixed` spends its time on ``x_codes``: the best of ``repeats`` runs
    of the whole kernel (``total``) and of its GEMMs alone (``gemm``, the same calls on the
    same threads with the rest of each step skipped), the difference (``elementwise``:
    everything else, quantization points, tables, copies) in seconds, and the GEMM's dtype
    (``kind``). ``clock`` (default :func:`time.perf_counter`) may be
    :func:`time.thread_time` when the kernel runs on the calling thread (one thread)."""
    clock = clock or time.perf_counter

    x = _input_codes(qm, x_codes)
    plan = _plan_for(qm, x)
    _check_range(qm, x, _launch(plan, x, False, False, True)[3])
    best = {}
    for name, gemm_only in (("total", False), ("gemm", True)):
        _launch(plan, x, False, False, gemm_only)  # warm-up
        times = []
        for _ in range(repeats):
            t0 = clock()
            _launch(plan, x, False, False, gemm_only)
            times.append(clock() - t0)
        best[name] = min(times)
    best["elementwise"] = max(0.0, best["total"] - best["gemm"])
    best["kind"] = plan.kind
    return best


def _launch(plan: _Plan, x: np.ndarray, last: bool, trace: bool, gemm_only: bool):
    """Run the kernel over the batch ``x`` (int64 codes) on the thread pool: (h codes
    [N, T or 1, H], overflow counts, the trace array, each task's lowest and highest input
    code)."""
    n, t_len, _ = x.shape
    h_size = plan.hidden_size
    seq = not last
    h_out = np.empty((n, t_len if seq else 1, h_size), np.int64)
    if plan.kind == "int16":  # no BLAS threads to keep out: one GEMM per chunk
        chunk = min(n, CHUNK)
        gemm_rows = -(-chunk // plan.row_align) * plan.row_align
    else:
        k_len = max(plan.w_x.shape[0], plan.w_h.shape[0])
        gemm_rows = max(1, min(n, CHUNK, GEMM_MAX_MACS // (k_len * 4 * h_size)))
        if gemm_rows >= 8:  # BLAS kernels work in blocks of 8 rows: a ragged block costs more
            gemm_rows &= ~7
        chunk = min(n, CHUNK // gemm_rows * gemm_rows)  # whole GEMM calls per chunk
    width = sum(TRACE.values()) * h_size
    tr = np.empty((n, t_len, width) if trace else (0, 0, 0), dtype=np.int64)
    # independent sequences: tasks of whole chunks, several per thread, so a thread slowed
    # by other work on the machine takes fewer of them
    threads = max(1, numba.get_num_threads())
    size = max(chunk, -(-n // (TASKS_PER_THREAD * threads * chunk)) * chunk)
    tasks = [(s0, min(n, s0 + size)) for s0 in range(0, n, size)]
    counts = np.zeros((len(tasks), len(POINTS)), dtype=np.int64)
    x_range = np.zeros((len(tasks), 2), dtype=np.int64)

    def work(k: int) -> None:
        _run(
            x,
            tasks[k][0],
            tasks[k][1],
            chunk,
            gemm_rows,
            plan.w_x,
            plan.w_h,
            plan.a_row,
            plan.h_col,
            plan.row_align,
            plan.p,
            plan.shifts,
            plan.roundings,
            h_out,
            counts[k],
            x_range[k],
            tr,
            plan.luts,
            plan.lut_lo,
            plan.lut_hi,
            plan.lut_flags,
            plan.tables,
            gemm_only,
        )

    if min(threads, len(tasks)) > 1:
        # _run releases the GIL: Python threads are enough, and cost a numba threading
        # layer neither its compile time nor its spinning pool
        with ThreadPoolExecutor(min(threads, len(tasks))) as pool:
            list(pool.map(work, range(len(tasks))))
    else:
        for k in range(len(tasks)):
            work(k)
    overflow = {k: int(v) for k, v in zip(POINTS, counts.sum(axis=0))}
    return h_out, overflow, tr, x_range


def _preact_gemm(qm: LstmLayer) -> tuple[list[SumTerm], int, int]:
    """The terms of the fused GEMM (w*x, r*h, b), their common fraction and signed width."""
    f = qm.formats
    terms = [
        SumTerm("w*x", qm.input_size, (f["w"], f["x"])),
        SumTerm("r*h", qm.hidden_size, (f["r"], f["h"])),
        SumTerm("b", 1, (f["b"],)),
    ]
    frac, bits = exact_sum(terms)
    return terms, frac, bits


def _gemm_kind(qm: LstmLayer) -> str:
    """The narrowest dtype in which every partial sum of the fused GEMM is an exact integer."""
    bits = _preact_gemm(qm)[2]
    for kind, exact in FLOAT_EXACT_BITS.items():
        if bits <= exact and _HAVE_BLAS:
            return kind
    return "int64"


#: the bias goes into the int16 GEMM as two columns of A, 2**_BIAS_SPLIT and 1, against its
#: high and low parts (the shifted bias itself rarely fits 16 bits)
_BIAS_SPLIT = 14


def _lut_facts(table) -> tuple[int, int]:
    """Of a table's LUT (see :func:`_lut`): the largest magnitude of code the table gives
    (every input the kernel looks up is in the LUT; the output format's bound where there
    is no LUT), and whether any entry overflowed (else the kernel need not count them)."""
    if table not in _LUT_FACTS:
        lut = _cached_lut(table)[0]
        fmt = table.out_fmt
        if lut.shape[0]:
            facts = int(np.abs(lut.astype(np.int64) >> 1).max()), int(np.any(lut & 1))
        else:
            facts = max(-fmt.code_min, fmt.code_max), 0
        _LUT_FACTS[table] = facts
    return _LUT_FACTS[table]


def _h_max(qm: LstmLayer) -> int:
    """A bound on |h| codes: h = o * tanh(c), so at most the largest o code times the largest
    tanh_cell code, rounded (up by at most one code), when that cannot overflow the h
    format; else the h format's own bound. h_0 = 0 is within both."""
    f = qm.formats
    h = f["h"]
    o_max = _lut_facts(qm.tables["sigmoid"])[0]
    tc_max = _lut_facts(qm.tables["tanh_cell"])[0]
    shift = f["gate"].frac + f["tanh_cell"].frac - h.frac
    if shift >= 0:
        q = ((o_max * tc_max) >> shift) + 1
        if q <= min(-h.code_min, h.code_max):
            return q
    return max(-h.code_min, h.code_max)


def _pair_weights(qm: LstmLayer, w_t, r_t, b_t, x_max=None) -> np.ndarray | None:
    """``[W^T; b_hi; b_lo; R^T]`` (rows padded to even, columns to the tile) packed for
    :func:`model.intgemm.pmadd_tile`, when the GEMM on ``[x_t | 2**14 | 1 | h_{t-1}]`` is
    exact in int16 operands with int32 sums; else None.

    Exact: x codes within int16 by their format (and within ``x_max`` when given: the
    largest |code| of the input at hand), h codes by :func:`_h_max`, the shifted
    weights and the two bias parts within int16, and (:func:`model.intgemm.fits_int32`)
    the magnitudes of every column's terms summing below 2**31. The bound is the
    weights', not the formats': typical 16-bit layers pass where the formats' worst case
    (37 bits) would not.
    """
    x = qm.formats["x"]
    if not pmadd_lanes() or x.code_min < -(1 << 15) or x.code_max >= 1 << 15:
        return None
    h_max = _h_max(qm)
    b_hi, b_lo = b_t >> _BIAS_SPLIT, b_t & ((1 << _BIAS_SPLIT) - 1)
    b = np.concatenate([w_t, b_hi[None], b_lo[None], r_t])
    if h_max >= 1 << 15 or np.abs(b).max() >= 1 << 15:
        return None
    if x_max is None:
        x_max = max(-x.code_min, x.code_max)
    a_max = [x_max] * qm.input_size + [1 << _BIAS_SPLIT, 1] + [h_max] * qm.hidden_size
    if not fits_int32(b, a_max):
        return None
    if b.shape[0] % 2:
        b = np.concatenate([b, np.zeros((1, b.shape[1]), dtype=b.dtype)])
    tile_cols = TILES[pmadd_lanes()][1]
    cols = -(-b.shape[1] // tile_cols) * tile_cols
    return pack_pairs(b, cols)


class _Plan:
    """How to run one model: the GEMMs' weights, and the kernel's integer constants."""

    @staticmethod
    def shifted_weights(qm: LstmLayer) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """W^T, R^T and b, shifted to the fused GEMM's common fraction."""
        (wx, rh, b), gemm_frac, _ = _preact_gemm(qm)
        return (
            qm.w.T << (gemm_frac - wx.frac),
            qm.r.T << (gemm_frac - rh.frac),
            qm.b << (gemm_frac - b.frac),
        )

    def __init__(self, qm: LstmLayer, x_max: int | None = None):
        """``x_max``: a bound on the input's |codes| tighter than its format's, if known."""
        f = qm.formats
        w_t, r_t, b_t = self.shifted_weights(qm)
        gemm_frac = _preact_gemm(qm)[1]
        names = ("sigmoid", "tanh", "tanh_cell")
        luts = [_cached_lut(qm.tables[k]) for k in names]
        pairs = _pair_weights(qm, w_t, r_t, b_t, x_max) if PAIRS else None
        i_size = qm.input_size
        self.hidden_size = qm.hidden_size
        self.row_align = TILES[pmadd_lanes()][0] if pairs is not None else 1
        if pairs is not None:
            # one int16 GEMM on [x_t | 2**14 | 1 | h_{t-1}] (see _pair_weights)
            self.kind, self.joint, self.h_col = "int16", True, i_size + 2
            self.w_x = pairs
            self.w_h = np.zeros((0, pairs.shape[1]), dtype=np.int32)
            self.a_row = np.zeros(2 * pairs.shape[0], dtype=np.int16)
            self.a_row[i_size : i_size + 2] = (1 << _BIAS_SPLIT, 1)
        else:
            # rows of [W^T; b; R^T]: every partial sum is exact in this dtype (see
            # _gemm_kind). One GEMM on [x_t | 1 | h_{t-1}] per step where 8 rows of it fit
            # in GEMM_MAX_MACS; else two, [x_t | 1] by [W^T; b] and h_{t-1} by R^T
            # (``w_h``), each small enough for blocks of 8 rows, whose sum is exact too
            self.kind = kind = _gemm_kind(qm)
            w_x = [w_t, b_t[None]]
            k_len = i_size + 1 + qm.hidden_size
            self.joint = 8 * k_len * 4 * qm.hidden_size <= GEMM_MAX_MACS
            if self.joint:
                w_x.append(r_t)
                r_t = np.zeros((0, 4 * qm.hidden_size), dtype=np.int64)
            self.w_x = _aligned(np.concatenate(w_x).astype(kind))
            self.w_h = _aligned(r_t.astype(kind))
            self.h_col = i_size + 1
            self.a_row = np.zeros(self.w_x.shape[0], dtype=self.w_x.dtype)
            self.a_row[i_size] = 1
        self.p = qm.p if qm.peephole else np.zeros(0, dtype=np.int64)
        pre_frac, _ = exact_sum(qm.sums()["preact"])
        cell_frac, _ = exact_sum(qm.sums()["cell"])
        p_frac = f["p"].frac + f["cell"].frac if qm.peephole else pre_frac
        h_frac = f["gate"].frac + f["tanh_cell"].frac
        self.shifts = np.array(
            [
                pre_frac - gemm_frac,  # the GEMM's sum to preact's exact fraction
                pre_frac - p_frac,  # a peephole product to the same
                cell_frac - (f["gate"].frac + f["cell"].frac),  # f * c_{t-1}
                cell_frac - (f["gate"].frac + f["cand"].frac),  # i * g
            ],
            dtype=np.int64,
        )
        self.roundings = np.stack(
            [
                _rounding(pre_frac, f["preact"]),
                _rounding(cell_frac, f["cell"]),
                _rounding(h_frac, f["h"]),
            ]
        )
        self.luts = tuple(lut for lut, _, _ in luts)
        self.lut_lo = np.array([lo for _, lo, _ in luts], dtype=np.int64)
        self.lut_hi = np.array([hi for _, _, hi in luts], dtype=np.int64)
        #: per LUT, whether any entry overflowed (else the kernel need not count them)
        self.lut_flags = np.array([_lut_facts(qm.tables[k])[1] for k in names], dtype=np.int64)
        self.tables = tuple(qm.tables[k].kernel_args() for k in names)


def _aligned(arr: np.ndarray, align: int = 64) -> np.ndarray:
    """A C-contiguous copy of ``arr`` that starts on an ``align``-byte boundary.

    OpenBLAS runs GEMMs of a few rows without packing ``B`` (its small-matrix kernels), and
    reads the weights straight from memory: from a cache-line boundary the per-step GEMM
    takes about 13 ms for bench/model_throughput.py's batch, from an 8- or 16-byte one (what
    numpy's allocator gives) about 18.
    """
    raw = np.empty(arr.nbytes + align, dtype=np.uint8)
    start = -raw.ctypes.data % align
    out = raw[start : start + arr.nbytes].view(arr.dtype).reshape(arr.shape)
    out[...] = arr
    return out


#: per Q mode of SPEC §1, the bias added before a right shift by s > 0 bits, for a source
#: below zero and at or above zero, from half = 2**(s-1). A tie (the dropped bits exactly
#: half) goes up with a bias of half and down with half - 1.
_BIAS = {
    "TRN": lambda half: (0, 0),
    "TRN_ZERO": lambda half: (2 * half - 1, 0),  # negatives toward zero: ceil
    "RND": lambda half: (half, half),
    "RND_ZERO": lambda half: (half, half - 1),
    "RND_MIN_INF": lambda half: (half - 1, half - 1),
    "RND_INF": lambda half: (half - 1, half),
    "RND_CONV": lambda half: (half - 1, half - 1),  # plus the lowest kept bit: _round_fast
}


def _rounding(src_frac: int, fmt) -> np.ndarray:
    """The constants with which :func:`_round_block` writes ``v * 2**-src_frac`` into ``fmt``.

    For a right shift ``s`` of 0 to 62 bits, every Q mode of SPEC §1 is ``(v + bias) >> s``
    with a bias that depends only on the sign of ``v`` (and, for RND_CONV, on the lowest
    kept bit), and every O mode is a clamp, a mask or a zero: no branch on the data, so
    the loops vectorize. Other shifts go through :func:`model.formats.quantize`.
    tests/model/test_lstm.py checks the two agree.
    """
    s = src_frac - fmt.frac
    fast = 0 <= s <= 62
    bias_neg, bias_pos = _BIAS[fmt.q](1 << (s - 1)) if fast and s > 0 else (0, 0)
    conv = int(fmt.q == "RND_CONV" and s > 0)
    lo, hi = fmt.code_min, fmt.code_max
    sat_lo = -hi if fmt.o == "SAT_SYM" and fmt.signed and fmt.width >= 2 else lo
    return np.array(
        [
            int(fast),
            s if fast else 0,
            bias_neg,
            bias_pos,
            conv,
            sat_lo,
            hi,
            int(fmt.o in ("SAT", "SAT_SYM")),
            int(fmt.o == "SAT_ZERO"),
            lo,
            (1 << fmt.width) - 1,
            src_frac,
            *fmt.args(),
        ],
        dtype=np.int64,
    )


#: LUTs of the tables in use, and what :func:`_lut_facts` says of them; a PwlTable is
#: frozen, so neither goes stale
_LUTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LUT_FACTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _cached_lut(table) -> tuple[np.ndarray, int, int]:
    if table not in _LUTS:
        _LUTS[table] = _lut(table)
    return _LUTS[table]


def _lut(table) -> tuple[np.ndarray, int, int]:
    """A table's outputs as ``code << 1 | overflowed`` for a range of input codes: the LUT,
    its first code, and the last code the kernel must clamp to (or ``hi + 1`` for none).

    SPEC §3 clamps the input into [b_0, x_hi] first, so one load gives the table's output
    where evaluating it costs a search and a rounding. A LUT over the whole input format
    needs no clamp (the fastest); a wide format gets a LUT over [b_0, x_hi] and a clamp;
    a range wider than :data:`LUT_MAX_ENTRIES`, or an output too wide for int32 with the
    flag, gets an empty LUT: the kernel evaluates the table instead.
    """
    fmt = table.in_fmt
    lo, hi = int(table.breakpoints[0]), int(table.x_hi)
    if table.out_fmt.width > 30 or hi - lo + 1 > LUT_MAX_ENTRIES:
        return np.zeros(0, dtype=np.int32), 0, 0
    if fmt.code_max - fmt.code_min + 1 <= LUT_MAX_ENTRIES:
        lo, hi, clamp_hi = fmt.code_min, fmt.code_max, fmt.code_max + 1
    else:
        clamp_hi = hi
    lut = np.empty(hi - lo + 1, dtype=np.int32)
    _fill_lut(np.int64(lo), lut, *table.kernel_args())
    return lut, lo, clamp_hi


@njit(cache=True)
def _fill_lut(lo, lut, bps, x_hi, a, b, sa, sb, sum_frac, signed, width, frac, q_mode, o_mode):
    for k in range(lut.shape[0]):
        code, over = evaluate(
            lo + k, bps, x_hi, a, b, sa, sb, sum_frac, signed, width, frac, q_mode, o_mode
        )
        lut[k] = (code << 1) | over


#: SPEC §1's one quantize routine, compiled into the kernel instead of called
_quantize = njit(cache=True, inline="always")(quantize.py_func)


@njit(cache=True, inline="always")
def _round_fast(v, s, bias_neg, bias_pos, conv, lo, hi, sat, zero, wrap_lo, mask):
    """:func:`model.formats.quantize` for a right shift ``s`` in [0, 62], without branches."""
    bias = bias_neg if v < 0 else bias_pos
    q = (v + bias + ((v >> s) & conv)) >> s  # RND_CONV: a tie above an odd code goes up
    over = (q < lo) | (q > hi)
    code = min(max(q, lo), hi) if sat else ((q - wrap_lo) & mask) + wrap_lo
    if zero and over:
        code = 0
    return code, over


@njit(cache=True, inline="always")
def _round_block(src, shift, dst, col0, col1, rp):
    """``dst[:, col0:col1]`` = the exact sums ``src[:, col0:col1] << shift`` (integers, maybe
    held in floats) rounded by the constants ``rp`` of :func:`_rounding`; returns how many
    overflowed. ``src`` may be ``dst``."""
    n_over = 0
    if rp[0] and rp[7] and not rp[8] and not rp[4] and rp[2] == rp[3]:
        # the usual case (SAT or SAT_SYM, a bias that does not depend on the sign: RND,
        # RND_MIN_INF, TRN): _round_fast less the operations that do nothing here
        s, bias, lo, hi = rp[1], rp[3], rp[5], rp[6]
        for r in range(dst.shape[0]):
            for j in range(col0, col1):
                q = ((np.int64(src[r, j]) << shift) + bias) >> s
                code = min(max(q, lo), hi)
                dst[r, j] = code
                n_over += q != code  # as (q < lo) | (q > hi), in half the time
    elif rp[0] and rp[7] and not rp[8] and not rp[4]:  # SAT or SAT_SYM, any Q but RND_CONV
        s, bias_neg, bias_pos, lo, hi = rp[1], rp[2], rp[3], rp[5], rp[6]
        for r in range(dst.shape[0]):
            for j in range(col0, col1):
                v = np.int64(src[r, j]) << shift
                q = (v + (bias_neg if v < 0 else bias_pos)) >> s
                code = min(max(q, lo), hi)
                dst[r, j] = code
                n_over += q != code
    elif rp[0]:
        s, bias_neg, bias_pos, conv, lo, hi, sat, zero, wrap_lo, mask = rp[1:11]
        for r in range(dst.shape[0]):
            for j in range(col0, col1):
                code, over = _round_fast(
                    np.int64(src[r, j]) << shift,
                    s,
                    bias_neg,
                    bias_pos,
                    conv,
                    lo,
                    hi,
                    sat,
                    zero,
                    wrap_lo,
                    mask,
                )
                dst[r, j] = code
                n_over += over
    else:
        src_frac, signed, width, frac, q_mode, o_mode = rp[11:17]
        for r in range(dst.shape[0]):
            for j in range(col0, col1):
                v = np.int64(src[r, j]) << shift
                code, over = quantize(v, src_frac, signed, width, frac, q_mode, o_mode)
                dst[r, j] = code
                n_over += over
    return n_over


@njit(cache=True, inline="always")
def _table_block(src, src_col, dst, dst_col, width, lut, lo, hi, table, flags=1):
    """``dst[:, dst_col:+width]`` = a PWL table (SPEC §3) of ``src[:, src_col:+width]``, from
    its LUT from ``lo`` when it has one (clamped to ``hi`` unless the LUT covers the whole
    input format, see :func:`_lut`); returns how many overflowed. ``flags`` 0 says that no
    entry of the LUT has its overflow bit set (the usual table): nothing to count."""
    n_over = 0
    if lut.shape[0] > 0 and hi == lo + lut.shape[0] and not flags:  # the usual case
        for r in range(src.shape[0]):
            for j in range(width):
                dst[r, dst_col + j] = np.int64(lut[np.uint64(src[r, src_col + j] - lo)]) >> 1
    elif lut.shape[0] > 0 and hi == lo + lut.shape[0]:  # over the whole input format
        for r in range(src.shape[0]):
            for j in range(width):
                v = np.int64(lut[np.uint64(src[r, src_col + j] - lo)])  # unsigned: no wrap
                dst[r, dst_col + j] = v >> 1
                n_over += v & 1
    elif lut.shape[0] > 0:  # over [b_0, x_hi]: clamp first
        for r in range(src.shape[0]):
            for j in range(width):
                x_c = min(max(src[r, src_col + j], lo), hi)
                v = np.int64(lut[np.uint64(x_c - lo)])
                dst[r, dst_col + j] = v >> 1
                n_over += v & 1
    else:
        for r in range(src.shape[0]):
            for j in range(width):
                code, over = evaluate(src[r, src_col + j], *table)
                dst[r, dst_col + j] = code
                n_over += over
    return n_over


def _gemm_into(a, b, out):
    """out = a @ b, exactly (a, b, out C-contiguous, one dtype); for use inside kernels."""


@overload(_gemm_into, jit_options={"cache": True}, inline="always")
def _gemm_into_impl(a, b, out):
    if isinstance(a.dtype, types.Float):
        # BLAS (numba calls it through SciPy); exact because _gemm_kind proved it
        return lambda a, b, out: np.dot(a, b, out)
    if a.dtype == types.int16:  # b: int32 pairs; exact because _pair_weights proved it
        lanes = pmadd_lanes()  # the CPU this compiles for (numba's cache is per CPU)
        rows, cols = TILES[lanes]

        def pair_gemm(a, b, out):
            for j0 in range(0, out.shape[1], cols):  # a strip of b stays in L1
                for r0 in range(0, a.shape[0], rows):
                    pmadd_tile(out, a, b, r0, j0, lanes, rows, cols)

        return pair_gemm

    def int_gemm(a, b, out):
        m, k_len = a.shape
        for i in range(m):
            for j in range(out.shape[1]):
                out[i, j] = 0
            for k in range(k_len):
                av = a[i, k]
                if av != 0:
                    for j in range(out.shape[1]):
                        out[i, j] += av * b[k, j]

    return int_gemm


@njit(cache=True, inline="always")
def _step(ax, ah, joint, s_acc, p4, s_p, s_fc, s_ig, rounds, c, pre, act, tc, hq, luts,
          lut_lo, lut_hi, fl, tables, tally, peep):  # fmt: skip
    """SPEC §2 for a chunk from the GEMMs' sums ``ax + ah`` (``ah`` 0 where ``joint``) to
    ``h_t`` in ``hq``, one quantization point at a time over the whole chunk (loops without
    branches on the data, which vectorize; the table lookups do not). ``p4`` holds the
    peepholes as [4H] (i, f, none for g, o); ``fl`` says which LUTs hold overflows
    (:attr:`_Plan.lut_flags`); overflows are added into ``tally``."""
    m, h4 = pre.shape  # ax may have more: the GEMM's padding
    h = h4 // 4
    r_pre, r_cell, r_h = rounds[0], rounds[1], rounds[2]
    lut_sig, lut_tanh, lut_cell = luts
    t_sig, t_tanh, t_cell = tables
    if joint and not peep:  # ah is 0: round the one GEMM's sums straight into pre
        tally[0] += _round_block(ax, s_acc, pre, 0, h4, r_pre)
    else:
        for r in range(m):  # integers whose sum the dtype holds exactly (_gemm_kind)
            for j in range(h4):
                pre[r, j] = np.int64(ax[r, j] + ah[r, j]) << s_acc
        if peep:  # i and f see c_{t-1}; o waits for c_t
            for r in range(m):
                for j in range(h):
                    pre[r, j] += (p4[j] * c[r, j]) << s_p
                    pre[r, h + j] += (p4[h + j] * c[r, j]) << s_p
            tally[0] += _round_block(pre, 0, pre, 0, 3 * h, r_pre)
        else:
            tally[0] += _round_block(pre, 0, pre, 0, h4, r_pre)
    tally[1] += _table_block(pre, 0, act, 0, 2 * h, lut_sig, lut_lo[0], lut_hi[0], t_sig, fl[0])
    tally[2] += _table_block(
        pre, 2 * h, act, 2 * h, h, lut_tanh, lut_lo[1], lut_hi[1], t_tanh, fl[1]
    )
    for r in range(m):  # c_t = f c_{t-1} + i g, exact, then rounded in place
        for j in range(h):
            c[r, j] = ((act[r, h + j] * c[r, j]) << s_fc) + (
                (act[r, j] * act[r, 2 * h + j]) << s_ig
            )
    tally[3] += _round_block(c, 0, c, 0, h, r_cell)
    if peep:  # o sees c_t
        for r in range(m):
            for j in range(h):
                pre[r, 3 * h + j] += (p4[3 * h + j] * c[r, j]) << s_p
        tally[0] += _round_block(pre, 0, pre, 3 * h, h4, r_pre)
    tally[1] += _table_block(pre, 3 * h, act, 3 * h, h, lut_sig, lut_lo[0], lut_hi[0], t_sig, fl[0])
    tally[4] += _table_block(c, 0, tc, 0, h, lut_cell, lut_lo[2], lut_hi[2], t_cell, fl[2])
    for r in range(m):
        for j in range(h):
            hq[r, j] = act[r, 3 * h + j] * tc[r, j]
    tally[5] += _round_block(hq, 0, hq, 0, h, r_h)


@njit(cache=True, nogil=True)
def _run(
    x,
    begin,
    end,
    chunk,
    gemm_rows,
    w_x,
    w_h,
    a_row,
    h_col,
    row_align,
    p,
    shifts,
    rounds,
    h_out,
    counts,
    x_range,
    tr,
    luts,
    lut_lo,
    lut_hi,
    lut_flags,
    tables,
    gemm_only,
):
    """Sequences ``begin:end`` of the batch, ``chunk`` at a time, through every step.

    Per step, one GEMM on ``[x_t | 1 | h_{t-1}]``, or two on ``[x_t | 1]`` and ``h_{t-1}``
    when ``w_h`` has rows (see :class:`_Plan`), ``gemm_rows`` at a time, give
    W x_t + R h_{t-1} + b for the chunk; then SPEC §2 from ``preact`` on over the whole
    chunk, :func:`_step`. ``h_t`` goes to ``h_out[:, t]`` (``[:, 0]`` when it has one step) and
    into the next GEMM's input; overflows are added into ``counts``; the lowest and highest
    input code go to ``x_range``; the trace, when ``tr`` is not empty, goes to
    ``tr[:, t]``. The helpers are inlined: a call that takes an array counts references to
    it, and two threads counting on the same LUT slow each other.

    ``gemm_only`` skips everything but the GEMMs (``h`` stays 0): the time of the GEMMs
    alone, for :func:`profile_fixed`; its results mean nothing.
    """
    t_len, i_size = x.shape[1], x.shape[2]
    h = h_out.shape[2]
    h4 = 4 * h
    joint = w_h.shape[0] == 0  # h_{t-1} goes into the one GEMM's input, after x_t and 1
    s_acc, s_p, s_fc, s_ig = shifts[0], shifts[1], shifts[2], shifts[3]
    peep = p.shape[0] > 0
    want = tr.shape[0] > 0
    p4 = np.zeros(h4, dtype=np.int64)  # peepholes of i, f, (none for g), o
    if peep:
        for j in range(h):
            p4[j] = p[j]
            p4[h + j] = p[h + j]
            p4[3 * h + j] = p[2 * h + j]
    tally = np.zeros(counts.shape[0], dtype=np.int64)
    x_lo, x_hi = x[begin, 0, 0], x[begin, 0, 0]
    for s0 in range(begin, end, chunk):
        m = min(chunk, end - s0)
        m_pad = -(-m // row_align) * row_align  # rows beyond m: zeros, never read
        bx = np.zeros((m_pad, a_row.shape[0]), dtype=a_row.dtype)  # [x_t | 1 (| h_{t-1})]
        for r in range(m):
            bx[r] = a_row
        bh = np.zeros((m, w_h.shape[0]), dtype=w_h.dtype)  # h_{t-1}, unless joint
        acc = np.empty((m_pad, w_x.shape[1]), dtype=w_x.dtype)  # W x_t + b (+ R h_{t-1})
        ah = np.zeros((m, h4), dtype=w_h.dtype)  # R h_{t-1} (0 where joint)
        pre = np.empty((m, h4), dtype=np.int64)  # preact of i, f, g, o
        act = np.empty((m, h4), dtype=np.int64)  # i, f, g, o
        c = np.zeros((m, h), dtype=np.int64)
        tc = np.empty((m, h), dtype=np.int64)
        hq = np.empty((m, h), dtype=np.int64)
        for t in range(t_len):
            for r in range(m):
                for col in range(i_size):
                    v = x[s0 + r, t, col]
                    x_lo = min(x_lo, v)
                    x_hi = max(x_hi, v)
                    bx[r, col] = v
            for r0 in range(0, m_pad, gemm_rows):
                r1 = min(m_pad, r0 + gemm_rows)
                _gemm_into(bx[r0:r1], w_x, acc[r0:r1])
                if not joint:
                    _gemm_into(bh[r0:r1], w_h, ah[r0:r1])
            if gemm_only:
                continue
            _step(acc, ah, joint, s_acc, p4, s_p, s_fc, s_ig, rounds, c, pre, act, tc, hq, luts,
                  lut_lo, lut_hi, lut_flags, tables, tally, peep)  # fmt: skip
            t_out = t if h_out.shape[1] > 1 else 0
            for r in range(m):
                for j in range(h):
                    h_out[s0 + r, t_out, j] = hq[r, j]
            if joint:
                for r in range(m):
                    # through a view: numba cannot tell that i_size + 1 + j >= 0, and the
                    # check for a negative index made this copy a scatter (a tenth of _run)
                    dst = bx[r, h_col:]
                    for j in range(h):
                        dst[j] = hq[r, j]
            else:
                for r in range(m):
                    for j in range(h):
                        bh[r, j] = hq[r, j]
            if want:
                for r in range(m):
                    row = tr[s0 + r, t]
                    for j in range(h4):
                        row[j] = pre[r, j]
                        row[h4 + j] = act[r, j]
                    for j in range(h):
                        row[2 * h4 + j] = c[r, j]
                        row[2 * h4 + h + j] = tc[r, j]
                        row[2 * h4 + 2 * h + j] = hq[r, j]
    for q in range(tally.shape[0]):
        counts[q] += tally[q]
    x_range[0] = x_lo
    x_range[1] = x_hi
