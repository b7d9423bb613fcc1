"""The generated Verilog against the bit-accurate network, on Verilator and on Icarus.

Every case of ``conftest.CONFIGS`` (one LSTM layer) and ``conftest.NETWORKS`` (two LSTM
layers and a dense head) runs on both simulators: cycles per step back to back, latency
on an idle core, random sequences with random idle cycles and back-pressure, adversarial
ones with fixed-pattern pauses, random lengths from 1 with a reset in the middle of two
sequences, and a long sequence. Input pad bits carry random garbage; output pad bits must
be 0 (SPEC §5). Each case builds in its own directory (``<case>-<sim>-<hash>`` in the build cache),
reused while its Verilog is unchanged. Verilator carries the sequence count (over 2,000
one-layer and over 1,000 network sequences per run); Icarus, about twenty times slower,
runs a sample of each kind.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import CONFIGS, NETWORKS, TALLY

import lstmfx
from model.qmodel import QuantizedNetwork
from sim import runner
from sim.session import simulate, standard_phases

#: per simulator: sequences (random + adversarial + lengths), steps, long sequence steps
PLAN = {
    "verilator": {"sequences": 640, "steps": 6, "long": {c: 1000 for c in CONFIGS}},
    "icarus": {"sequences": 24, "steps": 5, "long": {"narrow": 1000}},
}
NETWORK_PLAN = {
    "verilator": {"sequences": 400, "steps": 6, "long": {"net_relu": 1000, "net_last": 300}},
    "icarus": {"sequences": 20, "steps": 4, "long": {"net_peephole": 200}},
}
#: cases whose adversarial phase must drive a cell state past its format
SATURATING = ("peephole", "narrow", "last", "net_last")


def plan_of(name: str, sim: str) -> dict:
    return (PLAN if name in CONFIGS else NETWORK_PLAN)[sim]


def planned(name: str, sim: str) -> int:
    """Random and adversarial sequences one case of ``sim`` runs."""
    n = plan_of(name, sim)["sequences"]
    return n - max(4, n // 10)


def test_plan_covers_the_sequence_counts():
    assert sum(planned(c, sim) for sim in PLAN for c in CONFIGS) >= 2000
    assert sum(planned(c, sim) for sim in NETWORK_PLAN for c in NETWORKS) >= 1000


def phases_for(net, name: str, sim: str, seed: int):
    plan = plan_of(name, sim)
    long_steps = plan["long"].get(name, 0)
    return standard_phases(
        net,
        sequences=plan["sequences"],
        steps=plan["steps"],
        seed=seed,
        long_steps=long_steps,
        long_sequences=1 if long_steps else 0,
    )


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
@pytest.mark.parametrize("name", [*CONFIGS, *NETWORKS])
def test_rtl_equals_model(networks, name, sim):
    net = networks[name]
    phases = phases_for(net, name, sim, seed=7)
    res = simulate(net, phases, sim=sim, case=net.name, seed=7, progress=False)
    by = {p["name"]: p for p in res.phases}
    TALLY.append(
        (
            sim,
            name,
            len(net.layers),
            by.get("random", {}).get("sequences", 0)
            + by.get("adversarial", {}).get("sequences", 0),
            res.mismatches,
        )
    )
    assert res.ok, res.summary()
    assert res.mismatches == 0 and res.results["checked_beats"] > 0
    expected = {"timing", "latency", "random", "adversarial", "lengths"}
    assert expected <= set(by), res.summary()
    assert by["random"]["sequences"] + by["adversarial"]["sequences"] == planned(name, sim)
    assert by["random"]["backpressure"] != "none" and by["adversarial"]["backpressure"] != "none"
    # a reset in the middle of two sequences, and every sequence after them still exact
    assert len(by["lengths"]["cut_by_reset"]) == 2
    long_steps = plan_of(name, sim)["long"].get(name)
    if long_steps:
        assert by["long"]["steps"] >= long_steps
    # timing: measured, and equal to the manifest's promise for the whole chain
    m = res.measured()
    assert m["cycles_per_step"] == res.hardware["cycles_per_step"], res.summary()
    assert m["latency_min"] == m["latency_max"] == res.hardware["latency"], res.summary()
    assert res.ideal <= res.hardware["cycles_per_step"]
    if name in SATURATING and sim == "verilator":
        over = by["adversarial"]["overflow"]
        hit = sum(v for k, v in over.items() if k.endswith(".cell"))
        assert hit > 0, f"no cell state ever saturated: {over}"


def test_build_is_reused(networks):
    """The Verilator build of an unchanged design is found again, not rebuilt."""
    net = networks["small"]
    from sim.session import generate_design

    root = runner.default_build_root()
    v_path, _ = generate_design(net, root / f"{net.name}-design")
    runner.build(v_path, net.name, sim="verilator", case=net.name)  # built by now, or here
    b = runner.build(v_path, net.name, sim="verilator", case=net.name)
    assert b.reused and b.seconds < 1.0


@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_two_designs_of_one_name_keep_their_builds(networks, tmp_path, sim):
    """Two configs of the same design name, alternated: each Verilog hash keeps its own
    build, so the second round compiles nothing (counted by ``runner.COMPILED``)."""
    from sim.session import generate_design

    a = networks["narrow"]
    b = _nudged(a, 0, 1)
    assert a.name == b.name
    for rnd in range(2):
        before = runner.COMPILED
        built = []
        for net in (a, b):
            v_path, _ = generate_design(net, tmp_path / f"{net.name}-design")
            built.append(runner.build(v_path, net.name, sim=sim, build_root=tmp_path))
        assert built[0].directory != built[1].directory
        if rnd == 0:
            assert runner.COMPILED - before == 2
    assert runner.COMPILED == before and all(x.reused for x in built)
    assert runner.prune(tmp_path, limit=1) == [built[0].directory]


def _nudged(net: QuantizedNetwork, layer: int, row: int) -> QuantizedNetwork:
    """``net`` with bias ``row`` of layer ``layer`` one unit (1.0) larger."""
    m = net.to_manifest()
    b = m["layers"][layer]["weights"]["b"]
    fmt = net.layers[layer].formats["b"]
    b[row] = min(b[row] + (1 << fmt.frac), fmt.code_max)
    return QuantizedNetwork.from_manifest(m)


@pytest.mark.parametrize(
    "name, layer, row, where",
    [
        # h differs only from step 1 (c_{-1} = 0 hides f at step 0), but the diagnosis
        # must point at step 0, preact row H + 1
        ("small", 0, 5, ("lstm1", 0, "preact", 5, "lstm1 preact[f, j=1]")),
        ("net_relu", 1, 5, ("lstm2", 0, "preact", 5, "lstm2 preact[f, j=1]")),
        ("net_relu", 2, 1, ("dense1", None, "out", 1, "dense1 out[1]")),
    ],
)
def test_mismatch_is_located(networks, name, layer, row, where):
    """A model that differs from the RTL in one bias: found, and traced to that layer and
    row. The RTL is built from the true network; the scoreboard is fed the nudged one."""
    net = networks[name]
    wrong = _nudged(net, layer, row)
    phases = standard_phases(net, sequences=12, steps=4, seed=3, long_steps=0)
    res = simulate(net, phases, sim="verilator", case=net.name, expected=wrong, progress=False)
    assert not res.ok and res.mismatches > 0
    first = res.results["mismatches"][0]
    assert {"phase", "sequence", "step", "elements"} <= set(first)
    diag = res.results["diagnosis"]
    assert diag["reproduced"], diag
    fd = diag["first_divergence"]
    got = (fd["layer"], fd["step"], fd["point"], fd["element"])
    layer_name, step, point, element, text = where
    assert got[0] == layer_name and got[2:] == (point, element), diag["text"]
    if step is not None:
        assert got[1] == step, diag["text"]
    assert text in diag["text"] and f"layer {layer_name}" in diag["text"]
    assert "FAIL" in res.summary()


ONE_LAYER_TOML = """name = "cli_narrow"
model = "narrow.npz"
output = "sequence"

[formats]
{formats}

[activations]
kind = "uniform"
segments = 32

[hardware]
lanes = 2
"""


def test_simulate_command(tmp_path, capfd):
    """``lstmfx simulate`` on a one-layer config of SPEC version 1, unchanged; what the
    user sees holds no stray simulator lines, and --input says it wins over --sequences."""
    rng = np.random.default_rng(sum(map(ord, "narrow")))
    h, i_size = 3, 2
    b = rng.normal(scale=0.3, size=4 * h)
    b[h : 2 * h] += 2.0
    w = rng.normal(scale=0.7, size=(4 * h, i_size))
    np.savez(tmp_path / "narrow.npz", w=w, r=rng.normal(scale=0.4, size=(4 * h, h)), b=b)
    formats = "\n".join(f'{k} = "{v}"' for k, v in CONFIGS["narrow"][5].items())
    path = tmp_path / "c.toml"
    path.write_text(ONE_LAYER_TOML.format(formats=formats))
    args = ["simulate", str(path), "--sequences", "40", "--steps", "4", "--long", "0"]
    assert lstmfx.main([*args, "--json", str(tmp_path / "r.json")]) == 0
    out, err = capfd.readouterr()
    assert "PASS" in out and "cycles per step" in out and "steps/s" in out
    assert "Verilog $finish" not in out + err and "vpi_iterate" not in out + err
    assert "lstm1 2->3" in out
    assert json.loads((tmp_path / "r.json").read_text())["mismatched_beats"] == 0

    x = np.random.default_rng(0).normal(size=(5, 7, i_size))
    np.save(tmp_path / "x.npy", x)
    args = ["simulate", str(path), "--input", str(tmp_path / "x.npy"), "--sequences", "9"]
    assert lstmfx.main(args) == 0
    out = capfd.readouterr().out
    assert "input" in out and "PASS" in out
    assert "note: --input wins: running its 5 sequences, not --sequences 9" in out


def test_simulate_checks_its_outputs_first(tmp_path, capsys):
    """A --json or --build-dir that cannot be written fails at once, in one line, before
    the config is even read."""
    (tmp_path / "file").write_text("")
    for opt, bad in (("--json", tmp_path), ("--build-dir", tmp_path / "file" / "b")):
        assert lstmfx.main(["simulate", "missing.toml", opt, str(bad)]) != 0
        err = capsys.readouterr().err.strip()
        assert opt in err and len(err.splitlines()) == 1, err


def test_json_is_written_atomically(tmp_path, monkeypatch):
    """A write that fails leaves the previous results whole and no temporary file."""
    from model.paths import write_atomically

    path = tmp_path / "r.json"
    write_atomically(path, "old")
    monkeypatch.setattr("os.replace", lambda a, b: (_ for _ in ()).throw(OSError("disk")))
    with pytest.raises(OSError):
        write_atomically(path, "new")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_simulate_command_on_a_network(networks, tmp_path, capsys, monkeypatch):
    """The same command on a network runs the same phases and names its layers."""
    from model import config

    class Cfg:
        network = networks["net_last"]

    monkeypatch.setattr(config, "load_config", lambda path: Cfg)
    args = ["simulate", "net.toml", "--sequences", "24", "--steps", "3", "--long", "40"]
    assert lstmfx.main([*args, "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "lstm1 2->3, lstm2 3->4, dense1 4->2 linear, output=last" in out
    assert "PASS" in out and "cycles per step by layer" in out
    phases = [p["name"] for p in json.loads((tmp_path / "r.json").read_text())["phases"]]
    assert phases == ["timing", "latency", "random", "adversarial", "lengths", "long"]


def _fst_blocks(path) -> dict[int, bytes]:
    """An FST file's blocks by type (0 header, 3/8 values, 4 gzip'd or 6 LZ4 hierarchy);
    an AssertionError unless the file is a sequence of whole FST blocks."""
    import struct

    data = path.read_bytes()
    # the header block: type 0, then its length, 329 bytes, as a big-endian u64
    assert data[:9] == bytes([0, 0, 0, 0, 0, 0, 0, 1, 0x49]), f"{path} is not FST"
    blocks, pos = {}, 0
    while pos < len(data):
        length = struct.unpack(">Q", data[pos + 1 : pos + 9])[0]
        assert length > 8 and pos + 1 + length <= len(data), f"{path}: a cut block"
        blocks[data[pos]] = data[pos + 1 : pos + 1 + length]
        pos += 1 + length
    return blocks


@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_waves_are_fst_one_file_per_run(networks, tmp_path, sim):
    """--waves writes FST on both simulators, a new file per run, readable signal names."""
    import gzip

    net = networks["narrow"]
    phases = standard_phases(net, sequences=2, steps=3, long_steps=0)[1:2]
    files = []
    for _ in range(2):
        res = simulate(net, phases, sim=sim, waves=True, progress=False, waves_dir=tmp_path)
        assert res.ok and res.build.waves
        files.append(res.waves_path)
    assert files[0] != files[1] and all(f.parent == tmp_path for f in files)
    for f in files:
        blocks = _fst_blocks(f)
        assert 4 in blocks or 6 in blocks, f"{f}: no hierarchy"
        if 4 in blocks:  # gzip'd hierarchy (Icarus): the ports keep their names
            names = gzip.decompress(blocks[4][16:])
            assert b"s_axis_tvalid" in names and b"m_axis_tdata [" in names


def test_waves_sequence_command(networks, tmp_path, capsys, monkeypatch):
    """``simulate --waves-sequence`` checks the whole run, then names a small waveform."""
    from model import config

    class Cfg:
        network = networks["narrow"]

    monkeypatch.setattr(config, "load_config", lambda path: Cfg)
    args = ["simulate", "c.toml", "--sim", "icarus", "--sequences", "4", "--steps", "2"]
    args += ["--long", "0", "--build-dir", str(tmp_path), "--waves-sequence", "random:1"]
    assert lstmfx.main(args) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("waveform"))
    assert "sequence 1 of phase random, 2 steps, replayed alone" in line
    path = Path(line.rsplit(": ", 1)[1])
    assert path.parent == tmp_path / "waves"
    blocks = _fst_blocks(path)
    assert 4 in blocks or 6 in blocks


def test_waves_of_one_sequence():
    """--waves-sequence replays one sequence alone with waves: a small file."""
    from sim.job import Phase
    from sim.session import replay_phase

    a = [np.zeros((2, 2), np.int64), np.ones((3, 2), np.int64)]
    phases = [Phase("one", a[:1]), Phase("two", a, backpressure="random:0.5")]
    ph, what = replay_phase(phases, "2")
    assert ph.sequences[0] is a[1] and ph.backpressure == "random:0.5"
    assert what == "sequence 1 of phase two, 3 steps, replayed alone"
    assert replay_phase(phases, "two:0")[0].sequences[0] is a[0]
    for bad in ("3", "three:0", "two:2", "x"):
        with pytest.raises(ValueError):
            replay_phase(phases, bad)


def test_stall_is_reported(networks):
    """A sink that never takes a beat stalls the core; the run says where, and fails."""
    net = networks["small"]
    xs = list(standard_phases(net, sequences=8, steps=3, long_steps=0)[2].sequences[:3])
    from sim.job import Phase

    res = simulate(
        net, [Phase("stuck", xs, backpressure="pattern:1")], case=net.name, progress=False
    )
    assert not res.ok
    assert "no transfer for" in res.results["stalled"] and res.results["unreceived_beats"] > 0
    assert any(e.startswith("stalled") for e in res.errors)


def test_memory_is_flat_in_the_number_of_sequences(networks):
    """Ten times the sequences, (nearly) the same peak memory in the simulator's process:
    the bench queues a few sequences ahead and keeps counts and the first mismatches only.
    (Queuing a whole phase up front took 3 GB more for 10,000 two-step sequences.)"""
    from sim.job import Phase
    from sim.sequences import random_sequences

    net = networks["narrow"]
    rss = {}
    for n in (500, 5000):
        xs = list(random_sequences(net, n, 2, np.random.default_rng(n)))
        res = simulate(
            net, [Phase("bulk", xs)], sim="verilator", case=net.name, progress=False, diagnose=False
        )
        assert res.ok and res.sequences == n, res.summary()
        rss[n] = res.results["peak_rss_mib"]
    assert rss[5000] - rss[500] < 16, f"peak RSS {rss} MiB"
