"""Networks the co-simulation tests run, built from seeded random weights, and a tally of
what they simulated.

:data:`CONFIGS` are the one-layer cases of SPEC version 1 (one LSTM layer is the simplest
network); :data:`NETWORKS` stack two LSTM layers and a dense head. Both are built here from
codes, with no config file, so the same Verilog comes out on every run.
"""

from __future__ import annotations

import numpy as np
import pytest

from model.formats import parse_format
from model.pwl import uniform_table
from model.qmodel import (
    ACTIVATIONS,
    DEFAULT_FORMATS,
    DENSE_DEFAULT_FORMATS,
    DenseLayer,
    LstmLayer,
    QuantizedNetwork,
)

NARROW = {
    "x": "fixed<8,3,TRN,WRAP>",
    "w": "fixed<8,2,TRN,WRAP>",
    "r": "fixed<8,2,TRN,WRAP>",
    "b": "fixed<8,3,TRN,WRAP>",
    "preact": "fixed<10,4,TRN,WRAP>",
    "gate": "ufixed<8,1,TRN,WRAP>",
    "cand": "fixed<8,1,TRN,WRAP>",
    "cell": "fixed<9,2,TRN,WRAP>",
    "tanh_cell": "fixed<8,1,TRN,WRAP>",
    "h": "fixed<8,3,TRN,WRAP>",
}

#: one LSTM layer: name -> (input size, hidden size, peephole, output, lanes, formats)
CONFIGS = {
    # small, no peepholes, one MAC lane (P = 1), typical 16-bit formats
    "small": (3, 4, False, "sequence", 1, {}),
    # peepholes, P = 4, a cell format the adversarial inputs saturate
    "peephole": (2, 4, True, "sequence", 4, {"cell": "fixed<16,3,RND,SAT>"}),
    # narrow formats, TRN and WRAP everywhere, P = 2
    "narrow": (2, 3, False, "sequence", 2, NARROW),
    # output "last", P = 8: two cell-update units side by side
    "last": (
        2,
        8,
        False,
        "last",
        8,
        {"cell": "fixed<16,2,RND,SAT_SYM>", "h": "fixed<16,4,RND_CONV,SAT>"},
    ),
}

#: networks: name -> (input size, output, hardware, layers); an LSTM layer is
#: ("lstm", hidden size, peephole, formats), a dense one ("dense", outputs, activation, formats)
NETWORKS = {
    # two LSTM layers, a relu layer and a linear one; layer 1 on two lanes, the rest on one
    "net_relu": (
        3,
        "sequence",
        {"lanes": 1, "layers": {"lstm1": {"lanes": 2}}},
        [
            ("lstm", 4, False, {"x": "fixed<12,4,RND,SAT>"}),  # 36 bits on a 40-bit bus
            ("lstm", 4, False, {"cell": "fixed<14,2,RND,SAT>", "h": "fixed<12,2,RND,SAT>"}),
            ("dense", 3, "relu", {"out": "fixed<12,4,RND,SAT>"}),
            ("dense", 2, "linear", {"w": "fixed<10,2,RND,SAT>", "out": "fixed<13,5,TRN,WRAP>"}),
        ],
    ),
    # output "last": the dense head runs once per sequence; narrow wrapping formats below
    "net_last": (
        2,
        "last",
        {"lanes": 1},
        [
            ("lstm", 3, False, NARROW),
            ("lstm", 4, False, {**NARROW, "h": "fixed<10,3,RND,SAT>"}),
            ("dense", 2, "linear", {"out": "fixed<11,4,RND_CONV,SAT_SYM>"}),
        ],
    ),
    # peepholes in both LSTM layers, a relu head; layer 2 on four lanes
    "net_peephole": (
        2,
        "sequence",
        {"lanes": 1, "layers": {"lstm2": {"lanes": 4}}},
        [
            ("lstm", 4, True, {"x": "fixed<10,4,RND,SAT>", "cell": "fixed<16,3,RND,SAT>"}),
            ("lstm", 2, True, {"gate": "ufixed<12,1,RND,SAT>"}),
            ("dense", 1, "relu", {}),
        ],
    ),
}

RANGE_LOG2 = {"sigmoid": 4, "tanh": 3, "tanh_cell": 3}


def lstm_layer(rng, input_size, hidden, formats, *, peephole=False, x_fmt=None) -> LstmLayer:
    """An LSTM layer of random float weights quantized into ``formats`` (over SPEC §2's
    typical ones); forget gates biased open so the cell state can run to its limits."""
    fm = {k: parse_format(v) for k, v in {**DEFAULT_FORMATS, **formats}.items()}
    if x_fmt is not None:
        fm["x"] = x_fmt
    if not peephole:
        del fm["p"]
    h = hidden
    b = rng.normal(scale=0.3, size=4 * h)
    b[h : 2 * h] += 2.0
    w = rng.normal(scale=0.7, size=(4 * h, input_size))
    r = rng.normal(scale=0.4, size=(4 * h, h))
    p = rng.normal(scale=0.3, size=3 * h) if peephole else None
    tables = {
        act: uniform_table(func, fm[src], fm[dst], range_log2=RANGE_LOG2[act], segments=32)
        for act, (src, dst, func) in ACTIVATIONS.items()
    }
    return LstmLayer(
        input_size,
        hidden,
        fm,
        fm["w"].from_float(w),
        fm["r"].from_float(r),
        fm["b"].from_float(b),
        tables,
        p=fm["p"].from_float(p) if peephole else None,
    )


def dense_layer(rng, in_fmt, input_size, outputs, activation, formats) -> DenseLayer:
    fm = {k: parse_format(v) for k, v in {**DENSE_DEFAULT_FORMATS, **formats}.items()}
    return DenseLayer(
        input_size,
        outputs,
        activation,
        fm,
        fm["w"].from_float(rng.normal(scale=0.6, size=(outputs, input_size))),
        fm["b"].from_float(rng.normal(scale=0.3, size=outputs)),
        in_fmt,
    )


def make_network(name: str) -> QuantizedNetwork:
    """The network of case ``name`` (of :data:`CONFIGS` or :data:`NETWORKS`): fixed seeded
    weights, so the same Verilog every run."""
    rng = np.random.default_rng(sum(map(ord, name)))
    if name in CONFIGS:
        i_size, h, peephole, output, lanes, formats = CONFIGS[name]
        layer = lstm_layer(rng, i_size, h, formats, peephole=peephole)
        return QuantizedNetwork(f"sim_{name}", [layer], output=output, hardware={"lanes": lanes})
    i_size, output, hardware, specs = NETWORKS[name]
    layers: list = []
    for kind, size, option, formats in specs:
        below = layers[-1] if layers else None
        n_in = below.output_size if below else i_size
        if kind == "lstm":
            x_fmt = below.out_fmt if below else None
            layers.append(lstm_layer(rng, n_in, size, formats, peephole=option, x_fmt=x_fmt))
        else:
            layers.append(dense_layer(rng, below.out_fmt, n_in, size, option, formats))
    return QuantizedNetwork(name, layers, output=output, hardware=hardware)


@pytest.fixture(scope="session")
def networks():
    return {name: make_network(name) for name in (*CONFIGS, *NETWORKS)}


#: (sim, case, layers, random + adversarial sequences, mismatches) of every co-simulation
TALLY: list[tuple[str, str, int, int, int]] = []


def pytest_terminal_summary(terminalreporter):
    if not TALLY:
        return
    for what, keep in (("one-layer", lambda n: n == 1), ("network", lambda n: n > 1)):
        by_sim: dict[str, list[int]] = {}
        for sim, _, layers, n, bad in TALLY:
            if keep(layers):
                s = by_sim.setdefault(sim, [0, 0])
                s[0] += n
                s[1] += bad
        if not by_sim:
            continue
        parts = [f"{sim} {n:,} ({bad} mismatches)" for sim, (n, bad) in sorted(by_sim.items())]
        total = sum(n for n, _ in by_sim.values())
        terminalreporter.write_line(
            f"co-simulation, {what}: {total:,} random and adversarial sequences against the "
            f"model: " + ", ".join(parts)
        )
