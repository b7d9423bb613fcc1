"""The quantization report: the numbers of :func:`model.measure.measure` as one page.

:func:`write_report` writes ``report.json`` (every number), ``report.md`` (tables, with the
plots beside it as PNG files) and ``report.html`` (one self-contained file: the same
tables, the plots embedded, nothing loaded from elsewhere; one inline script marks on
``<body data-images-decoded="k/n">`` how many plots the browser could decode, which the
headless-browser test reads).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
from pathlib import Path

import numpy as np

from model.measure import ACTIVATIONS, SIGNALS, TRACE_FORMAT
from model.pwl import FUNCTIONS, spread_codes

PLOTS = ("ranges", "errors", "steps", "tables")
#: the most input codes a table's plot evaluates (wider inputs are sampled evenly)
PLOT_CODES = 1 << 18
SIGNAL_LABEL = {
    "preact_i": "preact (i)",
    "preact_f": "preact (f)",
    "preact_g": "preact (g)",
    "preact_o": "preact (o)",
    "i": "i = σ",
    "f": "f = σ",
    "g": "g = tanh",
    "o": "o = σ",
    "c": "c (cell)",
    "tanh_cell": "tanh(c)",
    "h": "h",
    "out": "out",
}


def signal_label(sig: str) -> str:
    """``lstm2.c`` as ``lstm2 c (cell)``; ``y`` as the network's output."""
    if sig == "y":
        return "y (network output)"
    lname, name = sig.split(".", 1)
    return f"{lname} {SIGNAL_LABEL.get(name, name)}"


def signal_format(r: dict, sig: str) -> str:
    """The format a signal is held in, from the report's flat ``<layer>.<tensor>`` formats."""
    fmts = r["config"]["formats"]
    if sig == "y":
        return fmts[r["layer_outputs"][-1]]
    lname, name = sig.split(".", 1)
    if name in SIGNALS:
        return fmts[f"{lname}.{TRACE_FORMAT[SIGNALS[name][0]]}"]
    return fmts[sig]


# --------------------------------------------------------------------------- numbers as text


def num(v, digits: int = 3) -> str:
    """A number for a table: 3 significant digits, ∞ for infinities, – for None."""
    if v is None:
        return "–"
    if isinstance(v, int | np.integer):
        return str(int(v))
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    if v == 0:
        return "0"
    if 1e-3 <= abs(v) < 1e5:
        return f"{v:.{digits}g}"
    return f"{v:.{digits - 1}e}"


def db(v) -> str:
    if v is None or math.isinf(v):
        return num(v)
    return f"{v:.1f}"


def json_safe(obj):
    """Infinities and NaN as None, numpy scalars as Python numbers: strict JSON."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        v = float(obj)
        return v if math.isfinite(v) else None
    return obj


# --------------------------------------------------------------------------- findings


def metric_text(task: dict, model: str) -> str:
    v = task[model][task["metric"]]
    if task["task"] == "classify":
        return f"{100 * v:.2f} %"
    unit = f" {task['unit']}" if task.get("unit") else ""
    return f"{num(v, 4)}{unit}"


def findings(r: dict) -> list[str]:
    """What a reader should take away, most important first, as sentences."""
    out = []
    fixed_h = r["errors"]["fixed"]["y"]
    pwl_h = r["errors"]["pwl"]["y"]
    h_fmt = signal_format(r, "y")
    what = (
        "h" if len(r["layer_outputs"]) == 1 else f"The network's output ({r['layer_outputs'][-1]})"
    )
    out.append(
        f"{what} against float64: max abs error {num(fixed_h['max_abs'])} "
        f"({num(fixed_h['max_lsb'])} LSB of {h_fmt}), RMSE {num(fixed_h['rmse'])}, "
        f"SQNR {db(fixed_h['sqnr_db'])} dB."
    )
    if len(r["layer_outputs"]) > 1:
        steps = [
            f"{sig.split('.')[0]} {db(r['errors']['fixed'][sig]['sqnr_db'])} dB"
            for sig in r["layer_outputs"]
        ]
        out.append("SQNR at the output of each layer, from the input up: " + ", ".join(steps) + ".")
    if fixed_h["rmse"] > 0:
        share = (pwl_h["rmse"] / fixed_h["rmse"]) ** 2
        if share > 0.5:
            out.append(
                f"The PWL tables alone cause most of it (RMSE {num(pwl_h['rmse'])} with float "
                f"arithmetic, {min(share, 1) * 100:.0f} % of the error power): lower "
                f"max_error_lsb or widen the table outputs (gate, cand, tanh_cell) before "
                f"widening anything else."
            )
        else:
            out.append(
                f"The PWL tables alone cause RMSE {num(pwl_h['rmse'])} ({share * 100:.0f} % of "
                f"the error power); the rest comes from rounding the tensors: the error table "
                f"shows where it starts."
            )
    task = r.get("task")
    if task:
        name = "accuracy" if task["task"] == "classify" else f"forecast {task['metric'].upper()}"
        line = (
            f"Task {name}: {metric_text(task, 'float')} float, {metric_text(task, 'fixed')} "
            f"fixed-point ({metric_text(task, 'pwl')} with the tables alone)"
        )
        if task["task"] == "classify":
            line += f"; {100 * task['agreement']['fixed']:.2f} % of decisions equal float's"
        out.append(line + ".")
    for t, g in r["ranges"].items():
        need = g["int_bits_needed"]
        if g["overflowed"] and (need is None or need > g["int_bits"]):
            fix = f"give it {need} integer bits" if need is not None else "make it signed"
            out.append(
                f"{t}: {g['overflowed']} of {g['count']} values {g['overflow_mode']} in "
                f"{g['format']} (observed {num(g['min'])} to {num(g['max'])}); {fix}."
            )
        elif g["overflowed"]:
            # the data reaches the bound itself (σ → 1, tanh → ±1): one LSB short of it
            cost = (
                "each is off by at most one LSB"
                if g["overflow_mode"] == "saturated"
                else "use a SAT mode: a wrap there flips the value"
            )
            out.append(
                f"{t}: {g['overflowed']} of {g['count']} values {g['overflow_mode']} at the "
                f"edge of {g['format']}, which the data reaches ({num(g['min'])} to "
                f"{num(g['max'])}); {cost}."
            )
        elif g["headroom_bits"] is not None and g["headroom_bits"] >= 2:
            out.append(
                f"{t}: {g['headroom_bits']} integer bits more than the data needs "
                f"(observed {num(g['min'])} to {num(g['max'])}, {g['format']}); "
                f"I = {g['int_bits_needed']} would free them for precision."
            )
    gr = r["growth"]["fixed"]
    gsig = "h" if r["growth_signal"] == "y" and len(r["layer_outputs"]) == 1 else r["growth_signal"]
    out.append(
        f"Along the sequence the error of {gsig} {gr['verdict']} (RMSE of the last quarter of the "
        f"steps {num(gr['ratio'])}× that of the first)."
    )
    worst = max(r["tables"].values(), key=lambda t: t["max_lsb"])
    out.append(
        f"Worst table: {worst['layer']}.{worst['activation']} ({worst['describe']}), "
        f"{num(worst['max_lsb'])} output LSB at worst over every input code."
    )
    out.append(
        "Next: `lstmfx sweep` shows the error against each tensor's word length, and "
        "`lstmfx tune --budget y_max_abs=…` (or metric_drop=… with labels) finds the fewest "
        "bits within a budget and writes the config."
    )
    return out


# --------------------------------------------------------------------------- tables


def range_rows(r: dict) -> tuple[list[str], list[list[str]]]:
    head = [
        "tensor",
        "format",
        "format range",
        "observed (float)",
        "I needed",
        "headroom",
        "outside",
        "overflowed",
    ]
    rows = []
    for t, g in r["ranges"].items():
        rows.append(
            [
                t,
                g["format"],
                f"{num(g['format_min'])} … {num(g['format_max'])}",
                f"{num(g['min'])} … {num(g['max'])}",
                num(g["int_bits_needed"]),
                num(g["headroom_bits"]),
                f"{g['outside']} / {g['count']}",
                f"{g['overflowed']} {g['overflow_mode']}" if g["overflowed"] else "0",
            ]
        )
    return head, rows


def error_rows(r: dict) -> tuple[list[str], list[list[str]]]:
    head = [
        "tensor",
        "format",
        "fixed max abs",
        "(LSB)",
        "fixed RMSE",
        "fixed SQNR dB",
        "PWL-only max abs",
        "PWL-only RMSE",
        "PWL-only SQNR dB",
    ]
    rows = []
    for s in r["errors"]["fixed"]:
        f, p = r["errors"]["fixed"][s], r["errors"]["pwl"][s]
        rows.append(
            [
                signal_label(s),
                signal_format(r, s),
                num(f["max_abs"]),
                num(f["max_lsb"]),
                num(f["rmse"]),
                db(f["sqnr_db"]),
                num(p["max_abs"]),
                num(p["rmse"]),
                db(p["sqnr_db"]),
            ]
        )
    return head, rows


def layer_rows(r: dict) -> tuple[list[str], list[list[str]]]:
    """The error at the output of each layer, from the input up: where it grows."""
    head = ["layer output", "format", "fixed max abs", "(LSB)", "fixed RMSE", "fixed SQNR dB",
            "SQNR change", "PWL-only SQNR dB"]  # fmt: skip
    rows, below = [], None
    for sig in r["layer_outputs"]:
        f, p = r["errors"]["fixed"][sig], r["errors"]["pwl"][sig]
        change = "–"
        if below is not None and f["sqnr_db"] is not None and below is not None:
            if math.isfinite(f["sqnr_db"]) and math.isfinite(below):
                change = f"{f['sqnr_db'] - below:+.1f}"
        rows.append(
            [
                sig,
                signal_format(r, sig),
                num(f["max_abs"]),
                num(f["max_lsb"]),
                num(f["rmse"]),
                db(f["sqnr_db"]),
                change,
                db(p["sqnr_db"]),
            ]
        )
        below = f["sqnr_db"]
    return head, rows


def weight_rows(r: dict) -> tuple[list[str], list[list[str]]]:
    head = ["weights", "format", "max abs", "(LSB)", "RMSE", "SQNR dB"]
    fmts = r["config"]["formats"]
    rows = [
        [k, fmts[k], num(e["max_abs"]), num(e["max_lsb"]), num(e["rmse"]), db(e["sqnr_db"])]
        for k, e in r["weights"].items()
    ]
    return head, rows


def table_rows(r: dict) -> tuple[list[str], list[list[str]]]:
    head = ["table", "in → out", "kind", "segments", "range", "max error (LSB)", "mean (LSB)"]
    rows = [
        [
            f"{a} ({t['function']})",
            f"{t['in']} → {t['out']}",
            t["kind"],
            str(t["segments"]),
            f"{num(t['lower'])} … {num(t['upper'])}",
            num(t["max_lsb"]),
            num(t["mean_lsb"]),
        ]
        for a, t in r["tables"].items()
    ]
    return head, rows


def task_rows(r: dict) -> tuple[list[str], list[list[str]]]:
    task = r["task"]
    if task["task"] == "classify":
        head = ["model", "accuracy", "drop (points)", "decisions equal to float"]
        rows = [
            [
                m,
                f"{100 * task[m]['accuracy']:.2f} %",
                f"{100 * task['drop'][m]:.2f}",
                f"{100 * task['agreement'][m]:.2f} %",
            ]
            for m in ("float", "pwl", "fixed")
        ]
    else:
        unit = f" ({task['unit']})" if task.get("unit") else ""
        head = ["model", f"RMSE{unit}", "MAE", "max abs", "RMSE increase"]
        rows = [
            [
                m,
                num(task[m]["rmse"], 4),
                num(task[m]["mae"], 4),
                num(task[m]["max_abs"], 4),
                num(task["drop"][m]),
            ]
            for m in ("float", "pwl", "fixed")
        ]
    return head, rows


# --------------------------------------------------------------------------- plots


def _figure(rows=1, cols=1, size=(8, 4)):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(rows, cols, figsize=size, squeeze=False)
    return plt, fig, axes


def _png(plt, fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def plot_ranges(r: dict) -> bytes:
    """Each tensor's format as a span of bit positions, with the data's max and RMS."""
    names = list(r["ranges"])
    plt, fig, ax = _figure(size=(10, 0.45 * len(names) + 1.2))
    ax = ax[0, 0]
    for y, t in enumerate(names):
        g = r["ranges"][t]
        top = math.log2(max(abs(g["format_min"]), abs(g["format_max"]), g["lsb"]))
        low = math.log2(g["lsb"])
        ax.barh(y, top - low, left=low, color="#cfd8e3", edgecolor="#7a8899", height=0.6)
        mag = max(abs(g["min"]), abs(g["max"]))
        if mag > 0:
            color = "#1f4e79"
            if g["headroom_bits"] is None or g["headroom_bits"] < 0:
                color = "#c0392b"
            elif g["overflowed"] or g["outside"]:
                color = "#e67e22"  # the data touches the bound: an LSB at the edge
            ax.plot(math.log2(mag), y, "D", color=color, ms=7)
        if g["rms"] > 0:
            ax.plot(math.log2(g["rms"]), y, "o", color="#2e86c1", ms=5, mfc="none")
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlabel("bit position: log2 of magnitude (bar: LSB to largest value of the format)")
    ax.plot([], [], "D", color="#1f4e79", label="largest |value| seen")
    ax.plot([], [], "o", color="#2e86c1", mfc="none", label="RMS of values")
    ax.plot([], [], "D", color="#e67e22", label="at the format's bound")
    ax.plot([], [], "D", color="#c0392b", label="beyond the format")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    return _png(plt, fig)


def plot_errors(r: dict) -> bytes:
    sigs = list(r["errors"]["fixed"])
    plt, fig, ax = _figure(size=(max(8, 0.35 * len(sigs) + 2), 4.2))
    ax = ax[0, 0]
    x = np.arange(len(sigs))
    cap = 0
    for k, (m, color) in enumerate((("fixed", "#1f4e79"), ("pwl", "#e67e22"))):
        vals = [r["errors"][m][s]["sqnr_db"] for s in sigs]
        finite = [v for v in vals if v is not None and math.isfinite(v)]
        cap = max([cap, *finite]) if finite else cap
        vals = [v if v is not None and math.isfinite(v) else np.nan for v in vals]
        label = "fixed point" if m == "fixed" else "PWL tables alone (float arithmetic)"
        ax.bar(x + (k - 0.5) * 0.38, vals, width=0.38, color=color, label=label)
    labels = [signal_label(s) if len(r["layer_outputs"]) > 1 else SIGNAL_LABEL.get(
        s.split(".")[-1], s) for s in sigs]  # fmt: skip
    ax.set_xticks(x, labels, rotation=40, ha="right")
    ax.set_ylabel("SQNR against float64 (dB)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _png(plt, fig)


def plot_steps(r: dict) -> bytes:
    """Left: the error of the network's output (or, with output ``last``, of the top LSTM
    layer's h) per step; right: the error of each LSTM layer's h and c per step."""
    plt, fig, axes = _figure(1, 2, size=(9, 3.6))
    gsig = r["growth_signal"]
    ax = axes[0, 1]
    for sig, st in r["per_step"]["fixed"].items():
        if sig == "y":
            continue
        t = np.arange(1, len(st["rmse"]) + 1)
        ax.plot(t, st["rmse"], "-" if sig.endswith(".h") else ":", marker=".", label=sig)
    ax.set_yscale("log")
    ax.set_xlabel("time step")
    ax.set_title("fixed-point RMSE of each LSTM layer", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    for ax, sig in zip(axes[0], (gsig,)):
        for m, color, style in (("fixed", "#1f4e79", "-"), ("pwl", "#e67e22", "--")):
            st = r["per_step"][m][sig]
            t = np.arange(1, len(st["rmse"]) + 1)
            label = "fixed point" if m == "fixed" else "PWL alone"
            ax.plot(t, st["rmse"], style, color=color, label=f"{label}: RMSE", marker=".")
            ax.plot(t, st["max_abs"], style, color=color, alpha=0.35, label=f"{label}: max abs")
        ax.set_yscale("log")
        ax.set_xlabel("time step")
        name = "the output y" if sig == "y" else sig
        ax.set_title(f"error of {name} against float64", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    return _png(plt, fig)


def _envelope(x: np.ndarray, y: np.ndarray, bins: int = 1500):
    """At most ``bins`` points per curve that keep every peak: min and max of each bin."""
    if x.shape[0] <= 2 * bins:
        return x, y, y
    edges = np.linspace(0, x.shape[0], bins + 1).astype(int)
    xs = x[edges[:-1]]
    lo = np.minimum.reduceat(y, edges[:-1])
    hi = np.maximum.reduceat(y, edges[:-1])
    return xs, lo, hi


def flat_tables(tables: dict) -> dict:
    """``{"lstm1.sigmoid": table, ...}`` from a network's tables by layer (``Config.tables``)
    or from one layer's tables by activation (``{"sigmoid": table}``)."""
    out = {}
    for key, t in tables.items():
        if isinstance(t, dict):
            out.update({f"{key}.{act}": table for act, table in t.items()})
        else:
            out[key] = t
    return out


def plot_tables(tables: dict) -> bytes:
    """Each table against its function over the input format's range, and its error in
    output LSBs at every input code."""
    tables = flat_tables(tables)
    plt, fig, axes = _figure(len(tables), 2, size=(10, 2.9 * len(tables)))
    for row, (act, table) in enumerate(tables.items()):
        func = ACTIVATIONS[act.split(".")[-1]][2]
        fin, fout = table.in_fmt, table.out_fmt
        # every input code up to 2^18 of them; a wider input (up to 32 bits) is sampled
        codes = spread_codes(fin, PLOT_CODES)
        xv = fin.codes_to_values(codes)
        got = fout.codes_to_values(table(codes))
        exact = FUNCTIONS[func](xv)
        err = (got - exact) / fout.lsb
        # the interesting part: where the function is not yet flat, plus a margin
        lo = max(float(xv[0]), -8.0 if func == "sigmoid" else -4.0)
        hi = min(float(xv[-1]), 8.0 if func == "sigmoid" else 4.0)
        keep = (xv >= lo) & (xv <= hi)
        ax = axes[row, 0]
        xs, ylo, yhi = _envelope(xv[keep], got[keep])
        ax.plot(xv[keep], exact[keep], color="#7a8899", lw=2.5, label=f"{func} (exact)")
        ax.plot(xs, yhi, color="#1f4e79", lw=1, label=f"table ({table.breakpoints.shape[0]} seg.)")
        bps = fin.codes_to_values(table.breakpoints)
        bps = bps[(bps >= lo) & (bps <= hi)]
        if bps.shape[0] <= 64:
            ax.plot(bps, FUNCTIONS[func](bps), "|", color="#c0392b", ms=8, label="breakpoints")
        ax.set_title(f"{act}: {fin} → {fout}", fontsize=9)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        ax = axes[row, 1]
        xs, elo, ehi = _envelope(xv, err)
        ax.fill_between(xs, elo, ehi, color="#1f4e79", alpha=0.6, lw=0.5)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_title(f"{act}: error in output LSBs (max {np.abs(err).max():.2f})", fontsize=9)
        every = fin.code_max - fin.code_min + 1 <= PLOT_CODES
        ax.set_xlabel(
            "input value (every code of the input format)"
            if every
            else f"input value ({codes.shape[0]:,} codes spread over the input format)"
        )
        ax.grid(alpha=0.3)
    return _png(plt, fig)


def plots(r: dict, tables: dict) -> dict[str, bytes]:
    return {
        "ranges": plot_ranges(r),
        "errors": plot_errors(r),
        "steps": plot_steps(r),
        "tables": plot_tables(tables),
    }


# --------------------------------------------------------------------------- documents

CSS = """
body { font: 15px/1.45 system-ui, sans-serif; max-width: 1100px; margin: 2em auto;
       padding: 0 1em; color: #1b1f24; }
h1 { font-size: 1.6em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ccd; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 13px; }
th, td { border: 1px solid #ccd; padding: 3px 8px; text-align: right; }
th { background: #eef2f7; } td:first-child, th:first-child { text-align: left; }
td.fmt { font-family: ui-monospace, monospace; font-size: 12px; }
img { max-width: 100%; } .muted { color: #667; } code { background: #f3f5f8; padding: 1px 4px; }
li { margin: 0.3em 0; }
"""


DECODED_SCRIPT = (
    'addEventListener("load", () => { const imgs = [...document.images]; '
    "document.body.dataset.imagesDecoded = "
    'imgs.filter(i => i.complete && i.naturalWidth > 0).length + "/" + imgs.length; });'
)


def _html_table(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = []
    for row in rows:
        cells = []
        for v in row:
            cls = ' class="fmt"' if "fixed<" in v else ""
            cells.append(f"<td{cls}>{html.escape(v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _md_table(head: list[str], rows: list[list[str]]) -> str:
    def cell(v: str) -> str:
        return v.replace("|", "\\|")

    lines = ["| " + " | ".join(map(cell, head)) + " |", "|" + " --- |" * len(head)]
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in rows]
    return "\n".join(lines)


def sections(r: dict) -> list[tuple[str, list]]:
    """The report as (heading, parts); a part is a paragraph, a table or a plot name."""
    cfg = r["config"]
    data = r["data"]
    task = r.get("task")
    gsig = r["growth_signal"]
    growth_name = "the output y" if gsig == "y" and len(cfg["layers"]) > 1 else gsig
    if gsig == "y" and len(cfg["layers"]) == 1:
        growth_name = "h"
    out = [
        (
            "Summary",
            [("list", findings(r))],
        ),
        (
            "Formats and ranges",
            [
                "For each quantization point: its format, the range of the values the float64 "
                "model puts there on this data, the integer bits that range needs, the values "
                "beyond the format (float model) and the values that overflowed in the "
                "fixed-point run.",
                ("table", range_rows(r)),
                ("plot", "ranges"),
            ],
        ),
        (
            "Error against float64",
            [
                "The output of each layer, from the input up: the error of the fixed-point "
                "network against the float64 network there, so the table shows where it "
                "grows (SQNR change: against the layer below).",
                ("table", layer_rows(r)),
                "Every internal tensor of every layer of the fixed-point model (all "
                "sequences, all steps) against the float64 model with exact σ and tanh; "
                "beside it the model with float arithmetic and the PWL tables as its only "
                "approximation.",
                ("table", error_rows(r)),
                ("table", weight_rows(r)),
                ("plot", "errors"),
            ],
        ),
        (
            "Error along the sequence",
            [
                f"RMSE and max abs error per time step over {data['sequences']} sequences. "
                f"The error of {growth_name} {r['growth']['fixed']['verdict']}: the last "
                f"quarter of the "
                f"steps has {num(r['growth']['fixed']['ratio'])}× the RMSE of the first.",
                ("plot", "steps"),
            ],
        ),
        (
            "Activation tables",
            [
                "Each table of each LSTM layer against its exact function, with the error "
                "over every input code of its input format (exhaustive), in LSBs of its "
                "output format.",
                ("table", table_rows(r)),
                ("plot", "tables"),
            ],
        ),
    ]
    if task:
        where = "the last step" if task["steps"] == "last" else "every step"
        head = f" through the head {Path(task['head']).name}" if task["head"] else ""
        if task.get("head_layers"):
            head = f" at the network's output (through {', '.join(task['head_layers'])})"
        out.append(
            (
                "Task metric",
                [
                    f"{task['labels']} labels scored at {where}{head}.",
                    ("table", task_rows(r)),
                ],
            )
        )
    shape = ", ".join(
        f"{la['name']} {la['input_size']}→{la['output_size']}"
        + (" peephole" if la.get("peephole") else "")
        + (f" {la['activation']}" if la["kind"] == "dense" else "")
        for la in cfg["layers"]
    )
    intro = (
        f"Config {cfg['source'] or cfg['name']}: model {Path(cfg['model']).name} "
        f"({shape}; output {cfg['output']}), "
        f"{r['total_bits']} bits over all formats. Data: {data['sequences']} sequences × "
        f"{data['steps']} steps."
    )
    return [("", [intro]), *out]


def _inline(text: str) -> str:
    """Escaped text with Markdown's `code` spans as <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def render_html(r: dict, images: dict[str, bytes]) -> str:
    title = f"lstmfx quantization report: {r['config']['name']}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for heading, body in sections(r):
        if heading:
            slug = heading.lower().replace(" ", "-")
            parts.append(f'<h2 id="{slug}">{html.escape(heading)}</h2>')
        for part in body:
            if isinstance(part, str):
                parts.append(f"<p>{_inline(part)}</p>")
            elif part[0] == "list":
                items = "".join(f"<li>{_inline(s)}</li>" for s in part[1])
                parts.append(f"<ul>{items}</ul>")
            elif part[0] == "table":
                parts.append(_html_table(*part[1]))
            else:
                data = base64.b64encode(images[part[1]]).decode()
                parts.append(
                    f'<p><img alt="{part[1]} plot" data-plot="{part[1]}" '
                    f'src="data:image/png;base64,{data}"></p>'
                )
    parts.append(
        '<p class="muted">Written by <code>lstmfx report</code>; every number is also in '
        "report.json.</p>"
    )
    parts.append(f"<script>{DECODED_SCRIPT}</script></body></html>")
    return "\n".join(parts) + "\n"


def render_markdown(r: dict) -> str:
    lines = [f"# lstmfx quantization report: {r['config']['name']}", ""]
    for heading, body in sections(r):
        if heading:
            lines += [f"## {heading}", ""]
        for part in body:
            if isinstance(part, str):
                lines += [part, ""]
            elif part[0] == "list":
                lines += [f"- {s}" for s in part[1]] + [""]
            elif part[0] == "table":
                lines += [_md_table(*part[1]), ""]
            else:
                lines += [f"![{part[1]}]({part[1]}.png)", ""]
    return "\n".join(lines)


def write_report(r: dict, tables: dict, out_dir) -> dict[str, Path]:
    """Write report.json, report.md (and its PNGs) and report.html into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    images = plots(r, tables)
    paths = {}
    for name, png in images.items():
        (out / f"{name}.png").write_bytes(png)
    paths["json"] = out / "report.json"
    paths["json"].write_text(json.dumps(json_safe(r), indent=1, allow_nan=False) + "\n")
    paths["md"] = out / "report.md"
    paths["md"].write_text(render_markdown(r))
    paths["html"] = out / "report.html"
    paths["html"].write_text(render_html(r, images))
    return paths
