"""The lstmfx command line: thin; each package registers its own subcommands."""

from __future__ import annotations

import argparse
import importlib
import sys

#: modules with ``add_parsers(subparsers)``; each parser sets ``func(args) -> int``
COMMAND_MODULES = ("model.cli", "hdl.cli", "sim.cli", "model.report_cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lstmfx",
        description="Bit-accurate fixed-point LSTM: reference model, Verilog, co-simulation.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parsers(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("lstmfx: interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, NotImplementedError) as e:
        print(f"lstmfx {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
