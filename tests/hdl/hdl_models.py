"""Small quantized layers and networks for the hardware tests, built from codes (no config)."""

from __future__ import annotations

import numpy as np

from model.formats import parse_format
from model.pwl import hard_table, plan_table, uniform_table
from model.qmodel import (
    ACTIVATIONS,
    DEFAULT_FORMATS,
    DENSE_DEFAULT_FORMATS,
    DenseLayer,
    LstmLayer,
    QuantizedNetwork,
)

#: unusual modes and widths on every quantization point: signed and unsigned, all O rules
ODD_FORMATS = {
    "x": "fixed<12,4,TRN,WRAP>",
    "w": "fixed<10,2,RND_CONV,SAT>",
    "r": "fixed<9,2,RND,SAT>",
    "b": "fixed<12,5,RND,SAT>",
    "p": "fixed<8,1,RND,SAT>",
    "preact": "fixed<13,5,TRN_ZERO,SAT_SYM>",
    "gate": "ufixed<11,1,RND_INF,SAT>",
    "cand": "fixed<12,1,RND_MIN_INF,SAT_ZERO>",
    "cell": "fixed<14,4,RND_ZERO,SAT>",
    "tanh_cell": "fixed<10,1,RND_CONV,SAT>",
    "h": "fixed<12,3,RND_INF,WRAP>",
}


def make_layer(
    input_size=3,
    hidden_size=4,
    *,
    peephole=False,
    formats=None,
    table="uniform",
    seed=0,
    scale=0.8,
    x_format=None,
) -> LstmLayer:
    """A random LSTM layer with weights large enough to reach saturation now and then."""
    rng = np.random.default_rng(seed)
    fm = {k: parse_format(v) for k, v in (formats or DEFAULT_FORMATS).items()}
    if x_format is not None:
        fm["x"] = parse_format(x_format)
    i, h = input_size, hidden_size
    tables = {}
    for act, (src, dst, func) in ACTIVATIONS.items():
        if table == "plan":
            tables[act] = plan_table(func, fm[src], fm[dst])
        elif table == "hard":  # one segment
            tables[act] = hard_table(func, fm[src], fm[dst])
        else:
            tables[act] = uniform_table(func, fm[src], fm[dst], range_log2=3, segments=32)
    return LstmLayer(
        i,
        h,
        fm,
        fm["w"].from_float(rng.normal(size=(4 * h, i)) * scale),
        fm["r"].from_float(rng.normal(size=(4 * h, h)) * scale),
        fm["b"].from_float(rng.normal(size=4 * h) * 0.5),
        tables,
        p=fm["p"].from_float(rng.normal(size=3 * h) * 0.5) if peephole else None,
    )


def make_dense(input_size, output_size, in_fmt, *, activation="linear", formats=None,
               seed=0, scale=0.8) -> DenseLayer:  # fmt: skip
    """A random dense layer reading codes of ``in_fmt``."""
    rng = np.random.default_rng(seed)
    fm = {k: parse_format(v) for k, v in (formats or DENSE_DEFAULT_FORMATS).items()}
    return DenseLayer(
        input_size,
        output_size,
        activation,
        fm,
        fm["w"].from_float(rng.normal(size=(output_size, input_size)) * scale),
        fm["b"].from_float(rng.normal(size=output_size) * 0.5),
        in_fmt,
    )


def make_qmodel(
    input_size=3,
    hidden_size=4,
    *,
    output="sequence",
    lanes=1,
    name="lstm_t",
    **opts,
) -> QuantizedNetwork:
    """A one-layer network (what version 1 called a quantized model)."""
    layer = make_layer(input_size, hidden_size, **opts)
    return QuantizedNetwork(name, [layer], output=output, hardware={"lanes": lanes})


def make_network(
    input_size,
    hidden,
    dense=(),
    *,
    output="sequence",
    peephole=(),
    activations=(),
    formats=(),
    dense_formats=(),
    table="uniform",
    hardware=None,
    seed=0,
    name="net_t",
) -> QuantizedNetwork:
    """LSTM layers of sizes ``hidden``, then dense layers of sizes ``dense``; per-layer
    options are sequences (missing entries: defaults)."""
    layers = []
    n_in, below = input_size, None
    for k, h in enumerate(hidden):
        fm = formats[k] if k < len(formats) else None
        x_fmt = str(below.out_fmt) if below is not None else None
        peep = peephole[k] if k < len(peephole) else False
        layer = make_layer(n_in, h, peephole=peep, formats=fm, table=table, seed=seed + 7 * k,
                           x_format=x_fmt)  # fmt: skip
        layers.append(layer)
        n_in, below = h, layer
    for k, n in enumerate(dense):
        act = activations[k] if k < len(activations) else "linear"
        fm = dense_formats[k] if k < len(dense_formats) else None
        layer = make_dense(n_in, n, below.out_fmt, activation=act, formats=fm,
                           seed=seed + 100 + k)  # fmt: skip
        layers.append(layer)
        n_in, below = n, layer
    return QuantizedNetwork(name, layers, output=output, hardware=hardware or {"lanes": 1})


def random_inputs(qm: QuantizedNetwork, lengths, *, seed=1, scale=2.5) -> list[np.ndarray]:
    """One array of x codes [T, I] per sequence length."""
    rng = np.random.default_rng(seed)
    fx = qm.in_fmt
    return [fx.from_float(rng.normal(size=(t, qm.input_size)) * scale) for t in lengths]
