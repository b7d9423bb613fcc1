"""How far a config's fixed-point network strays from float, measured on the user's data.

:func:`measure` runs three models over the same float input ``x`` [N, T, I]:

- ``float``: the float64 network of SPEC §2b with float weights and exact σ and tanh (the
  reference);
- ``pwl``: the same float arithmetic with each LSTM layer's PWL tables as its activations,
  so its error is the error the tables alone cause;
- ``fixed``: the bit-accurate network (input, weights and every tensor quantized).

and returns plain numbers (JSON-ready), every one named ``<layer>.<tensor>`` (``lstm2.cell``,
``dense1.out``; ``y`` is the network's output): per quantization point of every layer the
observed range against the format's and how many values overflowed; per internal signal
of every layer the error of ``pwl`` and ``fixed`` against ``float`` (max abs, RMSE, SQNR),
so the error at each layer's output shows where it grows; the error of ``y`` (and of each
LSTM layer's ``h`` and ``c``) per time step; each table's exhaustive error; with labels, the
task's own metric for all three. Sequences go through in chunks, so the data may be larger
than its traces would be.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.formats import Format
from model.network import run_fixed, run_float
from model.pwl import PwlTable, describe
from model.qmodel import ACTIVATIONS, DENSE_TENSORS, TENSORS

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


def layer_tensors(net) -> dict[str, Format]:
    """Every tensor of the network as ``<layer>.<tensor>``, in order: an LSTM layer's SPEC §2
    names (``x`` only for the first: the ``x`` of a layer above is the ``h`` below it, one
    tensor; ``p`` only with peepholes), a dense layer's ``w``, ``b``, ``out``. These are the
    knobs of ``sweep`` and ``tune`` and the rows of the report's range table."""
    out = {}
    for k, (lname, layer) in enumerate(zip(net.layer_names, net.layers)):
        if layer.kind == "lstm":
            names = [t for t in TENSORS if (t != "p" or layer.peephole) and (t != "x" or k == 0)]
        else:
            names = list(DENSE_TENSORS)
        for t in names:
            out[f"{lname}.{t}"] = layer.formats[t]
    return out


def total_bits(net) -> int:
    """The sum of the word lengths of every tensor of every layer: the cost ``tune``
    minimizes (a tensor shared by two layers, an ``h`` that is the next ``x``, counts once)."""
    return sum(f.width for f in layer_tensors(net).values())


def signal_names(net) -> list[str]:
    """The signals whose error the report gives: each LSTM layer's :data:`SIGNALS` and each
    dense layer's ``out``, as ``<layer>.<signal>``; then ``y``, the network's output."""
    out = []
    for lname, layer in zip(net.layer_names, net.layers):
        sigs = SIGNALS if layer.kind == "lstm" else ("out",)
        out += [f"{lname}.{s}" for s in sigs]
    return [*out, "y"]


def layer_output(lname: str) -> str:
    """The signal at the output of a layer: ``lstm2.h``, ``dense1.out``."""
    return f"{lname}.h" if lname.startswith("lstm") else f"{lname}.out"


def _steps3(a: np.ndarray) -> np.ndarray:
    """[N, T, k] as it is, [N, k] (a ``last`` output) as [N, 1, k]."""
    return a if a.ndim == 3 else a[:, None, :]


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

    Every key names a tensor of one layer, ``<layer>.<tensor>`` (``lstm2.cell``,
    ``dense1.out``), and ``y`` is the network's output. ``labels`` ([N] or [N, T], see
    :func:`label_steps`) give the task metric, through the network's dense layers or, for
    a network without them, through ``head`` (the float layer after the LSTM).
    ``float_cache``, a dict kept by the caller, holds the float reference's traces between
    calls with the same model and data (sweeps and tuning change only the formats). Without
    ``pwl`` the tables-only model is skipped (its numbers are then those of ``float``).
    """
    net = cfg.network
    fnet = cfg.float_model
    names = net.layer_names
    x = check_input(x, net.input_size)
    n, t_len, _ = x.shape
    has_dense = bool(net.dense_layers)
    if head is not None and has_dense:
        dense = ", ".join(n_ for n_ in names if n_.startswith("dense"))
        raise ValueError(
            f"the model has its own dense layers ({dense}): they are the head, so a head file "
            f"({Path(head.source).name or 'head'}) is only for a config of LSTM layers alone; "
            f"remove --head, or head.npz beside the config"
        )
    tables_only = [
        {act: pwl_function(layer.tables[act]) for act in ACTIVATIONS} for layer in net.lstm_layers
    ]

    task = steps = None
    if labels is not None:
        labels = np.asarray(labels)
        task = task_of(labels, head)
        k_out = head.w.shape[0] if head is not None else net.output_size
        steps = label_steps(labels, n, t_len, k_out, task)
        if steps == "all" and net.output == "last":
            raise ValueError(
                f"labels of every step ({list(labels.shape)}) need output = 'sequence'; this "
                f"network gives only its last step"
            )
        if head is not None and head.w.shape[1] != net.output_size:
            raise ValueError(
                f"head {Path(head.source).name} takes h of {head.w.shape[1]} values; this LSTM "
                f"has H={net.output_size}"
            )
        if head is None and task == "regress" and labels.ndim == 1 and net.output_size != 1:
            raise ValueError(
                f"labels of one value per sequence need a head that maps the "
                f"{net.output_size} outputs to one; pass --head HEAD.npz (w [1, H], b [1])"
            )

    sigs = signal_names(net)
    per_step = [f"{ln}.{s}" for ln in names if ln.startswith("lstm") for s in PER_STEP]
    if net.output == "sequence":
        per_step.append("y")
    errs = {
        m: {s: ErrorStats(t_len, per_step=s in per_step) for s in sigs} for m in ("pwl", "fixed")
    }
    tensors = layer_tensors(net)
    ranges = {t: RangeStats(f) for t, f in tensors.items()}
    overflow = {t: 0 for t in ranges}
    preds = {"float": [], "pwl": [], "fixed": []}

    x_codes, overflow[f"{names[0]}.x"] = net.in_fmt.from_float_counted(x, what="input x")
    ranges[f"{names[0]}.x"].add(x)
    for lname, fl in zip(names, fnet.layers):
        for k in ("w", "r", "b", "p"):
            arr = getattr(fl, k, None)
            key = f"{lname}.{k}"
            if arr is not None and key in ranges:
                ranges[key].add(arr)
                overflow[key] = cfg.weight_overflow.get(key, 0)

    width = sum(la.hidden_size * 11 for la in net.lstm_layers)
    chunk = max(1, CHUNK_ELEMENTS // max(1, t_len * width))
    if float_cache is not None and n * t_len * width * 8 > FLOAT_CACHE_BYTES:
        float_cache = None  # too large to keep: run the float model again at every point
    for lo in range(0, n, chunk):
        sl = slice(lo, min(n, lo + chunk))
        if float_cache is not None and (x.shape, lo) in float_cache:
            y_ref, ref = float_cache[(x.shape, lo)]
        else:
            y_ref, ref = run_float(fnet, x[sl], output=net.output, trace=True)
            if float_cache is not None:
                float_cache[(x.shape, lo)] = (y_ref, ref)
        y_pwl, approx = y_ref, ref
        if pwl:
            y_pwl, approx = run_float(
                fnet, x[sl], output=net.output, activations=tables_only, trace=True
            )
        res = run_fixed(net, x_codes[sl], trace=True)
        for point, count in res.overflow.items():
            overflow[point] += count
        y_fixed = net.out_fmt.codes_to_values(res.y_codes)
        for lname, layer, lres, tr_ref, tr_pwl in zip(names, net.layers, res.layers, ref, approx):
            if layer.kind == "lstm":
                fixed = {
                    k: layer.formats[TRACE_FORMAT[k]].codes_to_values(v)
                    for k, v in lres.trace.items()
                }
                for point, keys in POINT_TRACES.items():
                    for k in keys:
                        ranges[f"{lname}.{point}"].add(tr_ref[k])
                h_size = layer.hidden_size
                for sig, (k, block) in SIGNALS.items():
                    cols = (
                        slice(None)
                        if block is None
                        else slice(block * h_size, (block + 1) * h_size)
                    )
                    key = f"{lname}.{sig}"
                    errs["pwl"][key].add(tr_pwl[k][..., cols], tr_ref[k][..., cols])
                    errs["fixed"][key].add(fixed[k][..., cols], tr_ref[k][..., cols])
            else:
                got = layer.out_fmt.codes_to_values(lres.trace["out"])
                ranges[f"{lname}.out"].add(tr_ref["out"])
                errs["pwl"][f"{lname}.out"].add(_steps3(tr_pwl["out"]), _steps3(tr_ref["out"]))
                errs["fixed"][f"{lname}.out"].add(_steps3(got), _steps3(tr_ref["out"]))
        errs["pwl"]["y"].add(_steps3(y_pwl), _steps3(y_ref))
        errs["fixed"]["y"].add(_steps3(y_fixed), _steps3(y_ref))
        if labels is not None:
            for m, y in (("float", y_ref), ("pwl", y_pwl), ("fixed", y_fixed)):
                y = y[:, -1] if steps == "last" and y.ndim == 3 else y
                preds[m].append(head.apply(y) if head is not None else y)

    lsb = {s: _signal_lsb(net, s) for s in sigs}
    out = {
        "config": config_summary(cfg),
        "data": {"sequences": n, "steps": t_len, "input_size": net.input_size},
        "total_bits": total_bits(net),
        "ranges": {t: r.result(overflow[t]) for t, r in ranges.items()},
        "errors": {
            m: {s: e.result(lsb[s] if m == "fixed" else None) for s, e in by_sig.items()}
            for m, by_sig in errs.items()
        },
        "layer_outputs": [layer_output(ln) for ln in names],
        "weights": weight_errors(cfg),
        "per_step": {m: {s: errs[m][s].steps() for s in per_step} for m in ("pwl", "fixed")},
        "tables": {
            f"{lname}.{act}": {
                "layer": lname,
                **table_report(act, layer.tables[act], cfg.table_settings(act, lname)),
            }
            for lname, layer in zip(names, net.layers)
            if layer.kind == "lstm"
            for act in ACTIVATIONS
        },
        "task": None,
    }
    # the error along the sequence: of the network's output, or (with output "last") of
    # the top LSTM layer's h, the last series that has every step
    growth_of = "y" if "y" in per_step else layer_output(net.layer_names[len(net.lstm_layers) - 1])
    out["growth_signal"] = growth_of
    out["growth"] = {m: growth(out["per_step"][m][growth_of]["rmse"]) for m in ("pwl", "fixed")}
    if labels is not None:
        stacked = {m: np.concatenate(p) for m, p in preds.items()}
        out["task"] = task_summary(stacked, labels, task, head, steps)
        if has_dense:
            dense = [ln for ln in names if ln.startswith("dense")]
            out["task"]["head"] = None
            out["task"]["head_layers"] = dense
    return out


def _signal_lsb(net, sig: str) -> float:
    if sig == "y":
        return net.out_fmt.lsb
    lname, name = sig.split(".", 1)
    layer = net.layers[net.layer_names.index(lname)]
    if layer.kind == "dense":
        return layer.out_fmt.lsb
    return layer.formats[TRACE_FORMAT[SIGNALS[name][0]]].lsb


def weight_errors(cfg) -> dict:
    """Error of each quantized weight array against the float weights, ``<layer>.<w|r|b|p>``."""
    net, fnet = cfg.network, cfg.float_model
    out = {}
    for lname, layer, fl in zip(net.layer_names, net.layers, fnet.layers):
        for k in ("w", "r", "b", "p"):
            arr = getattr(fl, k, None)
            if arr is None:
                continue
            e = ErrorStats(1)
            got = layer.formats[k].codes_to_values(getattr(layer, k))
            e.add(got.reshape(1, 1, -1), arr.reshape(1, 1, -1))
            out[f"{lname}.{k}"] = e.result(layer.formats[k].lsb)
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
    net = cfg.network
    layers = []
    for lname, layer in zip(net.layer_names, net.layers):
        item = {
            "name": lname,
            "kind": layer.kind,
            "input_size": layer.input_size,
            "output_size": layer.output_size,
            "formats": {t: str(f) for t, f in layer.formats.items()},
        }
        if layer.kind == "lstm":
            item["peephole"] = layer.peephole
        else:
            item["activation"] = layer.activation
        layers.append(item)
    return {
        "name": cfg.name,
        "source": str(cfg.source) if cfg.source else None,
        "model": str(cfg.model_path),
        "output": net.output,
        "input_size": net.input_size,
        "output_size": net.output_size,
        "layers": layers,
        "formats": {t: str(f) for t, f in layer_tensors(net).items()},
        "activations": {
            f"{lname}.{a}": cfg.table_settings(a, lname)
            for lname in net.layer_names
            if lname.startswith("lstm")
            for a in ACTIVATIONS
        },
    }
