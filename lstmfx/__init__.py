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
    except (ValueError, NotImplementedError) as e:
        print(f"lstmfx {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a file that cannot be read or written: one line, not a traceback
        print(f"lstmfx {args.command}: error: {os_error_text(e)}", file=sys.stderr)
        return 2


def os_error_text(e: OSError) -> str:
    """An OSError as one line that names the path: ``cannot write 'out/a': permission
    denied``; an error raised with a message of its own keeps it."""
    if e.filename is None or not e.strerror:
        return str(e)
    paths = " and ".join(repr(str(f)) for f in (e.filename, e.filename2) if f is not None)
    hint = {
        PermissionError: "no permission",
        FileExistsError: "it exists already",
        IsADirectoryError: "it is a folder, not a file",
        NotADirectoryError: "a part of the path is a file, not a folder",
        FileNotFoundError: "no such file or folder",
    }.get(type(e), e.strerror[0].lower() + e.strerror[1:])
    return f"{paths}: {hint}"
