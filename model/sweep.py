"""Precision sweeps: the report's metrics over a grid of word lengths and table sizes.

An axis is written ``NAMES=VALUES``:

- ``w=8..16`` the word length W of tensor ``w`` (its integer bits I stay, so the fraction
  grows); ``w,r=8..16`` varies both together; ``weights`` stands for w, r, b (and p),
  ``all`` for every tensor. A plain name means that tensor in every LSTM layer
  (``out``: in every dense layer), ``lstm2.cell`` or ``dense1.out`` one layer's; ``weights``
  and ``all`` cover every layer, the dense ones too;
- ``preact.I=4..7`` the integer bits I instead (W stays);
- ``sigmoid.segments=8..256`` a table setting of every LSTM layer, ``lstm2.sigmoid.segments``
  of one (powers of two for ``segments``; ``tables`` stands for all three tables);
  setting ``segments`` on an ``auto`` table makes it ``uniform``. ``max_error_lsb=0.5..8``
  (powers of two) and ``range_log2`` work the same.

``A..B`` is every integer (word lengths, integer bits, range_log2) or every power of two
(segments, max_error_lsb) from A to B; ``A..B:S`` steps by S; ``A,B,C`` lists values.

Every finished point is appended to ``DIR/sweep.jsonl`` at once, under a key that names
the config it ran (its changed formats and table settings); a sweep started again in the
same folder, with the same config and data, skips the points it finds there, whichever
axes they came from.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.config import ACTIVATIONS, ConfigError
from model.formats import Format
from model.measure import measure
from model.progress import Progress
from model.qmodel import DENSE_TENSORS, TENSORS

TABLE_KEYS = {"segments": "pow2", "max_error_lsb": "pow2", "range_log2": "int"}
TENSOR_GROUPS = {"weights": ("w", "r", "b", "p"), "all": (*TENSORS, "out")}
TABLE_GROUPS = {"tables": tuple(ACTIVATIONS)}
#: tensors only dense layers have: a plain name means every dense layer's
DENSE_ONLY = ("out",)
_LAYER_RE = re.compile(r"^(lstm|dense)[1-9][0-9]*$")
FORMAT = 2  # of sweep.jsonl: 2 keys every change by layer


class SweepError(ValueError):
    """An axis or a sweep folder that cannot be used; the message says what to change."""


@dataclass(frozen=True)
class Axis:
    """One axis of the grid: what it changes and the values it takes."""

    label: str  # the left side, as written: "w,r", "preact.I", "sigmoid.segments"
    targets: tuple[str, ...]  # tensors, or activations for a table axis
    kind: str  # "width", "int_bits" or "table"
    key: str | None  # the table setting of a table axis
    values: tuple


def _values(text: str, how: str, label: str) -> tuple:
    """``A..B[:S]`` or ``A,B,C`` as numbers; ``how`` is ``int`` or ``pow2``."""
    num = float if how == "pow2" else int
    try:
        if ".." in text:
            lo_text, _, rest = text.partition("..")
            hi_text, _, step_text = rest.partition(":")
            lo, hi = num(lo_text), num(hi_text)
            if hi < lo:
                raise SweepError(f"--vary {label}={text}: the range runs backwards")
            if how == "pow2":
                if step_text:
                    raise SweepError(f"--vary {label}={text}: powers of two take no :STEP")
                if lo <= 0:
                    raise SweepError(f"--vary {label}={text}: powers of two start above 0")
                out, v = [], 2.0 ** math.ceil(math.log2(lo))
                while v <= hi:
                    out.append(v)
                    v *= 2
            else:
                step = int(step_text) if step_text else 1
                if step < 1:
                    raise SweepError(f"--vary {label}={text}: the step must be at least 1")
                out = list(range(lo, hi + 1, step))
        else:
            out = [num(v) for v in text.split(",") if v.strip()]
    except ValueError as e:
        if isinstance(e, SweepError):
            raise
        kind = "integers" if how == "int" else "numbers"
        raise SweepError(
            f"--vary {label}={text}: the values must be {kind}, written A..B, A..B:STEP or A,B,C"
        ) from None
    if not out:
        raise SweepError(f"--vary {label}={text} gives no values")
    if how == "pow2":
        out = [int(v) if v == int(v) else v for v in out]
    return tuple(out)


def layer_layout(net, peephole: bool) -> list[tuple[str, str, bool]]:
    """(name, kind, peephole) of each layer: of ``net``, or one LSTM layer."""
    if net is None:
        return [("lstm1", "lstm", peephole)]
    return [
        (n, la.kind, la.kind == "lstm" and la.peephole)
        for n, la in zip(net.layer_names, net.layers)
    ]


def _layer_tensors(lname: str, kind: str, peephole: bool, first: bool) -> list[str]:
    if kind == "dense":
        return list(DENSE_TENSORS)
    return [t for t in TENSORS if (t != "p" or peephole) and (t != "x" or first)]


def expand_name(name: str, layout, table: bool, label: str) -> list[str]:
    """One name of an axis as ``<layer>.<tensor>`` (or ``<layer>.<table>``) keys."""
    lstm = [(n, k, p) for n, k, p in layout if k == "lstm"]
    names = [n for n, _, _ in layout]
    lname, dot, rest = name.partition(".")
    if dot:
        if lname not in names:
            raise SweepError(
                f"--vary {label}: {lname!r} is not a layer of this network ({', '.join(names)})"
            )
        layers = [entry for entry in layout if entry[0] == lname]
        name = rest
    else:
        layers = lstm if name not in DENSE_ONLY else [e for e in layout if e[1] == "dense"]
        if name in ("weights", "all") or name in TABLE_GROUPS:
            layers = layout if not table else lstm
    out = []
    for lname, kind, peep in layers:
        first = lname == layout[0][0]
        if table:
            if kind != "lstm":
                raise SweepError(f"--vary {label}: {lname} is a dense layer; it has no tables")
            acts = TABLE_GROUPS.get(name, (name,))
            out += [f"{lname}.{a}" for a in acts]
            continue
        own = _layer_tensors(lname, kind, peep, first)
        if name in TENSOR_GROUPS:
            out += [f"{lname}.{t}" for t in own if t in TENSOR_GROUPS[name]]
        elif name in own:
            out.append(f"{lname}.{name}")
        elif name == "x" and kind == "lstm":
            if dot:
                raise SweepError(
                    f"--vary {label}: {lname}'s x is the h of the layer below; vary that h"
                )
        else:
            known = ", ".join(own)
            raise SweepError(
                f"--vary {label}: {lname} has no tensor {name!r}; it has {known} (and the "
                f"groups {', '.join(TENSOR_GROUPS)})"
            )
    return out


def parse_axis(text: str, *, peephole: bool = False, net=None) -> Axis:
    """An axis from its command-line text (see the module's docstring), for the layers of
    ``net`` (a QuantizedNetwork; default one LSTM layer, with ``peephole``). Targets are
    ``<layer>.<tensor>`` or ``<layer>.<table>`` keys."""
    layout = layer_layout(net, peephole)
    label, eq, values = text.partition("=")
    label = label.strip()
    if not eq or not label or not values.strip():
        raise SweepError(f"--vary {text!r}: write NAME=A..B, for example w=8..16")
    items = [n.strip() for n in label.split(",")]
    # the setting after the last dot of the last item (.I, .segments) applies to every item
    head, dot, key = items[-1].rpartition(".")
    if dot and not _LAYER_RE.match(head):
        items[-1] = head
    else:
        key = None
    if len(items) == 1 and items[0] in TABLE_KEYS and key is None:
        items, key = ["tables"], items[0]
    plain = [n.rpartition(".")[2] for n in items]
    # tanh_cell is a tensor and a table: a table setting after the dot says which
    table_only = [n for n in plain if n in TABLE_GROUPS or (n in ACTIVATIONS and n not in TENSORS)]
    if key in TABLE_KEYS or table_only:
        if not all(n in ACTIVATIONS or n in TABLE_GROUPS for n in plain) or key not in TABLE_KEYS:
            raise SweepError(
                f"--vary {label}: a table axis is [LAYER.]TABLE.KEY with TABLE one of "
                f"{', '.join([*ACTIVATIONS, *TABLE_GROUPS])} and KEY one of "
                f"{', '.join(TABLE_KEYS)}"
            )
        acts = []
        for n in items:
            acts += expand_name(n, layout, True, label)
        how = TABLE_KEYS[key]
        return Axis(label, tuple(dict.fromkeys(acts)), "table", key, _values(values, how, label))
    if key is not None and key != "I":
        raise SweepError(f"--vary {label}: after a tensor name only .I (integer bits) is known")
    known = set(TENSORS) | set(DENSE_TENSORS) | set(TENSOR_GROUPS)
    for n in plain:
        if n not in known:
            raise SweepError(
                f"--vary {label}: {n!r} is neither a tensor ({', '.join(TENSORS)}; dense: "
                f"{', '.join(DENSE_TENSORS)}; or {', '.join(TENSOR_GROUPS)}) nor a table "
                f"({', '.join(ACTIVATIONS)}, tables)"
            )
    tensors = []
    for n in items:
        tensors += expand_name(n, layout, False, label)
    if not tensors:
        raise SweepError(f"--vary {label} names no tensor of this network")
    kind = "int_bits" if key == "I" else "width"
    vals = _values(values, "int", label)
    if kind == "width":
        bad = [v for v in vals if not 1 <= v <= 32]
        if bad:
            raise SweepError(f"--vary {label}: word lengths run from 1 to 32, not {bad[0]}")
    return Axis(label, tuple(dict.fromkeys(tensors)), kind, None, vals)


def tensor_format(cfg, key: str) -> Format:
    """The format of ``<layer>.<tensor>`` in config ``cfg``."""
    lname, tensor = key.split(".", 1)
    return cfg.layer_formats(lname)[tensor]


def changes(base, axes: list[Axis], point: tuple) -> dict:
    """The formats and table settings that one point of the grid changes in ``base``, keyed
    ``<layer>.<tensor>`` and ``<layer>.<table>`` (as :meth:`Config.replace` takes them)."""
    fmts: dict[str, Format] = {}
    acts: dict[str, dict] = {}
    for axis, v in zip(axes, point):
        for t in axis.targets:
            if axis.kind == "table":
                s = acts.setdefault(t, {})
                s[axis.key] = v
                lname, act = t.split(".", 1)
                if axis.key == "segments" and base.table_settings(act, lname)["kind"] == "auto":
                    s.setdefault("kind", "uniform")
                continue
            f = fmts.get(t, tensor_format(base, t))
            if axis.kind == "width":
                f = Format(f.signed, int(v), f.int_bits, f.q, f.o)
            else:
                f = Format(f.signed, f.width, int(v), f.q, f.o)
            fmts[t] = f
    return {
        "formats": {t: str(f) for t, f in sorted(fmts.items())},
        "activations": {a: dict(sorted(s.items())) for a, s in sorted(acts.items())},
    }


def point_key(change: dict) -> str:
    return json.dumps(change, sort_keys=True)


# --------------------------------------------------------------------------- configs


class TableCache:
    """Configs with a point's changes; :mod:`model.config` keeps every table it built, so a
    sweep rebuilds few."""

    def configure(self, base, change: dict):
        return base.replace(formats=change["formats"], activations=change["activations"])


# --------------------------------------------------------------------------- metrics


def summarize(m: dict) -> dict:
    """The part of :func:`model.measure.measure`'s result a sweep keeps per point."""
    return {
        "total_bits": m["total_bits"],
        "formats": m["config"]["formats"],
        "errors": m["errors"],
        "weights": m["weights"],
        "overflow": {t: g["overflowed"] for t, g in m["ranges"].items()},
        "outside": {t: g["outside"] for t, g in m["ranges"].items()},
        "tables": {
            a: {"segments": t["segments"], "max_lsb": t["max_lsb"], "kind": t["kind"]}
            for a, t in m["tables"].items()
        },
        "growth": m["growth"]["fixed"]["ratio"],
        "task": m["task"],
    }


def fingerprint(base, arrays: list) -> str:
    """What a sweep's results depend on besides the grid: config, model file, data."""
    h = hashlib.sha256()
    h.update(base.to_toml().encode())
    h.update(Path(base.model_path).read_bytes())
    for arr in arrays:
        if arr is None:
            h.update(b"-")
            continue
        a = np.ascontiguousarray(arr)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def evaluate(base, change: dict, x, *, labels, head, tables: TableCache, float_cache) -> dict:
    """The metrics of one point, or the reason it cannot be built."""
    try:
        cfg = tables.configure(base, change)
        _ = cfg.network
    except (ConfigError, ValueError) as e:
        return {"error": str(e)}
    return summarize(measure(cfg, x, labels=labels, head=head, float_cache=float_cache))


# --------------------------------------------------------------------------- the results file


class ResultsFile:
    """``sweep.jsonl``: a header line, then one line per finished point, flushed at once."""

    def __init__(self, path: Path, fp: str):
        self.path = path
        self.done: dict[str, dict] = {}
        if path.exists():
            self._read(fp)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("w") as f:
                f.write(json.dumps({"lstmfx_sweep": FORMAT, "fingerprint": fp}) + "\n")

    def _read(self, fp: str) -> None:
        lines = self.path.read_text().split("\n")
        try:
            header = json.loads(lines[0])
        except json.JSONDecodeError:
            header = {}
        if header.get("fingerprint") != fp:
            raise SweepError(
                f"{self.path} holds a sweep of another config, model or data; sweep into "
                f"another folder, or delete it to start again"
            )
        good = [lines[0]]
        for line in lines[1:]:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                break  # a line cut short by an interruption: everything before it stands
            self.done[row["key"]] = row["result"]
            good.append(line)
        # drop a torn last line so that appends start on a clean line
        self.path.write_text("\n".join(good) + "\n")

    def add(self, key: str, result: dict) -> None:
        from model.report import json_safe

        line = json.dumps({"key": key, "result": json_safe(result)}, allow_nan=False)
        with self.path.open("a") as f:
            f.write(line + "\n")
            f.flush()
        self.done[key] = json.loads(line)["result"]


# --------------------------------------------------------------------------- the sweep


def grid(axes: list[Axis]) -> list[tuple]:
    return list(itertools.product(*(a.values for a in axes)))


def run_sweep(
    base,
    x,
    axes: list[Axis],
    out_dir,
    *,
    labels=None,
    head=None,
    on_point=None,
    progress: bool = True,
    stream=None,
) -> list[dict]:
    """Every point of the grid of ``axes``, resuming from ``out_dir/sweep.jsonl``.

    Returns one row per point, in grid order: ``{"point": {label: value}, "key": ...,
    "result": metrics or {"error": ...}}``. ``on_point(k, row)`` is called after each point
    computed in this run (tests interrupt a sweep through it).
    """
    if not axes:
        raise SweepError("give at least one --vary axis, for example --vary w,r=6..16")
    labels_seen = [a.label for a in axes]
    if len(set(labels_seen)) != len(labels_seen):
        raise SweepError(f"an axis is given twice: {', '.join(labels_seen)}")
    x = np.asarray(x, dtype=np.float64)
    out = Path(out_dir)
    fp = fingerprint(base, [x, labels, None if head is None else np.append(head.w, head.b)])
    results = ResultsFile(out / "sweep.jsonl", fp)
    points = grid(axes)
    keys = [point_key(changes(base, axes, p)) for p in points]
    todo = [k for k in dict.fromkeys(keys) if k not in results.done]
    bar = Progress(len(points), done=len(points) - len(todo), stream=stream) if progress else None
    tables, float_cache = TableCache(), {}
    where = {key: p for p, key in zip(points, keys)}
    for k, key in enumerate(todo):
        change = json.loads(key)
        result = evaluate(
            base, change, x, labels=labels, head=head, tables=tables, float_cache=float_cache
        )
        results.add(key, result)
        if bar:
            bar.update(" ".join(f"{a}={v}" for a, v in zip(labels_seen, where[key])))
        if on_point is not None:
            on_point(k, {"key": key, "result": results.done[key]})
    return [
        {"point": dict(zip(labels_seen, p)), "key": key, "result": results.done[key]}
        for p, key in zip(points, keys)
    ]


# --------------------------------------------------------------------------- outputs


def flat_row(row: dict) -> dict:
    """One CSV row: the point, then the headline numbers."""
    out = dict(row["point"])
    res = row["result"]
    if "error" in res:
        out["error"] = res["error"]
        return out
    fixed, pwl = res["errors"]["fixed"], res["errors"]["pwl"]
    out["total_bits"] = res["total_bits"]
    # h_* is the network's output, as the budgets of tune name it; then every signal
    for name, sig in (("h", "y"), *((s, s) for s in fixed)):
        out[f"{name}_max_abs"] = fixed[sig]["max_abs"]
        out[f"{name}_rmse"] = fixed[sig]["rmse"]
        out[f"{name}_sqnr_db"] = fixed[sig]["sqnr_db"]
    out["pwl_h_max_abs"] = pwl["y"]["max_abs"]
    out["pwl_h_rmse"] = pwl["y"]["rmse"]
    out["overflowed"] = sum(res["overflow"].values())
    for act, t in res["tables"].items():
        out[f"{act}_segments"] = t["segments"]
        out[f"{act}_max_lsb"] = t["max_lsb"]
    task = res.get("task")
    if task:
        metric = task["metric"]
        out[f"float_{metric}"] = task["float"][metric]
        out[f"fixed_{metric}"] = task["fixed"][metric]
        out[f"{metric}_drop"] = task["drop"]["fixed"]
    return out


def write_outputs(rows: list[dict], axes: list[Axis], out_dir, *, title: str) -> dict[str, Path]:
    """sweep.csv, sweep.md (with PNGs) and a self-contained sweep.html."""
    import csv

    from model.report import CSS, _html_table, _md_table, num

    out = Path(out_dir)
    flat = [flat_row(r) for r in rows]
    cols = list(dict.fromkeys(k for r in flat for k in r))
    paths = {"csv": out / "sweep.csv"}
    with paths["csv"].open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(flat)
    images = plot_sweep(rows, axes)
    for name, png in images.items():
        (out / f"{name}.png").write_bytes(png)

    shown = [a.label for a in axes] + ["total_bits", "h_max_abs", "h_rmse", "h_sqnr_db"]
    shown += ["pwl_h_rmse", "overflowed"]
    shown += [c for c in cols if c.endswith("_drop") or c.startswith("fixed_")]
    shown += [c for c in cols if c.endswith("_segments")] + (["error"] if "error" in cols else [])
    body = [[num(r.get(c)) if not isinstance(r.get(c), str) else r[c] for c in shown] for r in flat]
    intro = (
        f"{len(rows)} points over {', '.join(f'{a.label} ({len(a.values)})' for a in axes)}. "
        f"Errors (h_*) are of the network's fixed-point output against float64 (all "
        f"sequences and steps); "
        f"pwl_h_rmse is the error of the PWL tables alone. Every number: sweep.csv, sweep.jsonl."
    )
    md = [f"# {title}", "", intro, ""]
    md += [f"![{n}]({n}.png)" for n in images] + ["", _md_table(shown, body), ""]
    paths["md"] = out / "sweep.md"
    paths["md"].write_text("\n".join(md))
    import base64
    import html

    imgs = "".join(
        f'<p><img alt="{n}" src="data:image/png;base64,{base64.b64encode(p).decode()}"></p>'
        for n, p in images.items()
    )
    page = (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}'
        f"</title><style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<p>{html.escape(intro)}</p><h2>Error against bits</h2>{imgs}<h2>Every point</h2>"
        f"{_html_table(shown, body)}</body></html>\n"
    )
    paths["html"] = out / "sweep.html"
    paths["html"].write_text(page)
    return paths


def _metric_panels(rows: list[dict]) -> list[tuple[str, str, bool]]:
    """(column, axis title, log scale) of each panel of the sweep plots."""
    panels = [
        ("h_max_abs", "max abs error of h", True),
        ("h_rmse", "RMSE of h", True),
    ]
    task = next((r["result"].get("task") for r in rows if r["result"].get("task")), None)
    if task:
        m = task["metric"]
        panels.append((f"fixed_{m}", f"fixed-point {m} (float: {num_text(task, m)})", False))
    return panels


def task_value(rows: list[dict], metric: str) -> float:
    return next(r["result"]["task"]["float"][metric] for r in rows if r["result"].get("task"))


def num_text(task: dict, metric: str) -> str:
    v = task["float"][metric]
    return f"{100 * v:.2f} %" if metric == "accuracy" else f"{v:.4g}"


def plot_sweep(rows: list[dict], axes: list[Axis]) -> dict[str, bytes]:
    """Per axis, each metric against the axis' values (one line per setting of the other
    axes, or the best over them when there are many); and every point against total bits."""
    from model.report import _figure, _png

    flat = [flat_row(r) for r in rows]
    ok = [r for r in flat if "error" not in r]
    panels = _metric_panels(rows)
    images = {}
    if not ok:
        return images
    plt, fig, grid_axes = _figure(len(axes), len(panels), size=(4.2 * len(panels), 3.2 * len(axes)))
    for row, axis in enumerate(axes):
        others = [a.label for a in axes if a is not axis]
        groups: dict[tuple, list] = {}
        for r in ok:
            groups.setdefault(tuple(r[o] for o in others), []).append(r)
        for col, (metric, title, log) in enumerate(panels):
            ax = grid_axes[row, col]
            if len(groups) <= 6:
                for g, rs in groups.items():
                    rs = sorted(rs, key=lambda r: r[axis.label])
                    label = ", ".join(f"{o}={v}" for o, v in zip(others, g)) or None
                    ys = [_plottable(r[metric], log) for r in rs]
                    ax.plot([r[axis.label] for r in rs], ys, "o-", ms=4, label=label)
                if others and len(groups) > 1 and col == 0:
                    ax.legend(fontsize=7)
            else:  # the best any setting of the other axes reaches at each value
                best = {}
                higher = metric.endswith("accuracy")
                for r in ok:
                    v = r[metric]
                    if v is None:
                        continue
                    k = r[axis.label]
                    if k not in best or (v > best[k] if higher else v < best[k]):
                        best[k] = v
                ks = sorted(best)
                ax.plot(ks, [_plottable(best[k], log) for k in ks], "o-", ms=4, label="best")
                ax.legend(fontsize=7)
            if metric.startswith("fixed_"):  # the float model's score, for reference
                v = task_value(rows, metric[len("fixed_") :])
                ax.axhline(v, color="#7a8899", ls="--", lw=1)
            if log:
                ax.set_yscale("log")
            xlabel = axis.label + (" (word length, bits)" if axis.kind == "width" else "")
            ax.set_xlabel(xlabel)
            ax.set_title(title, fontsize=9)
            ax.grid(alpha=0.3)
            if axis.key in ("segments", "max_error_lsb"):
                ax.set_xscale("log", base=2)
    images["sweep_axes"] = _png(plt, fig)

    plt, fig, ax = _figure(size=(6, 4))
    ax = ax[0, 0]
    pts = [(r["total_bits"], r["h_rmse"]) for r in ok if r["h_rmse"] is not None]
    xs, ys = zip(*pts)
    ax.plot(xs, [_plottable(y, True) for y in ys], ".", color="#7a8899", label="points")
    front, best = [], math.inf
    for b, e in sorted(pts):
        if e < best:
            best = e
            front.append((b, e))
    ax.step(*zip(*front), where="post", color="#1f4e79", label="fewest bits for an error")
    ax.set_yscale("log")
    ax.set_xlabel("total bits (sum of the word lengths of all tensors)")
    ax.set_ylabel("RMSE of h")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    images["sweep_bits"] = _png(plt, fig)
    return images


def _plottable(v, log: bool):
    """None (an infinity in JSON) and zeros do not go on a log axis."""
    if v is None or (log and v <= 0):
        return np.nan
    return v
