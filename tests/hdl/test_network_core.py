"""NetworkCore in the Amaranth simulator against model.network.run_fixed, bit for bit."""

import numpy as np
import pytest
from hdl_models import ODD_FORMATS, make_network, random_inputs
from stream_bench import assert_same, expected, run_network

from hdl.network import OUTPUT_CYCLES, lane_options
from model.network import run_fixed

RELU_OUT = {"w": "fixed<10,2,RND,SAT>", "b": "fixed<10,4,RND,SAT>", "out": "ufixed<8,3,RND,SAT>"}

CASES = {
    # name: (input size, LSTM sizes, dense sizes, lanes by layer, options)
    "l2_d1": (3, [3, 2], [2], {"lstm1": 2, "lstm2": 1, "dense1": 1}, {}),
    "l2_d2_relu_last_peep": (
        2, [2, 3], [3, 1], {"lstm1": 4, "lstm2": 2, "dense1": 3, "dense2": 1},
        {"output": "last", "peephole": [True, False], "activations": ["relu"]},
    ),
    "l3_odd_d0": (
        2, [2, 2, 1], [], {"lstm1": 1, "lstm2": 8, "lstm3": 4},
        {"formats": [ODD_FORMATS, None, ODD_FORMATS], "peephole": [False, True]},
    ),
    "l1_d2_relu_narrow": (
        3, [2], [4, 2], {"lstm1": 2, "dense1": 2, "dense2": 2},
        {"activations": ["relu", "linear"], "dense_formats": [RELU_OUT]},
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_network_matches_model(case):
    n_in, hidden, dense, lanes, opts = CASES[case]
    net = make_network(n_in, hidden, dense, seed=len(case), **opts)
    seqs = random_inputs(net, [3, 1, 4], seed=5)
    res, _ = run_network(net, seqs, lanes=lanes, idle=0.3, stall=0.4, seed=11)
    assert_same(res, expected(net, seqs))


def test_padding_bits():
    """Input bits above I*W_x change nothing; output bits above n*W_out are 0."""
    fm = dict(ODD_FORMATS, h="fixed<5,2,RND,SAT>")  # x: 12 bits, 3 x -> 36 of 40 bits
    net = make_network(3, [2], [3], formats=[fm], dense_formats=[RELU_OUT])  # out: 3*8 = 24
    seqs = random_inputs(net, [3, 2], seed=2)
    res, dut = run_network(net, seqs, junk=True)
    assert len(dut.s_axis_tdata) == 40 and len(dut.m_axis_tdata) == 24
    assert_same(res, expected(net, seqs))
    net2 = make_network(3, [2], [], formats=[fm])  # out: 2 * 5 = 10 of 16 bits
    res, dut = run_network(net2, seqs, junk=True)
    assert len(dut.m_axis_tdata) == 16
    assert_same(res, expected(net2, seqs))
    assert all(w >> 10 == 0 for w in res.words)


@pytest.mark.parametrize("output", ["sequence", "last"])
def test_chain_timing_as_stated(output):
    """Continuous input, output always ready: beats every cycles_per_step (the slowest
    per-step layer's), the first `latency` (the sum of the layers') after its input."""
    net = make_network(2, [2, 3], [2], output=output, seed=3)
    lanes = {"lstm1": 1, "lstm2": 2, "dense1": 1}
    seqs = random_inputs(net, [6] if output == "sequence" else [1] * 5, seed=4)
    res, dut = run_network(net, seqs, lanes=lanes, junk=False)
    assert_same(res, expected(net, seqs))
    hw = dut.hardware()
    layers = {e["name"]: e for e in hw["layers"]}
    steps = ["lstm1", "lstm2", "dense1"] if output == "sequence" else ["lstm1", "lstm2"]
    assert hw["cycles_per_step"] == max(layers[n]["cycles_per_step"] for n in steps)
    assert hw["latency"] == OUTPUT_CYCLES + sum(e["latency"] for e in hw["layers"])
    assert set(np.diff(res.beat_cycles).tolist()) == {hw["cycles_per_step"]}
    assert res.beat_cycles[0] - res.in_cycles[0] == hw["latency"]


def random_network(seed):
    """1-3 LSTM layers, 0-2 dense layers, relu/linear, peepholes, odd formats, either output,
    random valid lanes."""
    rng = np.random.default_rng(seed)
    hidden = [int(h) for h in rng.integers(1, 4, size=int(rng.integers(1, 4)))]
    dense = [int(d) for d in rng.integers(1, 4, size=int(rng.integers(0, 3)))]
    net = make_network(
        int(rng.integers(1, 4)),
        hidden,
        dense,
        output=str(rng.choice(["sequence", "last"])),
        peephole=[bool(b) for b in rng.integers(0, 2, size=len(hidden))],
        activations=[str(a) for a in rng.choice(["relu", "linear"], size=len(dense))],
        formats=[ODD_FORMATS if rng.random() < 0.4 else None for _ in hidden],
        dense_formats=[RELU_OUT if rng.random() < 0.4 else None for _ in dense],
        seed=seed,
    )
    lanes = {}
    for name, layer in zip(net.layer_names, net.layers):
        opts = lane_options(layer)
        lanes[name] = int(rng.choice([p for p in opts if p <= 8]))
    return net, lanes


@pytest.mark.parametrize("seed", range(6))
def test_random_networks(seed):
    net, lanes = random_network(100 + seed)
    seqs = random_inputs(net, [2, 3, 1], seed=seed)
    res, _ = run_network(net, seqs, lanes=lanes, idle=0.2, stall=0.5, seed=seed)
    assert_same(res, expected(net, seqs))


def test_probes_of_every_layer():
    """lstm2_trace0_* and dense1_trace_* carry the model's trace of those layers."""
    net = make_network(2, [2, 3], [2], peephole=[False, True], activations=["relu"], seed=8)
    seqs = random_inputs(net, [3, 2], seed=6)
    mon = ["lstm2_trace0", "dense1_trace", "dense1_trace1"]
    lanes = {"lstm1": 1, "lstm2": 2, "dense1": 2}
    res, dut = run_network(net, seqs, lanes=lanes, idle=0.2, stall=0.4, seed=2, monitor=mon)
    lstm_rows, dense_rows = [], []
    for seq in seqs:
        out = run_fixed(net, seq[None], trace=True)
        tr, tr_d = out.layers[1].trace, out.layers[2].trace
        for t in range(len(seq)):
            for j in range(3):
                pre = tr["preact"][0, t]
                lstm_rows.append(
                    {
                        "unit": j,
                        **{f"pre_{g}": int(pre[k * 3 + j]) for k, g in enumerate("ifgo")},
                        **{k: int(tr[k][0, t, j]) for k in ("i", "f", "g", "o", "c", "h")},
                        "tanh_cell": int(tr["tanh_cell"][0, t, j]),
                    }
                )
            dense_rows += [(k, int(tr_d["out"][0, t, k])) for k in range(2)]
    assert res.trace["lstm2_trace0"] == lstm_rows
    seen = res.trace["dense1_trace"] + res.trace["dense1_trace1"]  # lane 0 and lane 1
    assert sorted((r["index"], r["out"]) for r in seen) == sorted(dense_rows)
    assert {r["index"] for r in res.trace["dense1_trace"]} == {0}
    assert "dense1_trace0_acc" in dut.probes and "lstm1_step_commit" in dut.probes


def test_dense_head_is_the_slowest():
    """A wide head with one lane sets the pace of a sequence network."""
    net = make_network(2, [2], [6, 5], seed=5)
    lanes = {"lstm1": 8, "dense1": 1, "dense2": 1}
    seqs = random_inputs(net, [5], seed=4)
    res, dut = run_network(net, seqs, lanes=lanes, junk=False)
    assert_same(res, expected(net, seqs))
    hw = dut.hardware()
    layers = {e["name"]: e for e in hw["layers"]}
    slowest = layers["dense2"]["cycles_per_step"]
    assert hw["cycles_per_step"] == slowest > layers["lstm1"]["cycles_per_step"]
    assert set(np.diff(res.beat_cycles).tolist()) == {hw["cycles_per_step"]}
    assert res.beat_cycles[0] - res.in_cycles[0] == hw["latency"]
