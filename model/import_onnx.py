"""ONNX networks (SPEC §6): a chain of ``LSTM`` nodes, then ``Gemm`` or ``MatMul``+``Add``
dense layers, each optionally followed by ``Relu``, with the layout glue exporters write
between them (``Squeeze``, ``Transpose``, ``Gather``, ``Slice``, ``Reshape``, ...).

The importer follows the data flow backwards from a graph output to the graph input (or
to the LSTM node named by ``lstm``), then forwards through the nodes it found, tracking
what each axis of the tensor holds (time ``T``, batch ``N``, features ``F``, or a size-one
axis): that is how it knows that a ``Gather`` takes the last time step (``output="last"``)
and that a ``Squeeze`` only drops the direction axis. Any node on the path it cannot
honour is a :class:`~model.importers.ModelFileError` naming the node and its op.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.importers import ModelFileError, check_head, float_lstm, float_network
from model.network import FloatDense, FloatNetwork

#: ONNX gate blocks are i, o, f, c; SPEC rows are i, f, g, o
ONNX_GATE_ORDER = (0, 2, 3, 1)
#: ONNX peepholes are i, o, f; SPEC peepholes are i, f, o
ONNX_PEEPHOLE_ORDER = (0, 2, 1)
ONNX_DEFAULT_ACTIVATIONS = ("sigmoid", "tanh", "tanh")
#: ops that keep an all-zero tensor all zero (for initial_h/initial_c built from the batch size)
_ZERO_PRESERVING_OPS = {
    "Identity", "Cast", "CastLike", "Reshape", "Unsqueeze", "Squeeze", "Expand", "Tile",
    "Transpose", "Flatten", "Concat", "Slice", "Gather",  # torch's stacked LSTMs slice h0
}  # fmt: skip
#: ops that move or select axes of the tensor between layers; their other inputs are constant
GLUE_OPS = {
    "Identity", "Cast", "Dropout", "Squeeze", "Unsqueeze", "Transpose", "Reshape", "Flatten",
    "Gather", "Slice",
}  # fmt: skip
#: ops on the path that are one of the network's layers (or part of one)
LAYER_OPS = {"LSTM", "Gemm", "MatMul", "Add", "Relu"}
#: why an op that may sit on the path is refused
_REFUSED = {
    "GRU": "lstmfx implements the LSTM operator only",
    "RNN": "lstmfx implements the LSTM operator only",
    "Concat": "it joins several tensors (the two directions of a bidirectional LSTM?); a "
    "network is a single chain of layers",
    "Sigmoid": "a dense layer's activation is linear or relu",
    "Tanh": "a dense layer's activation is linear or relu",
    "Softmax": "a dense layer's activation is linear or relu; apply softmax outside",
    "LogSoftmax": "a dense layer's activation is linear or relu; apply it outside",
    "LeakyRelu": "a dense layer's activation is linear or relu",
    "Elu": "a dense layer's activation is linear or relu",
    "Selu": "a dense layer's activation is linear or relu",
    "Gelu": "a dense layer's activation is linear or relu",
    "Clip": "a dense layer's activation is linear or relu",
}
#: an ONNX Slice end this large means "to the end"
_TO_THE_END = 2**31 - 1


def load_onnx(path, *, lstm: str | None = None, head=None) -> FloatNetwork:
    """The network of an ONNX file, from its graph input (or from the LSTM node named
    ``lstm``) to its graph output.

    Weights may be initializers or ``Constant`` nodes; ``B`` and ``P`` may be absent (zero
    bias, no peepholes). Every LSTM node must be forward, with the default activations, no
    ``clip``, ``input_forget=0``, ``layout=0`` and a zero initial state; a ``Gemm`` must
    have ``alpha = beta = 1`` and ``transA=0``. ``head``, if given, lists the dense layers
    the graph must hold as ``(name, activation)``: a name matches a node's name, the module
    path PyTorch writes into it (``head.0`` of ``/head/head.0/Gemm``) or its weight's name
    without ``.weight``. ``output`` is ``"last"`` when the graph takes the last time step,
    ``"sequence"`` when it keeps every step, None when its outputs disagree.
    """
    import onnx

    path = Path(path)
    try:
        proto = onnx.load(str(path))
    except Exception as e:  # onnx raises DecodeError, OSError, ... depending on the damage
        raise ModelFileError(f"{path.name} is not a readable ONNX model: {e}") from e
    return from_onnx_model(proto, lstm=lstm, head=head, name=path.stem, source=path.name)


def from_onnx_model(
    proto, *, lstm: str | None = None, head=None, name="network", source="ONNX model"
) -> FloatNetwork:
    """:func:`load_onnx` for an ``onnx.ModelProto`` already in memory."""
    graph = _OnnxGraph(proto.graph, source)
    head = check_head(source, head)
    bottom = graph.bottom_lstms(lstm)
    found, errors = [], []
    for out in proto.graph.output:
        try:
            found.append((out.name, _Path(graph, out.name, bottom).build()))
        except ModelFileError as e:
            errors.append((out.name, e))
    if not found:
        if len({str(e) for _, e in errors}) == 1:
            raise errors[0][1]  # one node stands in the way of every output
        raise ModelFileError(
            f"{source}: no graph output is the output of a network lstmfx can build: "
            + "; ".join(f"{out!r}: {e}" for out, e in errors)
        )
    chains = {built.layer_nodes for _, built in found}
    if len(chains) > 1:
        desc = ", ".join(f"{out!r} ({len(built.layers)} layers)" for out, built in found)
        raise ModelFileError(
            f"{source}: the graph outputs {desc} are different networks; export the model "
            f"with the one output lstmfx should build"
        )
    built = found[0][1]
    outputs = {b.output for _, b in found}
    output = outputs.pop() if len(outputs) == 1 else None
    _check_named_head(source, head, built)
    return float_network(source, built.layers, name=name, output=output)


def _check_named_head(source, head, built) -> None:
    if not head:
        return
    have = [(dense.names, dense.activation) for dense in built.dense]
    shown = ", ".join(f"{names[0]!r} ({act})" for names, act in have) or "none"
    if len(head) != len(have):
        raise ModelFileError(
            f"{source}: head names {len(head)} dense layer(s) but the graph holds "
            f"{len(have)} after its LSTM layers: {shown}"
        )
    for (wanted, act), (names, got) in zip(head, have):
        if wanted not in names:
            raise ModelFileError(
                f"{source}: head layer {wanted!r} is not the graph's dense layer here, "
                f"{names[0]!r}; the graph's dense layers are {shown}"
            )
        if act != got:
            raise ModelFileError(
                f"{source}: head layer {wanted!r} is {act!r} in head but {got!r} in the graph"
            )


@dataclass
class _Dense:
    """A dense layer while the path is read: its bias may come from a later Add node, its
    activation from a later Relu node."""

    w: np.ndarray
    b: np.ndarray | None
    name: str
    names: list[str]
    activation: str = "linear"

    def layer(self) -> FloatDense:
        b = np.zeros(self.w.shape[0]) if self.b is None else self.b
        return FloatDense(self.w, b, self.activation, name=self.name)


@dataclass
class _Flow:
    """What each axis of the tensor on the path holds: ``T`` (time), ``N`` (batch), ``F``
    (features) or ``1`` (an axis of size one); ``last``: the time axis was cut to its last
    step; ``features``: the size of the feature axis."""

    axes: tuple[str, ...]
    last: bool = False
    features: int = 0

    def unit(self, label: str) -> bool:
        """Whether an axis of this label has size one: the features of a one-output layer
        (``head(h)[..., 0]`` drops that axis) or a ``1``."""
        return label == "1" or (label == "F" and self.features == 1)

    def to(self, axes, last=None) -> _Flow:
        """The same features on other axes."""
        return _Flow(tuple(axes), self.last if last is None else last, self.features)


class _Path:
    """The nodes from the graph input (or a bottom LSTM) to one graph output, as layers."""

    def __init__(self, graph: _OnnxGraph, output: str, bottom: set[int] | None):
        self.graph = graph
        self.source = graph.source
        self.tensor = output  # the graph output this path ends in
        self.nodes = []  # bottom first
        self.layers = []  # FloatLSTM and FloatDense, once built
        self.dense: list[_Dense] = []
        self.output = None  # "sequence", "last" or None, once built
        self._walk_back(output, bottom)

    @property
    def layer_nodes(self) -> tuple[int, ...]:
        """The nodes that make the layers, by id: two paths with these equal are one network."""
        return tuple(id(n) for n in self.nodes if n.op_type in LAYER_OPS)

    def _where(self, node) -> str:
        return f"{self.source}: {node.op_type} node {node.name or '(unnamed)'!r}"

    def _walk_back(self, tensor: str, bottom: set[int] | None) -> None:
        graph = self.graph
        while True:
            node = graph.producers.get(tensor)
            if node is None:
                if tensor in graph.inputs and bottom is None:
                    break
                what = "graph input" if tensor in graph.inputs else "constant"
                why = "without passing the LSTM node lstm= names" if bottom else "not the input"
                raise ModelFileError(
                    f"{self.source}: the path to the graph output {self.tensor!r} starts at the "
                    f"{what} {tensor!r}, {why}"
                )
            if len(self.nodes) > len(graph.nodes):
                raise ModelFileError(f"{self.source}: the graph has a cycle; it is not valid")
            self.nodes.append(node)
            if node.op_type == "LSTM" and bottom is not None and id(node) in bottom:
                break
            tensor = self._data_input(node)
        self.nodes.reverse()

    def _data_input(self, node) -> str:
        """The one input of ``node`` that carries the network's data; the others must be
        constants."""
        op = node.op_type
        if op not in GLUE_OPS and op not in LAYER_OPS:
            why = _REFUSED.get(op, "lstmfx does not know this op on the path of a network")
            raise ModelFileError(
                f"{self._where(node)} is on the path from the input to the output ({why})"
            )
        inputs = [i for i in node.input]
        if op == "LSTM":
            return inputs[0]
        data = [i for i in inputs if i and self.graph.value(i) is None]
        if op in ("MatMul", "Add") and len(data) == 1:
            return data[0]
        if op in ("Gemm", "Relu", *GLUE_OPS) and data == inputs[:1]:
            return data[0]
        raise ModelFileError(
            f"{self._where(node)} takes {len(data)} computed inputs ({', '.join(data)}); in a "
            f"network each node between the layers takes one tensor and constants"
        )

    def build(self) -> _Path:
        flow = None  # the layout is known from the first LSTM on
        for k, node in enumerate(self.nodes):
            op = node.op_type
            if op == "LSTM":
                if flow is not None and (flow.axes != ("T", "N", "F") or flow.last):
                    raise ModelFileError(
                        f"{self._where(node)} reads a tensor of axes {_show(flow)}, but an LSTM "
                        f"layer reads every step of the layer below, [T, N, features]"
                    )
                layer = _onnx_lstm(self.graph, node)
                self.layers.append(layer)
                flow = self._lstm_output(node, self.nodes[k + 1 : k + 2], layer.hidden_size)
            elif flow is None:
                self._before_lstm(node)
            elif op in ("Gemm", "MatMul"):
                flow = self._dense(node, flow)
            elif op == "Add":
                self._bias(node, self.nodes[k - 1])
            elif op == "Relu":
                self._relu(node, self.nodes[k - 1])
            else:
                flow = self._glue(node, flow)
        if flow is None:
            raise ModelFileError(
                f"{self.source}: the path from the graph input to the output holds no LSTM "
                f"node (its ops are {', '.join(n.op_type for n in self.nodes) or 'none'})"
            )
        self.output = "last" if flow.last else "sequence" if "T" in flow.axes else None
        self.layers = [la.layer() if isinstance(la, _Dense) else la for la in self.layers]
        return self

    def _before_lstm(self, node) -> None:
        op = node.op_type
        if op in ("Identity", "Cast", "Dropout"):
            return
        if op == "Transpose":
            perm = _attribute(node, "perm")
            if perm is not None and perm[-1] == len(perm) - 1:
                return  # batch-first to time-first: the features stay the last axis
        raise ModelFileError(
            f"{self._where(node)} lies between the graph input and the first LSTM node; an "
            f"lstmfx network starts with its LSTM layer: name that LSTM node with lstm= to "
            f"import the network from there"
        )

    def _lstm_output(self, node, after: list, hidden: int) -> _Flow:
        used = set(after[0].input) if after else {self.tensor}
        outs = list(node.output) + [""] * 3
        if outs[0] and outs[0] in used:
            return _Flow(("T", "1", "N", "F"), features=hidden)
        if outs[1] and outs[1] in used:
            return _Flow(("1", "N", "F"), last=True, features=hidden)
        raise ModelFileError(
            f"{self._where(node)}: the network continues from its cell state Y_c; a layer's "
            f"output is h (Y or Y_h)"
        )

    def _dense(self, node, flow: _Flow) -> _Flow:
        where = self._where(node)
        if flow.axes[-1] != "F":
            raise ModelFileError(
                f"{where} multiplies axes {_show(flow)}; a dense layer maps the features, "
                f"the last axis"
            )
        if node.op_type == "Gemm":
            for attr, want in (("alpha", 1.0), ("beta", 1.0), ("transA", 0)):
                value = _attribute(node, attr)
                if value is not None and value != want:
                    raise ModelFileError(
                        f"{where} has {attr}={value!r}; only {attr}={want} is supported "
                        f"(export the layer as a plain Linear/Dense)"
                    )
            b = self.graph.constant(node.input[1], "B", where)
            if b.ndim != 2:
                raise ModelFileError(f"{where}: B must be 2-D, not {list(b.shape)}")
            w = b if _attribute(node, "transB") else b.T
            c_name = node.input[2] if len(node.input) > 2 else ""
            bias = self._bias_values(node, c_name, w.shape[0]) if c_name else None
        else:
            b = self.graph.constant(node.input[1], "B", where)
            if b.ndim != 2:
                raise ModelFileError(
                    f"{where}: its weights must be 2-D [in, out], not {list(b.shape)}"
                )
            w, bias = b.T, None
        dense = _Dense(w, bias, node.name or "dense", _dense_names(node))
        self.layers.append(dense)
        self.dense.append(dense)
        return _Flow(flow.axes, flow.last, w.shape[0])

    def _bias_values(self, node, name: str, out: int) -> np.ndarray:
        where = self._where(node)
        c = self.graph.constant(name, "bias", where)
        if c.size != out or c.shape[-1:] != (out,):
            raise ModelFileError(
                f"{where}: its bias {name!r} is {list(c.shape)}; a dense bias is [{out}]"
            )
        return c.reshape(out)

    def _bias(self, node, prev) -> None:
        dense = self.dense[-1] if self.dense else None
        if prev.op_type not in ("MatMul", "Gemm") or dense.b is not None:
            raise ModelFileError(
                f"{self._where(node)} follows {prev.op_type} node {prev.name!r}; an Add on the "
                f"path must be the bias of a MatMul"
            )
        const = next(i for i in node.input if self.graph.value(i) is not None)
        dense.b = self._bias_values(node, const, dense.w.shape[0])

    def _relu(self, node, prev) -> None:
        if prev.op_type not in ("MatMul", "Gemm", "Add") or self.dense[-1].activation != "linear":
            raise ModelFileError(
                f"{self._where(node)} follows {prev.op_type} node {prev.name!r}; a Relu on the "
                f"path must be the activation of a dense layer (Gemm, or MatMul+Add)"
            )
        self.dense[-1].activation = "relu"

    def _glue(self, node, flow: _Flow) -> _Flow:
        op, axes, where = node.op_type, list(flow.axes), self._where(node)
        rank = len(axes)
        if op in ("Identity", "Cast", "Dropout"):
            return flow
        if op == "Transpose":
            perm = _attribute(node, "perm") or list(range(rank))[::-1]
            return flow.to(axes[k] for k in perm)
        if op in ("Squeeze", "Unsqueeze"):
            given = self._ints(node, "axes", 1)
            if op == "Squeeze":
                # without axes, Squeeze drops every size-one axis: those the path made so
                drop = {a % rank for a in given} or {k for k, a in enumerate(axes) if a == "1"}
                bad = [axes[k] for k in drop if not flow.unit(axes[k])]
                if bad:
                    raise ModelFileError(f"{where} squeezes the {_axis_name(bad[0])} axis")
                return flow.to(a for k, a in enumerate(axes) if k not in drop)
            out_rank = rank + len(given)
            for k in sorted(a % out_rank for a in given):
                axes.insert(k, "1")
            return flow.to(axes)
        if op == "Flatten":
            at = (_attribute(node, "axis") or 1) % (rank + 1) if rank else 0
            merged = []
            for part in (axes[:at], axes[at:]):
                real = [a for a in part if a != "1"]
                if len(real) > 1:
                    raise ModelFileError(f"{where} merges the axes {_show(_Flow(tuple(part)))}")
                merged.append(real[0] if real else "1")
            return flow.to(merged)
        if op == "Reshape":
            shape = self._ints(node, "shape", 1)
            real = [a for a in axes if not flow.unit(a)]
            out, k = [], 0
            for pos, size in enumerate(shape):
                if size == 1:
                    out.append("1")
                    continue
                if k >= len(real) or (size == 0 and (pos >= rank or axes[pos] != real[k])):
                    break
                if real[k] == "F" and size not in (-1, 0, flow.features):
                    break  # the feature axis split or merged with another
                out.append(real[k])
                k += 1
            else:
                if k == len(real):
                    return flow.to(out)
            raise ModelFileError(
                f"{where} reshapes axes {_show(flow)} to {shape}, which mixes time, batch or "
                f"features; lstmfx follows reshapes that only add or drop size-one axes"
            )
        if op == "Gather":
            axis = (_attribute(node, "axis") or 0) % rank
            index = self.graph.value(node.input[1])
            if index is None or index.size != 1:
                raise ModelFileError(f"{where} gathers indices that are not one constant")
            step, keep = int(index.reshape(-1)[0]), index.ndim == 1
            return self._take(node, flow, axis, step, step + 1 or _TO_THE_END, keep)
        if op == "Slice":
            starts = self._ints(node, "starts", 1)
            ends = self._ints(node, "ends", 2)
            slice_axes = self._ints(node, "axes", 3) or list(range(len(starts)))
            steps = self._ints(node, "steps", 4) or [1] * len(starts)
            for s, e, a, st in zip(starts, ends, slice_axes, steps):
                if st != 1:
                    raise ModelFileError(f"{where} slices with step {st}; only step 1 is kept")
                flow = self._take(node, flow, a % rank, s, e, True)
            return flow
        raise AssertionError(op)  # pragma: no cover: _data_input admits only GLUE_OPS

    def _take(self, node, flow: _Flow, axis: int, start: int, end: int, keep: bool) -> _Flow:
        """``flow`` after taking ``[start:end]`` of ``axis`` (dropping it unless ``keep``)."""
        axes, label = list(flow.axes), flow.axes[axis]
        whole = start == 0 and end >= _TO_THE_END
        last = start == -1 and end >= _TO_THE_END
        if flow.unit(label) and (whole or start in (0, -1)):
            pass
        elif label == "T" and last:
            axes[axis] = "1"
            flow = flow.to(axes, last=True)
        elif whole and keep:
            return flow
        else:
            what = {"T": "time", "N": "batch", "F": "feature", "1": "size-one"}[label]
            hint = "; lstmfx keeps every step or the last one ([:, -1])" if label == "T" else ""
            raise ModelFileError(
                f"{self._where(node)} takes [{start}:{end}] of the {what} axis{hint}"
            )
        if not keep:
            del axes[axis]
        return flow.to(axes)

    def _ints(self, node, name: str, slot: int) -> list[int]:
        """An integer list given as attribute ``name`` (old opsets) or constant input ``slot``."""
        value = _attribute(node, name)
        if value is not None:
            return [int(v) for v in value]
        if len(node.input) <= slot or not node.input[slot]:
            return []
        arr = self.graph.value(node.input[slot])
        if arr is None:
            raise ModelFileError(
                f"{self._where(node)}: its {name} input {node.input[slot]!r} is computed at run "
                f"time; export with constant folding so that lstmfx can follow the layout"
            )
        return [int(v) for v in np.asarray(arr).reshape(-1)]


def _axis_name(label: str) -> str:
    return {"T": "time", "N": "batch", "F": "feature"}.get(label, label)


def _show(flow: _Flow) -> str:
    return "[" + ", ".join(flow.axes) + "]"


def _dense_names(node) -> list[str]:
    """The names ``head`` may use for a dense node: its own, PyTorch's module path in it,
    its weight's name without ``.weight``."""
    names = [node.name] if node.name else []
    parts = [p for p in node.name.split("/") if p]
    if len(parts) >= 2:
        names.append(parts[-2])
    weight = node.input[1] if len(node.input) > 1 else ""
    if weight.endswith(".weight"):
        names.append(weight[: -len(".weight")])
    return names or ["(unnamed)"]


def _onnx_lstm(graph: _OnnxGraph, lstm):
    """One LSTM node as a FloatLSTM in SPEC order, every attribute checked."""
    source = graph.source
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
    return float_lstm(
        source,
        w=_onnx_rows(w[0], h),
        r=_onnx_rows(r[0], h),
        b=_onnx_rows(b, h),
        p=p,
        name=lstm.name or "lstm",
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
        # one list of the node objects: paths compare nodes by id()
        self.nodes = list(graph.node)
        self.initializers = {t.name: t for t in graph.initializer}
        self.producers = {out: n for n in self.nodes for out in n.output if out}
        self.inputs = {i.name for i in graph.input} - set(self.initializers)
        self.outputs = [o.name for o in graph.output]

    def bottom_lstms(self, wanted: str | None) -> set[int] | None:
        """The LSTM node(s) ``lstm=`` names, as ids (None: start at the graph input).

        A name matches a node's name, or PyTorch's module path in it (``rnn`` or
        ``encoder.rnn`` for ``/encoder/rnn/LSTM_1``), the lowest such node being the bottom.
        """
        lstms = [n for n in self.nodes if n.op_type == "LSTM"]
        other = [n for n in self.nodes if n.op_type in ("GRU", "RNN")]
        if not lstms and other:
            raise ModelFileError(
                f"{self.source}: {other[0].op_type} node {other[0].name or '(unnamed)'!r} is not "
                f"an LSTM; lstmfx implements the LSTM operator only"
            )
        if not lstms:
            ops = sorted({n.op_type for n in self.nodes})
            raise ModelFileError(
                f"{self.source} holds no LSTM node (its ops are {', '.join(ops) or 'none'}); "
                f"lstmfx imports the ONNX LSTM operator, export the model with it"
            )
        if wanted is None:
            return None
        named = [n for n in lstms if n.name == wanted]
        if not named:
            scope = "/" + wanted.strip("/").replace(".", "/") + "/"
            named = [n for n in lstms if n.name.startswith(scope)]
        if not named:
            names = [n.name or f"#{k} (unnamed)" for k, n in enumerate(lstms)]
            raise ModelFileError(
                f"{self.source} has no LSTM node named {wanted!r}; its LSTM nodes are "
                f"{', '.join(map(repr, names))}"
            )
        # nodes are stored in topological order: the first named one is the lowest
        return {id(named[0])}

    def value(self, name: str) -> np.ndarray | None:
        """The value of a constant tensor (initializer or Constant node), else None."""
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

    def constant(self, name: str, role: str, where: str) -> np.ndarray:
        """The value of ``name`` as float64, or an error that says why it is not constant."""
        arr = self.value(name)
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
                f"{where}: its {role} input {name!r} holds {arr.dtype} values; weights "
                f"must be floating point"
            )
        return arr.astype(np.float64)

    def is_zero(self, name: str, depth: int = 0) -> bool:
        """Whether ``name`` is provably all zeros: a zero constant, ConstantOfShape(0), or one
        reshaped, cast, expanded or concatenated from those (PyTorch exports a zero state
        sized by the batch this way)."""
        arr = self.value(name)
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
