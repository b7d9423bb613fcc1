"""Keras models as a :class:`~model.network.FloatNetwork` (SPEC §6), read with h5py and json.

Two files are read, neither through Keras itself (it is never imported):

- ``.keras`` (Keras 3 ``model.save("m.keras")``): a zip holding ``config.json`` (the model's
  architecture) and ``model.weights.h5``, where layer ``k`` of a class keeps its variables
  in ``layers/<class in snake case>[_k]/vars/0, 1, ...`` (an LSTM's in ``.../cell/vars``),
  in the order the layer created them, and names itself in the ``name`` attribute of its
  ``vars`` group.
- ``.h5`` (``model.save("m.h5")``, the legacy HDF5 format): the architecture in the root
  attribute ``model_config`` and the weights in ``model_weights/<layer name>``, each found
  by the paths its ``weight_names`` attribute lists (``.../kernel``, ``.../bias``).
  Keras 3's files are what the tests write; tf.keras 2 files share the layout (weight
  names end in ``:0``) and are read the same way, untested here. A weights-only file
  (``save_weights``), a SavedModel directory and a sharded ``.keras`` are not models
  here and are refused.

The model is a ``Sequential`` model or a functional chain (one input, one output, each
layer fed by the one before) of ``LSTM`` layers then ``Dense`` layers; ``InputLayer`` is
skipped. Whatever else the file holds, or any setting the float network cannot follow,
is a :class:`model.importers.ModelFileError` that names the layer and the attribute.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np

from model.lstm import FloatLSTM
from model.network import FloatDense, FloatNetwork

SUFFIXES = (".keras", ".h5", ".hdf5")
#: LSTM settings the float network follows only at these values (SPEC §6). Not checked, as
#: they act in training or on speed only: dropout, recurrent_dropout, unit_forget_bias
#: (the initial bias), unroll, implementation; zero_output_for_mask needs a mask, and any
#: layer that makes one is refused
_LSTM_REQUIRED = {
    "activation": "tanh",
    "recurrent_activation": "sigmoid",
    "go_backwards": False,
    "stateful": False,
    "return_state": False,
    "time_major": False,  # tf.keras 2 only
}
_DENSE_ACTIVATIONS = {"linear": "linear", None: "linear", "relu": "relu"}
_SNAKE = {"LSTM": "lstm", "Dense": "dense"}


def _error(message: str) -> Exception:
    # model.importers will dispatch here; importing it at call time keeps the two
    # modules free to import each other in either order
    from model.importers import ModelFileError

    return ModelFileError(message)


def load_keras(path) -> FloatNetwork:
    """The LSTM and Dense layers of a Keras ``.keras`` or ``.h5`` model file, in order.

    ``output`` of the result is "sequence" or "last" as the top LSTM's
    ``return_sequences`` says.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {str(path)!r} does not exist")
    if path.suffix.lower() == ".keras":
        return _read_keras_zip(path)
    if path.suffix.lower() in (".h5", ".hdf5"):
        return _read_legacy_h5(path)
    raise ValueError(f"{path.name!r} is not a Keras model file; use one of {', '.join(SUFFIXES)}")


# --- the model's architecture -----------------------------------------------------------


def _chain(source: str, model: dict) -> list[dict]:
    """The layer configs of a Sequential model or a functional chain, input first."""
    kind = model.get("class_name")
    config = model.get("config") or {}
    if kind == "Sequential":
        layers = config.get("layers")
        if not isinstance(layers, list):
            raise _error(f"{source}: the Sequential model's config lists no layers")
        return [la for la in layers if la.get("class_name") != "InputLayer"]
    if kind not in ("Functional", "Model"):
        raise _error(
            f"{source}: the model is a {kind!r}; only Sequential models and functional "
            f"chains of LSTM and Dense layers can be read (a subclassed model has no "
            f"config to read; rebuild it as a Sequential model)"
        )
    layers = config.get("layers") or []
    by_name = {_layer_name(la): la for la in layers}
    inputs = _tensor_names(config.get("input_layers"))
    outputs = _tensor_names(config.get("output_layers"))
    if len(inputs) != 1 or len(outputs) != 1:
        raise _error(
            f"{source}: the functional model has {len(inputs)} input(s) and "
            f"{len(outputs)} output(s); a network has one of each"
        )
    chain, name = [], outputs[0]
    while name != inputs[0]:
        if name not in by_name or name in (_layer_name(la) for la in chain):
            raise _error(f"{source}: layer {name!r} is not part of a chain from the input")
        layer = by_name[name]
        if layer.get("class_name") == "InputLayer":
            raise _error(f"{source}: layer {name!r} is a second input; a network has one")
        fed_by = _inbound(layer)
        if len(fed_by) != 1:
            raise _error(
                f"{source}: layer {name!r} ({layer.get('class_name')}) is called "
                f"{'on ' + ', '.join(map(repr, fed_by)) if fed_by else 'on nothing'}; "
                f"each layer of a network takes the output of the one before it, once"
            )
        chain.append(layer)
        name = fed_by[0]
    used = {_layer_name(la) for la in chain} | {inputs[0]}
    unused = [n for n in by_name if n not in used]
    if unused:
        raise _error(
            f"{source}: layer(s) {', '.join(map(repr, unused))} are not on the chain from "
            f"input to output; a network is one chain of layers"
        )
    return chain[::-1]


def _layer_name(layer: dict) -> str:
    return layer.get("name") or (layer.get("config") or {}).get("name", "")


def _tensor_names(spec) -> list[str]:
    """Layer names of ``input_layers``/``output_layers``: ``[name, 0, 0]`` or a list of them."""
    if not spec:
        return []
    if isinstance(spec[0], str):
        return [spec[0]]
    return [s[0] for s in spec]


def _inbound(layer: dict) -> list[str]:
    """Names of the layers whose outputs ``layer`` is called on, over all its calls.

    Keras 3 writes each call as ``{"args": [...], "kwargs": {...}}`` with tensors as
    ``{"class_name": "__keras_tensor__", "config": {"keras_history": [name, n, k]}}``;
    tf.keras 2 as a list of ``[name, n, k, kwargs]``. A tensor anywhere in the call (as a
    mask or an initial state too) counts.
    """
    found = []

    def walk(x):
        if isinstance(x, dict):
            history = (x.get("config") or {}).get("keras_history")
            if x.get("class_name") == "__keras_tensor__" and history:
                found.append(history[0])
                return
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            if len(x) >= 3 and isinstance(x[0], str) and isinstance(x[1], int):
                found.append(x[0])  # tf.keras 2: [name, node, tensor, kwargs]
                if len(x) > 3:
                    walk(x[3])
                return
            for v in x:
                walk(v)

    walk(layer.get("inbound_nodes") or [])
    return found


# --- reading the two file kinds ---------------------------------------------------------


def _read_keras_zip(path: Path):
    import h5py

    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if "config.json" not in names:
                raise _error(
                    f"{path.name} holds no config.json ({', '.join(sorted(names)) or 'nothing'})"
                    f"; it is not a Keras 3 model file"
                )
            if "model.weights.h5" not in names:
                raise _error(
                    f"{path.name} holds no model.weights.h5 ({', '.join(sorted(names))}); "
                    f"sharded or npz weights are not supported: save with model.save(...) "
                    f"and no max_shard_size"
                )
            config = json.loads(zf.read("config.json"))
            weights = zf.read("model.weights.h5")
    except zipfile.BadZipFile as e:
        raise _error(f"{path.name} is not a .keras file (a zip archive): {e}") from e
    with h5py.File(io.BytesIO(weights), "r") as h5:
        return _build(path.name, config, _KerasWeights(path.name, h5))


def _read_legacy_h5(path: Path):
    import h5py

    try:
        h5 = h5py.File(path, "r")
    except OSError as e:
        raise _error(f"{path.name} is not an HDF5 file: {e}") from e
    with h5:
        raw = h5.attrs.get("model_config")
        if raw is None:
            raise _error(
                f"{path.name} has no model_config attribute: it holds weights only "
                f"(save_weights) and no architecture; save the whole model with "
                f"model.save('model.keras')"
            )
        config = json.loads(_text(raw))
        weights = h5["model_weights"] if "model_weights" in h5 else h5
        return _build(path.name, config, _LegacyWeights(path.name, weights))


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


class _KerasWeights:
    """Variables of each layer in a Keras 3 ``model.weights.h5``."""

    def __init__(self, source: str, h5):
        self._source = source
        self._layers = h5.get("layers")
        if self._layers is None:
            raise _error(f"{source}: model.weights.h5 holds no 'layers' group")
        self._seen: dict[str, int] = {}

    def __call__(self, layer: dict, kind: str) -> list[np.ndarray]:
        name = _layer_name(layer)
        # the path Keras gives layer k of a class: snake case, then _1, _2, ... (the
        # model's InputLayer takes its own name, so it never shifts these)
        snake = _SNAKE[kind]
        k = self._seen.get(snake, 0)
        self._seen[snake] = k + 1
        key = snake if k == 0 else f"{snake}_{k}"
        # files that name their layers say which group is which; trust that over the count
        for group_name, group in self._layers.items():
            vars_group = group.get("vars")
            if vars_group is not None and _text(vars_group.attrs.get("name", "")) == name:
                key = group_name
                break
        if key not in self._layers:
            raise _error(f"{self._source}: layer {name!r} has no weights (no layers/{key})")
        group = self._layers[key]
        vars_group = group.get("cell/vars" if kind == "LSTM" else "vars")
        if vars_group is None:
            return []
        return [_array(self._source, name, vars_group[str(i)]) for i in range(len(vars_group))]


class _LegacyWeights:
    """Variables of each layer in a legacy ``.h5``, by the order of ``weight_names``."""

    def __init__(self, source: str, h5):
        self._source = source
        self._h5 = h5

    def __call__(self, layer: dict, kind: str) -> list[np.ndarray]:
        name = _layer_name(layer)
        if name not in self._h5:
            raise _error(f"{self._source}: layer {name!r} has no weights group")
        group = self._h5[name]
        names = [_text(n) for n in group.attrs.get("weight_names", [])]
        return [_array(self._source, name, group[n]) for n in names]


def _array(source: str, layer: str, dataset) -> np.ndarray:
    if _text(dataset.attrs.get("dtype", "")) == "bfloat16" or dataset.dtype.kind != "f":
        raise _error(
            f"{source}: layer {layer!r} holds {dataset.name} as "
            f"{_text(dataset.attrs.get('dtype', '')) or dataset.dtype}; only float weights "
            f"are read (save the model with a float32 dtype policy)"
        )
    return np.asarray(dataset[()], dtype=np.float64)


# --- layers -----------------------------------------------------------------------------


def _build(source: str, model: dict, weights) -> FloatNetwork:
    chain = _chain(source, model)
    layers, output = [], None
    lstm_names = [_layer_name(la) for la in chain if la.get("class_name") == "LSTM"]
    for layer in chain:
        kind, name = layer.get("class_name"), _layer_name(layer)
        config = layer.get("config") or {}
        _check_dtype(source, name, kind, config)
        if kind == "LSTM":
            returns_sequences = bool(config.get("return_sequences", False))
            if name != lstm_names[-1] and not returns_sequences:
                raise _error(
                    f"{source}: LSTM layer {name!r} has return_sequences=False but another "
                    f"LSTM layer reads it; every LSTM layer below the top one must return "
                    f"sequences"
                )
            if name == lstm_names[-1]:
                output = "sequence" if returns_sequences else "last"
            layers.append(_lstm(source, name, config, weights(layer, kind)))
        elif kind == "Dense":
            layers.append(_dense(source, name, config, weights(layer, kind)))
        else:
            raise _error(
                f"{source}: layer {name!r} is a {kind}; a network holds only LSTM and Dense "
                f"layers (InputLayer is skipped)"
            )
    try:
        return FloatNetwork(layers, name=model.get("config", {}).get("name") or "network",
                            output=output)  # fmt: skip
    except ValueError as e:
        raise _error(f"{source}: {e}") from e


def _check_dtype(source: str, name: str, kind, config: dict) -> None:
    """Refuse layers that ``model.quantize(...)`` turned into integer ones; the weights of
    a float or mixed-precision policy are float and read as they are."""
    policy = config.get("dtype")
    if isinstance(policy, dict) and "Quantized" in policy.get("class_name", ""):
        mode = (policy.get("config") or {}).get("mode", "?")
        raise _error(
            f"{source}: layer {name!r} ({kind}) has dtype={policy['class_name']} with "
            f"mode={mode!r}: quantized Keras layers are not read; save the float model "
            f"before model.quantize(...)"
        )


def _lstm(source: str, name: str, config: dict, arrays: list[np.ndarray]) -> FloatLSTM:
    where = f"{source}: LSTM layer {name!r}"
    for attr, want in _LSTM_REQUIRED.items():
        got = config.get(attr, want)
        if got != want:
            raise _error(f"{where} has {attr}={got!r}; only {attr}={want!r} is supported (SPEC §6)")
    use_bias = bool(config.get("use_bias", True))
    if len(arrays) != 2 + use_bias:
        raise _error(
            f"{where} holds {len(arrays)} weight array(s); with use_bias={use_bias} it "
            f"should hold kernel, recurrent_kernel{', bias' if use_bias else ''}"
        )
    kernel, recurrent = arrays[:2]
    h = config.get("units", recurrent.shape[0])
    if kernel.ndim != 2 or kernel.shape[1] != 4 * h or recurrent.shape != (h, 4 * h):
        raise _error(
            f"{where}: kernel {list(kernel.shape)} and recurrent_kernel "
            f"{list(recurrent.shape)} should be [I, 4H] and [H, 4H] with units H={h}"
        )
    bias = arrays[2] if use_bias else np.zeros(4 * h)
    # Keras' gate blocks i, f, c, o are SPEC's i, f, g, o: only the axes swap
    try:
        return FloatLSTM(w=kernel.T, r=recurrent.T, b=bias, name=name)
    except ValueError as e:
        raise _error(f"{where}: {e}") from e


def _dense(source: str, name: str, config: dict, arrays: list[np.ndarray]) -> FloatDense:
    where = f"{source}: Dense layer {name!r}"
    activation = config.get("activation", "linear")
    if not isinstance(activation, str | None) or activation not in _DENSE_ACTIVATIONS:
        raise _error(
            f"{where} has activation={activation!r}; only 'linear' and 'relu' are supported"
        )
    use_bias = bool(config.get("use_bias", True))
    if len(arrays) != 1 + use_bias:
        raise _error(
            f"{where} holds {len(arrays)} weight array(s); with use_bias={use_bias} it "
            f"should hold kernel{', bias' if use_bias else ''}"
        )
    kernel = arrays[0]
    if kernel.ndim != 2:
        raise _error(f"{where}: kernel must be [in, out], not {list(kernel.shape)}")
    bias = arrays[1] if use_bias else np.zeros(kernel.shape[1])
    try:
        return FloatDense(w=kernel.T, b=bias, activation=_DENSE_ACTIVATIONS[activation], name=name)
    except ValueError as e:
        raise _error(f"{where}: {e}") from e
