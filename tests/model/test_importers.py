"""model/importers.py, import_onnx.py, import_torch.py: ONNX, PyTorch and .npz networks in
SPEC order (SPEC §6), and a clear error, naming the offending node, layer, attribute or key,
for every model lstmfx cannot build."""

import sys
import types
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from model.import_onnx import from_onnx_model
from model.import_torch import from_state_dict
from model.importers import ModelFileError, load_model, load_npz, load_onnx, load_torch
from model.network import FloatNetwork, run_float

# float32 ORT against our float64: see ATOL in test_float_lstm.py
ATOL = 1e-5
ONNX_GATES = ("i", "o", "f", "g")
SPEC_GATES = ("i", "f", "g", "o")
ONNX_PEEPHOLES = ("i", "o", "f")
SPEC_PEEPHOLES = ("i", "f", "o")


def blocks(a, names, h):
    return {name: a[..., k * h : (k + 1) * h, :] for k, name in enumerate(names)}


def to_spec(a, h, onnx_names=ONNX_GATES, spec_names=SPEC_GATES):
    """ONNX blocks to SPEC blocks along the first axis, by name."""
    named = {n: a[k * h : (k + 1) * h] for k, n in enumerate(onnx_names)}
    return np.concatenate([named[n] for n in spec_names])


class OnnxLSTM:
    """Random ONNX-order weights for one LSTM node and the model that holds them."""

    def __init__(self, seed, i_size=3, h_size=4, *, peephole=True, bias=True, dtype=np.float32):
        rng = np.random.default_rng(seed)
        self.i_size, self.h = i_size, h_size
        self.W = (rng.normal(size=(1, 4 * h_size, i_size)) * 0.6).astype(dtype)
        self.R = (rng.normal(size=(1, 4 * h_size, h_size)) * 0.6).astype(dtype)
        self.B = (rng.normal(size=(1, 8 * h_size)) * 0.6).astype(dtype) if bias else None
        self.P = (rng.normal(size=(1, 3 * h_size)) * 0.6).astype(dtype) if peephole else None

    def expected(self):
        """The SPEC-order float64 weights the importer must return."""
        h = self.h
        w = to_spec(self.W[0].astype(np.float64), h)
        r = to_spec(self.R[0].astype(np.float64), h)
        if self.B is None:
            b = np.zeros(4 * h)
        else:
            b = to_spec(self.B[0, : 4 * h].astype(np.float64) + self.B[0, 4 * h :], h)
        p = None
        if self.P is not None:
            p = to_spec(self.P[0].astype(np.float64), h, ONNX_PEEPHOLES, SPEC_PEEPHOLES)
        return w, r, b, p

    def model(
        self,
        *,
        attrs=None,
        constants=False,
        extra_inputs=None,
        extra_inits=None,
        extra_nodes=(),
        graph_inputs=(),
        node_name="lstm0",
        t_len=6,
        n=2,
    ):
        """The ONNX model. ``extra_inputs`` maps an LSTM input slot (4 sequence_lens,
        5 initial_h, 6 initial_c) to a tensor name; ``constants`` stores the weights as
        Constant nodes instead of initializers."""
        arrays = {"W": self.W, "R": self.R}
        if self.B is not None:
            arrays["B"] = self.B
        if self.P is not None:
            arrays["P"] = self.P
        slots = ["X", "W", "R", "B" if self.B is not None else "", "", "", ""]
        slots.append("P" if self.P is not None else "")
        for slot, name in (extra_inputs or {}).items():
            slots[slot] = name
        while slots[-1] == "":
            slots.pop()
        kwargs = {"hidden_size": self.h} | (attrs or {})
        lstm = helper.make_node("LSTM", slots, ["Y", "Y_h"], name=node_name, **kwargs)
        tensors = [numpy_helper.from_array(v, k) for k, v in arrays.items()]
        tensors += [numpy_helper.from_array(v, k) for k, v in (extra_inits or {}).items()]
        if constants:
            nodes = [helper.make_node("Constant", [], [t.name], value=t) for t in tensors]
            inits = []
        else:
            nodes, inits = [], tensors
        dt = helper.np_dtype_to_tensor_dtype(self.W.dtype)
        graph = helper.make_graph(
            [*nodes, *extra_nodes, lstm],
            "g",
            [helper.make_tensor_value_info("X", dt, [t_len, n, self.i_size]), *graph_inputs],
            [
                helper.make_tensor_value_info("Y", dt, [t_len, 1, n, self.h]),
                helper.make_tensor_value_info("Y_h", dt, [1, n, self.h]),
            ],
            initializer=inits,
        )
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])


def save(model, tmp_path, name="m.onnx"):
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


def ort_outputs(model, x):
    """ORT on x [N, T, I]: (Y as [N, T, H], Y_h as [N, H])."""
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    y, y_h = sess.run(None, {"X": np.ascontiguousarray(x.transpose(1, 0, 2))})
    return y[:, 0].transpose(1, 0, 2), y_h[0]


def assert_weights(lstm, expected):
    w, r, b, p = expected
    np.testing.assert_array_equal(lstm.w, w)
    np.testing.assert_array_equal(lstm.r, r)
    np.testing.assert_array_equal(lstm.b, b)
    if p is None:
        assert lstm.p is None
    else:
        np.testing.assert_array_equal(lstm.p, p)


# ---------------------------------------------------------------------------- ONNX, accepted


@pytest.mark.parametrize("peephole", [False, True], ids=["plain", "peephole"])
@pytest.mark.parametrize(("i_size", "h_size"), [(1, 1), (3, 4), (5, 9)])
def test_onnx_weights_reordered_and_equal_to_onnxruntime(tmp_path, i_size, h_size, peephole):
    src = OnnxLSTM(10 * i_size + h_size, i_size, h_size, peephole=peephole)
    model = src.model(t_len=8, n=3)
    net = load_model(save(model, tmp_path, "seq.onnx"))
    assert isinstance(net, FloatNetwork) and net.name == "seq" and len(net.layers) == 1
    assert net.output is None  # Y (every step) and Y_h (the last) are both graph outputs
    lstm = net.layers[0]
    assert lstm.name == "lstm0"
    assert (lstm.input_size, lstm.hidden_size) == (i_size, h_size)
    assert_weights(lstm, src.expected())

    x = np.random.default_rng(h_size).normal(size=(3, 8, i_size)).astype(np.float32)
    y, y_h = ort_outputs(model, x)
    np.testing.assert_allclose(run_float(net, x), y, rtol=0, atol=ATOL)
    np.testing.assert_allclose(run_float(net, x, output="last"), y_h, rtol=0, atol=ATOL)


def test_onnx_bias_is_the_float64_sum_of_wb_and_rb():
    """Wb + Rb is added in float64: two float32 values whose float32 sum would round."""
    src = OnnxLSTM(1, 1, 1, peephole=False)
    src.B[0] = [1.0] * 4 + [2.0**-30] * 4
    lstm = from_onnx_model(src.model()).layers[0]
    np.testing.assert_array_equal(lstm.b, 1.0 + 2.0**-30)
    assert np.float32(1.0) + np.float32(2.0**-30) == np.float32(1.0)  # float32 would lose it


def test_onnx_constant_node_weights(tmp_path):
    src = OnnxLSTM(2)
    model = src.model(constants=True)
    assert not model.graph.initializer
    net = load_onnx(save(model, tmp_path))
    assert_weights(net.layers[0], src.expected())
    x = np.random.default_rng(2).normal(size=(2, 6, 3)).astype(np.float32)
    np.testing.assert_allclose(run_float(net, x), ort_outputs(model, x)[0], rtol=0, atol=ATOL)


def test_onnx_value_floats_constant_is_read_and_its_shape_checked():
    """A value_floats Constant is 1-D: it is read (not called non-constant), then refused."""
    src = OnnxLSTM(3, 1, 1, peephole=True)
    model = src.model()
    model.graph.initializer.pop()  # P, the last initializer
    model.graph.node.insert(
        0, helper.make_node("Constant", [], ["P"], value_floats=src.P[0].tolist())
    )
    with pytest.raises(ModelFileError, match="P must be \\[1, 3H=3\\], not \\[3\\]"):
        from_onnx_model(model)


def test_onnx_missing_bias_is_zero(tmp_path):
    src = OnnxLSTM(4, bias=False)
    model = src.model()
    net = load_onnx(save(model, tmp_path))
    np.testing.assert_array_equal(net.layers[0].b, np.zeros(16))
    assert_weights(net.layers[0], src.expected())
    x = np.random.default_rng(4).normal(size=(2, 6, 3)).astype(np.float32)
    np.testing.assert_allclose(run_float(net, x), ort_outputs(model, x)[0], rtol=0, atol=ATOL)


def test_onnx_explicit_defaults_are_accepted():
    src = OnnxLSTM(5)
    attrs = {
        "direction": "forward",
        "activations": ["Sigmoid", "Tanh", "Tanh"],
        "input_forget": 0,
        "layout": 0,
    }
    assert_weights(from_onnx_model(src.model(attrs=attrs)).layers[0], src.expected())


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_onnx_float16_and_float64_weights(dtype):
    src = OnnxLSTM(6, dtype=dtype)
    lstm = from_onnx_model(src.model()).layers[0]
    assert lstm.w.dtype == np.float64
    assert_weights(lstm, src.expected())


def test_onnx_sequence_lens_input_and_zero_initial_state_are_accepted():
    src = OnnxLSTM(7)
    n, h = 2, src.h
    # a zero initial_h initializer, and initial_c as PyTorch exports it: zeros sized at run time
    zeros = np.zeros((1, n, h), np.float32)
    shape_nodes = [
        helper.make_node("Shape", ["X"], ["xs"]),
        helper.make_node("Constant", [], ["dims"], value=numpy_helper.from_array(np.array([1]))),
        helper.make_node("Gather", ["xs", "dims"], ["batch"]),
        helper.make_node("Concat", ["one", "batch", "hid"], ["c0_shape"], axis=0),
        helper.make_node("ConstantOfShape", ["c0_shape"], ["c0"]),
        helper.make_node("Cast", ["c0"], ["c0f"], to=TensorProto.FLOAT),
    ]
    model = src.model(
        extra_inputs={4: "seq_lens", 5: "h0", 6: "c0f"},
        extra_inits={"h0": zeros, "one": np.array([1]), "hid": np.array([h])},
        extra_nodes=shape_nodes,
        graph_inputs=[helper.make_tensor_value_info("seq_lens", TensorProto.INT32, [n])],
    )
    net = from_onnx_model(model)
    assert_weights(net.layers[0], src.expected())
    x = np.random.default_rng(7).normal(size=(n, 6, 3)).astype(np.float32)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    y, _ = sess.run(None, {"X": x.transpose(1, 0, 2).copy(), "seq_lens": np.full(n, 6, np.int32)})
    np.testing.assert_allclose(run_float(net, x), y[:, 0].transpose(1, 0, 2), atol=ATOL, rtol=0)


def two_lstm_model(src):
    """Two stacked LSTM nodes, as an exporter writes a 2-layer LSTM."""
    model = src.model(node_name="layer0")
    g = model.graph
    g.initializer.extend(
        [
            numpy_helper.from_array(np.array([1]), "axis1"),
            numpy_helper.from_array(src.R.copy(), "W1"),  # layer 1 input size is H
        ]
    )
    g.node.append(helper.make_node("Squeeze", ["Y", "axis1"], ["Y0"]))
    g.node.append(
        helper.make_node("LSTM", ["Y0", "W1", "R"], ["Y1"], name="layer1", hidden_size=src.h)
    )
    set_output(model, "Y1")
    return model


def set_output(model, name):
    """Make ``name`` the graph's one output (of unknown shape)."""
    del model.graph.output[:]
    model.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))


def ort_run(model, x):
    """ORT on x [N, T, I] fed as the [T, N, I] the LSTM node reads; the one output."""
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"X": np.ascontiguousarray(x.transpose(1, 0, 2), np.float32)})[0]


def test_onnx_stacked_lstm_nodes_are_one_network(tmp_path):
    src = OnnxLSTM(8)
    model = two_lstm_model(src)
    path = save(model, tmp_path)
    net = load_onnx(path)
    assert [la.name for la in net.layers] == ["layer0", "layer1"]
    assert net.output == "sequence"
    assert_weights(net.layers[0], src.expected())
    np.testing.assert_array_equal(net.layers[1].w, to_spec(src.R[0].astype(np.float64), src.h))
    assert net.layers[1].p is None
    x = np.random.default_rng(8).normal(size=(2, 6, 3))
    y = ort_run(model, x)[:, 0].transpose(1, 0, 2)
    np.testing.assert_allclose(run_float(net, x), y, rtol=0, atol=ATOL)

    top = load_onnx(path, lstm="layer1")  # start at the named node
    assert [la.name for la in top.layers] == ["layer1"] and top.input_size == src.h
    with pytest.raises(ModelFileError, match="no LSTM node named 'layer2'.*'layer0', 'layer1'"):
        load_onnx(path, lstm="layer2")


class Head:
    """Nodes after the LSTM node of an OnnxLSTM model, appended one by one."""

    def __init__(self, src, seed=0, *, tensor="Y"):
        self.src = src
        self.model = src.model()
        self.tensor = tensor
        self.rng = np.random.default_rng(seed)
        self.k = 0

    def const(self, value, dtype=None):
        self.k += 1
        name = f"c{self.k}"
        arr = np.asarray(value, dtype=dtype)
        self.model.graph.initializer.append(numpy_helper.from_array(arr, name))
        return name

    def node(self, op, *consts, name=None, first=True, **attrs):
        """``op`` on the current tensor (first input, or last with ``first=False``)."""
        self.k += 1
        out = f"t{self.k}"
        inputs = [self.tensor, *consts] if first else [*consts, self.tensor]
        node = helper.make_node(op, inputs, [out], name=name or f"{op.lower()}{self.k}", **attrs)
        self.model.graph.node.append(node)
        self.tensor = out
        return self

    def weights(self, shape):
        return (self.rng.normal(size=shape) * 0.5).astype(np.float32)

    def done(self):
        set_output(self.model, self.tensor)
        return self.model


def time_first_to_last_step(head):
    """[T, 1, N, H] -> [N, H]: drop the direction axis, take the last step."""
    return head.node("Squeeze", head.const([1])).node("Gather", head.const(-1), axis=0)


def test_onnx_gemm_head_on_the_last_step(tmp_path):
    """Gemm with transB=1 (as PyTorch writes nn.Linear) then Relu, Gemm with transB=0."""
    src = OnnxLSTM(40, 3, 4)
    head = time_first_to_last_step(Head(src))
    w1, b1, w2, b2 = head.weights((5, 4)), head.weights(5), head.weights((5, 2)), head.weights(2)
    head.node("Gemm", head.const(w1), head.const(b1), transB=1, name="fc1").node("Relu")
    model = head.node("Gemm", head.const(w2), head.const(b2), name="fc2").done()
    net = load_onnx(save(model, tmp_path))
    assert net.layer_names == ["lstm1", "dense1", "dense2"] and net.output == "last"
    d1, d2 = net.layers[1:]
    assert (d1.name, d1.activation, d2.activation) == ("fc1", "relu", "linear")
    np.testing.assert_array_equal(d1.w, w1)
    np.testing.assert_array_equal(d2.w, w2.T)
    np.testing.assert_array_equal(d2.b, b2)
    x = np.random.default_rng(40).normal(size=(2, 6, 3))
    got = run_float(net, x, output="last")
    np.testing.assert_allclose(got, ort_run(model, x), rtol=0, atol=ATOL)
    assert load_onnx(save(model, tmp_path), head=[("fc1", "relu"), ("fc2", "linear")])


def test_onnx_matmul_add_head_per_step():
    """A dense layer after an LSTM that keeps every step applies at every step."""
    src = OnnxLSTM(41, 2, 3, peephole=False)
    head = Head(src)
    head.node("Squeeze", head.const([1])).node("Transpose", perm=[1, 0, 2])  # [N, T, H]
    w, b = head.weights((3, 4)), head.weights(4)
    head.node("MatMul", head.const(w)).node("Add", head.const(b), first=False).node("Relu")
    model = head.node("MatMul", head.const(head.weights((4, 2))), name="out").done()
    net = from_onnx_model(model)
    assert net.output == "sequence"
    assert [la.kind for la in net.layers] == ["lstm", "dense", "dense"]
    np.testing.assert_array_equal(net.layers[1].w, w.T)
    np.testing.assert_array_equal(net.layers[1].b, b)
    np.testing.assert_array_equal(net.layers[2].b, np.zeros(2))  # a MatMul without Add
    assert net.layers[1].activation == "relu"
    x = np.random.default_rng(41).normal(size=(2, 6, 2))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {"X": np.ascontiguousarray(x.transpose(1, 0, 2), np.float32)})
    np.testing.assert_allclose(run_float(net, x), y, rtol=0, atol=ATOL)


def test_onnx_slice_of_the_last_step_and_y_h():
    src = OnnxLSTM(42, 3, 4)
    head = Head(src)
    big = np.iinfo(np.int64).max
    head.node("Slice", head.const([-1]), head.const([big]), head.const([0]))  # [1, 1, N, H]
    head.node("Reshape", head.const([-1, 4]))  # [N, H]: drops the two size-one axes
    model = head.node("Gemm", head.const(head.weights((4, 2))), name="fc").done()
    net = from_onnx_model(model)
    assert net.output == "last"
    x = np.random.default_rng(42).normal(size=(2, 6, 3))
    np.testing.assert_allclose(run_float(net, x, output="last"), ort_run(model, x), atol=ATOL)

    head = Head(src, tensor="Y_h")  # [1, N, H]
    model = head.node("Squeeze", head.const([0])).node("Gemm", head.const(head.weights((4, 2))))
    net = from_onnx_model(model.done())
    assert net.output == "last" and len(net.layers) == 2


def test_onnx_glue_variants():
    """Gather keeping the axis, Identity, Unsqueeze, Squeeze without axes, Flatten, and a
    Gemm bias of shape [1, out]."""
    src = OnnxLSTM(47, 3, 4)
    head = Head(src)
    head.node("Gather", head.const([-1]), axis=0).node("Identity")  # [1, 1, N, H]
    head.node("Squeeze").node("Unsqueeze", head.const([0])).node("Flatten", axis=2)  # [N, H]
    w, b = head.weights((2, 4)), head.weights((1, 2))
    model = head.node("Gemm", head.const(w), head.const(b), transB=1).done()
    net = from_onnx_model(model)
    assert net.output == "last"
    np.testing.assert_array_equal(net.layers[1].b, b[0])
    x = np.random.default_rng(47).normal(size=(2, 6, 3))
    np.testing.assert_allclose(run_float(net, x, output="last"), ort_run(model, x), atol=ATOL)


def test_onnx_one_output_head_may_drop_its_feature_axis():
    """``head(h)[..., 0]`` or a Squeeze of a one-output layer only drops an axis of size 1."""
    src = OnnxLSTM(48, 3, 4)
    for drop in ("Gather", "Squeeze"):
        head = Head(src)
        head.node("Squeeze", head.const([1])).node("MatMul", head.const(head.weights((4, 1))))
        const = head.const(0) if drop == "Gather" else head.const([2])
        model = head.node(drop, const, **({"axis": 2} if drop == "Gather" else {})).done()
        net = from_onnx_model(model)
        assert net.output == "sequence" and net.output_size == 1
        x = np.random.default_rng(48).normal(size=(2, 6, 3))
        want = ort_run(model, x).transpose(1, 0)  # [T, N] -> [N, T]
        np.testing.assert_allclose(run_float(net, x)[..., 0], want, rtol=0, atol=ATOL)


def test_onnx_example_sunspots_matches_onnxruntime():
    """The repository's own exported model: nn.LSTM + nn.Linear per step, then [..., 0]."""
    here = Path(__file__).resolve().parents[2] / "examples" / "sunspots"
    if not (here / "sunspots.onnx").is_file():
        pytest.skip("examples/sunspots is not in this checkout")
    net = load_model(here / "sunspots.onnx")
    assert net.layer_names == ["lstm1", "dense1"] and net.output == "sequence"
    x = np.load(here / "x_test.npy")[:8].astype(np.float32)
    x = x[..., None] if x.ndim == 2 else x
    sess = ort.InferenceSession(str(here / "sunspots.onnx"), providers=["CPUExecutionProvider"])
    (want,) = sess.run(None, {sess.get_inputs()[0].name: x})
    np.testing.assert_allclose(run_float(net, x)[..., 0], want, rtol=0, atol=ATOL)


def test_onnx_lstm_names_where_the_network_starts():
    """Preprocessing before the LSTM is not a layer: lstm= starts the network after it."""
    src = OnnxLSTM(43)
    model = src.model()
    model.graph.node[0].input[0] = "Xs"
    model.graph.initializer.append(numpy_helper.from_array(np.float32(2.0), "scale"))
    model.graph.node.insert(0, helper.make_node("Mul", ["X", "scale"], ["Xs"], name="norm"))
    with pytest.raises(ModelFileError, match="Mul node 'norm' is on the path.*"):
        from_onnx_model(model)
    net = from_onnx_model(model, lstm="lstm0")
    assert_weights(net.layers[0], src.expected())


# ---------------------------------------------------------------------------- ONNX, refused


@pytest.mark.parametrize(
    ("attrs", "named"),
    [
        ({"direction": "reverse"}, "direction='reverse'"),
        ({"direction": "bidirectional"}, "direction='bidirectional'"),
        ({"clip": 3.0}, "clip=3.0"),
        ({"input_forget": 1}, "input_forget=1"),
        ({"layout": 1}, "layout=1"),
        ({"activations": ["Sigmoid", "Tanh", "Relu"]}, "activations=['Sigmoid', 'Tanh', 'Relu']"),
        ({"activations": ["HardSigmoid", "Tanh", "Tanh"]}, "activations=['HardSigmoid'"),
        ({"activation_alpha": [0.5]}, "activation_alpha=[0.5]"),
        ({"activation_beta": [0.5]}, "activation_beta=[0.5]"),
        ({"output_sequence": 1}, "output_sequence=1"),
    ],
    ids=lambda v: str(v) if isinstance(v, str) else None,
)
def test_onnx_unsupported_attribute_is_named(attrs, named):
    src = OnnxLSTM(9)
    if attrs.get("direction") == "bidirectional":  # a real one has two sets of weights
        src.W, src.R = np.concatenate([src.W] * 2), np.concatenate([src.R] * 2)
        src.B, src.P = np.concatenate([src.B] * 2), np.concatenate([src.P] * 2)
    with pytest.raises(ModelFileError, match="LSTM node 'lstm0'") as err:
        from_onnx_model(src.model(attrs=attrs))
    assert named in str(err.value)


def test_onnx_several_problems_in_one_error():
    src = OnnxLSTM(9)
    with pytest.raises(ModelFileError) as err:
        from_onnx_model(src.model(attrs={"clip": 1.0, "input_forget": 1}))
    assert "clip=1.0" in str(err.value) and "input_forget=1" in str(err.value)


def test_onnx_nonzero_initial_state_is_refused():
    src = OnnxLSTM(11)
    h0 = np.zeros((1, 2, src.h), np.float32)
    h0[0, 1, 2] = 0.25
    for slot, what in ((5, "initial_h"), (6, "initial_c")):
        model = src.model(extra_inputs={slot: "s0"}, extra_inits={"s0": h0})
        with pytest.raises(ModelFileError, match=f"{what} \\('s0'\\).*h0 = c0 = 0"):
            from_onnx_model(model)


def test_onnx_initial_state_as_graph_input_is_refused():
    src = OnnxLSTM(12)
    h0 = helper.make_tensor_value_info("h0", TensorProto.FLOAT, [1, 2, src.h])
    model = src.model(extra_inputs={5: "h0"}, graph_inputs=[h0])
    with pytest.raises(ModelFileError, match="initial_h \\('h0'\\) is not a constant zero"):
        from_onnx_model(model)


def test_onnx_weights_fed_at_run_time_are_refused():
    src = OnnxLSTM(13)
    model = src.model()
    del model.graph.initializer[0]  # W
    model.graph.input.append(helper.make_tensor_value_info("W", TensorProto.FLOAT, [1, 16, 3]))
    with pytest.raises(ModelFileError, match="W input 'W' is a graph input fed at run time"):
        from_onnx_model(model)


def test_onnx_weights_computed_by_a_node_are_refused():
    src = OnnxLSTM(14)
    model = src.model()
    model.graph.initializer[1].name = "R_raw"
    model.graph.node.insert(0, helper.make_node("Neg", ["R_raw"], ["R"]))
    with pytest.raises(ModelFileError, match="R input 'R' is computed by a Neg node"):
        from_onnx_model(model)


def test_onnx_hidden_size_disagreeing_with_r():
    src = OnnxLSTM(15)
    with pytest.raises(ModelFileError, match="hidden_size=5 disagrees with R \\[1, 16, 4\\]"):
        from_onnx_model(src.model(attrs={"hidden_size": 5}))


@pytest.mark.parametrize(
    ("field", "shape", "message"),
    [
        ("B", (1, 16), "B must be \\[1, 8H=32\\], not \\[1, 16\\]"),
        ("P", (1, 8), "P must be \\[1, 3H=12\\], not \\[1, 8\\]"),
        ("W", (1, 12, 3), "W \\[1, 12, 3\\]"),
        ("R", (1, 16, 3), "R \\[1, 16, 3\\]"),
    ],
)
def test_onnx_bad_shapes(field, shape, message):
    src = OnnxLSTM(16)
    setattr(src, field, np.zeros(shape, np.float32))
    with pytest.raises(ModelFileError, match=message):
        from_onnx_model(src.model())


def test_onnx_integer_weights_are_refused():
    src = OnnxLSTM(17)
    model = src.model()
    model.graph.initializer[1].CopyFrom(numpy_helper.from_array(src.R.astype(np.int8), "R"))
    with pytest.raises(ModelFileError, match="R input 'R' holds int8 values"):
        from_onnx_model(model)


def test_onnx_without_lstm_names_its_ops(tmp_path):
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Relu", ["X"], ["Y"])], "g", [x], [x])
    path = save(helper.make_model(graph), tmp_path)
    with pytest.raises(ModelFileError, match="no LSTM node \\(its ops are Relu\\)"):
        load_onnx(path)


def test_onnx_damaged_file(tmp_path):
    path = tmp_path / "bad.onnx"
    path.write_bytes(b"\x00not a protobuf at all\xff" * 3)
    with pytest.raises(ModelFileError, match="bad.onnx is not a readable ONNX model"):
        load_model(path)


def gemm(head, out=2, **attrs):
    return head.node("Gemm", head.const(head.weights((out, 4))), transB=1, name="fc", **attrs)


def path_case(case):
    """An OnnxLSTM (I=3, H=4) model whose path to the output holds what ``case`` names."""
    src = OnnxLSTM(44)
    head = Head(src)
    if case == "sigmoid":
        return gemm(time_first_to_last_step(head)).node("Sigmoid", name="sig").done()
    if case == "relu_after_lstm":
        return head.node("Relu", name="act").done()
    if case == "double_relu":
        return gemm(time_first_to_last_step(head)).node("Relu").node("Relu", name="act2").done()
    if case == "concat":
        head.model.graph.node.append(helper.make_node("Concat", ["Y", "Y"], ["cat"], axis=3))
        head.tensor = "cat"
        head.model.graph.node[-1].name = "both_directions"
        return head.done()
    if case == "residual":
        head.node("Squeeze", head.const([1]))
        head.model.graph.node.append(helper.make_node("Add", [head.tensor, "X"], ["r"], name="res"))
        head.tensor = "r"
        return head.done()
    if case == "gru":
        head.node("Squeeze", head.const([1]))
        w, r = head.const(head.weights((1, 12, 4))), head.const(head.weights((1, 12, 4)))
        return head.node("GRU", w, r, hidden_size=4, name="gru").done()
    if case in ("alpha", "transA"):
        head = time_first_to_last_step(head)
        return gemm(head, **({"alpha": 0.5} if case == "alpha" else {"transA": 1})).done()
    if case == "middle_step":
        return head.node("Squeeze", head.const([1])).node("Gather", head.const(2), axis=0).done()
    if case == "feature_slice":
        big = np.iinfo(np.int64).max
        return head.node("Slice", head.const([2]), head.const([big]), head.const([3])).done()
    if case == "batch_squeeze":
        return head.node("Squeeze", head.const([2]), name="sq").done()
    if case == "merge_reshape":
        head.node("Squeeze", head.const([1]))
        return head.node("Reshape", head.const([-1, 4]), name="flat").done()
    if case == "split_reshape":  # [N, 4] -> [2N, 2]: the sizes say it mixes batch and features
        return time_first_to_last_step(head).node("Reshape", head.const([-1, 2]), name="s").done()
    if case == "cell_state":
        head.model.graph.node[-1].output.append("Y_c")
        head.tensor = "Y_c"
        return gemm(head.node("Squeeze", head.const([0]))).done()
    if case == "lstm_reads_last_step":
        w1, r1 = head.const(head.weights((1, 16, 4))), head.const(head.weights((1, 16, 4)))
        head.tensor = "Y_h"
        return head.node("LSTM", w1, r1, hidden_size=4, name="upper").done()
    raise AssertionError(case)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("sigmoid", "Sigmoid node 'sig' is on the path.*linear or relu"),
        ("relu_after_lstm", "Relu node 'act' follows LSTM node 'lstm0'"),
        ("double_relu", "Relu node 'act2' follows Relu node"),
        ("concat", "Concat node 'both_directions' is on the path.*bidirectional"),
        ("residual", "Add node 'res' takes 2 computed inputs"),
        ("gru", "GRU node 'gru' is on the path.*LSTM operator only"),
        ("alpha", "Gemm node 'fc' has alpha=0.5"),
        ("transA", "Gemm node 'fc' has transA=1"),
        ("middle_step", "takes \\[2:3\\] of the time axis.*last one"),
        ("feature_slice", "takes \\[2:.*\\] of the feature axis"),
        ("batch_squeeze", "Squeeze node 'sq' squeezes the batch axis"),
        ("merge_reshape", "Reshape node 'flat' reshapes axes \\[T, N, F\\]"),
        ("split_reshape", "Reshape node 's' reshapes axes \\[N, F\\] to \\[-1, 2\\]"),
        ("cell_state", "LSTM node 'lstm0'.*cell state Y_c"),
        ("lstm_reads_last_step", "LSTM node 'upper' reads a tensor of axes \\[1, N, F\\]"),
    ],
)
def test_onnx_path_node_lstmfx_cannot_build_is_named(case, message):
    with pytest.raises(ModelFileError, match=message):
        from_onnx_model(path_case(case), source="m.onnx")


def test_onnx_outputs_that_are_different_networks():
    head = gemm(time_first_to_last_step(Head(OnnxLSTM(45))))
    model = head.done()
    model.graph.output.append(helper.make_tensor_value_info("Y", TensorProto.FLOAT, None))
    with pytest.raises(ModelFileError, match="outputs 't\\d+' \\(2 layers\\), 'Y' \\(1 "):
        from_onnx_model(model)


def test_onnx_head_must_match_the_graph():
    model = gemm(time_first_to_last_step(Head(OnnxLSTM(46)))).node("Relu").done()
    assert from_onnx_model(model, head=[("fc", "relu")]).layers[1].activation == "relu"
    with pytest.raises(ModelFileError, match="head layer 'fc9' is not.*'fc' \\(relu\\)"):
        from_onnx_model(model, head=[("fc9", "relu")])
    with pytest.raises(ModelFileError, match="'fc' is 'linear' in head but 'relu' in the graph"):
        from_onnx_model(model, head=[("fc", "linear")])
    with pytest.raises(
        ModelFileError, match="head names 2 dense layer\\(s\\) but the graph holds 1"
    ):
        from_onnx_model(model, head=[("fc", "relu"), ("fc2", "linear")])
    with pytest.raises(ModelFileError, match="activation 'tanh'; a dense layer's activation"):
        from_onnx_model(model, head=[("fc", "tanh")])


# ---------------------------------------------------------------------------- PyTorch


def state_dict(seed, i_size=3, h_size=4, *, prefix="", bias=True, layers=1):
    rng = np.random.default_rng(seed)
    sd = {}
    for k in range(layers):
        sd[f"{prefix}weight_ih_l{k}"] = rng.normal(size=(4 * h_size, i_size if k == 0 else h_size))
        sd[f"{prefix}weight_hh_l{k}"] = rng.normal(size=(4 * h_size, h_size))
        if bias:
            sd[f"{prefix}bias_ih_l{k}"] = rng.normal(size=4 * h_size).astype(np.float32)
            sd[f"{prefix}bias_hh_l{k}"] = rng.normal(size=4 * h_size).astype(np.float32)
    return {k: v.astype(np.float32) for k, v in sd.items()}


def test_state_dict_weights_and_summed_bias():
    sd = state_dict(20)
    net = from_state_dict(sd)
    assert len(net.layers) == 1 and net.output is None
    lstm = net.layers[0]
    np.testing.assert_array_equal(lstm.w, sd["weight_ih_l0"])
    np.testing.assert_array_equal(lstm.r, sd["weight_hh_l0"])
    np.testing.assert_array_equal(
        lstm.b, sd["bias_ih_l0"].astype(np.float64) + sd["bias_hh_l0"].astype(np.float64)
    )
    assert lstm.p is None


def test_state_dict_without_bias_is_zero_bias():
    net = from_state_dict(state_dict(21, bias=False))
    np.testing.assert_array_equal(net.layers[0].b, np.zeros(16))


def test_state_dict_single_prefix_and_other_modules_are_accepted():
    sd = state_dict(22, prefix="encoder.lstm.")
    sd["head.weight"] = np.ones((2, 4), np.float32)
    sd["head.bias"] = np.ones(2, np.float32)
    net = from_state_dict(sd)  # a head is read only when named
    assert len(net.layers) == 1
    np.testing.assert_array_equal(net.layers[0].w, sd["encoder.lstm.weight_ih_l0"])
    assert net.layers[0].name == "encoder.lstm.l0"


def test_state_dict_layers_and_head_in_the_order_named():
    sd = state_dict(23, prefix="rnn.", layers=3)
    rng = np.random.default_rng(23)
    for name, shape in (("a", (5, 4)), ("b", (2, 5))):  # dict order is not the model's order
        sd[f"{name}.weight"] = rng.normal(size=shape)
        sd[f"{name}.bias"] = rng.normal(size=shape[0])
    net = from_state_dict(sd, lstm="rnn", head=[("a", "relu"), ("b", "linear")])
    assert net.layer_names == ["lstm1", "lstm2", "lstm3", "dense1", "dense2"]
    assert [la.name for la in net.layers] == ["rnn.l0", "rnn.l1", "rnn.l2", "a", "b"]
    np.testing.assert_array_equal(net.layers[2].r, sd["rnn.weight_hh_l2"])
    np.testing.assert_array_equal(net.layers[3].w, sd["a.weight"])
    assert (net.layers[3].activation, net.layers[4].activation) == ("relu", "linear")
    with pytest.raises(ModelFileError, match="m.pt: dense1 takes 5 inputs but lstm3 gives 4"):
        from_state_dict(sd, head=[("b", "linear")], source="m.pt")


def test_state_dict_several_lstms_need_a_prefix():
    sd = state_dict(23, prefix="enc.") | state_dict(24, 4, 4, prefix="dec.")
    with pytest.raises(ModelFileError, match="2 recurrent layers.*'dec', 'enc'.*lstm=PREFIX"):
        from_state_dict(sd)
    assert from_state_dict(sd, lstm="dec").layers[0].w.shape == (16, 4)
    np.testing.assert_array_equal(
        from_state_dict(sd, lstm="dec.").layers[0].w, sd["dec.weight_ih_l0"]
    )
    with pytest.raises(ModelFileError, match="no LSTM under the prefix 'mid'.*'dec', 'enc'"):
        from_state_dict(sd, lstm="mid")


def test_state_dict_head_must_name_linear_layers():
    sd = state_dict(25, prefix="lstm.")
    sd["fc.weight"] = np.ones((2, 4), np.float32)
    sd["norm.weight"] = np.ones(4, np.float32)
    sd["norm.bias"] = np.ones(4, np.float32)
    sd["norm.running_mean"] = np.ones(4, np.float32)
    with pytest.raises(ModelFileError, match="head layer 'out' is not in the state dict.*'fc'"):
        from_state_dict(sd, head=[("out", "linear")])
    with pytest.raises(ModelFileError, match="'norm' is a module with the keys bias, running_mean"):
        from_state_dict(sd, head=[("norm", "linear")])
    with pytest.raises(ModelFileError, match="head layer 'lstm' is a module with the keys bias_hh"):
        from_state_dict(sd, head=[("lstm", "linear")])
    with pytest.raises(ModelFileError, match="'fc' has activation 'sigmoid'"):
        from_state_dict(sd, head=[("fc", "sigmoid")])
    net = from_state_dict(sd, head=[("fc", "linear")])  # no bias: nn.Linear(bias=False)
    np.testing.assert_array_equal(net.layers[1].b, np.zeros(2))


@pytest.mark.parametrize(
    ("key", "shape", "message"),
    [
        ("weight_ih_l1", (16, 4), "lacks 'lstm.weight_hh_l1'"),
        ("weight_ih_l2", (16, 4), "has layers \\[0, 2\\]"),
        ("weight_ih_l0_reverse", (16, 3), "'lstm.weight_ih_l0_reverse' \\(bidirectional=True"),
        ("weight_hr_l0", (2, 4), "'lstm.weight_hr_l0' \\(proj_size > 0"),
        ("weight_foo", (1,), "'lstm.weight_foo' \\(not a key of nn.LSTM"),
    ],
)
def test_state_dict_unsupported_keys_are_named(key, shape, message):
    sd = state_dict(25, prefix="lstm.")
    sd["lstm." + key] = np.zeros(shape, np.float32)
    with pytest.raises(ModelFileError, match=message):
        from_state_dict(sd, source="m.pt")


def test_state_dict_damaged_or_foreign():
    sd = state_dict(26)
    del sd["bias_hh_l0"]
    with pytest.raises(ModelFileError, match="'bias_ih_l0' without its pair"):
        from_state_dict(sd)
    rng = np.random.default_rng(27)
    gru = {"weight_ih_l0": rng.normal(size=(12, 3)), "weight_hh_l0": rng.normal(size=(12, 4))}
    with pytest.raises(ModelFileError, match="\\[12, 4\\] \\(a GRU's shape\\)"):
        from_state_dict(gru)
    with pytest.raises(ModelFileError, match="no nn.LSTM weights.*'fc.weight'"):
        from_state_dict({"fc.weight": np.ones((2, 2))})
    checkpoint = {"epoch": 3, "model_state_dict": state_dict(28)}
    with pytest.raises(ModelFileError, match="'model_state_dict'.*training checkpoint"):
        from_state_dict(checkpoint)
    bad = state_dict(29)
    bad["weight_ih_l0"] = bad["weight_ih_l0"][:8]
    with pytest.raises(ModelFileError, match="input weights w must be \\[4H=16, I\\]"):
        from_state_dict(bad, source="m.pt")


def test_no_torch_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    path = tmp_path / "m.pt"
    path.write_bytes(b"anything")
    with pytest.raises(ModelFileError, match="needs torch.*pip install torch.*CPU") as err:
        load_model(path)
    assert isinstance(err.value.__cause__, ImportError)


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(("i_size", "h_size"), [(1, 2), (5, 7)])
def test_torch_state_dict_matches_nn_lstm_in_float64(torch, tmp_path, i_size, h_size, bias):
    torch.manual_seed(i_size * h_size)
    net = torch.nn.LSTM(i_size, h_size, bias=bias, batch_first=True).double()
    path = tmp_path / "net.pth"
    torch.save(net.state_dict(), path)
    fnet = load_model(path)
    assert fnet.name == "net" and len(fnet.layers) == 1
    x = np.random.default_rng(i_size).normal(size=(3, 9, i_size))
    with torch.no_grad():
        y, (h_n, _) = net(torch.from_numpy(x))
    np.testing.assert_allclose(run_float(fnet, x), y.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(run_float(fnet, x, output="last"), h_n[0].numpy(), atol=1e-12)


def torch_network(torch, last=True, seed=5):
    """nn.LSTM(num_layers=2) -> Linear -> ReLU -> Linear, on every step or the last one."""

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = torch.nn.LSTM(3, 5, num_layers=2, batch_first=True)
            self.head = torch.nn.Sequential(
                torch.nn.Linear(5, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2)
            )

        def forward(self, x):
            y, _ = self.rnn(x)
            return self.head(y[:, -1] if last else y)

    torch.manual_seed(seed)
    return Net()


TORCH_HEAD = [("head.0", "relu"), ("head.2", "linear")]


@pytest.mark.parametrize("last", [True, False], ids=["last", "sequence"])
def test_torch_two_layer_network_state_dict_matches_torch(torch, tmp_path, last):
    module = torch_network(torch, last).double()
    path = tmp_path / "net.pt"
    torch.save(module.state_dict(), path)
    net = load_model(path, lstm="rnn", head=TORCH_HEAD)
    assert net.layer_names == ["lstm1", "lstm2", "dense1", "dense2"] and net.output is None
    x = np.random.default_rng(5).normal(size=(3, 7, 3))
    with torch.no_grad():
        want = module(torch.from_numpy(x)).numpy()
    got = run_float(net, x, output="last" if last else "sequence")
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert len(load_model(path).layers) == 2  # without a head: the LSTM layers alone


def test_torch_whole_module_runs_the_pickle_and_matches_torch(torch, tmp_path):
    """torch.save(module) pickles the module's class by name: torch_network's local class
    cannot be pickled, so this module is built from torch's own classes."""
    module = torch.nn.Sequential()
    module.add_module("rnn", torch.nn.LSTM(3, 5, num_layers=2))
    module.add_module("fc", torch.nn.Linear(5, 2))
    path = tmp_path / "whole.pt"
    torch.save(module, path)
    net = load_torch(path, head=[("fc", "relu")])
    state = module.state_dict()
    np.testing.assert_array_equal(net.layers[1].w, state["rnn.weight_ih_l1"].double().numpy())
    np.testing.assert_array_equal(net.layers[2].w, state["fc.weight"].double().numpy())
    assert net.layers[2].activation == "relu"
    x = np.random.default_rng(6).normal(size=(2, 4, 3))
    with torch.no_grad():
        y, _ = module.rnn.double()(torch.from_numpy(x.transpose(1, 0, 2).copy()))
        want = torch.relu(module.fc.double()(y)).numpy().transpose(1, 0, 2)
    np.testing.assert_allclose(run_float(net, x), want, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        ("gru", "layer 'rnn' is an nn.GRU; lstmfx implements nn.LSTM layers only"),
        ("rnn", "layer 'rnn' is an nn.RNN"),
        ("bidirectional", "layer 'rnn' has bidirectional=True"),
        ("proj", "layer 'rnn' has proj_size=2"),
    ],
)
def test_torch_whole_module_unsupported_layer_is_named(torch, tmp_path, layer, message):
    rnn = {
        "gru": lambda: torch.nn.GRU(3, 4),
        "rnn": lambda: torch.nn.RNN(3, 4),
        "bidirectional": lambda: torch.nn.LSTM(3, 4, bidirectional=True),
        "proj": lambda: torch.nn.LSTM(3, 4, proj_size=2),
    }[layer]()
    path = tmp_path / "m.pt"
    module = torch.nn.Sequential()
    module.add_module("rnn", rnn)
    torch.save(module, path)
    with pytest.raises(ModelFileError, match=message):
        load_torch(path)


def test_torch_whole_module_names(torch, tmp_path):
    module = torch.nn.Sequential()
    module.add_module("a", torch.nn.LSTM(3, 4))
    module.add_module("b", torch.nn.GRU(4, 4))
    module.add_module("norm", torch.nn.LayerNorm(4))
    module.add_module("fc", torch.nn.Linear(4, 1))
    path = tmp_path / "m.pt"
    torch.save(module, path)
    with pytest.raises(ModelFileError, match="2 recurrent layers \\('a' \\(LSTM\\), 'b' \\(GRU"):
        load_torch(path)
    with pytest.raises(ModelFileError, match="lstm='norm' is a LayerNorm; its recurrent layers"):
        load_torch(path, lstm="norm")
    with pytest.raises(ModelFileError, match="head layer 'norm' is an nn.LayerNorm, not an nn.Li"):
        load_torch(path, lstm="a", head=[("norm", "linear")])
    with pytest.raises(ModelFileError, match="head layer 'out' is not a module of it.*'fc'"):
        load_torch(path, lstm="a", head=[("out", "linear")])
    assert load_torch(path, lstm="a", head=[("fc", "linear")]).output_size == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bidirectional": True}, "'weight_ih_l0_reverse' \\(bidirectional=True"),
        ({"proj_size": 2}, "'weight_hr_l0' \\(proj_size > 0"),
    ],
)
def test_torch_unsupported_lstm_state_dict(torch, tmp_path, kwargs, message):
    path = tmp_path / "net.pt"
    torch.save(torch.nn.LSTM(3, 4, **kwargs).state_dict(), path)
    with pytest.raises(ModelFileError, match=message):
        load_torch(path)


def test_torch_pickle_of_a_class_that_cannot_be_imported(torch, tmp_path, monkeypatch):
    (tmp_path / "gone_module.py").write_text(
        "import torch\n\nclass Gone(torch.nn.Module):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import gone_module

    path = tmp_path / "gone.pt"
    torch.save(gone_module.Gone(), path)
    monkeypatch.delitem(sys.modules, "gone_module")
    (tmp_path / "gone_module.py").unlink()
    with pytest.raises(ModelFileError, match="gone.pt pickles more than tensors.*state dict"):
        load_torch(path)


def test_torch_damaged_file(torch, tmp_path):
    path = tmp_path / "junk.pt"
    path.write_bytes(b"junk" * 10)
    with pytest.raises(ModelFileError, match="junk.pt cannot be read as a PyTorch file"):
        load_torch(path)


def test_torch_non_dict(torch, tmp_path):
    path = tmp_path / "t.pt"
    torch.save(torch.zeros(3), path)
    with pytest.raises(ModelFileError, match="holds a Tensor, not a state dict"):
        load_torch(path)


def export_onnx(torch, module, x):
    """What PyTorch's TorchScript exporter writes (torch 2.13 runs it offline with
    dynamo=False; the dynamo exporter needs onnxscript)."""
    import io
    import warnings

    buf = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy exporter is deprecated, and says so
            torch.onnx.export(module, (x,), buf, dynamo=False)
    except Exception as e:  # the legacy exporter may leave torch some day
        pytest.skip(f"torch.onnx.export(dynamo=False) failed: {e}")
    return onnx.load_from_string(buf.getvalue())


def test_onnx_exported_by_torch(torch):
    """Constant weights, a zero initial state expanded to the batch size at run time."""
    torch.manual_seed(3)
    net = torch.nn.LSTM(3, 5)
    model = export_onnx(torch, net, torch.randn(6, 2, 3))
    fnet = from_onnx_model(model)
    assert len(fnet.layers) == 1
    x = np.random.default_rng(3).normal(size=(2, 6, 3))
    with torch.no_grad():
        y, _ = net.double()(torch.from_numpy(x.transpose(1, 0, 2).copy()))
    np.testing.assert_allclose(run_float(fnet, x), y.numpy().transpose(1, 0, 2), atol=1e-12)


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        ("bidirectional", "LSTM node '/LSTM' is not supported: direction='bidirectional'"),
        ("gru", "GRU node '/GRU' is not an LSTM"),
    ],
)
def test_onnx_exported_by_torch_refused(torch, layer, message):
    rnn = {
        "bidirectional": lambda: torch.nn.LSTM(3, 4, bidirectional=True),
        "gru": lambda: torch.nn.GRU(3, 4),
    }[layer]()
    with pytest.raises(ModelFileError, match=message):
        from_onnx_model(export_onnx(torch, rnn, torch.randn(5, 2, 3)))


@pytest.mark.parametrize("last", [True, False], ids=["last", "sequence"])
def test_onnx_network_exported_by_torch_matches_onnxruntime(torch, tmp_path, last):
    module = torch_network(torch, last)
    model = export_onnx(torch, module, torch.randn(2, 6, 3))
    path = save(model, tmp_path)
    net = load_model(path, lstm="rnn", head=TORCH_HEAD)  # the config of the .pt works here too
    assert net.layer_names == ["lstm1", "lstm2", "dense1", "dense2"]
    assert net.output == ("last" if last else "sequence")
    x = np.random.default_rng(7).normal(size=(2, 6, 3)).astype(np.float32)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (want,) = sess.run(None, {model.graph.input[0].name: x})
    np.testing.assert_allclose(run_float(net, x, output=net.output), want, rtol=0, atol=ATOL)
    # the .pt of the same module imports the same weights
    torch.save(module.state_dict(), tmp_path / "net.pt")
    from_pt = load_model(tmp_path / "net.pt", lstm="rnn", head=TORCH_HEAD)
    for a, b in zip(net.layers, from_pt.layers):
        np.testing.assert_allclose(a.w, b.w, rtol=0, atol=0)
        np.testing.assert_allclose(a.b, b.b, rtol=1e-7, atol=1e-7)


# ---------------------------------------------------------------------------- .npz


def npz(tmp_path, **arrays):
    path = tmp_path / "m.npz"
    np.savez(path, **arrays)
    return path


def npz_arrays(seed=30, h=3, i_size=2):
    rng = np.random.default_rng(seed)
    return {
        "w": rng.normal(size=(4 * h, i_size)),
        "r": rng.normal(size=(4 * h, h)),
        "b": rng.normal(size=4 * h),
        "p": rng.normal(size=3 * h),
    }


def test_npz_round_trip(tmp_path):
    arrays = npz_arrays()
    net = load_npz(npz(tmp_path, **arrays))
    assert (net.name, len(net.layers), net.output) == ("m", 1, None)
    for k, v in arrays.items():
        np.testing.assert_array_equal(getattr(net.layers[0], k), v)
    del arrays["p"]
    assert load_model(npz(tmp_path, **arrays)).layers[0].p is None


def test_npz_missing_array(tmp_path):
    arrays = npz_arrays()
    del arrays["r"], arrays["b"]
    with pytest.raises(ModelFileError, match="m.npz lacks the array\\(s\\) b, r"):
        load_npz(npz(tmp_path, **arrays))


def test_npz_extra_array(tmp_path):
    with pytest.raises(ModelFileError, match="unknown array\\(s\\) w1"):
        load_npz(npz(tmp_path, **npz_arrays(), w1=np.zeros(3)))


@pytest.mark.parametrize(
    ("name", "shape", "message"),
    [
        ("w", (10, 2), "input weights w must be \\[4H=12, I\\], not \\(10, 2\\)"),
        ("r", (12, 4), "recurrent weights r must be \\[4H, H\\], not \\(12, 4\\)"),
        ("b", (13,), "bias b must be \\[4H=12\\], not \\(13,\\)"),
        ("p", (12,), "peephole p must be \\[3H=9\\], not \\(12,\\)"),
    ],
)
def test_npz_bad_shapes(tmp_path, name, shape, message):
    arrays = npz_arrays() | {name: np.zeros(shape)}
    with pytest.raises(ModelFileError, match="m.npz: " + message):
        load_npz(npz(tmp_path, **arrays))


def test_npz_nan(tmp_path):
    arrays = npz_arrays()
    arrays["r"][1, 2] = np.nan
    with pytest.raises(ModelFileError, match="'r' hold NaN"):
        load_npz(npz(tmp_path, **arrays))


def test_unknown_suffix(tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="'m.tflite'.*.npz, .onnx, .pt, .pth, .keras, .h5"):
        load_model(path)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_keras_files_go_to_import_keras(tmp_path, monkeypatch, suffix):
    seen = []
    fake = types.SimpleNamespace(load_keras=lambda path: seen.append(path) or "network")
    monkeypatch.setitem(sys.modules, "model.import_keras", fake)
    path = tmp_path / f"m{suffix}"
    path.write_bytes(b"")
    assert load_model(path) == "network" and seen == [path]
    with pytest.raises(ModelFileError, match="lstm= and head= choose layers.*leave them out"):
        load_model(path, head=[("fc", "linear")])


def test_npz_takes_no_lstm_or_head(tmp_path):
    with pytest.raises(ModelFileError, match="a .npz file holds one LSTM layer"):
        load_model(npz(tmp_path, **npz_arrays()), lstm="rnn")


def test_the_example_network_matches_onnxruntime():
    """examples/sunspots_net: torch's export of nn.LSTM(num_layers=2) and a Linear head."""
    from model.importers import load_model
    from model.network import run_float

    path = Path(__file__).parents[2] / "examples" / "sunspots_net" / "sunspots_net.onnx"
    net = load_model(path)
    assert net.layer_names == ["lstm1", "lstm2", "dense1"]
    x = np.load(path.parent / "x_test.npy")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    want = sess.run(None, {"x": x.astype(np.float32)})[0]
    # onnxruntime runs in float32; the forecasts are sunspot numbers up to ~160
    np.testing.assert_allclose(run_float(net, x), want, rtol=0, atol=1e-3)
