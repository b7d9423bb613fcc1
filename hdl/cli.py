"""The ``generate`` subcommand: a config to ``<name>.v`` and ``<name>.manifest.json``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parsers(sub) -> None:
    """Register ``generate`` on an argparse subparsers object (see lstmfx/__init__.py)."""
    p = sub.add_parser(
        "generate",
        help="write the synthesizable Verilog of a config and its manifest",
        description="Write DIR/<name>.v (top module <name>, SPEC §5 ports) and "
        "DIR/<name>.manifest.json. The same config gives byte-identical files.",
    )
    p.add_argument("config", type=Path, help="the config .toml")
    p.add_argument("-o", "--output-dir", dest="out_dir", type=Path, required=True, metavar="DIR")
    p.add_argument(
        "--stats", action="store_true", help="print Yosys' cell counts of the generated design"
    )
    p.set_defaults(func=run)


#: the name the issue asked for; lstmfx/__init__.py calls add_parsers like every package
add_parser = add_parsers


def run(args: argparse.Namespace) -> int:
    from hdl.generate import describe_lanes, format_stats, generate, stats
    from model.cli import report_weights
    from model.config import load_config

    cfg = load_config(args.config)
    net = cfg.network
    report_weights(cfg)
    print(describe_lanes(net))  # says what lanes = "auto" chose
    v_path, m_path = generate(net, args.out_dir)
    print(f"wrote {v_path}")
    print(f"wrote {m_path}")
    if args.stats:
        print(format_stats(stats(v_path, net.name)))
    return 0


def main(argv=None) -> int:
    """``python -m hdl.cli generate ...``: the subcommand on its own."""
    parser = argparse.ArgumentParser(prog="lstmfx")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"lstmfx {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
