"""Networks of SPEC §2b: LSTM layers, then dense layers; float64 and bit-accurate.

A network is an ordered list of layers and each layer's code knows nothing of its
neighbours: :func:`run_float` and :func:`run_fixed` hand each layer the output of the one
below (for the bit-accurate model, in that tensor's own codes) and nothing else. An LSTM
layer runs :func:`model.lstm.lstm_fixed` (one Numba kernel per layer, so a network costs
the sum of its layers); a dense layer is one exact integer GEMM and one rounding.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from model.lstm import FixedResult, FloatLSTM, _check_batch, lstm_fixed, lstm_float
from model.qmodel import (
    DENSE_ACTIVATIONS,
    DenseLayer,
    LayerChain,
    QuantizedNetwork,
    exact_sum,
)

#: the widest exact integer sum a float64 GEMM holds (every partial sum included)
_FLOAT64_EXACT_BITS = 53


@dataclass
class FloatDense:
    """A float dense layer: ``w`` [out, in], ``b`` [out], ``activation`` linear or relu."""

    w: np.ndarray
    b: np.ndarray
    activation: str = "linear"
    name: str = "dense"

    def __post_init__(self):
        self.w = np.asarray(self.w, dtype=np.float64)
        self.b = np.asarray(self.b, dtype=np.float64)
        if self.w.ndim != 2:
            raise ValueError(f"dense weights w must be [out, in], not {list(self.w.shape)}")
        if self.b.shape != (self.w.shape[0],):
            raise ValueError(
                f"dense bias b must be [out={self.w.shape[0]}], not {list(self.b.shape)}"
            )
        if self.activation not in DENSE_ACTIVATIONS:
            raise ValueError(
                f"dense activation {self.activation!r} is not supported; use one of "
                f"{', '.join(DENSE_ACTIVATIONS)}"
            )
        for k in ("w", "b"):
            if not np.all(np.isfinite(getattr(self, k))):
                raise ValueError(f"dense weights {k!r} hold NaN or Inf; the model file is damaged")

    kind = "dense"

    @property
    def input_size(self) -> int:
        return self.w.shape[1]

    @property
    def output_size(self) -> int:
        return self.w.shape[0]


FloatLayer = FloatLSTM | FloatDense


@dataclass
class FloatNetwork(LayerChain):
    """Float layers in order (LSTM layers, then dense layers), as an importer gives them.

    ``output`` is what the model file itself says of the top LSTM layer ("sequence" or
    "last", as Keras' ``return_sequences``), or None where the file does not say.
    """

    layers: list[FloatLayer]
    name: str = "network"
    output: str | None = None

    def __post_init__(self):
        self.layers = list(self.layers)
        self.check_chain()


def _top_lstm(layers) -> int:
    return max(k for k, la in enumerate(layers) if la.kind == "lstm")


def run_float(
    net: FloatNetwork,
    x,
    *,
    output: str = "sequence",
    activations: list[dict] | None = None,
    trace: bool = False,
):
    """The float64 network of SPEC §2b over ``x`` [N, T, I]; exact σ and tanh by default.

    ``activations`` (one dict per LSTM layer, keys ``sigmoid``, ``tanh``, ``tanh_cell``)
    replaces the functions of that layer, for instance by PWL tables evaluated in float.
    Returns the network's output ``y`` ([N, T, n] for ``sequence``, [N, n] for ``last``),
    and with ``trace`` also one dict per layer: an LSTM layer's per-step arrays named as in
    :data:`model.lstm.TRACE` (every step), a dense layer's ``out``.
    """
    x = _check_batch(x, net.input_size, float)
    top = _top_lstm(net.layers)
    u, traces, n_lstm = x, [], 0
    for k, layer in enumerate(net.layers):
        if layer.kind == "lstm":
            acts = (activations or [{}] * len(net.lstm_layers))[n_lstm]
            n_lstm += 1
            u, tr = lstm_float(layer, u, trace=True, **acts)
            if k == top and output == "last":
                u = u[:, -1]
        else:
            u = u @ layer.w.T + layer.b
            if layer.activation == "relu":
                u = np.maximum(u, 0.0)
            tr = {"out": u}
        traces.append(tr)
    return (u, traces) if trace else u


@dataclass
class NetworkResult:
    """What :func:`run_fixed` returns: the network's output codes and each layer's result."""

    y_codes: np.ndarray
    layers: list[FixedResult]
    names: list[str] = field(default_factory=list)

    @property
    def overflow(self) -> dict[str, int]:
        """Overflow counts of every layer, keyed ``<layer>.<point>`` (``lstm2.cell``)."""
        return {
            f"{name}.{point}": count
            for name, res in zip(self.names, self.layers)
            for point, count in res.overflow.items()
        }


def quantize_input(net: QuantizedNetwork, x) -> tuple[np.ndarray, int]:
    """Float input [N, T, I] to codes of the network's ``x`` format, with the overflow count."""
    arr = _check_batch(x, net.input_size, float)
    return net.in_fmt.from_float_counted(arr, what="input x")


def run_fixed(net: QuantizedNetwork, x_codes, *, trace: bool = False) -> NetworkResult:
    """The bit-accurate network of SPEC §2b on input codes [N, T, I] (int).

    Every LSTM layer below the top one gives ``h`` at every step; the top one every step
    (``sequence``) or ``h_T`` (``last``); dense layers map what reaches them. The result's
    ``y_codes`` is the network's output ([N, T, n] or [N, n]), and ``layers`` holds each
    layer's output codes, overflow counts and, with ``trace``, its trace.
    """
    # the first layer, an LSTM layer of format x = net.in_fmt, checks the codes (as it reads
    # them, where they are int64 already: a separate check would cost a tenth of the run)
    u = _check_batch(x_codes, net.input_size, int)
    top = _top_lstm(net.layers)
    results = []
    for k, layer in enumerate(net.layers):
        if layer.kind == "lstm":
            res = lstm_fixed(layer, u, last=k == top and net.output == "last", trace=trace)
        else:
            res = dense_fixed(layer, u, trace=trace)
        results.append(res)
        u = res.codes
    return NetworkResult(u, results, net.layer_names)


def dense_fixed(layer: DenseLayer, u_codes, *, trace: bool = False) -> FixedResult:
    """One dense layer of SPEC §2b on codes ``[..., in]`` of its input format: the exact sum
    ``W u + b``, the activation, then one rounding into ``out``."""
    u = np.asarray(u_codes, dtype=np.int64)
    wu, b = layer.sums()["out"]
    frac, bits = exact_sum([wu, b])
    w = layer.w << (frac - wu.frac)
    bias = layer.b << (frac - b.frac)
    flat = u.reshape(-1, layer.input_size)
    if bits <= _FLOAT64_EXACT_BITS:  # every partial sum is an integer float64 holds exactly
        acc = (flat.astype(np.float64) @ w.T.astype(np.float64)).astype(np.int64)
    else:
        acc = flat @ w.T
    acc += bias
    if layer.activation == "relu":
        np.maximum(acc, 0, out=acc)
    codes, n_over = layer.out_fmt.from_exact(acc, frac)
    codes = codes.reshape(*u.shape[:-1], layer.output_size)
    return FixedResult(codes, {"out": n_over}, {"out": codes} if trace else None)
