"""The lstmfx command line, a floor above ``model/``, ``hdl/`` and ``sim/``: thin; each
package registers its own subcommands, and the flows that cross packages (the demo; the
report, sweep and tune commands) live here.

Registering a command imports only its argparse definitions: numpy, numba, amaranth and
torch are imported inside the command functions, so ``lstmfx --help`` answers at once.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: modules with ``add_parsers(subparsers)``; each parser sets ``func(args) -> int``
COMMAND_MODULES = ("model.cli", "hdl.cli", "sim.cli", "lstmfx.report_cli")


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
