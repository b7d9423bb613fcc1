"""Subcommands about precision: ``report``, ``sweep``, ``tune``, and ``demo`` (all of it on
the built-in example)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from model.cli import report_weights
from model.paths import write_atomically

#: the example ``lstmfx demo`` runs: a folder of examples/ (model/examples.py finds it in a
#: checkout and in an installed copy)
DEMO_EXAMPLE = "sunspots_net"


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", type=Path, help="the config .toml")
    p.add_argument("--data", type=Path, required=True, help=".npy of float inputs [N, T, I]")
    p.add_argument(
        "--labels",
        type=Path,
        help=".npy of labels: classes (integers) or targets (floats), [N] for the last step "
        "or [N, T] for every step; scores the task for float and fixed point",
    )
    p.add_argument(
        "--head",
        type=Path,
        help=".npz of a float layer after the top LSTM (w [K, H], b [K], task), for a config "
        "without dense layers; default: head.npz beside the config, if there is one",
    )
    p.add_argument("--sequences", type=int, help="use only the first N sequences of the data")


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "report",
        help="quantization error report of a config on data (html, md, json)",
        description="Run the float64 model, the model with only the PWL tables, and the "
        "bit-accurate model over the data; write DIR/report.html (self-contained), "
        "DIR/report.md and DIR/report.json.",
    )
    _data_args(p)
    p.add_argument("-o", "--output-dir", dest="out_dir", type=Path, required=True, metavar="DIR")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "sweep",
        help="the report's metrics over a grid of word lengths and table sizes",
        description="Axes: TENSOR=W1..W2 (word length; I kept), TENSOR.I=A..B (integer "
        "bits), TABLE.segments=A..B or TABLE.max_error_lsb=A..B (powers of two). TENSOR is "
        "LAYER.NAME for one layer's (lstm2.cell, dense1.out) or a plain NAME for every LSTM "
        "layer's (x w r b p preact gate cand cell tanh_cell h; out: every dense layer's), a "
        "comma list, 'weights' or 'all'; TABLE is [LAYER.]sigmoid, tanh, tanh_cell or "
        "'tables'. Each point is saved in DIR/sweep.jsonl as it finishes: run the same "
        "command again to resume.",
    )
    _data_args(p)
    p.add_argument(
        "--vary",
        action="extend",
        nargs="+",
        required=True,
        metavar="AXIS",
        help="an axis such as w,r=6..16 or sigmoid.segments=8..128; repeat for a grid",
    )
    p.add_argument("-o", "--output-dir", dest="out_dir", type=Path, required=True, metavar="DIR")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser(
        "tune",
        help="the fewest bits whose error stays within a budget; writes the tuned config",
        description="Budgets: SIGNAL_STAT=V with SIGNAL y or h (the network's output), "
        "LAYER.NAME (lstm2.c, dense1.out) or a plain NAME for the worst LSTM layer (preact_i.."
        "preact_o i f g o c tanh_cell) and STAT max_abs, rmse, max_lsb (at most V) or sqnr_db "
        "(at least V); "
        "metric_drop=V (the task metric's loss against float: accuracy points as a "
        "fraction or with %, or the RMSE increase; needs --labels); overflow=N.",
    )
    _data_args(p)
    p.add_argument(
        "--budget",
        action="extend",
        nargs="+",
        required=True,
        metavar="NAME=V",
        help="limits that must all hold, e.g. h_max_abs=0.02 metric_drop=0.5%%",
    )
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        help="tuned config to write (default: CONFIG's name with .tuned.toml); an existing "
        "file is kept unless --force",
    )
    p.add_argument("--force", action="store_true", help="overwrite the tuned config if it exists")
    p.add_argument(
        "--tensors",
        nargs="+",
        help="tune only these tensors: lstm2.cell, dense1.w, or cell for every LSTM layer's "
        "(default: every tensor of every layer)",
    )
    p.add_argument("--min-width", type=int, default=2, help="narrowest word (default 2)")
    p.add_argument("--max-width", type=int, default=24, help="widest word (default 24)")
    p.add_argument(
        "--headroom",
        type=int,
        default=0,
        help="integer bits above what the data's range needs (default 0)",
    )
    p.add_argument("--keep-int-bits", action="store_true", help="keep each format's I; tune W only")
    p.add_argument("--keep-tables", action="store_true", help="do not trade table size for error")
    p.add_argument(
        "--tune-input",
        action="store_true",
        help="also tune the input format lstm1.x (the hardware's input port; kept by default)",
    )
    p.add_argument("--report", type=Path, metavar="DIR", help="also write the tuned report")
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser(
        "demo",
        help="the built-in example end to end: infer, report, Verilog, co-simulation",
        description=f"On the example {DEMO_EXAMPLE} (examples/{DEMO_EXAMPLE}): run the "
        "bit-accurate model over the test data, write the report, generate the Verilog and "
        "co-simulate it against the model when a simulator is installed.",
    )
    p.add_argument(
        "-o",
        "--output-dir",
        dest="out_dir",
        type=Path,
        default=Path("out/demo"),
        metavar="DIR",
        help="where to write everything (default ./out/demo)",
    )
    p.add_argument("--sequences", type=int, default=200, help="sequences to co-simulate")
    p.add_argument("--sim", choices=("verilator", "icarus"), help="simulator (default: any)")
    p.add_argument("--no-sim", action="store_true", help="skip the co-simulation")
    p.set_defaults(func=cmd_demo)


# --------------------------------------------------------------------------- outputs


def writable_outputs(folder: Path, files, what: str) -> Path:
    """``folder`` if it is (or can be made) a folder in which ``files`` can be written:
    checked before any work, so that a run does not fail at its end."""
    from model.paths import OutputPathError, writable_dir

    folder = writable_dir(folder, what=what)
    for name in files:
        path = folder / name
        if path.is_dir():
            raise OutputPathError(
                f"{what} {str(folder)!r} holds a folder {name!r} where a file is to be "
                f"written; remove it or choose another folder"
            )
        if path.exists() and not os.access(path, os.W_OK):
            raise OutputPathError(f"{what} {str(folder)!r}: {name} cannot be overwritten")
    return folder


# --------------------------------------------------------------------------- loading


def load_data(args) -> tuple:
    """(config, x, labels, head) from the common arguments."""
    from model.config import load_config
    from model.measure import check_input, load_head, task_note

    cfg = load_config(args.config)
    x = _load_npy(args.data, "--data")
    x = check_input(x, cfg.network.input_size)
    labels = _load_npy(args.labels, "--labels") if args.labels else None
    if args.sequences is not None:
        if args.sequences < 1:
            raise ValueError(f"--sequences must be at least 1, not {args.sequences}")
        x = x[: args.sequences]
        labels = None if labels is None else labels[: args.sequences]
    head = None
    head_path = args.head
    beside = args.config.parent / "head.npz"
    if head_path is None and labels is not None and beside.is_file():
        head_path = beside
        print(f"head: {head_path} (beside the config)")
    if head_path is not None:
        head = load_head(head_path)
        note = task_note(labels, head) if labels is not None else None
        if note:
            print(f"note: {note}")
    return cfg, x, labels, head


def _load_npy(path: Path, flag: str):
    import numpy as np

    if not path.is_file():
        raise FileNotFoundError(f"{flag} {str(path)!r} does not exist")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as e:
        raise ValueError(f"{flag} {path.name} is not a plain .npy array: {e}") from None


# --------------------------------------------------------------------------- commands


def cmd_report(args: argparse.Namespace) -> int:
    from model.measure import measure
    from model.report import OUTPUT_FILES, findings, write_report

    writable_outputs(args.out_dir, OUTPUT_FILES, "report folder")
    cfg, x, labels, head = load_data(args)
    report_weights(cfg)
    r = measure(cfg, x, labels=labels, head=head)
    paths = write_report(r, cfg.tables, args.out_dir)
    for line in findings(r):
        print(f"- {line}")
    for p in paths.values():
        print(f"wrote {p}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from model.sweep import OUTPUT_FILES, parse_axis, run_sweep, write_outputs

    writable_outputs(args.out_dir, OUTPUT_FILES, "sweep folder")
    cfg, x, labels, head = load_data(args)
    axes = [parse_axis(a, net=cfg.network) for a in args.vary]
    n = 1
    for a in axes:
        n *= len(a.values)
    print(f"sweep of {cfg.name}: {n} points into {args.out_dir / 'sweep.jsonl'}")
    try:
        rows = run_sweep(cfg, x, axes, args.out_dir, labels=labels, head=head)
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: finished points are in {args.out_dir / 'sweep.jsonl'}; run the "
            f"same command again to go on"
        )
        return 130
    paths = write_outputs(rows, axes, args.out_dir, title=f"lstmfx sweep: {cfg.name}")
    bad = [r for r in rows if "error" in r["result"]]
    if bad:
        print(f"{len(bad)} point(s) could not be built; the first: {bad[0]['result']['error']}")
    for p in paths.values():
        print(f"wrote {p}")
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from model.paths import writable_file
    from model.report import OUTPUT_FILES
    from model.tune import parse_budget, tune, tuned_toml

    out = args.output or args.config.with_name(args.config.stem + ".tuned.toml")
    out = writable_file(out, what="tuned config", force=args.force)
    if args.report:
        writable_outputs(args.report, OUTPUT_FILES, "--report folder")
    cfg, x, labels, head = load_data(args)
    budgets = [parse_budget(b) for b in args.budget]
    t0 = time.monotonic()
    res = tune(
        cfg,
        x,
        budgets,
        labels=labels,
        head=head,
        tensors=args.tensors,
        min_width=args.min_width,
        max_width=args.max_width,
        headroom=args.headroom,
        keep_int_bits=args.keep_int_bits,
        shrink_tables=not args.keep_tables,
        tune_input=args.tune_input,
    )
    text = tuned_toml(res, cfg, budgets, out)
    print()
    for line in tune_summary(res, cfg):
        print(line)
    print(f"{res.evaluations} configurations measured in {time.monotonic() - t0:.1f} s")
    try:
        # checked again: the file may have appeared, or the folder changed, during the run
        writable_file(out, what="tuned config", force=args.force)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(out, text)
    except (OSError, ValueError) as e:
        # the run's result is not lost: the tuned config goes to stdout instead
        from lstmfx import os_error_text

        print(f"\n# ---- the tuned config (it could not be written to {out}) ----")
        print(text, end="")
        why = os_error_text(e) if isinstance(e, OSError) else str(e)
        print(
            f"lstmfx tune: error: {why}; the tuned config is printed above: save it by hand, "
            f"or run again with another -o",
            file=sys.stderr,
        )
        return 2
    print(f"wrote {out}")
    if args.report:
        from model.config import load_config
        from model.measure import measure
        from model.report import write_report

        tuned = load_config(out)
        r = measure(tuned, x, labels=labels, head=head)
        for p in write_report(r, tuned.tables, args.report).values():
            print(f"wrote {p}")
    return 0


def tune_summary(res, cfg) -> list[str]:
    """The tuned formats against the config's, the tables in words, the totals, the budget."""
    from model.pwl import describe
    from model.sweep import tensor_format

    lines = [f"{'tensor':16s} {'was':24s} tuned"]
    for t in res.widths:
        was, now = tensor_format(cfg, t), tensor_format(res.config, t)
        lines.append(f"{t:16s} {str(was):24s} {now}{'' if was != now else ' (kept)'}")
    for key, change in res.acts.items():
        lname, act = key.split(".", 1)
        was = describe(cfg.tables[lname][act])
        now = describe(res.config.tables[lname][act])
        setting = ", ".join(f"{k} {v:g}" for k, v in change.items())
        lines.append(f"{key:16s} table: {now} ({setting}; was {was})")
    uni = f"{res.uniform['bits']} (W={res.uniform['width']})" if res.uniform else "none"
    line = f"total bits {res.bits}; the config had {res.config_bits}; one width for all: {uni}"
    lines.append(line + f"; one tensor at a time: {res.greedy['bits']}")
    lines.append("budget: " + ", ".join(f"{k} (is {v:.4g})" for k, v in res.values.items()))
    return lines


def cmd_demo(args: argparse.Namespace) -> int:
    from lstmfx.demo import run_demo
    from model.examples import example

    return run_demo(
        example(DEMO_EXAMPLE),
        args.out_dir,
        sequences=args.sequences,
        sim=args.sim,
        no_sim=args.no_sim,
    )
