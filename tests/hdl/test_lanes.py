"""Lane counts per layer: the config's ints, per-layer overrides, and "auto" against brute force."""

import itertools

import numpy as np
import pytest
from hdl_models import make_network

from hdl.dense import DenseCore, valid_dense_lanes
from hdl.network import (
    _objective,
    brute_force_lanes,
    choose_lanes,
    lane_options,
    layer_lanes,
    network_hardware,
)


def small_networks():
    rng = np.random.default_rng(3)
    for k in range(10):
        n_lstm = int(rng.integers(1, 4))
        hidden = [int(h) for h in rng.integers(1, 4, size=n_lstm)]
        dense = [int(d) for d in rng.integers(1, 7, size=int(rng.integers(0, 3)))]
        output = "last" if k % 3 == 0 else "sequence"
        yield make_network(int(rng.integers(1, 5)), hidden, dense, output=output, seed=k)


@pytest.mark.parametrize("k", range(10))
def test_auto_is_optimal(k):
    net = list(small_networks())[k]
    most = sum(max(lane_options(layer)) for layer in net.layers)
    for budget in range(len(net.layers), most + 2):
        got = choose_lanes(net, budget)
        assert sum(got.values()) <= budget
        for name, layer in zip(net.layer_names, net.layers):
            assert got[name] in lane_options(layer)
        assert _objective(net, got) == brute_force_lanes(net, budget), (budget, got)


def test_auto_with_a_fixed_layer_and_fixed_layers_count():
    net = make_network(2, [3, 2], [2], hardware={"lanes": "auto", "lane_budget": 9,
                                                  "layers": {"lstm1": {"lanes": 4}}})  # fmt: skip
    got = layer_lanes(net)
    assert got["lstm1"] == 4 and sum(got.values()) <= 9
    best = min(
        (_objective(net, dict(zip(net.layer_names, (4, a, b)))), (4, a, b))
        for a, b in itertools.product(lane_options(net.layers[1]), lane_options(net.layers[2]))
        if 4 + a + b <= 9
    )
    assert _objective(net, got) == best[0]


def test_auto_balances_layers():
    """A bigger layer gets more lanes: the chain's cycles per step drop below what an even
    split would give."""
    net = make_network(4, [8, 2], [1], hardware={"lanes": "auto", "lane_budget": 12})
    got = layer_lanes(net)
    assert got["lstm1"] > got["lstm2"] >= got["dense1"] == 1
    even = network_hardware(net, {"lstm1": 4, "lstm2": 4, "dense1": 1})["cycles_per_step"]
    assert network_hardware(net, got)["cycles_per_step"] < even


def test_shared_int_and_overrides():
    net = make_network(2, [3, 2], [3], hardware={"lanes": 4, "layers": {"lstm2": {"lanes": 2}}})
    # dense1 (3 outputs) cannot have 4 lanes: it takes the most it can below 4
    assert layer_lanes(net) == {"lstm1": 4, "lstm2": 2, "dense1": 3}
    # a manifest's layers list reads back to the same counts
    hw = network_hardware(net)
    net.hardware = hw
    assert layer_lanes(net) == {"lstm1": 4, "lstm2": 2, "dense1": 3}


@pytest.mark.parametrize(
    "hardware, match",
    [
        ({"lanes": 3}, r"lstm1: lanes = 3 .*\[1, 2, 4, 12\]"),
        ({"lanes": 1, "layers": {"lstm2": {"lanes": 5}}}, r"lstm2: lanes = 5 .*\[1, 2, 4, 8\]"),
        ({"lanes": 1, "layers": {"dense1": {"lanes": 2}}}, r"dense1: lanes = 2 .*\[1, 3\]"),
        ({"lanes": 1, "layers": {"dense2": {"lanes": 1}}}, r"'dense2'.*lstm1, lstm2, dense1"),
        ({"lanes": "auto"}, "lane_budget"),
        ({"lanes": "auto", "lane_budget": 2}, r"lane_budget = 2 .* at least 3"),
        ({"lanes": 1, "clock_mhz": 100}, "clock_mhz"),
    ],
)
def test_bad_lanes_name_the_layer(hardware, match):
    net = make_network(2, [3, 2], [3], hardware=hardware)
    with pytest.raises(ValueError, match=match):
        layer_lanes(net)


def test_dense_lanes():
    assert valid_dense_lanes(6) == [1, 2, 3, 6]
    net = make_network(2, [2], [6])
    with pytest.raises(ValueError, match=r"dense1: lanes = 4 .*\[1, 2, 3, 6\]"):
        DenseCore(net.layers[1], lanes=4)
