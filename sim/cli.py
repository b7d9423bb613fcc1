"""The ``simulate`` subcommand: the generated Verilog against the bit-accurate network."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from model.paths import write_atomically
from sim.runner import SIMULATORS, SimulatorError

#: sequences per run when --sequences is not given: Icarus is two orders slower
DEFAULT_SEQUENCES = {"verilator": 2000, "icarus": 200}


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "simulate",
        help="prove the generated Verilog equals the bit-accurate network, in a Verilog simulator",
        description="Generate the design of CONFIG (one LSTM layer or a network), build it "
        "(cached by a hash of the Verilog) and run it under cocotb against the bit-accurate "
        "network: random and adversarial sequences, random lengths with resets in the "
        "middle, a long sequence, idle cycles and back-pressure. Prints a summary; exits 1 "
        "on any mismatch, protocol, interface or timing error, with the sequence, step, "
        "element, and the layer and internal point that diverged first.",
    )
    p.add_argument("config", type=Path)
    p.add_argument("--sim", choices=SIMULATORS, default="verilator")
    p.add_argument(
        "--sequences",
        type=int,
        default=None,
        metavar="N",
        help=f"sequences to run (default {DEFAULT_SEQUENCES['verilator']} on Verilator, "
        f"{DEFAULT_SEQUENCES['icarus']} on Icarus)",
    )
    p.add_argument("--steps", type=int, default=20, metavar="T", help="steps per sequence")
    p.add_argument(
        "--long", type=int, default=1000, metavar="T", help="steps of the long sequence (0: none)"
    )
    p.add_argument("--seed", type=int, default=0, metavar="S")
    p.add_argument(
        "--waves",
        action="store_true",
        help="record the run's waveform: an FST file (GTKWave, Surfer), a new one per run, "
        "in the build folder's waves/; its name is printed at the end",
    )
    p.add_argument(
        "--waves-sequence",
        metavar="K",
        default=None,
        help="a small waveform of one sequence instead: after the run, replay sequence K "
        "(counted from 0 over the run) or PHASE:K (as a mismatch names it, random:12) alone "
        "with waves; implies --waves",
    )
    p.add_argument(
        "--input",
        type=Path,
        metavar="X.npy",
        help="run these [N, T, I] sequences instead of random ones (--sequences is then ignored)",
    )
    p.add_argument("--codes", action="store_true", help="--input holds integer x codes, not values")
    p.add_argument(
        "--backpressure", default="random:0.3", metavar="PAUSE", help="none, pattern:1101, random:P"
    )
    p.add_argument(
        "--idle", default="random:0.2", metavar="PAUSE", help="input idle cycles, as --backpressure"
    )
    p.add_argument(
        "--build-dir",
        type=Path,
        default=None,
        help="where builds are cached (default: $LSTMFX_SIM_BUILD, else ~/.cache/lstmfx/sim_build)",
    )
    p.add_argument("--json", type=Path, metavar="FILE", help="also write every result to FILE")
    p.add_argument("--verbose", action="store_true", help="show the simulator's own output")
    p.set_defaults(func=cmd_simulate)


def cmd_simulate(args: argparse.Namespace) -> int:
    from model.config import load_config
    from model.paths import writable_dir, writable_file
    from sim.drivers import pause_generator
    from sim.session import replay_phase, simulate, standard_phases, waves_file

    for spec in (args.backpressure, args.idle):
        pause_generator(spec)
    # outputs first: a path that cannot be written fails now, not after the run
    if args.json is not None:
        writable_file(args.json, what="--json")
    if args.build_dir is not None:
        writable_dir(args.build_dir, what="--build-dir")
    n = args.sequences if args.sequences is not None else DEFAULT_SEQUENCES[args.sim]
    if n < 1 or args.steps < 1 or args.long < 0:
        raise ValueError("--sequences and --steps must be at least 1, --long at least 0")
    net = load_config(args.config).network
    user = None
    if args.input is not None:
        user = list(load_codes(args.input, net, codes=args.codes))
        if args.sequences is not None:
            print(
                f"note: --input wins: running its {len(user):,} sequences, not "
                f"--sequences {args.sequences} random ones"
            )
    phases = standard_phases(
        net,
        sequences=n,
        steps=args.steps,
        seed=args.seed,
        long_steps=args.long,
        backpressure=args.backpressure,
        idle=args.idle,
        user=user,
    )
    replay = replay_phase(phases, args.waves_sequence) if args.waves_sequence else None
    total = sum(p.steps for p in phases)
    print(
        f"{net.name}: {describe_layers(net)}, output={net.output}, "
        f"lanes={net.hardware.get('lanes', 1)}; {sum(len(p.sequences) for p in phases):,} "
        f"sequences, {total:,} steps on {args.sim}",
        flush=True,
    )
    try:
        result = simulate(
            net,
            phases,
            sim=args.sim,
            build_root=args.build_dir,
            waves=args.waves and replay is None,
            seed=args.seed,
            progress=True,
            verbose=args.verbose,
        )
        shown = result
        if replay is not None:
            shown = simulate(
                net,
                [replay[0]],
                sim=args.sim,
                build_root=args.build_dir,
                waves=True,
                seed=args.seed,
                progress=False,
                verbose=args.verbose,
            )
    except SimulatorError as e:
        print(f"lstmfx simulate: {e}", file=sys.stderr)
        return 2
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    print(result.summary())
    if args.waves or replay is not None:
        wf = waves_file(shown)
        what = f" ({replay[1]})" if replay is not None else ""
        print(f"waveform{what}: {wf}" if wf else "waveform: the simulator wrote none")
        if replay is not None and not shown.ok:
            print(f"note: the replayed sequence did not pass: {'; '.join(shown.errors)}")
    if args.json is not None:
        write_atomically(args.json, json.dumps(result.results, indent=1))
        print(f"wrote {args.json}")
    return 0 if result.ok else 1


def describe_layers(net) -> str:
    """``lstm1 3->8 peephole, lstm2 8->8, dense1 8->2 relu``."""
    parts = []
    for name, la in zip(net.layer_names, net.layers):
        if la.kind == "lstm":
            parts.append(f"{name} {la.input_size}->{la.hidden_size}" + " peephole" * la.peephole)
        else:
            parts.append(f"{name} {la.input_size}->{la.output_size} {la.activation}")
    return ", ".join(parts)


def load_codes(path: Path, net, *, codes: bool):
    """Input codes [N, T, I] of the network's input format from an .npy file of codes
    (``codes``) or of values (quantized; a value out of range is reported, not hidden)."""
    import numpy as np

    from model.network import quantize_input

    arr = np.load(path, allow_pickle=False)
    if codes:
        if arr.dtype.kind not in "iu":
            raise ValueError(f"--codes needs integer codes in {path.name}, not dtype {arr.dtype}")
        return net.in_fmt.check_codes(arr, what=path.name)
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"{path.name} must hold numbers, not dtype {arr.dtype}")
    x_codes, n_over = quantize_input(net, arr)
    if n_over:
        print(f"note: {n_over:,} input value(s) of {path.name} saturated or wrapped in x")
    return x_codes
