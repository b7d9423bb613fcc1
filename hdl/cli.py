"""The ``generate`` subcommand: a config to ``<name>.v`` and ``<name>.manifest.json``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_parsers(sub) -> None:
    """Register ``generate`` and ``synth`` on an argparse subparsers object (see
    lstmfx/__init__.py)."""
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
    add_synth_parser(sub)


#: the name the issue asked for; lstmfx/__init__.py calls add_parsers like every package
add_parser = add_parsers


def run(args: argparse.Namespace) -> int:
    from hdl.generate import describe_lanes, format_stats, generate, stats
    from model.cli import report_weights
    from model.config import load_config
    from model.paths import writable_dir, writable_file

    writable_dir(args.out_dir, what="output folder (-o)")  # before any work
    cfg = load_config(args.config)
    net = cfg.network
    for suffix in (".v", ".manifest.json"):
        writable_file(args.out_dir / f"{net.name}{suffix}", what="output file")
    report_weights(cfg)
    print(describe_lanes(net))  # says what lanes = "auto" chose
    v_path, m_path = generate(net, args.out_dir)
    print(f"wrote {v_path}")
    hw = json.loads(m_path.read_text())["hardware"]
    roms = hw.get("rom_files", [])
    if roms:  # the Verilog reads them with $readmemh, from its own folder
        print(f"wrote {len(roms)} ROM file(s) {net.name}_*.hex beside it ($readmemh)")
    print(f"wrote {m_path}")
    if "weight_map" in hw:
        from model.weightmap import address_bits

        words = sum(e["rows"] * e["cols"] for e in hw["weight_map"])
        print(
            f"run-time weights: AXI4-Lite slave s_axil_* with {words} weight words, "
            f"{address_bits(hw['weight_map'])}-bit addresses (the manifest's weight_map); "
            f"lstmfx weights writes a new model's words"
        )
    if args.stats:
        print(format_stats(stats(v_path, net.name)))
    return 0


def add_synth_parser(sub) -> None:
    from hdl.synth import DEVICES, ESTIMATES

    p = sub.add_parser(
        "synth",
        help="LUTs, flip-flops, DSPs, block RAMs and Fmax of a config on a real FPGA flow",
        description="Generate the Verilog, then run Yosys and nextpnr (both from PyPI) and "
        "report LUTs, flip-flops, DSP blocks, block RAMs, the achieved Fmax and the critical "
        "path. With --estimate, Yosys' synth_xilinx or synth_intel cell counts instead "
        "(an estimate: no place and route).",
    )
    p.add_argument("config", type=Path, help="the config .toml")
    p.add_argument(
        "--device",
        default="ecp5-85k",
        metavar="NAME",
        help=f"one of {', '.join(DEVICES)} (default ecp5-85k)",
    )
    p.add_argument(
        "--freq",
        type=float,
        default=150.0,
        metavar="MHZ",
        help="target clock for nextpnr (default 150)",
    )
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the result as JSON")
    p.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="stop the tools after this long (default: no limit)",
    )
    p.add_argument("--seed", type=int, default=1, help="nextpnr's placer seed (default 1)")
    p.add_argument(
        "--estimate",
        choices=tuple(ESTIMATES),
        metavar="VENDOR",
        help=f"one of {', '.join(ESTIMATES)}: Yosys cell counts only, no P&R",
    )
    p.add_argument(
        "-o",
        "--output-dir",
        dest="out_dir",
        type=Path,
        metavar="DIR",
        help="keep the Verilog, netlist, report and logs here (default: a temp dir)",
    )
    p.set_defaults(func=run_synth)


def run_synth(args: argparse.Namespace) -> int:
    import json
    import tempfile

    from hdl.generate import generate
    from hdl.synth import (
        SynthError,
        estimate_verilog,
        format_estimate,
        format_result,
        get_device,
        synth_verilog,
    )
    from model.config import load_config

    if args.estimate is None:
        get_device(args.device)  # an unknown device fails before generating anything
    if not args.freq > 0:
        raise ValueError(f"--freq must be a positive number of MHz, not {args.freq:g}")
    if args.timeout is not None and args.timeout <= 0:
        raise ValueError(f"--timeout must be a positive number of seconds, not {args.timeout}")
    net = load_config(args.config).network
    with tempfile.TemporaryDirectory(prefix="lstmfx-synth-") as tmp:
        out = args.out_dir or Path(tmp)
        v_path, m_path = generate(net, out)
        cycles = json.loads(m_path.read_text())["hardware"]["cycles_per_step"]
        try:
            if args.estimate:
                obj = estimate_verilog(v_path, net.name, args.estimate, timeout=args.timeout)
                obj["cycles_per_step"] = cycles
                print(format_estimate(obj))
            else:
                res = synth_verilog(
                    v_path,
                    net.name,
                    device=args.device,
                    freq=args.freq,
                    timeout=args.timeout,
                    seed=args.seed,
                )
                obj = res.to_json()
                obj["cycles_per_step"] = cycles
                obj["steps_per_s"] = round(res.fmax_mhz * 1e6 / cycles, 1)
                print(format_result(res, cycles_per_step=cycles))
        except SynthError as e:
            where = ""
            if e.log is not None:
                where = f" (log: {e.log})" if args.out_dir else " (-o DIR keeps the logs)"
            print(f"lstmfx synth: error: {e}{where}", file=sys.stderr)
            return 1
    obj["design"] = net.name
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(obj, indent=2) + "\n")
        print(f"wrote {args.json}")
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
