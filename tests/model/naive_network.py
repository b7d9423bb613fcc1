"""A slow, obvious network of shared/SPEC.md §2b, for testing ``model.network.run_fixed``.

Layer by layer, element by element, in ``fractions.Fraction``: each LSTM layer through
``naive_lstm.run`` (this directory's own reading of §1-§3), each dense layer through the
sum of §2b written out here. From ``model/`` it takes only numbers: weight codes, formats
as (signed, W, I, Q, O) and tables' integer data. Layer l > 1 reads the codes the layer
below wrote, with no conversion: its ``x`` format is that layer's ``h`` format.
"""

from __future__ import annotations

from fractions import Fraction
from types import SimpleNamespace
from typing import NamedTuple

import naive_lstm
from naive_lstm import fmt_of, to_code, value


class NaiveNetworkResult(NamedTuple):
    y_codes: list  # the network's output: [N][T][n] for "sequence", [N][n] for "last"
    outputs: list  # each layer's output codes, nested lists
    overflow: dict  # "<layer>.<point>" -> count
    traces: list  # each layer's trace: naive_lstm's names for LSTM layers, "out" for dense


def dense(layer, u) -> tuple[list, int]:
    """SPEC §2b: ``act(W u + b)`` exactly, rounded once into ``out``; ``u`` nested lists of
    codes whose innermost level is one input vector. Returns (codes, overflow count)."""
    in_fmt = fmt_of(layer.in_fmt)
    f = {k: fmt_of(v) for k, v in layer.formats.items()}
    w = [[value(v, f["w"]) for v in row] for row in layer.w.tolist()]
    b = [value(v, f["b"]) for v in layer.b.tolist()]
    over = 0

    def one(vec):
        nonlocal over
        uv = [value(v, in_fmt) for v in vec]
        out = []
        for row, bias in zip(w, b):
            s = sum((wk * v for wk, v in zip(row, uv)), Fraction(0)) + bias
            if layer.activation == "relu" and s < 0:
                s = Fraction(0)
            code, o = to_code(s, f["out"])
            over += o
            out.append(code)
        return out

    def walk(node):
        return one(node) if not isinstance(node[0], list) else [walk(n) for n in node]

    return walk(u), over


def run(net, x_codes) -> NaiveNetworkResult:
    """The network of SPEC §2b over ``x_codes`` [N][T][I]."""
    u = x_codes.tolist() if hasattr(x_codes, "tolist") else x_codes
    top = max(k for k, la in enumerate(net.layers) if la.kind == "lstm")
    counts = {}
    outputs, overflow, traces = [], {}, []
    for k, layer in enumerate(net.layers):
        counts[layer.kind] = counts.get(layer.kind, 0) + 1
        name = f"{layer.kind}{counts[layer.kind]}"
        if layer.kind == "lstm":
            output = net.output if k == top else "sequence"
            res = naive_lstm.run(SimpleNamespace(**vars(layer), output=output), u)
            u = res.h_codes
            for point, n in res.overflow.items():
                overflow[f"{name}.{point}"] = n
            traces.append(res.trace)
        else:
            u, n = dense(layer, u)
            overflow[f"{name}.out"] = n
            traces.append({"out": u})
        outputs.append(u)
    return NaiveNetworkResult(u, outputs, overflow, traces)
