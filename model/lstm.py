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

FLOAT_EXACT_BITS = 53
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
    x = qm.formats["x"].check_codes(x, what="input codes")
    n, t_len, _ = x.shape
    h_size = qm.hidden_size
    f = qm.formats
    wx = SumTerm("w*x", qm.input_size, (f["w"], f["x"]))
    rh = SumTerm("r*h", h_size, (f["r"], f["h"]))
    pre_frac, _ = exact_sum(qm.sums()["preact"])
    blas_x = exact_sum([wx])[1] <= FLOAT_EXACT_BITS
    blas_h = exact_sum([rh])[1] <= FLOAT_EXACT_BITS
    wt = np.ascontiguousarray(qm.w.T)
    rt = np.ascontiguousarray(qm.r.T)
    wt_f, rt_f = wt.astype(np.float64), rt.astype(np.float64)
    p = qm.p if qm.peephole else np.zeros(0, dtype=np.int64)
    consts = _step_constants(qm, pre_frac, wx.frac, rh.frac)
    tables = tuple(qm.tables[k].kernel_args() for k in ("sigmoid", "tanh", "tanh_cell"))

    h = np.zeros((n, h_size), dtype=np.int64)
    c = np.zeros((n, h_size), dtype=np.int64)
    h_out = np.empty((n, t_len, h_size) if qm.output == "sequence" else (n, h_size), np.int64)
    counts = np.zeros((n, len(POINTS)), dtype=np.int64)
    tr = {k: np.empty((n, t_len, m * h_size), np.int64) for k, m in TRACE.items()} if trace else {}
    step_tr = np.empty((n, 11 * h_size) if trace else (0, 0), dtype=np.int64)

    # the input products of a block of steps at once: one large GEMM
    block = max(1, min(t_len, (1 << 22) // max(1, n * 4 * h_size)))
    for t0 in range(0, t_len, block):
        xs = x[:, t0 : t0 + block]
        acc_x = _dot(xs.reshape(-1, qm.input_size), wt, wt_f, blas_x).reshape(
            n, xs.shape[1], 4 * h_size
        )
        for dt in range(xs.shape[1]):
            acc_h = _dot(h, rt, rt_f, blas_h)
            _step(acc_x[:, dt], acc_h, qm.b, p, c, h, counts, step_tr, consts, *tables)
            t = t0 + dt
            if qm.output == "sequence":
                h_out[:, t] = h
            if trace:
                col = 0
                for k, m in TRACE.items():
                    tr[k][:, t] = step_tr[:, col : col + m * h_size]
                    col += m * h_size
    if qm.output == "last":
        h_out[:] = h
    overflow = {k: int(v) for k, v in zip(POINTS, counts.sum(axis=0))}
    return FixedResult(h_out, overflow, tr if trace else None)


def _dot(a: np.ndarray, bt: np.ndarray, bt_f: np.ndarray, blas: bool) -> np.ndarray:
    """Exact a @ bt for int64 codes: float64 BLAS when the caller proved it exact."""
    if blas:
        return (a.astype(np.float64) @ bt_f).astype(np.int64)
    return _int_matmul(np.ascontiguousarray(a), bt)


@njit(cache=True, parallel=True)
def _int_matmul(a, b):
    m, k_len = a.shape
    n = b.shape[1]
    out = np.zeros((m, n), dtype=np.int64)
    for i in prange(m):
        for k in range(k_len):
            av = a[i, k]
            if av != 0:
                for j in range(n):
                    out[i, j] += av * b[k, j]
    return out


def _step_constants(qm: QuantizedModel, pre_frac: int, x_frac: int, h_frac: int) -> np.ndarray:
    """Shifts and formats of one step, as one int64 array for the kernel."""
    f = qm.formats
    cell_frac, _ = exact_sum(qm.sums()["cell"])
    gate_cell = f["gate"].frac + f["cell"].frac
    gate_cand = f["gate"].frac + f["cand"].frac
    p_frac = f["p"].frac + f["cell"].frac if qm.peephole else pre_frac
    vals = [
        pre_frac - x_frac,
        pre_frac - h_frac,
        pre_frac - f["b"].frac,
        pre_frac - p_frac,
        pre_frac,
        cell_frac,
        cell_frac - gate_cell,
        cell_frac - gate_cand,
        f["gate"].frac + f["tanh_cell"].frac,
    ]
    for name in ("preact", "cell", "h"):
        vals.extend(f[name].args())
    return np.array(vals, dtype=np.int64)


@njit(cache=True, parallel=True)
def _step(acc_x, acc_h, b, p, c, h, counts, tr, k, t_sig, t_tanh, t_cell):
    """One time step for every sequence: updates ``c`` and ``h`` in place."""
    n, h_size = c.shape
    sx, sh, sb, sp, pre_frac, cell_frac, s_fc, s_ig, h_frac = k[0:9]
    pre_fmt = (k[9], k[10], k[11], k[12], k[13])
    cell_fmt = (k[14], k[15], k[16], k[17], k[18])
    h_fmt = (k[19], k[20], k[21], k[22], k[23])
    peep = p.shape[0] > 0
    want = tr.shape[0] > 0
    for s in prange(n):
        for j in range(h_size):
            pre = np.empty(4, dtype=np.int64)
            for gate in range(4):
                row = gate * h_size + j
                acc = (acc_x[s, row] << sx) + (acc_h[s, row] << sh) + (b[row] << sb)
                if peep and gate < 2:
                    acc += (p[gate * h_size + j] * c[s, j]) << sp
                if gate < 3:
                    pre[gate], over = quantize(acc, pre_frac, *pre_fmt)
                    counts[s, 0] += over
                else:
                    pre[gate] = acc  # o waits for c_t when there are peepholes
            i, over_i = evaluate(pre[0], *t_sig)
            f, over_f = evaluate(pre[1], *t_sig)
            g, over_g = evaluate(pre[2], *t_tanh)
            counts[s, 1] += over_i + over_f
            counts[s, 2] += over_g
            c_new, over = quantize(
                ((f * c[s, j]) << s_fc) + ((i * g) << s_ig), cell_frac, *cell_fmt
            )
            counts[s, 3] += over
            acc = pre[3]
            if peep:
                acc += (p[2 * h_size + j] * c_new) << sp
            pre[3], over = quantize(acc, pre_frac, *pre_fmt)
            counts[s, 0] += over
            o, over = evaluate(pre[3], *t_sig)
            counts[s, 1] += over
            tc, over = evaluate(c_new, *t_cell)
            counts[s, 4] += over
            h_new, over = quantize(o * tc, h_frac, *h_fmt)
            counts[s, 5] += over
            c[s, j] = c_new
            if want:
                for gate in range(4):
                    tr[s, gate * h_size + j] = pre[gate]
                base = 4 * h_size
                tr[s, base + j] = i
                tr[s, base + h_size + j] = f
                tr[s, base + 2 * h_size + j] = g
                tr[s, base + 3 * h_size + j] = o
                tr[s, base + 4 * h_size + j] = c_new
                tr[s, base + 5 * h_size + j] = tc
                tr[s, base + 6 * h_size + j] = h_new
            # h of this step must not feed this step: the caller computed acc_h before
            h[s, j] = h_new
