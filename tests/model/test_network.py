"""model/network.py: run_fixed bit for bit against the naive SPEC §2b network; manifests.

``naive_network`` recomputes every layer in Fractions from the integer codes only. The
random networks below have 1-3 LSTM layers and 0-2 dense layers (relu and linear), their
own formats per layer over every Q and O mode, peepholes per layer, both outputs, and
narrow formats that overflow; ``test_the_random_networks_reach_*`` checks that they do.
"""

from __future__ import annotations

import naive_network
import numpy as np
import pytest
from random_parts import TYPICAL_INT_BITS, random_codes, random_format, random_table

from model.formats import O_MODES, Q_MODES, Format
from model.lstm import TRACE, FloatLSTM, lstm_float
from model.network import FloatDense, FloatNetwork, dense_fixed, run_fixed, run_float
from model.qmodel import (
    ACTIVATIONS,
    SPEC_VERSION,
    DenseLayer,
    LstmLayer,
    QuantizedNetwork,
)

LSTM_NAMES = tuple(TYPICAL_INT_BITS)


def random_lstm(rng, *, i_size, x_fmt, widths, peephole):
    for _ in range(100):
        f = {name: random_format(rng, name, widths=widths) for name in LSTM_NAMES}
        if x_fmt is not None:
            f["x"] = x_fmt
        h = int(rng.choice([1, 2, 3]))
        try:
            tables = {
                act: random_table(rng, func, f[src], f[dst])
                for act, (src, dst, func) in ACTIVATIONS.items()
            }
            return LstmLayer(
                i_size,
                h,
                {k: v for k, v in f.items() if k != "p" or peephole},
                random_codes(rng, f["w"], (4 * h, i_size)),
                random_codes(rng, f["r"], (4 * h, h)),
                random_codes(rng, f["b"], 4 * h),
                tables,
                p=random_codes(rng, f["p"], 3 * h) if peephole else None,
            )
        except ValueError:
            continue
    raise AssertionError("no valid random LSTM layer in 100 draws")


def random_dense(rng, *, in_size, in_fmt, widths):
    for _ in range(100):
        f = {
            "w": random_format(rng, "w", widths=widths),
            "b": random_format(rng, "b", widths=widths),
            "out": random_format(rng, "preact", widths=widths),
        }
        n = int(rng.choice([1, 2, 4]))
        try:
            return DenseLayer(
                in_size,
                n,
                str(rng.choice(["linear", "relu"])),
                f,
                random_codes(rng, f["w"], (n, in_size)),
                random_codes(rng, f["b"], n),
                in_fmt,
            )
        except ValueError:
            continue
    raise AssertionError("no valid random dense layer in 100 draws")


def random_network(rng, *, n_lstm, n_dense, output, widths) -> QuantizedNetwork:
    layers = []
    size, fmt = int(rng.choice([1, 2, 3])), None
    for _ in range(n_lstm):
        layer = random_lstm(
            rng, i_size=size, x_fmt=fmt, widths=widths, peephole=bool(rng.random() < 0.4)
        )
        layers.append(layer)
        size, fmt = layer.output_size, layer.out_fmt
    for _ in range(n_dense):
        layer = random_dense(rng, in_size=size, in_fmt=fmt, widths=widths)
        layers.append(layer)
        size, fmt = layer.output_size, layer.out_fmt
    return QuantizedNetwork("net", layers, output=output)


def network(seed: int):
    rng = np.random.default_rng(1000 + seed)
    widths = [(3, 8), (4, 12), (8, 16), (12, 20)][seed % 4]
    net = random_network(
        rng,
        n_lstm=1 + seed % 3,
        n_dense=(seed // 3) % 3,
        output="last" if seed % 4 == 1 else "sequence",
        widths=widths,
    )
    shape = (int(rng.integers(1, 4)), int(rng.integers(1, 7)), net.input_size)
    x = random_codes(rng, net.in_fmt, shape)
    if rng.random() < 0.3:  # saturating inputs: the extreme codes
        pick = rng.random(x.shape) < 0.5
        x[pick] = rng.choice([net.in_fmt.code_min, net.in_fmt.code_max], size=int(pick.sum()))
    return net, x


def assert_matches_naive(net: QuantizedNetwork, x: np.ndarray):
    want = naive_network.run(net, x)
    got = run_fixed(net, x, trace=True)
    np.testing.assert_array_equal(got.y_codes, np.array(want.y_codes, dtype=np.int64))
    assert got.overflow == want.overflow
    for name, layer, res, out, tr in zip(
        got.names, net.layers, got.layers, want.outputs, want.traces
    ):
        np.testing.assert_array_equal(res.codes, np.array(out, dtype=np.int64), err_msg=name)
        keys = TRACE if layer.kind == "lstm" else ("out",)
        assert set(res.trace) == set(keys)
        for key in keys:
            np.testing.assert_array_equal(res.trace[key], np.array(tr[key]), err_msg=key)
    plain = run_fixed(net, x)
    np.testing.assert_array_equal(plain.y_codes, got.y_codes)
    assert all(res.trace is None for res in plain.layers)
    return want


SEEDS = range(36)


@pytest.mark.parametrize("seed", SEEDS)
def test_random_network_matches_naive(seed):
    net, x = network(seed)
    assert_matches_naive(net, x)


def test_the_random_networks_reach_every_shape_mode_and_overflow():
    """What the seeds above cover: a shrinking generator fails here, not silently."""
    shapes, acts, outputs, peepholes, q_modes, o_modes, overflowed = (set() for _ in range(7))
    for seed in SEEDS:
        net, x = network(seed)
        shapes.add((len(net.lstm_layers), len(net.dense_layers)))
        acts.update(la.activation for la in net.dense_layers)
        outputs.add(net.output)
        for k, layer in enumerate(net.layers):
            if layer.kind == "lstm":
                peepholes.add((k, layer.peephole))
            q_modes.update(f.q for f in layer.formats.values())
            o_modes.update(f.o for f in layer.formats.values())
        res = run_fixed(net, x)
        overflowed.update(k for k, v in res.overflow.items() if v)
    assert shapes == {(n, d) for n in (1, 2, 3) for d in (0, 1, 2)}
    assert acts == {"linear", "relu"}
    assert outputs == {"sequence", "last"}
    assert {(1, True), (1, False), (2, True)} <= peepholes  # per layer, not per network
    assert q_modes == set(Q_MODES) and o_modes == set(O_MODES)
    # narrow formats overflow in upper layers and in the head, not only in layer 1
    assert {"lstm2.preact", "lstm2.h", "dense1.out", "dense2.out"} <= overflowed


def test_one_layer_network_is_the_layer():
    """A one-layer network is exactly its LSTM layer (what SPEC version 1 computed)."""
    net, x = network(0)
    assert len(net.layers) == 1
    want = naive_network.naive_lstm.run(
        naive_network.SimpleNamespace(**vars(net.layers[0]), output=net.output), x
    )
    np.testing.assert_array_equal(run_fixed(net, x).y_codes, np.array(want.h_codes))


def test_dense_int64_path_equals_float_path():
    """Above 53 bits the dense sum runs in int64; below, in float64: the same codes."""
    rng = np.random.default_rng(5)
    wide = Format(True, 27, 4, "RND", "SAT")  # 8 products of 27 x 27 bits: 56-bit sums
    layer = DenseLayer(
        8,
        3,
        "relu",
        {"w": wide, "b": wide, "out": Format(True, 20, 8, "RND_CONV", "WRAP")},
        random_codes(rng, wide, (3, 8), spread=1.0),
        random_codes(rng, wide, 3, spread=1.0),
        wide,
    )
    u = random_codes(rng, wide, (5, 8), spread=1.0)
    got = dense_fixed(layer, u)
    want, n_over = naive_network.dense(layer, u.tolist())
    np.testing.assert_array_equal(got.codes, np.array(want))
    assert got.overflow == {"out": n_over}


# --------------------------------------------------------------------------- manifest


def test_manifest_round_trip_keeps_every_code():
    net, x = network(7)
    obj = net.to_manifest()
    assert obj["spec"] == SPEC_VERSION == 2
    assert [la["kind"] for la in obj["layers"]] == [la.kind for la in net.layers]
    assert obj["input_size"] == net.input_size and obj["output_size"] == net.output_size
    back = QuantizedNetwork.from_manifest(obj)
    assert back.to_manifest() == obj
    np.testing.assert_array_equal(run_fixed(back, x).y_codes, run_fixed(net, x).y_codes)


def test_manifest_of_one_layer_has_a_layers_list():
    net, _ = network(0)
    obj = net.to_manifest()
    assert len(obj["layers"]) == 1 and obj["layers"][0]["kind"] == "lstm"
    assert "x" in obj["layers"][0]["formats"]


def test_manifest_errors_name_the_layer():
    net, _ = network(4)  # two LSTM layers and a dense layer
    assert [la.kind for la in net.layers] == ["lstm", "lstm", "dense"]
    obj = net.to_manifest()
    obj["layers"][1]["formats"]["x"] = "fixed<9,3,TRN,WRAP>"
    with pytest.raises(ValueError, match="lstm2's x format .* lstm1's h format"):
        QuantizedNetwork.from_manifest(obj)
    obj = net.to_manifest()
    obj["layers"] = obj["layers"][2:] + obj["layers"][:2]
    with pytest.raises(ValueError, match="first layer is dense"):
        QuantizedNetwork.from_manifest(obj)
    obj = net.to_manifest()
    obj["spec"] = 1
    with pytest.raises(ValueError, match="spec version 1 is not 2"):
        QuantizedNetwork.from_manifest(obj)


def test_network_refuses_a_wrong_chain():
    net, _ = network(4)
    lstm1, lstm2, dense = net.layers
    with pytest.raises(ValueError, match="LSTM layers come first"):
        QuantizedNetwork("n", [lstm1, dense, lstm2])
    with pytest.raises(ValueError, match="starts with at least one LSTM"):
        QuantizedNetwork("n", [dense])
    with pytest.raises(ValueError, match="lstm2 takes 1 inputs but lstm1 gives"):
        QuantizedNetwork("n", [lstm1, _with_input(lstm2, 1)])


def _with_input(layer: LstmLayer, size: int) -> LstmLayer:
    return LstmLayer(
        size, layer.hidden_size, layer.formats, layer.w[:, :size], layer.r, layer.b,
        layer.tables, p=layer.p,
    )  # fmt: skip


# --------------------------------------------------------------------------- float


def test_run_float_chains_the_layers():
    rng = np.random.default_rng(3)
    l1 = FloatLSTM(rng.normal(size=(8, 3)), rng.normal(size=(8, 2)), rng.normal(size=8))
    l2 = FloatLSTM(
        rng.normal(size=(12, 2)), rng.normal(size=(12, 3)), rng.normal(size=12), rng.normal(size=9)
    )
    d1 = FloatDense(rng.normal(size=(4, 3)), rng.normal(size=4), "relu")
    d2 = FloatDense(rng.normal(size=(2, 4)), rng.normal(size=2))
    net = FloatNetwork([l1, l2, d1, d2])
    assert net.layer_names == ["lstm1", "lstm2", "dense1", "dense2"]
    x = rng.normal(size=(5, 6, 3))
    h2 = lstm_float(l2, lstm_float(l1, x))
    want = np.maximum(h2 @ d1.w.T + d1.b, 0) @ d2.w.T + d2.b
    np.testing.assert_allclose(run_float(net, x), want, rtol=0, atol=1e-12)
    last, traces = run_float(net, x, output="last", trace=True)
    np.testing.assert_allclose(last, want[:, -1], rtol=0, atol=1e-12)
    assert len(traces) == 4 and set(traces[0]) == set(TRACE) and set(traces[2]) == {"out"}


def test_float_network_errors():
    rng = np.random.default_rng(0)
    lstm = FloatLSTM(rng.normal(size=(8, 3)), rng.normal(size=(8, 2)), rng.normal(size=8))
    with pytest.raises(ValueError, match="dense1 takes 5 inputs but lstm1 gives 2"):
        FloatNetwork([lstm, FloatDense(np.zeros((1, 5)), np.zeros(1))])
    with pytest.raises(ValueError, match="activation 'tanh' is not supported"):
        FloatDense(np.zeros((1, 2)), np.zeros(1), "tanh")
