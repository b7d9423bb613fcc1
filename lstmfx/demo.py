"""``lstmfx demo``: the built-in example from trained model to checked Verilog.

An example folder holds ``config.toml``, the trained model it names, ``head.npz`` (the
layer after the LSTM), ``x_test.npy`` and ``y_test.npy``. The demo runs the bit-accurate
model over the test data and scores it against float64, writes the quantization report,
generates the Verilog (``hdl.generate``) and co-simulates it against the model
(``sim.session``) when those packages and a simulator are there, and says where each
result was written.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from model.config import load_config
from model.lstm import quantize_input, run_fixed, run_float
from model.measure import load_head, measure
from model.pwl import describe
from model.report import findings, metric_text, write_report


def run_demo(
    example: Path,
    out_dir,
    *,
    sequences: int = 200,
    sim: str | None = None,
    no_sim: bool = False,
    say=print,
) -> int:
    t0 = time.monotonic()
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    cfg = load_config(example / "config.toml")
    qm = cfg.qmodel
    x = np.load(example / "x_test.npy")
    y = np.load(example / "y_test.npy")
    head = load_head(example / "head.npz")
    written: list[tuple[str, Path]] = []

    say(
        f"example {cfg.name} (examples/{example.name}): LSTM I={qm.input_size} "
        f"H={qm.hidden_size} from {cfg.model_path.name}, output {qm.output}; "
        f"{x.shape[0]} test sequences x {x.shape[1]} steps"
    )
    for t, f in qm.formats.items():
        say(f"  {t:9s} {f}")
    for act, table in qm.tables.items():
        say(f"  {act:9s} table: {describe(table)}, max error {table.error()['max_lsb']:.2f} LSB")

    # 1. inference: the bit-accurate model against float64, through the example's head
    say("\n1. inference")
    x_codes, n_over = quantize_input(qm, x)
    res = run_fixed(qm, x_codes)
    h_fixed = qm.formats["h"].codes_to_values(res.h_codes)
    h_float = run_float(cfg.float_model, x, output=qm.output)
    last = (lambda h: h[:, -1]) if qm.output == "sequence" else (lambda h: h)
    pred_fixed, pred_float = head.apply(last(h_fixed)), head.apply(last(h_float))
    path = out / "infer.npz"
    np.savez(
        path,
        h_codes=res.h_codes,
        h=h_fixed,
        h_float=h_float,
        pred=pred_fixed,
        pred_float=pred_float,
    )
    written.append(("outputs of the bit-accurate model and of float64", path))
    err = np.abs(h_fixed - h_float)
    say(
        f"   h against float64: max abs error {err.max():.3g}, mean {err.mean():.3g} "
        f"(LSB of h {qm.formats['h'].lsb:.3g}); input values clipped: {n_over}"
    )
    if head.task == "classify":
        for k in range(min(5, len(y))):
            say(
                f"   sequence {k}: label {y[k]}, float64 says {pred_float[k].argmax()}, "
                f"fixed point says {pred_fixed[k].argmax()}"
            )
    else:
        unit = f" {head.unit}" if head.unit else ""
        for k in range(max(0, len(y) - 5), len(y)):
            say(
                f"   sequence {k}: actual {float(y[k]):7.1f}{unit}, forecast float64 "
                f"{float(pred_float[k, 0]):7.1f}, fixed point {float(pred_fixed[k, 0]):7.1f}"
            )

    # 2. the report
    say("\n2. quantization report")
    r = measure(cfg, x, labels=y, head=head)
    paths = write_report(r, qm.tables, out / "report")
    for line in findings(r)[:3]:
        say(f"   - {line}")
    if r["task"]:
        t = r["task"]
        say(f"   task: {metric_text(t, 'float')} float64, {metric_text(t, 'fixed')} fixed point")
    written.append(("quantization report (open in a browser)", paths["html"]))
    written.append(("the same as Markdown and JSON", paths["md"]))

    # 3. Verilog
    say("\n3. Verilog")
    ok = True
    try:
        from hdl.generate import generate
    except ImportError as e:
        say(f"   not generated: the hardware package is not available here ({e})")
        generate = None
    if generate is not None:
        v_path, m_path = generate(qm, out / "verilog")
        say(f"   {v_path.name}: top module {qm.name}, AXI4-Stream in and out (SPEC §5)")
        written.append(("Verilog", v_path))
        written.append(("manifest: the quantized model as integers", m_path))

    # 4. co-simulation
    say("\n4. co-simulation")
    if no_sim:
        say("   skipped (--no-sim)")
    elif generate is None:
        say("   skipped: there is no Verilog to simulate")
    else:
        ok = _cosimulate(qm, x_codes, sequences, sim, out, say, written)

    say(f"\ndone in {time.monotonic() - t0:.0f} s; written:")
    for what, p in written:
        say(f"  {_rel(p)}  ({what})")
    return 0 if ok else 1


def _cosimulate(qm, x_codes, sequences: int, sim, out: Path, say, written) -> bool:
    """Co-simulate the test sequences (and random ones up to ``sequences``); False on a
    mismatch. Missing simulators and packages are said, not failed."""
    try:
        from sim import runner, session
        from sim.job import Phase
        from sim.sequences import random_sequences
    except ImportError as e:
        say(f"   skipped: the co-simulation package is not available here ({e})")
        return True
    chosen = None
    reasons = []
    for name in [sim] if sim else ["verilator", "icarus"]:
        try:
            version = runner.setup(name)
            chosen = name
            break
        except runner.SimulatorError as e:
            reasons.append(str(e))
    if chosen is None:
        say("   skipped: no simulator: " + "; ".join(reasons))
        return True
    real = [s for s in x_codes[:sequences]]
    rng = np.random.default_rng(0)
    extra = max(0, sequences - len(real))
    # the timing and latency phases of the standard check measure cycles per step and
    # latency against the manifest; then the test data and random sequences, with pauses
    timing = session.standard_phases(qm, sequences=0, steps=x_codes.shape[1], user=real)[:2]
    phases = [*timing, Phase("test data", real, idle="random:0.2", backpressure="random:0.3")]
    if extra:
        rand = list(random_sequences(qm, extra, x_codes.shape[1], rng))
        phases.append(Phase("random", rand, idle="random:0.2", backpressure="random:0.3"))
    say(
        f"   {version}: {len(real)} test sequences and {extra} random ones, with random idle "
        f"input and output back-pressure"
    )
    res = session.simulate(qm, phases, sim=chosen, build_root=out / "sim", progress=True)
    for line in res.summary().splitlines():
        say(f"   {line}")
    written.append((f"{chosen} build and run", out / "sim"))
    return res.ok


def _rel(p: Path) -> str:
    try:
        return str(Path(p).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(p)
