"""How far a config's fixed-point LSTM strays from float, measured on the user's data.

:func:`measure` runs three models over the same float input ``x`` [N, T, I]:

- ``float``: the float64 LSTM of SPEC §2 with float weights and exact σ and tanh (the
  reference);
- ``pwl``: the same float arithmetic with the config's PWL tables as activations, so its
  error is the error the tables alone cause;
- ``fixed``: the bit-accurate model (input, weights and every tensor quantized).

and returns plain numbers (JSON-ready): per quantization point the observed range against
the format's and how many values overflowed; per internal tensor the error of ``pwl`` and
``fixed`` against ``float`` (max abs, RMSE, SQNR); the error of ``h`` and ``c`` per time
step; each table's exhaustive error; with labels, the task's own metric for all three.
Sequences go through in chunks, so the data may be larger than its traces would be.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.formats import Format
from model.lstm import run_fixed, run_float
from model.pwl import PwlTable, describe
from model.qmodel import ACTIVATIONS, TENSORS

#: internal signals whose error is reported: trace name -> (trace key, gate block or None)
SIGNALS = {
    "preact_i": ("preact", 0),
    "preact_f": ("preact", 1),
    "preact_g": ("preact", 2),
    "preact_o": ("preact", 3),
    "i": ("i", None),
    "f": ("f", None),
    "g": ("g", None),
    "o": ("o", None),
    "c": ("c", None),
    "tanh_cell": ("tanh_cell", None),
    "h": ("h", None),
}
#: the SPEC tensor (format) of each trace key
TRACE_FORMAT = {
    "preact": "preact",
    "i": "gate",
    "f": "gate",
    "g": "cand",
    "o": "gate",
    "c": "cell",
    "tanh_cell": "tanh_cell",
    "h": "h",
}
#: the trace keys whose values a quantization point holds
POINT_TRACES = {
    "preact": ("preact",),
    "gate": ("i", "f", "o"),
    "cand": ("g",),
    "cell": ("c",),
    "tanh_cell": ("tanh_cell",),
    "h": ("h",),
}
#: signals whose error is also kept per time step
PER_STEP = ("h", "c")
OVERFLOW_WORD = {
    "SAT": "saturated",
    "SAT_SYM": "saturated",
    "SAT_ZERO": "zeroed",
    "WRAP": "wrapped",
}
#: trace elements (sequences x steps x values) per chunk
CHUNK_ELEMENTS = 1 << 22
#: the float reference's traces are kept between sweep points up to this size
FLOAT_CACHE_BYTES = 1 << 28
TASKS = ("classify", "regress")


# --------------------------------------------------------------------------- the head


@dataclass
class Head:
    """The layer after the LSTM that turns ``h`` into the task's output: ``w h + b``.

    ``task`` is ``classify`` (the argmax is the class) or ``regress`` (the output is the
    prediction, in the labels' units). Saved as an ``.npz`` with arrays ``w`` [K, H],
    ``b`` [K] and optionally ``task`` and ``unit`` (strings).
    """

    w: np.ndarray
    b: np.ndarray
    task: str | None = None
    unit: str = ""
    source: str = ""

    def apply(self, h: np.ndarray) -> np.ndarray:
        return h @ self.w.T + self.b


def load_head(path) -> Head:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"head file {str(path)!r} does not exist")
    with np.load(path, allow_pickle=False) as data:
        missing = {"w", "b"} - set(data.files)
        if missing:
            raise ValueError(
                f"{path.name} lacks {', '.join(sorted(missing))}; a head .npz holds w [K, H], "
                f"b [K] and optionally task ('classify' or 'regress') and unit"
            )
        w = np.asarray(data["w"], dtype=np.float64)
        b = np.asarray(data["b"], dtype=np.float64)
        task = str(data["task"]) if "task" in data.files else None
        unit = str(data["unit"]) if "unit" in data.files else ""
    if w.ndim != 2 or b.shape != (w.shape[0],):
        raise ValueError(f"{path.name}: w must be [K, H] and b [K], not {w.shape} and {b.shape}")
    if task is not None and task not in TASKS:
        raise ValueError(f"{path.name}: task must be 'classify' or 'regress', not {task!r}")
    return Head(w, b, task, unit, source=str(path))


# --------------------------------------------------------------------------- statistics


class ErrorStats:
    """Running error statistics of ``got`` against ``ref`` over chunks of [n, T, k] arrays."""

    def __init__(self, t_len: int, per_step: bool = False):
        self.sq_err = 0.0
        self.sq_ref = 0.0
        self.sum_err = 0.0
        self.max_abs = 0.0
        self.count = 0
        self.per_step = per_step
        self.sq_err_t = np.zeros(t_len)
        self.max_t = np.zeros(t_len)
        self.count_t = 0

    def add(self, got: np.ndarray, ref: np.ndarray) -> None:
        err = got - ref
        if err.size == 0:
            return
        abs_err = np.abs(err)
        self.sq_err += float(np.sum(err * err))
        self.sq_ref += float(np.sum(ref * ref))
        self.sum_err += float(np.sum(err))
        self.max_abs = max(self.max_abs, float(abs_err.max()))
        self.count += err.size
        if self.per_step:
            self.sq_err_t += np.sum(err * err, axis=(0, 2))
            self.max_t = np.maximum(self.max_t, abs_err.max(axis=(0, 2)))
            self.count_t += err.shape[0] * err.shape[2]

    def result(self, lsb: float | None = None) -> dict:
        n = max(self.count, 1)
        out = {
            "max_abs": self.max_abs,
            "rmse": math.sqrt(self.sq_err / n),
            "mean": self.sum_err / n,
            "sqnr_db": sqnr_db(self.sq_ref, self.sq_err),
            "count": self.count,
        }
        if lsb is not None:
            out["max_lsb"] = self.max_abs / lsb
            out["rmse_lsb"] = out["rmse"] / lsb
        return out

    def steps(self) -> dict:
        n = max(self.count_t, 1)
        return {"rmse": np.sqrt(self.sq_err_t / n).tolist(), "max_abs": self.max_t.tolist()}


def sqnr_db(signal_energy: float, noise_energy: float) -> float:
    """10 log10(signal / noise); +inf when there is no noise, -inf when there is no signal."""
    if noise_energy == 0:
        return math.inf
    if signal_energy == 0:
        return -math.inf
    return 10 * math.log10(signal_energy / noise_energy)


class RangeStats:
    """Running range of the float values a quantization point would hold."""

    def __init__(self, fmt: Format):
        self.fmt = fmt
        self.lo = math.inf
        self.hi = -math.inf
        self.sq = 0.0
        self.count = 0
        self.outside = 0

    def add(self, values: np.ndarray) -> None:
        if values.size == 0:
            return
        self.lo = min(self.lo, float(values.min()))
        self.hi = max(self.hi, float(values.max()))
        self.sq += float(np.sum(values * values))
        self.count += values.size
        # a value rounds into range if it is within half an LSB of it: count the clear misses
        half = self.fmt.lsb / 2
        self.outside += int(
            np.count_nonzero(
                (values < self.fmt.value_min - half) | (values > self.fmt.value_max + half)
            )
        )

    def result(self, overflowed: int) -> dict:
        f = self.fmt
        need = int_bits_needed(self.lo, self.hi, signed=f.signed)
        return {
            "format": str(f),
            "format_min": f.value_min,
            "format_max": f.value_max,
            "lsb": f.lsb,
            "min": self.lo,
            "max": self.hi,
            "rms": math.sqrt(self.sq / max(self.count, 1)),
            "count": self.count,
            "outside": self.outside,
            "overflowed": overflowed,
            "overflow_mode": OVERFLOW_WORD[f.o],
            "int_bits": f.int_bits,
            "int_bits_needed": need,
            "headroom_bits": None if need is None else f.int_bits - need,
        }


def int_bits_needed(lo: float, hi: float, *, signed: bool) -> int | None:
    """The fewest integer bits I (sign included for signed) whose range holds [lo, hi].

    A format with I integer bits holds values up to ``2**(I-1)`` (signed) or ``2**I``
    (unsigned), less one LSB; a value that reaches the bound exactly is taken to fit, as it
    costs at most one LSB when saturated. ``None`` when there are no values.
    """
    if not math.isfinite(lo) or not math.isfinite(hi):
        return None
    if not signed and lo < 0:
        return None  # no unsigned format holds it
    mag = max(abs(lo), abs(hi))
    if mag == 0:
        return 1 if signed else 0
    if not signed:
        return math.ceil(math.log2(mag))
    # -2**(I-1) itself is a code, +2**(I-1) saturates one LSB short: both taken to fit
    return math.ceil(math.log2(mag)) + 1


# --------------------------------------------------------------------------- PWL in float


def pwl_function(table: PwlTable):
    """The table as a function of real inputs, in float arithmetic: SPEC §3 without the
    rounding of the input and of the output (the coefficients are the table's codes)."""
    in_fmt = table.in_fmt
    bps = in_fmt.codes_to_values(table.breakpoints)
    hi = float(in_fmt.codes_to_values(table.x_hi))
    a = table.ca_fmt.codes_to_values(table.intercepts)
    b = table.cb_fmt.codes_to_values(table.slopes)

    def evaluate(v):
        vc = np.clip(v, bps[0], hi)
        s = np.searchsorted(bps, vc, side="right") - 1
        return a[s] + b[s] * (vc - bps[s])

    return evaluate


def table_report(act: str, table: PwlTable, settings: dict) -> dict:
    err = table.error(ACTIVATIONS[act][2])
    return {
        "activation": act,
        "function": err["function"],
        "in": str(table.in_fmt),
        "out": str(table.out_fmt),
        "intercept_format": str(table.ca_fmt),
        "slope_format": str(table.cb_fmt),
        "describe": describe(table),
        "kind": table.info.get("kind", "table"),
        "segments": err["segments"],
        "lower": float(table.in_fmt.codes_to_values(table.breakpoints[0])),
        "upper": float(table.in_fmt.codes_to_values(table.x_hi)),
        "max_abs": err["max_abs"],
        "mean_abs": err["mean_abs"],
        "max_lsb": err["max_lsb"],
        "mean_lsb": err["mean_lsb"],
        "worst_input": float(table.in_fmt.codes_to_values(err["worst_input_code"])),
        "settings": {k: v for k, v in settings.items() if not isinstance(v, dict)},
    }


# --------------------------------------------------------------------------- the task


def label_steps(labels: np.ndarray, n: int, t_len: int, k_out: int, task: str) -> str:
    """``last`` when the labels score the last step, ``all`` when they score every step."""
    if labels.shape[0] != n:
        raise ValueError(f"labels hold {labels.shape[0]} rows for {n} input sequences")
    if task == "classify":
        if labels.shape == (n,):
            return "last"
        if labels.shape == (n, t_len):
            return "all"
        raise ValueError(f"class labels must be [N={n}] or [N, T={t_len}], not {labels.shape}")
    if labels.shape in ((n,), (n, k_out)) and not (labels.ndim == 2 and k_out == 1):
        return "last"
    if labels.shape in ((n, t_len), (n, t_len, k_out)) and (labels.ndim == 3 or k_out == 1):
        return "all"
    if labels.shape == (n, 1):
        return "last"
    raise ValueError(
        f"labels for a {k_out}-output regression must be [N], [N, K], [N, T] or [N, T, K] "
        f"with N={n}, T={t_len}, K={k_out}; not {labels.shape}"
    )


def task_of(labels: np.ndarray, head: Head | None) -> str:
    if head is not None and head.task:
        return head.task
    return "classify" if labels.dtype.kind in "iub" else "regress"


def task_scores(pred: np.ndarray, labels: np.ndarray, task: str) -> dict:
    """The task's metric for one model's outputs ``pred`` ([..., K]) against ``labels``."""
    if task == "classify":
        cls = pred.argmax(axis=-1)
        valid = labels >= 0
        return {"accuracy": float(np.mean(cls[valid] == labels[valid]))}
    if pred.shape[-1] == 1 and pred.ndim == labels.ndim + 1:
        pred = pred[..., 0]
    pred = pred.reshape(labels.shape)
    valid = ~np.isnan(labels)
    err = pred[valid] - labels[valid]
    return {
        "rmse": float(np.sqrt(np.mean(err * err))),
        "mae": float(np.mean(np.abs(err))),
        "max_abs": float(np.max(np.abs(err))),
    }


def task_summary(preds: dict[str, np.ndarray], labels, task, head, steps) -> dict:
    out = {
        "task": task,
        "metric": "accuracy" if task == "classify" else "rmse",
        "higher_is_better": task == "classify",
        "steps": steps,
        "head": head.source if head is not None else None,
        "unit": head.unit if head is not None else "",
        "labels": int(np.count_nonzero(labels >= 0 if task == "classify" else ~np.isnan(labels))),
    }
    for model, pred in preds.items():
        out[model] = task_scores(pred, labels, task)
    if task == "classify":
        ref = preds["float"].argmax(-1)
        out["agreement"] = {m: float(np.mean(p.argmax(-1) == ref)) for m, p in preds.items()}
    metric = out["metric"]
    out["drop"] = {
        m: (out["float"][metric] - out[m][metric]) * (1 if task == "classify" else -1)
        for m in preds
    }
    return out


# --------------------------------------------------------------------------- measuring


def check_input(x, input_size: int) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"input data must hold numbers, not dtype {arr.dtype}")
    if arr.ndim != 3 or arr.shape[2] != input_size:
        raise ValueError(
            f"input data must be [N, T, I={input_size}] (sequences, steps, features), not "
            f"{list(arr.shape)}"
        )
    return arr.astype(np.float64)


def total_bits(formats: dict[str, Format], peephole: bool) -> int:
    """The sum of the word lengths of every tensor in use: the cost ``tune`` minimizes."""
    return sum(f.width for t, f in formats.items() if t != "p" or peephole)


def measure(
    cfg,
    x,
    *,
    labels=None,
    head: Head | None = None,
    float_cache: dict | None = None,
    pwl: bool = True,
) -> dict:
    """Every number of the report for config ``cfg`` on float input ``x`` [N, T, I].

    ``labels`` ([N] or [N, T], see :func:`label_steps`) and ``head`` give the task metric.
    ``float_cache``, a dict kept by the caller, holds the float reference's traces between
    calls with the same model and data (sweeps and tuning change only the formats). Without
    ``pwl`` the tables-only model is skipped (its numbers are then those of ``float``).
    """
    qm = cfg.qmodel
    fm = cfg.float_model
    x = check_input(x, qm.input_size)
    n, t_len, _ = x.shape
    h_size = qm.hidden_size
    fmts = qm.formats
    tables_only = {act: pwl_function(qm.tables[act]) for act in ACTIVATIONS}

    task = steps = None
    if labels is not None:
        labels = np.asarray(labels)
        task = task_of(labels, head)
        k_out = head.w.shape[0] if head is not None else h_size
        steps = label_steps(labels, n, t_len, k_out, task)
        if head is not None and head.w.shape[1] != h_size:
            raise ValueError(
                f"head {Path(head.source).name} takes h of {head.w.shape[1]} values; this LSTM "
                f"has H={h_size}"
            )
        if head is None and task == "regress" and labels.ndim in (1,) and h_size != 1:
            raise ValueError(
                f"labels of one value per sequence need a head that maps H={h_size} to one "
                f"output; pass --head HEAD.npz (w [1, H], b [1])"
            )

    errs = {
        m: {s: ErrorStats(t_len, per_step=s in PER_STEP) for s in SIGNALS} for m in ("pwl", "fixed")
    }
    ranges = {t: RangeStats(fmts[t]) for t in TENSORS if t in fmts}
    preds = {"float": [], "pwl": [], "fixed": []}
    overflow = {t: 0 for t in ranges}

    x_codes, overflow["x"] = qm.formats["x"].from_float_counted(x, what="input x")
    ranges["x"].add(x)
    for k in ("w", "r", "b", "p"):
        arr = getattr(fm, k)
        if arr is not None and k in ranges:
            ranges[k].add(arr)
            overflow[k] = cfg.weight_overflow.get(k, 0)

    chunk = max(1, CHUNK_ELEMENTS // max(1, t_len * h_size * 11))
    if float_cache is not None and n * t_len * h_size * 11 * 8 > FLOAT_CACHE_BYTES:
        float_cache = None  # too large to keep: run the float model again at every point
    for lo in range(0, n, chunk):
        sl = slice(lo, min(n, lo + chunk))
        if float_cache is not None and (x.shape, lo) in float_cache:
            ref = float_cache[(x.shape, lo)]
        else:
            ref = run_float(fm, x[sl], output="sequence", trace=True)[1]
            if float_cache is not None:
                float_cache[(x.shape, lo)] = ref
        approx = ref
        if pwl:
            approx = run_float(
                fm,
                x[sl],
                output="sequence",
                sigmoid=tables_only["sigmoid"],
                tanh=tables_only["tanh"],
                tanh_cell=tables_only["tanh_cell"],
                trace=True,
            )[1]
        res = run_fixed(qm, x_codes[sl], trace=True)
        for point, count in res.overflow.items():
            overflow[point] += count
        fixed = {k: fmts[TRACE_FORMAT[k]].codes_to_values(v) for k, v in res.trace.items()}
        for point, keys in POINT_TRACES.items():
            for k in keys:
                ranges[point].add(ref[k])
        for sig, (k, block) in SIGNALS.items():
            cols = slice(None) if block is None else slice(block * h_size, (block + 1) * h_size)
            errs["pwl"][sig].add(approx[k][..., cols], ref[k][..., cols])
            errs["fixed"][sig].add(fixed[k][..., cols], ref[k][..., cols])
        if labels is not None:
            for m, tr in (("float", ref), ("pwl", approx), ("fixed", fixed)):
                h = tr["h"] if steps == "all" else tr["h"][:, -1]
                preds[m].append(head.apply(h) if head is not None else h)

    out = {
        "config": config_summary(cfg),
        "data": {"sequences": n, "steps": t_len, "input_size": qm.input_size},
        "total_bits": total_bits(fmts, qm.peephole),
        "ranges": {t: r.result(overflow[t]) for t, r in ranges.items()},
        "errors": {
            m: {
                s: e.result(fmts[TRACE_FORMAT[SIGNALS[s][0]]].lsb if m == "fixed" else None)
                for s, e in by_sig.items()
            }
            for m, by_sig in errs.items()
        },
        "weights": weight_errors(cfg),
        "per_step": {m: {s: errs[m][s].steps() for s in PER_STEP} for m in ("pwl", "fixed")},
        "tables": {
            act: table_report(act, qm.tables[act], cfg.table_settings(act)) for act in ACTIVATIONS
        },
        "task": None,
    }
    out["growth"] = {m: growth(out["per_step"][m]["h"]["rmse"]) for m in ("pwl", "fixed")}
    if labels is not None:
        stacked = {m: np.concatenate(p) for m, p in preds.items()}
        out["task"] = task_summary(stacked, labels, task, head, steps)
    return out


def weight_errors(cfg) -> dict:
    """Error of each quantized weight array against the float weights."""
    qm, fm = cfg.qmodel, cfg.float_model
    out = {}
    for k in ("w", "r", "b", "p"):
        arr = getattr(fm, k)
        if arr is None:
            continue
        e = ErrorStats(1)
        got = qm.formats[k].codes_to_values(getattr(qm, k))
        e.add(got.reshape(1, 1, -1), arr.reshape(1, 1, -1))
        out[k] = e.result(qm.formats[k].lsb)
    return out


def growth(rmse_t: list[float]) -> dict:
    """Does the error grow along the sequence? RMSE over the last quarter of the steps
    against the first quarter (after the first step)."""
    r = np.asarray(rmse_t)
    t_len = r.shape[0]
    q = max(1, t_len // 4)
    first = float(np.sqrt(np.mean(r[:q] ** 2)))
    last = float(np.sqrt(np.mean(r[-q:] ** 2)))
    ratio = last / first if first > 0 else (math.inf if last > 0 else 1.0)
    verdict = "grows" if ratio > 2 else ("shrinks" if ratio < 0.5 else "stays level")
    return {"first_quarter_rmse": first, "last_quarter_rmse": last, "ratio": ratio,
            "verdict": verdict}  # fmt: skip


def config_summary(cfg) -> dict:
    qm = cfg.qmodel
    return {
        "name": cfg.name,
        "source": str(cfg.source) if cfg.source else None,
        "model": str(cfg.model_path),
        "output": cfg.output,
        "input_size": qm.input_size,
        "hidden_size": qm.hidden_size,
        "peephole": qm.peephole,
        "formats": {t: str(f) for t, f in qm.formats.items()},
        "activations": {a: cfg.table_settings(a) for a in ACTIVATIONS},
    }
