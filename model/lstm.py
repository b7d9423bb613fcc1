"""The LSTM of SPEC §2: a float64 reference and the bit-accurate fixed-point model.

Both run a batch of sequences ``[N, T, I]`` from ``h_0 = c_0 = 0``. The fixed-point model
computes each exact dot product on BLAS in float64 when its worst case fits in 53 bits
(every partial sum is then an exact integer), otherwise in an int64 Numba kernel; the
elementwise part of each step (rounding into ``preact``, the PWL tables, the cell update)
is one Numba kernel, parallel over sequences.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numba import njit, prange

from model.formats import quantize
from model.pwl import FUNCTIONS, evaluate
from model.qmodel import POINTS, QuantizedModel, SumTerm, exact_sum

#: the widest signed integer sum each float dtype holds exactly (every partial sum included)
FLOAT_EXACT_BITS = {"float32": 24, "float64": 53}
#: tables whose input format has at most this many bits are evaluated once into a LUT
LUT_MAX_BITS = 16
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


def _sigmoid(x):
    return FUNCTIONS["sigmoid"](x)


def run_float(
    model: FloatLSTM,
    x,
    *,
    output: str = "sequence",
    sigmoid=_sigmoid,
    tanh=np.tanh,
    tanh_cell=None,
    trace: bool = False,
):
    """The float64 LSTM of SPEC §2 over ``x`` [N, T, I]; exact σ and tanh by default.

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
    """What :func:`run_fixed` returns: ``h`` codes, overflow counts and an optional trace."""

    h_codes: np.ndarray
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


def quantize_input(qm: QuantizedModel, x) -> tuple[np.ndarray, int]:
    """Float input [N, T, I] to codes of the ``x`` format, with the count that overflowed."""
    arr = _check_batch(x, qm.input_size, float)
    return qm.formats["x"].from_float_counted(arr, what="input x")


def run_fixed(qm: QuantizedModel, x_codes, *, trace: bool = False) -> FixedResult:
    """The bit-accurate LSTM of SPEC §2 on input codes [N, T, I] (int).

    Returns ``h`` codes [N, T, H] (``output == "sequence"``) or [N, H] (``"last"``), the
    number of values that overflowed at each quantization point, and with ``trace`` the
    codes at every quantization point per step (see :data:`TRACE`).
    """
    x = _check_batch(x_codes, qm.input_size, int)
    x = np.ascontiguousarray(qm.formats["x"].check_codes(x, what="input codes"))
    n, t_len, i_size = x.shape
    h_size = qm.hidden_size
    plan = _Plan(qm)

    # buf holds [x_t | h_{t-1} | 1] per sequence, so one GEMM with plan.weights gives
    # W x_t + R h_{t-1} + b for all 4H rows; the step kernel writes h_t and x_{t+1} into it
    buf = np.zeros((n, i_size + h_size + 1), dtype=plan.dtype)
    buf[:, :i_size] = x[:, 0]
    buf[:, -1] = 1
    acc = np.empty((n, 4 * h_size), dtype=plan.dtype)
    c = np.zeros((n, h_size), dtype=np.int64)
    seq = qm.output == "sequence"
    h_out = np.empty((n, t_len if seq else 1, h_size), np.int64)
    counts = np.zeros((n, len(POINTS)), dtype=np.int64)
    width = sum(TRACE.values()) * h_size
    tr_all = np.empty((n, t_len, width) if trace else (0, 0, 0), dtype=np.int64)
    for t in range(t_len):
        plan.gemm(buf, acc)
        # every array reaches the kernel C-contiguous, whole, with the step as an index: one
        # compiled specialization per GEMM dtype, however the caller's arrays were laid out
        _cell_step(
            acc,
            buf,
            x,
            min(t + 1, t_len - 1),
            plan.p,
            c,
            h_out,
            t if seq else 0,
            counts,
            tr_all,
            t,
            plan.consts,
            *plan.tables,
        )
    overflow = {k: int(v) for k, v in zip(POINTS, counts.sum(axis=0))}
    tr = None
    if trace:
        tr, col = {}, 0
        for k, m in TRACE.items():
            tr[k] = np.ascontiguousarray(tr_all[:, :, col : col + m * h_size])
            col += m * h_size
    return FixedResult(h_out if seq else h_out[:, 0], overflow, tr)


def _preact_gemm(qm: QuantizedModel) -> tuple[list[SumTerm], int, int]:
    """The terms of the fused GEMM (w*x, r*h, b), their common fraction and signed width."""
    f = qm.formats
    terms = [
        SumTerm("w*x", qm.input_size, (f["w"], f["x"])),
        SumTerm("r*h", qm.hidden_size, (f["r"], f["h"])),
        SumTerm("b", 1, (f["b"],)),
    ]
    frac, bits = exact_sum(terms)
    return terms, frac, bits


def _gemm_kind(qm: QuantizedModel) -> str:
    """The narrowest dtype in which every partial sum of the fused GEMM is an exact integer."""
    bits = _preact_gemm(qm)[2]
    for kind, exact in FLOAT_EXACT_BITS.items():
        if bits <= exact:
            return kind
    return "int64"


class _Plan:
    """How to run one model: the fused GEMM's dtype and weights, the kernel's constants."""

    def __init__(self, qm: QuantizedModel):
        f = qm.formats
        terms, gemm_frac, _ = _preact_gemm(qm)
        self.kind = _gemm_kind(qm)
        self.dtype = np.dtype(self.kind)
        # rows of [W^T; R^T; b] pre-shifted to gemm_frac: exact in this dtype (see _gemm_kind)
        wx, rh, b = terms
        weights = np.concatenate(
            [
                qm.w.T << (gemm_frac - wx.frac),
                qm.r.T << (gemm_frac - rh.frac),
                (qm.b << (gemm_frac - b.frac))[None],
            ]
        )
        self.weights = np.ascontiguousarray(weights.astype(self.dtype))
        self.p = qm.p if qm.peephole else np.zeros(0, dtype=np.int64)
        pre_frac, _ = exact_sum(qm.sums()["preact"])
        cell_frac, _ = exact_sum(qm.sums()["cell"])
        p_frac = f["p"].frac + f["cell"].frac if qm.peephole else pre_frac
        vals = [
            pre_frac - gemm_frac,
            pre_frac - p_frac,
            pre_frac,
            cell_frac,
            cell_frac - (f["gate"].frac + f["cell"].frac),
            cell_frac - (f["gate"].frac + f["cand"].frac),
            f["gate"].frac + f["tanh_cell"].frac,
        ]
        for name in ("preact", "cell", "h"):
            vals.extend(f[name].args())
        self.consts = np.array(vals, dtype=np.int64)
        self.tables = tuple(_lut(qm.tables[k]) for k in ("sigmoid", "tanh", "tanh_cell")) + tuple(
            qm.tables[k].kernel_args() for k in ("sigmoid", "tanh", "tanh_cell")
        )

    def gemm(self, buf: np.ndarray, acc: np.ndarray) -> None:
        if self.kind == "int64":
            _int_matmul(buf, self.weights, acc)
        else:
            np.matmul(buf, self.weights, out=acc)


def _lut(table) -> tuple[np.ndarray, np.int64]:
    """Every output of a table with a narrow input, as ``code << 1 | overflowed``.

    A lookup costs one load where the table's own evaluation costs a search and a
    rounding. Wide inputs, and outputs too wide for int32 with the flag, get an empty LUT:
    the kernel evaluates the table instead.
    """
    fmt = table.in_fmt
    if fmt.width > LUT_MAX_BITS or table.out_fmt.width > 30:
        return np.zeros(0, dtype=np.int32), np.int64(0)
    lut = np.empty(fmt.code_max - fmt.code_min + 1, dtype=np.int32)
    _fill_lut(np.int64(fmt.code_min), lut, *table.kernel_args())
    return lut, np.int64(fmt.code_min)


@njit(cache=True)
def _fill_lut(lo, lut, bps, x_hi, a, b, sa, sb, sum_frac, signed, width, frac, q_mode, o_mode):
    for k in range(lut.shape[0]):
        code, over = evaluate(
            lo + k, bps, x_hi, a, b, sa, sb, sum_frac, signed, width, frac, q_mode, o_mode
        )
        lut[k] = (code << 1) | over


@njit(cache=True, inline="always")
def _activate(x, lut, table):
    """A table's ``(code, overflowed)`` for input code ``x``: from the LUT when there is one."""
    if lut[0].shape[0] > 0:
        v = np.int64(lut[0][x - lut[1]])
        return v >> 1, (v & 1) != 0
    return evaluate(x, *table)


@njit(cache=True, parallel=True)
def _int_matmul(a, b, out):
    m, k_len = a.shape
    n = b.shape[1]
    for i in prange(m):
        for j in range(n):
            out[i, j] = 0
        for k in range(k_len):
            av = a[i, k]
            if av != 0:
                for j in range(n):
                    out[i, j] += av * b[k, j]


@njit(cache=True, parallel=True)
def _cell_step(
    acc,
    buf,
    x,
    t_next,
    p,
    c,
    h_out,
    t_out,
    counts,
    tr,
    t,
    k,
    lut_sig,
    lut_tanh,
    lut_cell,
    t_sig,
    t_tanh,
    t_cell,
):
    """One time step for every sequence, from the GEMM's ``acc`` = W x_t + R h_{t-1} + b.

    Updates ``c`` in place, writes ``h_t`` into ``h_out[:, t_out]`` and into ``buf`` (with
    ``x[:, t_next]``), adds overflows into ``counts`` and, when ``tr`` is not empty, writes
    the step's trace into ``tr[:, t]``.
    """
    n, h_size = c.shape
    i_size = x.shape[2]
    s_acc, s_p, pre_frac, cell_frac, s_fc, s_ig, h_frac = k[0:7]
    pre_fmt = (k[7], k[8], k[9], k[10], k[11])
    cell_fmt = (k[12], k[13], k[14], k[15], k[16])
    h_fmt = (k[17], k[18], k[19], k[20], k[21])
    peep = p.shape[0] > 0
    want = tr.shape[0] > 0
    for s in prange(n):
        n_pre = n_gate = n_cand = n_cell = n_tc = n_h = 0
        for j in range(h_size):
            c_old = c[s, j]
            a_i = np.int64(acc[s, j]) << s_acc
            a_f = np.int64(acc[s, h_size + j]) << s_acc
            a_g = np.int64(acc[s, 2 * h_size + j]) << s_acc
            a_o = np.int64(acc[s, 3 * h_size + j]) << s_acc
            if peep:  # i and f see c_{t-1}
                a_i += (p[j] * c_old) << s_p
                a_f += (p[h_size + j] * c_old) << s_p
            pre_i, over_i = quantize(a_i, pre_frac, *pre_fmt)
            pre_f, over_f = quantize(a_f, pre_frac, *pre_fmt)
            pre_g, over_g = quantize(a_g, pre_frac, *pre_fmt)
            n_pre += over_i + over_f + over_g
            i, over_i = _activate(pre_i, lut_sig, t_sig)
            f, over_f = _activate(pre_f, lut_sig, t_sig)
            g, over_g = _activate(pre_g, lut_tanh, t_tanh)
            n_gate += over_i + over_f
            n_cand += over_g
            c_new, over = quantize(((f * c_old) << s_fc) + ((i * g) << s_ig), cell_frac, *cell_fmt)
            n_cell += over
            if peep:  # o sees c_t
                a_o += (p[2 * h_size + j] * c_new) << s_p
            pre_o, over = quantize(a_o, pre_frac, *pre_fmt)
            n_pre += over
            o, over = _activate(pre_o, lut_sig, t_sig)
            n_gate += over
            tc, over = _activate(c_new, lut_cell, t_cell)
            n_tc += over
            h_new, over = quantize(o * tc, h_frac, *h_fmt)
            n_h += over
            c[s, j] = c_new
            h_out[s, t_out, j] = h_new
            buf[s, i_size + j] = h_new
            if want:
                tr[s, t, j] = pre_i
                tr[s, t, h_size + j] = pre_f
                tr[s, t, 2 * h_size + j] = pre_g
                tr[s, t, 3 * h_size + j] = pre_o
                base = 4 * h_size
                tr[s, t, base + j] = i
                tr[s, t, base + h_size + j] = f
                tr[s, t, base + 2 * h_size + j] = g
                tr[s, t, base + 3 * h_size + j] = o
                tr[s, t, base + 4 * h_size + j] = c_new
                tr[s, t, base + 5 * h_size + j] = tc
                tr[s, t, base + 6 * h_size + j] = h_new
        for col in range(i_size):
            buf[s, col] = x[s, t_next, col]
        counts[s, 0] += n_pre
        counts[s, 1] += n_gate
        counts[s, 2] += n_cand
        counts[s, 3] += n_cell
        counts[s, 4] += n_tc
        counts[s, 5] += n_h
