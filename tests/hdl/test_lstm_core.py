"""One-layer networks: the LSTM core behind NetworkCore against the bit-accurate model, with
back-pressure and idle gaps (version 1's tests; a one-layer network computes what it did)."""

import numpy as np
import pytest
from hdl_models import ODD_FORMATS, make_qmodel, random_inputs
from stream_bench import assert_same, expected, run_network

from hdl.core import LstmCore, valid_lanes
from hdl.network import OUTPUT_CYCLES, NetworkCore
from model.lstm import lstm_fixed

CASES = {
    # name: (I, H, lanes, model options)
    "p1": (3, 4, 1, {}),
    "p2_peephole_odd": (2, 3, 2, {"peephole": True, "formats": ODD_FORMATS}),
    "p4_last_plan": (3, 2, 4, {"output": "last", "table": "plan"}),
    "p8_peephole": (2, 4, 8, {"peephole": True}),
    "p12_full_odd": (2, 3, 12, {"formats": ODD_FORMATS}),
    "p4_h1_hard_peephole": (2, 1, 4, {"peephole": True, "table": "hard"}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_core_matches_model(case):
    i, h, lanes, opts = CASES[case]
    qm = make_qmodel(i, h, lanes=lanes, seed=len(case), **opts)
    seqs = random_inputs(qm, [4, 1, 6, 3], seed=5)
    res, _ = run_network(qm, seqs, idle=0.3, stall=0.4, seed=11)
    assert_same(res, expected(qm, seqs))


@pytest.mark.parametrize("peephole", [False, True], ids=["plain", "peephole"])
def test_trace_signals_show_each_step(peephole):
    """The lstm1_trace0_* signals (LstmCore's probes at the top) carry the model's trace."""
    qm = make_qmodel(2, 3, lanes=2, peephole=peephole, formats=ODD_FORMATS, seed=9)
    seqs = random_inputs(qm, [3, 2], seed=2)
    res, _ = run_network(qm, seqs, idle=0.2, stall=0.3, seed=3, monitor=["lstm1_trace0"])
    rows = []
    layer = qm.layers[0]
    for seq in seqs:
        tr = lstm_fixed(layer, seq[None], trace=True).trace
        h = layer.hidden_size
        for t in range(len(seq)):
            for j in range(h):
                pre = tr["preact"][0, t]
                rows.append(
                    {
                        "unit": j,
                        **{f"pre_{g}": int(pre[k * h + j]) for k, g in enumerate("ifgo")},
                        **{k: int(tr[k][0, t, j]) for k in ("i", "f", "g", "o", "c", "h")},
                        "tanh_cell": int(tr["tanh_cell"][0, t, j]),
                    }
                )
    assert res.trace["lstm1_trace0"] == rows


@pytest.mark.parametrize("lanes", [1, 2, 4, 8])
def test_cycles_per_step_and_latency_as_stated(lanes):
    """Continuous input, output always ready: beats come every cycles_per_step cycles, the
    first one `latency` cycles after its input; the manifest's numbers are these."""
    i, h = 3, 2
    qm = make_qmodel(i, h, lanes=lanes, peephole=lanes == 2)
    seqs = random_inputs(qm, [6], seed=4)
    res, dut = run_network(qm, seqs)
    net_hw = dut.hardware()
    (hw,) = net_hw["layers"]
    # one layer: the chain adds only the output skid buffer's cycle to the layer's latency
    assert net_hw["cycles_per_step"] == hw["cycles_per_step"]
    assert net_hw["latency"] == hw["latency"] + OUTPUT_CYCLES
    gaps = set(np.diff(res.beat_cycles).tolist())
    assert gaps == {hw["cycles_per_step"]}
    assert res.beat_cycles[0] - res.in_cycles[0] == net_hw["latency"]
    # within the bound every design with P lanes obeys, plus the pipeline depth
    bound = -(-4 * h * (i + h) // lanes)
    assert hw["min_cycles_per_step"] == bound == hw["mac_cycles_per_step"]
    assert hw["cycles_per_step"] == bound + hw["pipeline_depth"]
    assert hw["pipeline_depth"] <= 20


def test_lane_counts():
    assert valid_lanes(3) == [1, 2, 4, 12]
    qm = make_qmodel(2, 3)
    for bad in (3, 6, 8, 0, 24, 2.0, True):
        with pytest.raises(ValueError, match=r"lstm1: lanes = .*\[1, 2, 4, 12\]"):
            LstmCore(qm.layers[0], lanes=bad)
        qm.hardware = {"lanes": bad}
        with pytest.raises(ValueError, match=r"lstm1|lanes"):
            NetworkCore(qm)
