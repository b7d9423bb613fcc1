"""Small quantized models for the hardware tests, built from codes (no config file)."""

from __future__ import annotations

import numpy as np

from model.formats import parse_format
from model.pwl import hard_table, plan_table, uniform_table
from model.qmodel import ACTIVATIONS, DEFAULT_FORMATS, QuantizedModel

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


def make_qmodel(
    input_size=3,
    hidden_size=4,
    *,
    peephole=False,
    output="sequence",
    formats=None,
    table="uniform",
    lanes=1,
    seed=0,
    name="lstm_t",
    scale=0.8,
) -> QuantizedModel:
    """A random LSTM with weights large enough to reach saturation now and then."""
    rng = np.random.default_rng(seed)
    fm = {k: parse_format(v) for k, v in (formats or DEFAULT_FORMATS).items()}
    i, h = input_size, hidden_size
    tables = {}
    for act, (src, dst, func) in ACTIVATIONS.items():
        if table == "plan":
            tables[act] = plan_table(func, fm[src], fm[dst])
        elif table == "hard":  # one segment
            tables[act] = hard_table(func, fm[src], fm[dst])
        else:
            tables[act] = uniform_table(func, fm[src], fm[dst], range_log2=3, segments=32)
    return QuantizedModel(
        name,
        i,
        h,
        fm,
        fm["w"].from_float(rng.normal(size=(4 * h, i)) * scale),
        fm["r"].from_float(rng.normal(size=(4 * h, h)) * scale),
        fm["b"].from_float(rng.normal(size=4 * h) * 0.5),
        tables,
        p=fm["p"].from_float(rng.normal(size=3 * h) * 0.5) if peephole else None,
        output=output,
        hardware={"lanes": lanes},
    )


def random_inputs(qm: QuantizedModel, lengths, *, seed=1, scale=2.5) -> list[np.ndarray]:
    """One array of x codes [T, I] per sequence length."""
    rng = np.random.default_rng(seed)
    fx = qm.formats["x"]
    return [fx.from_float(rng.normal(size=(t, qm.input_size)) * scale) for t in lengths]
