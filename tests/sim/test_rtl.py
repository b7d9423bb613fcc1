"""The generated Verilog against the bit-accurate model, on Verilator and on Icarus.

Every configuration of ``conftest.CONFIGS`` runs on both simulators: cycles per step back
to back, latency on an idle core, random sequences with random idle cycles and
back-pressure, adversarial ones with fixed-pattern pauses, random lengths from 1 with a
reset in the middle of two sequences, and a long sequence. Each case builds in its own
directory (``.sim_build/<case>-<sim>``), reused while its Verilog is unchanged. Verilator
carries the sequence count (over 2,000 random and adversarial sequences per run); Icarus,
two orders slower, runs a sample of each kind.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import CONFIGS, TALLY

import lstmfx
from model.qmodel import QuantizedModel
from sim import runner
from sim.session import simulate, standard_phases

#: per simulator: sequences (random + adversarial + lengths), steps, long sequence steps
PLAN = {
    "verilator": {"sequences": 640, "steps": 6, "long": {c: 1000 for c in CONFIGS}},
    "icarus": {"sequences": 24, "steps": 5, "long": {"narrow": 1000}},
}
#: configurations whose adversarial phase must drive the cell state past its format
SATURATING = ("peephole", "narrow", "last")


def planned(sim: str) -> int:
    """Random and adversarial sequences one case of ``sim`` runs."""
    n = PLAN[sim]["sequences"]
    return n - max(4, n // 10)


def test_plan_covers_2000_sequences():
    assert sum(planned(sim) * len(CONFIGS) for sim in PLAN) >= 2000


def phases_for(qm, name: str, sim: str, seed: int):
    plan = PLAN[sim]
    long_steps = plan["long"].get(name, 0)
    return standard_phases(
        qm,
        sequences=plan["sequences"],
        steps=plan["steps"],
        seed=seed,
        long_steps=long_steps,
        long_sequences=1 if long_steps else 0,
    )


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_rtl_equals_model(configs, name, sim):
    qm = configs[name].qmodel
    phases = phases_for(qm, name, sim, seed=7)
    res = simulate(qm, phases, sim=sim, case=qm.name, seed=7, progress=False)
    by = {p["name"]: p for p in res.phases}
    TALLY.append(
        (
            sim,
            name,
            by.get("random", {}).get("sequences", 0)
            + by.get("adversarial", {}).get("sequences", 0),
            res.mismatches,
        )
    )
    assert res.ok, res.summary()
    assert res.mismatches == 0 and res.results["checked_beats"] > 0
    expected = {"timing", "latency", "random", "adversarial", "lengths"}
    assert expected <= set(by), res.summary()
    assert by["random"]["sequences"] + by["adversarial"]["sequences"] == planned(sim)
    assert by["random"]["backpressure"] != "none" and by["adversarial"]["backpressure"] != "none"
    # a reset in the middle of two sequences, and every sequence after them still exact
    assert len(by["lengths"]["cut_by_reset"]) == 2
    if PLAN[sim]["long"].get(name):
        assert by["long"]["steps"] >= 1000
    # timing: measured, and equal to the manifest's promise
    m = res.measured()
    assert m["cycles_per_step"] == res.hardware["cycles_per_step"], res.summary()
    assert m["latency_min"] == m["latency_max"] == res.hardware["latency"], res.summary()
    assert res.ideal <= res.hardware["cycles_per_step"]
    if name in SATURATING and sim == "verilator":
        assert by["adversarial"]["overflow"].get("cell", 0) > 0, "the cell state never saturated"


def test_build_is_reused(configs):
    """The Verilator build of an unchanged design is found again, not rebuilt."""
    qm = configs["small"].qmodel
    from sim.session import generate_design

    root = runner.default_build_root()
    v_path, _ = generate_design(qm, root / f"{qm.name}-design")
    b = runner.build(v_path, qm.name, sim="verilator", case=qm.name)
    assert b.reused and b.seconds < 1.0


def test_mismatch_is_located(configs):
    """A model that differs from the RTL in one bias: found, and traced to that row.

    The RTL is built from the true model; the scoreboard is fed a model whose forget-gate
    bias of unit 1 is off. h differs only from step 1 (c_{-1} = 0 hides f at step 0), but
    the diagnosis must point at step 0, preact row H + 1.
    """
    qm = configs["small"].qmodel
    h = qm.hidden_size
    m = qm.to_manifest()
    m["weights"]["b"][h + 1] += 1 << 10
    wrong = QuantizedModel.from_manifest(m)
    phases = standard_phases(qm, sequences=12, steps=4, seed=3, long_steps=0)
    res = simulate(qm, phases, sim="verilator", case=qm.name, expected=wrong, progress=False)
    assert not res.ok and res.mismatches > 0
    first = res.results["mismatches"][0]
    assert {"phase", "sequence", "step", "elements"} <= set(first)
    diag = res.results["diagnosis"]
    assert diag["reproduced"], diag
    fd = diag["first_divergence"]
    assert (fd["step"], fd["point"], fd["element"]) == (0, "preact", h + 1), diag["text"]
    assert "preact[f, j=1]" in diag["text"]
    assert "FAIL" in res.summary()


def test_simulate_command(configs, tmp_path, capsys):
    cfg = configs["narrow"]
    path = tmp_path / "c.toml"
    path.write_text(cfg.to_toml(base=tmp_path))
    args = ["simulate", str(path), "--sequences", "40", "--steps", "4", "--long", "0"]
    assert lstmfx.main([*args, "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "PASS" in out and "cycles per step" in out and "steps/s" in out
    assert json.loads((tmp_path / "r.json").read_text())["mismatched_beats"] == 0

    x = np.random.default_rng(0).normal(size=(5, 7, cfg.qmodel.input_size))
    np.save(tmp_path / "x.npy", x)
    assert lstmfx.main(["simulate", str(path), "--input", str(tmp_path / "x.npy")]) == 0
    out = capsys.readouterr().out
    assert "input" in out and "PASS" in out


def test_waves_on_request(configs):
    qm = configs["narrow"].qmodel
    phases = standard_phases(qm, sequences=2, steps=3, long_steps=0)[:1]
    res = simulate(qm, phases, sim="icarus", case=qm.name, waves=True, progress=False)
    from sim.session import waves_file

    assert res.ok and res.build.waves
    wf = waves_file(res)
    assert wf is not None and wf.stat().st_size > 0


def test_stall_is_reported(configs):
    """A sink that never takes a beat stalls the core; the run says where, and fails."""
    qm = configs["small"].qmodel
    xs = list(standard_phases(qm, sequences=8, steps=3, long_steps=0)[2].sequences[:3])
    from sim.job import Phase

    res = simulate(qm, [Phase("stuck", xs, backpressure="pattern:1")], case=qm.name, progress=False)
    assert not res.ok
    assert "no transfer for" in res.results["stalled"] and res.results["unreceived_beats"] > 0
    assert any(e.startswith("stalled") for e in res.errors)
