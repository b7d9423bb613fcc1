"""Simulated network steps per second: Verilator against Icarus Verilog, same design, one run.

Generates one design, builds it for both simulators (builds are cached by the Verilog's
hash, so a second run only simulates), and sends both the same sequences through the same
cocotb testbench, every output checked against the bit-accurate network. Prints steps and
clock cycles simulated per second for each (the testbench's own loop, without start-up and
build) and the ratio.

    python bench/sim_throughput.py [--config examples/tiny/config.toml] [--sequences 100]
                                   [--steps 20] [--backpressure none]

The machine may be shared: compare the ratio, which both sides of one run share.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from model.config import load_config
from sim.cli import describe_layers
from sim.job import Phase
from sim.sequences import random_sequences
from sim.session import simulate

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=ROOT / "examples" / "tiny" / "config.toml")
    ap.add_argument("--sequences", type=int, default=100)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--backpressure", default="none", help="none, pattern:1101, random:P")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    net = load_config(args.config).network
    xs = list(random_sequences(net, args.sequences, args.steps, np.random.default_rng(args.seed)))
    rows = {}
    for sim in ("verilator", "icarus"):
        phase = Phase("bench", xs, backpressure=args.backpressure)
        res = simulate(net, [phase], sim=sim, case=f"bench_{net.name}", progress=False)
        if not res.ok:
            print(res.summary())
            return 1
        (p,) = res.phases
        rows[sim] = (res.steps_per_second, p["cycles"] / p["seconds"], res.build)
    print(
        f"{net.name}: {describe_layers(net)}, lanes={net.hardware.get('lanes', 1)}, "
        f"{args.sequences} sequences x {args.steps} steps, back-pressure {args.backpressure}, "
        f"every output checked"
    )
    for sim, (steps, cycles, b) in rows.items():
        built = "reused" if b.reused else f"{b.seconds:.0f} s"
        print(f"  {sim:<10} {steps:10,.0f} steps/s {cycles:12,.0f} cycles/s  (build {built})")
    ratio = rows["verilator"][0] / rows["icarus"][0]
    print(f"Verilator / Icarus: {ratio:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
