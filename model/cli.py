"""Subcommands of the model: ``manifest`` and ``infer``. Registering them imports no numpy
(``lstmfx --help`` stays quick): the command functions import what they use."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


def add_parsers(sub) -> None:
    p = sub.add_parser("manifest", help="write the manifest (the quantized network as integers)")
    p.add_argument("config", type=Path)
    p.add_argument(
        "-o",
        "--output",
        required=True,  # a str: Path() would drop the trailing / that says "a folder"
        help="manifest .json to write; a folder (existing, or ending in /) gets NAME.manifest.json",
    )
    p.set_defaults(func=cmd_manifest)

    p = sub.add_parser("infer", help="run the bit-accurate model over a batch of sequences")
    p.add_argument("config", type=Path)
    p.add_argument("--input", type=Path, required=True, help=".npy of [N, T, I] float inputs")
    p.add_argument("--output", type=Path, required=True, help=".npz to write (.npz is added)")
    p.add_argument("--codes", action="store_true", help="the input holds integer x codes")
    p.add_argument("--float", action="store_true", help="also run the float64 reference")
    p.set_defaults(func=cmd_infer)

    p = sub.add_parser(
        "weights",
        help="the words a host writes to load a new model into a design with run-time weights",
        description="Quantize NEW_MODEL (any model file the config's importer reads) with the "
        "config's formats and write what a host sends over the design's AXI4-Lite slave "
        '([hardware] weights = "axi-lite"): FILE.bin, (address, word) pairs of '
        "little-endian 32-bit integers in the manifest's weight_map order (row-major within "
        "a tensor), and FILE.h, a C header with each tensor's base address, shape, format "
        "and words. NEW_MODEL must have the shapes of the config's model.",
    )
    p.add_argument("config", type=Path)
    p.add_argument("model", type=Path, metavar="NEW_MODEL")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="FILE",
        help="writes FILE.bin and FILE.h (a .bin or .h suffix of FILE is dropped)",
    )
    p.set_defaults(func=cmd_weights)


#: what an overflowing weight became, by the format's O mode
_OVERFLOW_WORD = {
    "WRAP": "wrapped (sign flipped)",
    "SAT": "saturated",
    "SAT_SYM": "saturated",
    "SAT_ZERO": "set to zero",
}


def report_weights(cfg) -> None:
    """Warn about weights that did not fit their format, naming the layer and the tensor."""
    for key, v in cfg.weight_overflow.items():
        if v:
            lname, tensor = key.split(".")
            fmt = cfg.layer_formats(lname)[tensor]
            print(
                f"warning: {v} weight(s) of {key} do not fit {fmt} and were {_OVERFLOW_WORD[fmt.o]}"
            )


def cmd_manifest(args: argparse.Namespace) -> int:
    from model.config import load_config
    from model.paths import writable_dir, writable_file

    cfg = load_config(args.config)
    out = Path(args.output)
    if out.is_dir() or args.output.endswith(("/", os.sep)):
        out = writable_dir(out, what="manifest folder") / f"{cfg.name}.manifest.json"
    out = writable_file(out, what="manifest")
    net = cfg.network
    report_weights(cfg)
    path = net.write_manifest(out)
    print(f"wrote {path}")
    return 0


def load_input(path: Path, *, codes: bool, net) -> tuple[np.ndarray, np.ndarray | None]:
    """(x codes, float x or None) from an .npy file."""
    import numpy as np

    from model.network import quantize_input

    if path.suffix != ".npy":
        raise ValueError(
            f"--input {path.name} is not an .npy file; save the inputs with "
            f"numpy.save('x.npy', x), x of shape [N, T, I]"
        )
    arr = np.load(path, allow_pickle=False)
    if codes:
        if arr.dtype.kind not in "iu":
            raise ValueError(f"--codes needs integer codes in {path.name}, not dtype {arr.dtype}")
        return net.in_fmt.check_codes(arr, what=f"{path.name}"), None
    if arr.dtype.kind in "iu":
        raise ValueError(
            f"{path.name} holds integers (dtype {arr.dtype}): if they are codes of the input "
            f"format {net.in_fmt}, add --codes; if they are values, save them as floats"
        )
    if arr.dtype.kind != "f":
        raise ValueError(f"{path.name} must hold float values, not dtype {arr.dtype}")
    x_codes, n_over = quantize_input(net, arr)
    if n_over:
        print(f"warning: {n_over} input value(s) do not fit {net.in_fmt} and were clipped")
    return x_codes, arr.astype(np.float64)


def infer_arrays(cfg, x_codes, x_float=None, *, with_float: bool = False) -> tuple[dict, object]:
    """The arrays ``infer`` writes: ``y_codes``, ``y`` (and ``y_float``), and each LSTM
    layer's ``h`` codes as ``<layer>_h_codes``; with the run's result."""
    from model.network import run_fixed, run_float

    net = cfg.network
    res = run_fixed(net, x_codes)
    out = {"y_codes": res.y_codes, "y": net.out_fmt.codes_to_values(res.y_codes)}
    for name, layer, lres in zip(net.layer_names, net.layers, res.layers):
        if layer.kind == "lstm":
            out[f"{name}_h_codes"] = lres.codes
    if with_float:
        # the float reference sees the input as given, so its error includes the input's
        x_vals = net.in_fmt.codes_to_values(x_codes) if x_float is None else x_float
        out["y_float"] = run_float(cfg.float_model, x_vals, output=net.output)
    return out, res


def cmd_infer(args: argparse.Namespace) -> int:
    import numpy as np

    from model.config import load_config
    from model.paths import writable_file

    output = writable_file(args.output, what="--output", suffix=".npz")
    cfg = load_config(args.config)
    net = cfg.network
    report_weights(cfg)
    x_codes, x_float = load_input(args.input, codes=args.codes, net=net)
    out, res = infer_arrays(cfg, x_codes, x_float, with_float=args.float)
    output.parent.mkdir(parents=True, exist_ok=True)
    np.savez(output, **out)
    over = ", ".join(f"{k} {v}" for k, v in res.overflow.items() if v) or "none"
    print(f"{x_codes.shape[0]} sequences x {x_codes.shape[1]} steps; overflows: {over}")
    if args.float:
        err = np.abs(out["y"] - out["y_float"])
        print(f"output against float: max abs error {err.max():.3g}, mean {err.mean():.3g}")
    print(f"wrote {output}")
    return 0


def _shape_text(shape) -> str:
    return "none (no peepholes)" if shape is None else str(list(shape))


def check_same_shapes(old, new, *, source: str) -> None:
    """A ValueError unless the float network ``new`` has the layers, tensor shapes and
    dense activations of ``old`` (the design's); it names the tensor and both shapes."""
    if [la.kind for la in old.layers] != [la.kind for la in new.layers]:
        raise ValueError(
            f"{source} has the layers {', '.join(new.layer_names)}, but the design has "
            f"{', '.join(old.layer_names)}; a new model must have the design's layers"
        )
    for lname, a, b in zip(old.layer_names, old.layers, new.layers):
        tensors = ("w", "r", "b", "p") if a.kind == "lstm" else ("w", "b")
        for t in tensors:
            sa, sb = (getattr(la, t, None) for la in (a, b))
            sa = None if sa is None else tuple(sa.shape)
            sb = None if sb is None else tuple(sb.shape)
            if sa != sb:
                raise ValueError(
                    f"{source}: {lname} weights {t!r} have shape {_shape_text(sb)}, but the "
                    f"design's have {_shape_text(sa)}; a new model must have the design's shapes"
                )
        if a.kind == "dense" and a.activation != b.activation:
            raise ValueError(
                f"{source}: {lname} has activation {b.activation!r}, but the design's is "
                f"{a.activation!r} (an activation is part of the hardware)"
            )


def cmd_weights(args: argparse.Namespace) -> int:
    import sys

    from model.config import load_config
    from model.paths import writable_file
    from model.weightmap import c_header, weight_words, words_bin

    stem = Path(args.output)
    if stem.suffix in (".bin", ".h"):
        stem = stem.with_suffix("")
    bin_path = writable_file(stem.with_name(stem.name + ".bin"), what="weights file")
    h_path = writable_file(stem.with_name(stem.name + ".h"), what="C header")
    cfg = load_config(args.config)
    if not args.model.is_file():
        raise FileNotFoundError(f"model file {str(args.model)!r} does not exist")
    new = cfg.replace(model_path=args.model.resolve())
    check_same_shapes(cfg.float_model, new.float_model, source=args.model.name)
    net = new.network
    report_weights(new)
    if cfg.hardware.get("weights", "rom") != "axi-lite":
        print(
            f"note: {args.config.name} has [hardware] weights = "
            f"{cfg.hardware.get('weights', 'rom')!r}: a design generated from it has no "
            f'AXI4-Lite slave; set weights = "axi-lite" to load these words at run time',
            file=sys.stderr,
        )
    pairs = weight_words(net)
    guard = "".join(c if c.isalnum() else "_" for c in h_path.name).upper()
    bin_path.parent.mkdir(parents=True, exist_ok=True)
    bin_path.write_bytes(words_bin(pairs))
    h_path.write_text(c_header(net, pairs, guard=guard, source=args.model.name))
    print(f"wrote {bin_path} ({len(pairs)} (address, word) pairs, {8 * len(pairs)} bytes)")
    print(f"wrote {h_path}")
    return 0
