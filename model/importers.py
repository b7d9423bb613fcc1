"""Loading trained LSTM weights into a :class:`~model.lstm.FloatLSTM` (SPEC §6).

Every importer returns weights in this specification's order (gate rows i, f, g, o;
peepholes i, f, o) with the input and recurrent biases added in float64.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from model.lstm import FloatLSTM

SUFFIXES = (".npz", ".onnx", ".pt", ".pth")

#: ONNX gate blocks are i, o, f, c; SPEC rows are i, f, g, o
ONNX_GATE_ORDER = (0, 2, 3, 1)
#: ONNX peepholes are i, o, f; SPEC peepholes are i, f, o
ONNX_PEEPHOLE_ORDER = (0, 2, 1)
ONNX_DEFAULT_ACTIVATIONS = ("sigmoid", "tanh", "tanh")
#: ops that keep an all-zero tensor all zero (for initial_h/initial_c built from the batch size)
_ZERO_PRESERVING_OPS = {
    "Identity", "Cast", "CastLike", "Reshape", "Unsqueeze", "Squeeze", "Expand", "Tile",
    "Transpose", "Flatten", "Concat",
}  # fmt: skip


class ModelFileError(ValueError):
    """A model file that lstmfx cannot import as one forward LSTM layer; says what to change."""


def load_model(path) -> FloatLSTM:
    """Load ``path`` by its suffix: ``.npz``, ``.onnx``, or a PyTorch state dict."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return load_npz(path)
    if suffix == ".onnx":
        return load_onnx(path)
    if suffix in (".pt", ".pth"):
        return load_torch(path)
    raise ValueError(
        f"cannot tell the kind of model file {path.name!r} by its suffix; use one of "
        f"{', '.join(SUFFIXES)}"
    )


def load_npz(path) -> FloatLSTM:
    """Arrays ``w`` [4H, I], ``r`` [4H, H], ``b`` [4H] and optional ``p`` [3H] (i, f, o)."""
    with np.load(path, allow_pickle=False) as data:
        names = set(data.files)
        missing = {"w", "r", "b"} - names
        if missing:
            raise ModelFileError(
                f"{Path(path).name} lacks the array(s) {', '.join(sorted(missing))}; an lstmfx "
                f".npz holds w [4H, I], r [4H, H], b [4H] and optionally p [3H]"
            )
        extra = names - {"w", "r", "b", "p"}
        if extra:
            raise ModelFileError(
                f"{Path(path).name} holds unknown array(s) {', '.join(sorted(extra))}; only "
                f"w, r, b and p are read (an .npz of several layers is not supported)"
            )
        return _float_lstm(
            Path(path).name,
            w=data["w"],
            r=data["r"],
            b=data["b"],
            p=data["p"] if "p" in names else None,
            name=Path(path).stem,
        )


def _float_lstm(source: str, **arrays) -> FloatLSTM:
    """FloatLSTM(**arrays), with the file named in a shape or NaN error."""
    try:
        return FloatLSTM(**arrays)
    except ValueError as e:
        raise ModelFileError(f"{source}: {e}") from e


def load_onnx(path, *, node: str | None = None) -> FloatLSTM:
    """The one ``LSTM`` node of an ONNX model (or the node named ``node``), SPEC §6.

    Weights may be initializers or ``Constant`` nodes; ``B`` and ``P`` may be absent (zero
    bias, no peepholes). Only a forward LSTM with the default activations, no ``clip``,
    ``input_forget=0``, ``layout=0`` and a zero initial state is accepted; anything else
    is a :class:`ModelFileError` naming the attribute and its value.
    """
    import onnx

    path = Path(path)
    try:
        proto = onnx.load(str(path))
    except Exception as e:  # onnx raises DecodeError, OSError, ... depending on the damage
        raise ModelFileError(f"{path.name} is not a readable ONNX model: {e}") from e
    return from_onnx_model(proto, node=node, name=path.stem, source=path.name)


def from_onnx_model(proto, *, node: str | None = None, name="lstm", source="ONNX model"):
    """:func:`load_onnx` for an ``onnx.ModelProto`` already in memory."""
    graph = _OnnxGraph(proto.graph, source)
    lstm = graph.lstm_node(node)
    where = f"{source}: LSTM node {lstm.name or '(unnamed)'!r}"
    _check_onnx_attributes(lstm, where)

    inputs = list(lstm.input) + [""] * (8 - len(lstm.input))
    # X and sequence_lens are run-time data; neither changes the weights
    _x, w_name, r_name, b_name, _seq_lens, h0_name, c0_name, p_name = inputs[:8]
    if not w_name or not r_name:
        raise ModelFileError(f"{where} lacks its W or R input; the ONNX model is not valid")
    w = graph.constant(w_name, "W", where)
    r = graph.constant(r_name, "R", where)
    if w.ndim != 3 or r.ndim != 3 or w.shape[0] != 1 or r.shape[0] != 1:
        raise ModelFileError(
            f"{where}: W must be [1, 4H, I] and R [1, 4H, H] for one direction, not "
            f"W {list(w.shape)}, R {list(r.shape)}"
        )
    h4 = r.shape[1]
    h = r.shape[2]
    if h4 != 4 * h or w.shape[1] != h4:
        raise ModelFileError(
            f"{where}: R must be [1, 4H, H] and W [1, 4H, I], not R {list(r.shape)}, "
            f"W {list(w.shape)}"
        )
    hidden = _attribute(lstm, "hidden_size")
    if hidden is not None and hidden != h:
        raise ModelFileError(
            f"{where}: hidden_size={hidden} disagrees with R {list(r.shape)}, which says "
            f"H={h}; the ONNX model is not valid"
        )
    if b_name:
        bias = graph.constant(b_name, "B", where)
        if bias.shape != (1, 8 * h):
            raise ModelFileError(f"{where}: B must be [1, 8H={8 * h}], not {list(bias.shape)}")
        b = bias[0, :h4] + bias[0, h4:]  # float64: Wb + Rb is added before any quantization
    else:
        b = np.zeros(h4)
    p = None
    if p_name:
        peep = graph.constant(p_name, "P", where)
        if peep.shape != (1, 3 * h):
            raise ModelFileError(f"{where}: P must be [1, 3H={3 * h}], not {list(peep.shape)}")
        p = peep[0].reshape(3, h)[list(ONNX_PEEPHOLE_ORDER)].reshape(3 * h)
    for state_name, what in ((h0_name, "initial_h"), (c0_name, "initial_c")):
        if state_name and not graph.is_zero(state_name):
            raise ModelFileError(
                f"{where}: {what} ({state_name!r}) is not a constant zero tensor, but every "
                f"sequence starts from h0 = c0 = 0 (SPEC §2); export the model without an "
                f"initial state"
            )
    return _float_lstm(
        source,
        w=_onnx_rows(w[0], h),
        r=_onnx_rows(r[0], h),
        b=_onnx_rows(b, h),
        p=p,
        name=name,
    )


def _onnx_rows(a: np.ndarray, h: int) -> np.ndarray:
    """Gate blocks i, o, f, c (ONNX) to i, f, g, o (SPEC) along the first axis."""
    blocks = a.reshape(4, h, *a.shape[1:])
    return blocks[list(ONNX_GATE_ORDER)].reshape(a.shape)


def _attribute(node, attr_name):
    import onnx.helper

    for attr in node.attribute:
        if attr.name == attr_name:
            value = onnx.helper.get_attribute_value(attr)
            if isinstance(value, bytes):
                return value.decode()
            if isinstance(value, list):
                return [v.decode() if isinstance(v, bytes) else v for v in value]
            return value
    return None


def _check_onnx_attributes(node, where: str) -> None:
    """Every attribute of the node that lstmfx cannot honour, in one error."""
    problems = []
    for attr in node.attribute:
        value = _attribute(node, attr.name)
        key = attr.name
        if key == "hidden_size":
            continue  # checked against R
        if key == "direction" and value == "forward":
            continue
        if key == "input_forget" and value == 0:
            continue
        if key == "layout" and value == 0:
            continue
        if key == "activations" and tuple(v.lower() for v in value) == ONNX_DEFAULT_ACTIVATIONS:
            continue
        why = {
            "direction": "only a forward LSTM is implemented; export each direction as a "
            "forward LSTM of its own",
            "clip": "the cell state is not clipped; export without clip",
            "input_forget": "coupled input and forget gates are not implemented",
            "layout": "only layout=0 ([T, N, I] input) is read; export with layout=0",
            "activations": "only the default Sigmoid, Tanh, Tanh are implemented",
            "activation_alpha": "the default activations take no parameters",
            "activation_beta": "the default activations take no parameters",
        }.get(key, "lstmfx does not know this attribute")
        problems.append(f"{key}={value!r} ({why})")
    if problems:
        raise ModelFileError(f"{where} is not supported: " + "; ".join(problems))


class _OnnxGraph:
    """Constant tensors of an ONNX graph by name: initializers and Constant-node outputs."""

    def __init__(self, graph, source: str):
        self.graph = graph
        self.source = source
        self.initializers = {t.name: t for t in graph.initializer}
        self.producers = {out: n for n in graph.node for out in n.output if out}
        self.inputs = {i.name for i in graph.input}

    def lstm_node(self, wanted: str | None):
        lstms = [n for n in self.graph.node if n.op_type == "LSTM"]
        names = [n.name or f"#{k} (unnamed)" for k, n in enumerate(lstms)]
        if wanted is not None:
            for n in lstms:
                if n.name == wanted:
                    return n
            raise ModelFileError(
                f"{self.source} has no LSTM node named {wanted!r}; its LSTM nodes are "
                f"{', '.join(map(repr, names)) or 'none'}"
            )
        if not lstms:
            ops = sorted({n.op_type for n in self.graph.node})
            raise ModelFileError(
                f"{self.source} holds no LSTM node (its ops are {', '.join(ops) or 'none'}); "
                f"lstmfx imports the ONNX LSTM operator, export the model with it"
            )
        if len(lstms) > 1:
            raise ModelFileError(
                f"{self.source} holds {len(lstms)} LSTM nodes ({', '.join(map(repr, names))}): "
                f"lstmfx builds one LSTM layer; choose one with load_onnx(path, node=NAME)"
            )
        return lstms[0]

    def constant(self, name: str, role: str, where: str) -> np.ndarray:
        """The value of ``name`` as float64, or an error that says why it is not constant."""
        arr = self._value(name)
        if arr is None:
            if name in self.inputs:
                why = "a graph input fed at run time"
            elif name in self.producers:
                why = f"computed by a {self.producers[name].op_type} node"
            else:
                why = "defined nowhere in the graph"
            raise ModelFileError(
                f"{where}: its {role} input {name!r} is {why}; lstmfx needs the weights stored "
                f"in the model as initializers or Constant nodes (export with constant folding)"
            )
        if not np.issubdtype(arr.dtype, np.floating):
            raise ModelFileError(
                f"{where}: its {role} input {name!r} holds {arr.dtype} values; LSTM weights "
                f"must be floating point"
            )
        return arr.astype(np.float64)

    def _value(self, name: str) -> np.ndarray | None:
        from onnx import numpy_helper

        if name in self.initializers:
            return numpy_helper.to_array(self.initializers[name])
        node = self.producers.get(name)
        if node is None or node.op_type != "Constant" or len(node.attribute) != 1:
            return None
        attr = node.attribute[0]
        value = _attribute(node, attr.name)
        if attr.name == "value":
            return numpy_helper.to_array(value)
        if attr.name in ("value_float", "value_floats"):
            return np.asarray(value, dtype=np.float32)
        if attr.name in ("value_int", "value_ints"):
            return np.asarray(value, dtype=np.int64)
        return None  # sparse_value, value_string(s): never weights

    def is_zero(self, name: str, depth: int = 0) -> bool:
        """Whether ``name`` is provably all zeros: a zero constant, ConstantOfShape(0), or one
        reshaped, cast, expanded or concatenated from those (PyTorch exports a zero state
        sized by the batch this way)."""
        arr = self._value(name)
        if arr is not None:
            return bool(np.all(arr == 0))
        node = self.producers.get(name)
        if node is None or depth > 32:
            return False
        if node.op_type == "ConstantOfShape":
            value = _attribute(node, "value")
            if value is None:
                return True  # the default fill is 0
            from onnx import numpy_helper

            return bool(np.all(numpy_helper.to_array(value) == 0))
        if node.op_type in _ZERO_PRESERVING_OPS:
            data = node.input if node.op_type == "Concat" else node.input[:1]
            return all(self.is_zero(i, depth + 1) for i in data)
        return False


#: keys of one nn.LSTM layer, after its prefix
_TORCH_LAYER_KEY = re.compile(r"^(weight|bias)_(ih|hh|hr)_l(\d+)(_reverse)?$")


def load_torch(path, *, prefix: str | None = None) -> FloatLSTM:
    """A PyTorch ``nn.LSTM`` state dict saved with ``torch.save(model.state_dict(), path)``.

    The keys may carry one prefix (``lstm.weight_ih_l0`` of a model holding one
    ``nn.LSTM``); with several LSTMs, ``prefix`` chooses one. Needs torch; the file is read
    with ``weights_only=True``, so no code in it runs.
    """
    path = Path(path)
    try:
        import torch
    except ImportError as e:
        raise ModelFileError(
            f"reading the PyTorch file {path.name} needs torch, which is not installed: "
            f"pip install torch (the CPU build is enough); or save the weights as an .npz "
            f"with w [4H, I], r [4H, H], b [4H] instead"
        ) from e
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle.UnpicklingError, RuntimeError, ... by the kind of damage
        pickled = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e))
        what = (
            f"it pickles a {pickled.group(1)}, not only tensors"
            if pickled
            else f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}"
        )
        raise ModelFileError(
            f"{path.name} cannot be read as a PyTorch state dict with weights_only=True "
            f"({what}); if it holds a whole pickled module (torch.save(model)), save its "
            f"state dict instead: torch.save(model.state_dict(), {path.name!r})"
        ) from e
    if not isinstance(state, dict):
        raise ModelFileError(
            f"{path.name} holds a {type(state).__name__}, not a state dict; save it with "
            f"torch.save(model.state_dict(), {path.name!r})"
        )

    def to_numpy(value):
        if isinstance(value, torch.Tensor):
            if not value.is_floating_point():
                return value.numpy()
            return value.detach().to(torch.float64).numpy()
        return value

    return from_state_dict(
        {k: to_numpy(v) for k, v in state.items()},
        prefix=prefix,
        name=path.stem,
        source=path.name,
    )


def from_state_dict(state: dict, *, prefix: str | None = None, name="lstm", source="state dict"):
    """:func:`load_torch` for a state dict already in memory, its tensors as NumPy arrays."""
    keys = [k for k in state if isinstance(k, str)]
    prefixes = sorted({k[: -len("weight_ih_l0")] for k in keys if k.endswith("weight_ih_l0")})
    prefixes = [pre for pre in prefixes if pre == "" or pre.endswith(".")]
    if prefix is None:
        if not prefixes:
            nested = [k for k, v in state.items() if isinstance(v, dict)]
            hint = (
                f"; it holds the dict(s) {', '.join(map(repr, nested))}: if it is a training "
                f"checkpoint, save the model's state dict alone"
                if nested
                else ""
            )
            shown = ", ".join(map(repr, keys[:8])) + (", ..." if len(keys) > 8 else "")
            raise ModelFileError(
                f"{source} holds no nn.LSTM weights (no key ending in 'weight_ih_l0'; its keys "
                f"are {shown or 'none'}){hint}"
            )
        if len(prefixes) > 1:
            raise ModelFileError(
                f"{source} holds {len(prefixes)} LSTMs, under the prefixes "
                f"{', '.join(repr(pre) for pre in prefixes)}; lstmfx builds one LSTM layer: "
                f"choose one with load_torch(path, prefix=...)"
            )
        prefix = prefixes[0]
    elif prefix not in prefixes:
        raise ModelFileError(
            f"{source} has no LSTM under the prefix {prefix!r}; its LSTMs are under "
            f"{', '.join(repr(pre) for pre in prefixes) or 'no prefix at all'}"
        )

    layer = {}
    problems = []
    for key in keys:
        if not key.startswith(prefix) or "." in key[len(prefix) :]:
            continue  # another module of the same model (a head, a norm): not ours to read
        short = key[len(prefix) :]
        match = _TORCH_LAYER_KEY.match(short)
        if match is None:
            problems.append(f"{key!r} (not a key of nn.LSTM)")
            continue
        _, kind, depth, reverse = match.groups()
        if reverse:
            problems.append(f"{key!r} (a bidirectional LSTM; only forward is implemented)")
        elif kind == "hr":
            problems.append(f"{key!r} (proj_size > 0; only proj_size=0 is implemented)")
        elif depth != "0":
            problems.append(f"{key!r} (num_layers > 1; lstmfx builds one layer)")
        layer[short] = state[key]
    if problems:
        raise ModelFileError(
            f"{source}: the nn.LSTM under {prefix or 'no prefix'!r} is not supported: "
            + "; ".join(sorted(set(problems)))
        )

    def array(short: str) -> np.ndarray:
        value = np.asarray(layer[short])
        if not np.issubdtype(value.dtype, np.floating):
            raise ModelFileError(f"{source}: {prefix + short!r} holds {value.dtype}, not floats")
        return value.astype(np.float64)

    w = array("weight_ih_l0")
    if "weight_hh_l0" not in layer:
        raise ModelFileError(f"{source} lacks {prefix + 'weight_hh_l0'!r}; it is damaged")
    r = array("weight_hh_l0")
    if r.ndim != 2 or r.shape[0] != 4 * r.shape[1]:
        rows = r.shape[0] / r.shape[1] if r.ndim == 2 and r.shape[1] else None
        kind = {3: " (a GRU's shape)", 1: " (a plain RNN's shape)"}.get(rows, "")
        raise ModelFileError(
            f"{source}: {prefix + 'weight_hh_l0'!r} is {list(r.shape)}{kind}, but an nn.LSTM "
            f"has [4H, H]"
        )
    biases = [k for k in ("bias_ih_l0", "bias_hh_l0") if k in layer]
    if len(biases) == 1:
        raise ModelFileError(
            f"{source} has {prefix + biases[0]!r} without its pair; nn.LSTM has both biases "
            f"(bias=True) or neither (bias=False): the state dict is damaged"
        )
    if biases:
        b_ih, b_hh = array("bias_ih_l0"), array("bias_hh_l0")
        if b_ih.shape != b_hh.shape:
            raise ModelFileError(
                f"{source}: bias_ih_l0 {list(b_ih.shape)} and bias_hh_l0 {list(b_hh.shape)} "
                f"differ in shape"
            )
        b = b_ih + b_hh  # float64: the two biases are added before any quantization
    else:
        b = np.zeros(r.shape[0])
    return _float_lstm(source, w=w, r=r, b=b, name=name)
