"""Resources and Fmax of the generated cores on ECP5: the examples and I=32, H=64 at P=4, 16.

Each design is generated, then synthesized and placed by the flow of ``lstmfx synth``
(Yosys ``synth_ecp5``, nextpnr-ecp5, default speed grade, ``--freq``). One table row per
design as it finishes: LUT, FF, DSP, BRAM, Fmax, cycles per step (the manifest's) and
steps per second (Fmax / cycles per step), the products per cycle per DSP block (how busy
the multipliers are) and the wall time of the two tools.

    python bench/fpga.py [--quick] [--only NAME ...] [--device ecp5-85k] [--freq 150]
                         [--timeout 3600] [--baseline REF] [--json FILE] [--keep DIR]

``--quick`` runs the examples only (not I=32, H=64). ``--baseline REF`` also generates every
design with the code of git REF (``main``, say) and places it in the same run, one row
each, so that the two are measured on the same machine under the same load. A full run
takes an hour or more on a loaded machine: P&R of the large designs dominates.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hdl.generate import generate  # noqa: E402
from hdl.synth import SynthError, synth_verilog  # noqa: E402
from model.config import load_config  # noqa: E402

#: the synthetic designs: (input size, hidden size, lanes)
LARGE = ((32, 64, 4), (32, 64, 16))
COLUMNS = ("design", "code", "lanes", "LUT", "FF", "DSP", "BRAM", "Fmax MHz", "met",
           "cycles/step", "steps/s", "MAC/cyc/DSP", "P&R s")  # fmt: skip


def random_config(folder: Path, i_size: int, h_size: int, lanes: int) -> Path:
    """A config of one random LSTM layer (weights ~ N(0, 1/H), SPEC §2's default formats)."""
    name = f"lstm_i{i_size}_h{h_size}_p{lanes}"
    rng = np.random.default_rng(0)
    s = 1.0 / np.sqrt(h_size)
    np.savez(
        folder / f"{name}.npz",
        w=rng.normal(size=(4 * h_size, i_size)) * s,
        r=rng.normal(size=(4 * h_size, h_size)) * s,
        b=rng.normal(size=4 * h_size) * 0.5,
    )
    cfg = folder / f"{name}.toml"
    cfg.write_text(f'name = "{name}"\nmodel = "{name}.npz"\n\n[hardware]\nlanes = {lanes}\n')
    return cfg


def designs(args, folder: Path) -> list[Path]:
    cfgs = sorted(ROOT.glob("examples/*/config.toml"))
    if not args.quick:
        cfgs += [random_config(folder, i, h, p) for i, h, p in LARGE]
    if args.only:
        cfgs = [c for c in cfgs if c.parent.name in args.only or c.stem in args.only]
        if not cfgs:
            raise SystemExit(f"fpga.py: --only {' '.join(args.only)} names no design")
    return cfgs


def baseline_tree(ref: str, folder: Path) -> Path:
    """The files of git ``ref``, extracted (``git archive``), to generate with its code."""
    tree = folder / "baseline"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], capture_output=True)
    if archive.returncode:
        raise SystemExit(f"fpga.py: git archive {ref} failed: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    return tree


def generate_with(tree: Path | None, cfg: Path, out: Path) -> tuple[Path, dict]:
    """Generate ``cfg`` into ``out`` with this tree's code or ``tree``'s; Verilog, manifest."""
    if tree is None:
        net = load_config(cfg).network
        v_path, m_path = generate(net, out)
    else:
        cmd = [sys.executable, "-m", "lstmfx", "generate", str(cfg), "-o", str(out)]
        proc = subprocess.run(cmd, cwd=tree, capture_output=True, text=True)
        if proc.returncode:
            raise SynthError(f"generate failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
        (m_path,) = out.glob("*.manifest.json")
        v_path = m_path.with_name(m_path.name.removesuffix(".manifest.json") + ".v")
    return v_path, json.loads(m_path.read_text())


def macs_per_step(manifest: dict) -> int:
    """Products one step of the network takes: 4H(I+H) per LSTM layer, plus n_out * n_in
    per dense layer when it runs every step (``sequence``)."""
    total = 0
    for la in manifest["layers"]:
        if la["kind"] == "lstm":
            total += 4 * la["hidden_size"] * (la["input_size"] + la["hidden_size"])
        elif manifest.get("output", "sequence") == "sequence":
            total += la["output_size"] * la["input_size"]
    return total


def measure(cfg: Path, code: str, tree: Path | None, work: Path, args) -> dict:
    row = {"design": cfg.parent.name if cfg.name == "config.toml" else cfg.stem, "code": code}
    out = work / f"{row['design']}-{code}"
    try:
        v_path, man = generate_with(tree, cfg, out)
        hw = man["hardware"]
        res = synth_verilog(v_path, v_path.stem, device=args.device, freq=args.freq,
                            timeout=args.timeout, seed=args.seed)  # fmt: skip
    except SynthError as e:
        return row | {"error": str(e)}
    lanes = [entry["lanes"] for entry in hw.get("layers", [])] or [hw.get("lanes")]
    cycles = hw["cycles_per_step"]
    return row | {
        "lanes": "/".join(map(str, lanes)),
        **res.to_json(),
        "cycles_per_step": cycles,
        "steps_per_s": res.fmax_mhz * 1e6 / cycles,
        # how busy the multipliers are: a lane that issues a product every cycle scores 1
        "macs_per_cycle_per_dsp": macs_per_step(man) / cycles / max(1, res.dsp),
    }


def format_row(r: dict) -> str:
    if "error" in r:
        return f"{r['design']:<22} {r['code']:<8} error: {r['error']}"
    cells = (r["design"], r["code"], r["lanes"], r["lut"], r["ff"], r["dsp"], r["bram"],
             f"{r['fmax_mhz']:.1f}", "yes" if r["met"] else "no", r["cycles_per_step"],
             f"{r['steps_per_s']:,.0f}", f"{r['macs_per_cycle_per_dsp']:.2f}",
             f"{sum(r['seconds'].values()):.0f}")  # fmt: skip
    return _line(cells)


def _line(cells) -> str:
    widths = (22, 8, 7, 7, 7, 5, 5, 9, 4, 12, 12, 11, 6)
    return " ".join(
        f"{c:<{w}}" if k < 3 else f"{c:>{w}}" for k, (c, w) in enumerate(zip(cells, widths))
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="the examples only")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="these designs (folder or stem)")
    ap.add_argument("--device", default="ecp5-85k")
    ap.add_argument("--freq", type=float, default=150.0, metavar="MHZ")
    ap.add_argument("--timeout", type=float, default=3600.0, metavar="SECONDS",
                    help="per design, both tools together (default 3600)")  # fmt: skip
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--baseline", metavar="REF", help="also measure git REF's generated code")
    ap.add_argument("--json", type=Path, metavar="FILE", help="write the rows as JSON")
    ap.add_argument("--keep", type=Path, metavar="DIR", help="keep Verilog, reports and logs")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="lstmfx-fpga-") as tmp:
        tmp = Path(tmp)
        work = args.keep or tmp / "work"
        codes = [("this", None)]
        if args.baseline:
            codes.append((args.baseline, baseline_tree(args.baseline, tmp)))
        print(f"{args.device}, --freq {args.freq:g}, seed {args.seed}")
        print(_line(COLUMNS))
        rows = []
        for cfg in designs(args, tmp):
            for code, tree in codes:
                rows.append(measure(cfg, code, tree, work, args))
                print(format_row(rows[-1]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
