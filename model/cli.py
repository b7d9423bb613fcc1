"""Subcommands of the model: ``manifest`` and ``infer``."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from model.config import load_config
from model.lstm import quantize_input, run_fixed, run_float


def add_parsers(sub) -> None:
    p = sub.add_parser("manifest", help="write the SPEC §4 manifest of a config")
    p.add_argument("config", type=Path)
    p.add_argument("-o", "--output", type=Path, required=True, help="manifest .json to write")
    p.set_defaults(func=cmd_manifest)

    p = sub.add_parser("infer", help="run the bit-accurate model over a batch of sequences")
    p.add_argument("config", type=Path)
    p.add_argument("--input", type=Path, required=True, help=".npy of [N, T, I] inputs")
    p.add_argument("--output", type=Path, required=True, help=".npz to write")
    p.add_argument("--codes", action="store_true", help="the input holds integer x codes")
    p.add_argument("--float", action="store_true", help="also run the float64 reference")
    p.set_defaults(func=cmd_infer)


def report_weights(cfg) -> None:
    for k, v in cfg.weight_overflow.items():
        if v:
            print(f"warning: {v} weight(s) of {k!r} do not fit {cfg.formats[k]} and were clipped")


def cmd_manifest(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    qm = cfg.qmodel
    report_weights(cfg)
    path = qm.write_manifest(args.output)
    print(f"wrote {path}")
    return 0


def load_input(path: Path, *, codes: bool, qm) -> tuple[np.ndarray, np.ndarray | None]:
    """(x codes, float x or None) from an .npy file."""
    arr = np.load(path, allow_pickle=False)
    if codes:
        if arr.dtype.kind not in "iu":
            raise ValueError(f"--codes needs integer codes in {path.name}, not dtype {arr.dtype}")
        return qm.formats["x"].check_codes(arr, what=f"{path.name}"), None
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"{path.name} must hold numbers, not dtype {arr.dtype}")
    x_codes, n_over = quantize_input(qm, arr)
    if n_over:
        print(f"warning: {n_over} input value(s) do not fit {qm.formats['x']} and were clipped")
    return x_codes, arr.astype(np.float64)


def cmd_infer(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    qm = cfg.qmodel
    report_weights(cfg)
    x_codes, x_float = load_input(args.input, codes=args.codes, qm=qm)
    res = run_fixed(qm, x_codes)
    out = {"h_codes": res.h_codes, "h": qm.formats["h"].codes_to_values(res.h_codes)}
    if args.float:
        # the float reference sees the input as given, so its error includes the input's
        x_vals = qm.formats["x"].codes_to_values(x_codes) if x_float is None else x_float
        out["h_float"] = run_float(cfg.float_model, x_vals, output=qm.output)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.output, **out)
    over = ", ".join(f"{k} {v}" for k, v in res.overflow.items() if v) or "none"
    print(f"{x_codes.shape[0]} sequences x {x_codes.shape[1]} steps; overflows: {over}")
    if args.float:
        err = np.abs(out["h"] - out["h_float"])
        print(f"h against float: max abs error {err.max():.3g}, mean {err.mean():.3g}")
    print(f"wrote {args.output}")
    return 0
