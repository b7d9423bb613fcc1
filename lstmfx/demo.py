"""``lstmfx demo``: the built-in example from trained model to checked Verilog.

An example folder holds ``config.toml``, the trained network it names, ``x_test.npy`` and
``y_test.npy``; a network without dense layers may have ``head.npz`` beside it (a float
layer after the LSTM that turns ``h`` into the task's output). The demo runs the bit-accurate
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
from model.measure import load_head, measure
from model.network import quantize_input, run_fixed, run_float
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
    net = cfg.network
    x = np.load(example / "x_test.npy")
    y = np.load(example / "y_test.npy")
    head = None
    if (example / "head.npz").is_file():
        if net.dense_layers:
            say(
                f"note: {example.name}/head.npz is not used: the model has its own dense "
                f"layers, and they are the head"
            )
        else:
            head = load_head(example / "head.npz")
    written: list[tuple[str, Path]] = []

    shape = ", ".join(
        f"{n} {la.input_size}→{la.output_size}"
        + (f" {la.activation}" if la.kind == "dense" else "")
        for n, la in zip(net.layer_names, net.layers)
    )
    say(
        f"example {cfg.name} (examples/{example.name}): {shape} from {cfg.model_path.name}, "
        f"output {net.output}; {x.shape[0]} test sequences x {x.shape[1]} steps"
    )
    for lname, layer in zip(net.layer_names, net.layers):
        say(f"  {lname}: " + ", ".join(f"{t} {f}" for t, f in layer.formats.items()))
        for act, table in getattr(layer, "tables", {}).items():
            say(
                f"    {act:9s} table: {describe(table)}, max error "
                f"{table.error()['max_lsb']:.2f} LSB"
            )

    # 1. inference: the bit-accurate network against float64 (through head.npz if any)
    say("\n1. inference")
    x_codes, n_over = quantize_input(net, x)
    res = run_fixed(net, x_codes)
    y_fixed = net.out_fmt.codes_to_values(res.y_codes)
    y_float = run_float(cfg.float_model, x, output=net.output)

    def predict(v):
        v = v[:, -1] if v.ndim == 3 else v
        return head.apply(v) if head is not None else v

    pred_fixed, pred_float = predict(y_fixed), predict(y_float)
    path = out / "infer.npz"
    np.savez(
        path,
        y_codes=res.y_codes,
        y=y_fixed,
        y_float=y_float,
        pred=pred_fixed,
        pred_float=pred_float,
    )
    written.append(("outputs of the bit-accurate model and of float64", path))
    err = np.abs(y_fixed - y_float)
    say(
        f"   output against float64: max abs error {err.max():.3g}, mean {err.mean():.3g} "
        f"(LSB {net.out_fmt.lsb:.3g}); input values clipped: {n_over}"
    )
    task = head.task if head is not None and head.task else None
    task = task or ("classify" if y.dtype.kind in "iub" else "regress")
    if task == "classify":
        for k in range(min(5, len(y))):
            say(
                f"   sequence {k}: label {y[k]}, float64 says {pred_float[k].argmax()}, "
                f"fixed point says {pred_fixed[k].argmax()}"
            )
    else:
        unit = f" {head.unit}" if head is not None and head.unit else ""
        for k in range(max(0, len(y) - 5), len(y)):
            say(
                f"   sequence {k}: actual {float(np.ravel(y[k])[-1]):7.1f}{unit}, forecast "
                f"float64 {float(np.ravel(pred_float[k])[0]):7.1f}, fixed point "
                f"{float(np.ravel(pred_fixed[k])[0]):7.1f}"
            )

    # 2. the report
    say("\n2. quantization report")
    r = measure(cfg, x, labels=y, head=head)
    paths = write_report(r, cfg.tables, out / "report")
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
        v_path, m_path = generate(net, out / "verilog")
        say(f"   {v_path.name}: top module {net.name}, AXI4-Stream in and out")
        written.append(("Verilog", v_path))
        written.append(("manifest: the quantized model as integers", m_path))

    # 4. co-simulation
    say("\n4. co-simulation")
    if no_sim:
        say("   skipped (--no-sim)")
    elif generate is None:
        say("   skipped: there is no Verilog to simulate")
    else:
        ok = _cosimulate(net, x_codes, sequences, sim, out, say, written)

    say(f"\ndone in {time.monotonic() - t0:.0f} s; written:")
    for what, p in written:
        say(f"  {_rel(p)}  ({what})")
    return 0 if ok else 1


def _cosimulate(net, x_codes, sequences: int, sim, out: Path, say, written) -> bool:
    """Co-simulate the test sequences (and random ones up to ``sequences``); False on a
    mismatch, or when the simulator the user named (``sim``) is missing. Without a named
    one, missing simulators and packages are said, not failed."""
    try:
        from sim import runner, session
        from sim.job import Phase
        from sim.sequences import random_sequences
    except ImportError as e:
        if sim:
            say(f"   failed: {sim} was asked for, but the co-simulation package is broken ({e})")
            return False
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
        if sim:  # asked for by name: not having it is a failure, not a skip
            say(f"   failed: {sim} is not available: " + "; ".join(reasons))
            return False
        say("   skipped: no simulator: " + "; ".join(reasons))
        return True
    real = [s for s in x_codes[:sequences]]
    rng = np.random.default_rng(0)
    extra = max(0, sequences - len(real))
    # the timing and latency phases of the standard check measure cycles per step and
    # latency against the manifest; then the test data and random sequences, with pauses
    timing = session.standard_phases(net, sequences=0, steps=x_codes.shape[1], user=real)[:2]
    phases = [*timing, Phase("test data", real, idle="random:0.2", backpressure="random:0.3")]
    if extra:
        rand = list(random_sequences(net, extra, x_codes.shape[1], rng))
        phases.append(Phase("random", rand, idle="random:0.2", backpressure="random:0.3"))
    say(
        f"   {version}: {len(real)} test sequences and {extra} random ones, with random idle "
        f"input and output back-pressure"
    )
    res = session.simulate(net, phases, sim=chosen, build_root=out / "sim", progress=True)
    for line in res.summary().splitlines():
        say(f"   {line}")
    written.append((f"{chosen} build and run", out / "sim"))
    return res.ok


def _rel(p: Path) -> str:
    try:
        return str(Path(p).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(p)
