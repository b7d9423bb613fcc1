"""Run-time weights (SPEC §5b) end to end: cocotbext-axi's AxiLiteMaster writes a second
model's weights into the generated core, the core then computes that model bit for bit,
every weight reads back, and accesses outside the map or with partial strobes answer
SLVERR and change nothing. The cocotb side is ``axil_tb.py`` next to this file.

The network: two LSTM layers (2 and 8 lanes, the second with peepholes) and a relu dense
head (2 lanes), built from
seeded random weights (``conftest.lstm_layer``); the second model has the same shapes and
formats and other weights.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from model.network import run_fixed
from model.qmodel import QuantizedNetwork
from model.weightmap import address_bits, region_bytes, weight_map, weight_words
from sim import runner
from tests.sim.conftest import dense_layer, lstm_layer
from tests.sim.test_cocotbext_axi import draw_sequences

HERE = Path(__file__).resolve().parent
JOB_ENV = "LSTMFX_AXIL_JOB"
HARDWARE = {
    "lanes": 1,
    "layers": {"lstm1": {"lanes": 2}, "lstm2": {"lanes": 8}, "dense1": {"lanes": 2}},
    "weights": "axi-lite",
}
#: sequences, and reads of the initial weights, per simulator
PLAN = {"verilator": (12, 10_000), "icarus": (6, 10_000)}


def axil_network(seed: int, name: str = "axil_net") -> QuantizedNetwork:
    """Two LSTM layers (3 -> 4 -> 4; the second with peepholes (a p format of its own), its
    own h format, 8 lanes: two cell updates, each with a copy of p_o) and a
    relu head of 2 with an unsigned bias format."""
    rng = np.random.default_rng(seed)
    l1 = lstm_layer(rng, 3, 4, {"cell": "fixed<14,3,RND,SAT>"})
    fmts = {"h": "fixed<12,3,RND,SAT>", "w": "fixed<10,2,RND,SAT>", "p": "fixed<9,1,RND,SAT>"}
    l2 = lstm_layer(rng, 4, 4, fmts, peephole=True, x_fmt=l1.out_fmt)
    # an unsigned bias whose codes have their top bit set: they read back zero-extended
    head = dense_layer(
        rng, l2.out_fmt, 4, 2, "relu", {"w": "fixed<12,2,RND,SAT>", "b": "ufixed<12,3,RND,SAT>"}
    )
    head.b = np.array([4095 - 100 * seed, 2048 + 7 * seed], dtype=np.int64)
    return QuantizedNetwork(name, [l1, l2, head], hardware=dict(HARDWARE))


def outside_addresses(net) -> list[int]:
    """Word addresses outside the map: a gap inside a tensor's region, past the end."""
    wmap = weight_map(net)
    out = []
    for e in wmap:
        count = e["rows"] * e["cols"]
        if region_bytes(e["rows"], e["cols"]) > 4 * count:
            out.append(e["base"] + 4 * count)
            break
    end = max(e["base"] + region_bytes(e["rows"], e["cols"]) for e in wmap)
    if end < 1 << address_bits(wmap):
        out.append(end)
    out.append((1 << address_bits(wmap)) - 4)
    return sorted(set(out) - {e["base"] for e in wmap})


def run_case(sim: str, seed: int = 5) -> dict:
    from hdl.generate import generate

    first, second = axil_network(1), axil_network(2)
    n, initial_reads = PLAN[sim]
    root = runner.default_build_root()
    case = "axil"
    v_path, _ = generate(first, root / f"{case}-design")
    b = runner.build(v_path, first.name, sim=sim, case=case, build_root=root)
    rng = np.random.default_rng(seed)
    xs = draw_sequences(first, n, rng)
    words1, words2 = weight_words(first), weight_words(second)
    pick = rng.choice(len(words2), size=3, replace=False)
    job = {
        "seed": seed,
        "x_width": first.in_fmt.width,
        "y_width": first.out_fmt.width,
        "output_size": first.output_size,
        "x": [x.tolist() for x in xs],
        "y1": [run_fixed(first, x[None]).y_codes[0].tolist() for x in xs],
        "y2": [run_fixed(second, x[None]).y_codes[0].tolist() for x in xs],
        "words1": words1,
        "words2": words2,
        "initial_reads": initial_reads,
        "outside": outside_addresses(first),
        "partial": [list(words2[int(k)]) for k in pick],
    }
    work = root / f"{case}-{sim}-run"
    work.mkdir(parents=True, exist_ok=True)
    path = work / "axil_job.json"
    path.write_text(json.dumps(job))
    res_path = work / "axil_results.json"
    res_path.unlink(missing_ok=True)
    if str(HERE) not in sys.path:  # axil_tb imports axis_ext_tb from here
        sys.path.append(str(HERE))
    xml = runner.run_test(
        b, "axil_tb", test_dir=work, env={JOB_ENV: str(path)}, seed=seed, log_file=work / "sim.log"
    )
    from cocotb_tools.runner import get_results

    total, failed = get_results(xml)
    assert res_path.is_file(), f"no results; see {work / 'sim.log'}"
    res = json.loads(res_path.read_text())
    res.update(tests=total, failed=failed, n=n, words=len(words2))
    res["models_differ"] = sum(a != b for a, b in zip(job["y1"], job["y2"]))
    return res


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_axil_weights(sim):
    res = run_case(sim)
    assert res["stalled"] is None, res["stalled"]
    assert not res["mismatches"], res["mismatches"][:3]
    assert not res["bad_resp"] and not res["bad_read"], (res["bad_resp"][:3], res["bad_read"][:3])
    assert res["tests"] == 1 and res["failed"] == 0, res
    assert res["writes"] == res["words"] > 200
    # the second model's outputs differ from the first's: the writes are what made them match
    assert res["models_differ"] >= res["n"] - 1
    # every bad access answered SLVERR, and a read outside the map gave 0
    assert res["slverr"] and all(w == 2 and r == 2 and d == 0 for _, _, w, r, d in res["slverr"])
    kinds = {k for k, *_ in res["slverr"]}
    assert kinds == {"outside", "partial", "unaligned"}
    # reads ran on the bus while sequences were in flight
    assert res["reads_during"]["in_flight"] > 0
    assert res["extra_frames"] == 0


def test_cosimulation_of_an_axi_lite_design():
    """The project's own bench (random and adversarial sequences, back-pressure, a reset
    mid-sequence, timing) on the design with run-time weights, which the bench leaves
    idle: its initial weights are the manifest's, and the bus costs no cycle per step.
    Verilator only: its fixed phases take most of a minute on Icarus, where
    test_axil_weights already runs the design's sequences before and after the writes."""
    from sim.session import simulate, standard_phases

    sim = "verilator"
    net = axil_network(1)
    n = 60
    phases = standard_phases(net, sequences=n, steps=4, seed=3)
    res = simulate(net, phases, sim=sim, case="axil", seed=3, progress=False)
    assert res.ok and res.mismatches == 0 and res.results["checked_beats"] > 0, res.summary()
    m = res.measured()
    assert m["cycles_per_step"] == res.hardware["cycles_per_step"], res.summary()
    assert m["latency_min"] == m["latency_max"] == res.hardware["latency"], res.summary()
