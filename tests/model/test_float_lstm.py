"""model.lstm.lstm_float, our float64 LSTM layer, against onnxruntime's LSTM operator.

ONNX Runtime's CPU LSTM runs in float32 only ("LSTM operator does not support double yet"),
so the weights and inputs are float32 values (exact in float64 too) and the comparison
allows float32 rounding: see ``ATOL``. This is float against float; the bit-exact promise
belongs to the fixed-point model.
"""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from model.lstm import FloatLSTM
from model.lstm import lstm_float as run_float

# |h| < 1, so what float32 leaves is an absolute error: each step rounds O(I + H) products
# and sums (2^-24 relative each) and ORT's vectorized sigmoid/tanh are good to a few float32
# ulps; the cases here stay below 1e-6 (measured), so 1e-5 is a tenfold margin. A gate-order
# or peephole mix-up moves outputs by 1e-2 or more (tested below).
ATOL = 1e-5
# c is not bounded by 1; its error scales with its size
RTOL = 1e-5

SPEC_GATES = ("i", "f", "g", "o")
ONNX_GATES = ("i", "o", "f", "g")  # ONNX calls g "c"
SPEC_PEEPHOLES = ("i", "f", "o")
ONNX_PEEPHOLES = ("i", "o", "f")


def by_gate(a, names, h):
    return {name: a[k * h : (k + 1) * h] for k, name in enumerate(names)}


def to_onnx_order(a, spec_names, onnx_names, h):
    """SPEC gate blocks to ONNX blocks, by name (independent of model/importers.py)."""
    blocks = by_gate(a, spec_names, h)
    return np.concatenate([blocks[name] for name in onnx_names])


def random_lstm(rng, i_size, h_size, *, peephole, scale=0.6):
    def f32(shape):
        return (rng.normal(size=shape) * scale).astype(np.float32)

    return {
        "w": f32((4 * h_size, i_size)),
        "r": f32((4 * h_size, h_size)),
        "wb": f32(4 * h_size),
        "rb": f32(4 * h_size),
        "p": f32(3 * h_size) if peephole else None,
    }


def onnx_lstm_model(weights, *, t_len, n):
    """An ONNX model of one LSTM node whose weights are the SPEC-order ``weights``."""
    h = weights["r"].shape[1]
    i_size = weights["w"].shape[1]

    def reorder(a):
        return to_onnx_order(a, SPEC_GATES, ONNX_GATES, h)

    inits = {
        "W": reorder(weights["w"])[None],
        "R": reorder(weights["r"])[None],
        "B": np.concatenate([reorder(weights["wb"]), reorder(weights["rb"])])[None],
    }
    inputs = ["X", "W", "R", "B"]
    if weights["p"] is not None:
        inits["P"] = to_onnx_order(weights["p"], SPEC_PEEPHOLES, ONNX_PEEPHOLES, h)[None]
        inputs += ["", "", "", "P"]
    node = helper.make_node("LSTM", inputs, ["Y", "Y_h", "Y_c"], hidden_size=h)
    f32 = TensorProto.FLOAT
    graph = helper.make_graph(
        [node],
        "lstm",
        [helper.make_tensor_value_info("X", f32, [t_len, n, i_size])],
        [
            helper.make_tensor_value_info("Y", f32, [t_len, 1, n, h]),
            helper.make_tensor_value_info("Y_h", f32, [1, n, h]),
            helper.make_tensor_value_info("Y_c", f32, [1, n, h]),
        ],
        initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    onnx.checker.check_model(model)
    return model


def run_ort(model, x):
    """ORT on x [N, T, I]; returns Y as [N, T, H], Y_h and Y_c as [N, H]."""
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    y, y_h, y_c = session.run(None, {"X": np.ascontiguousarray(x.transpose(1, 0, 2))})
    return y[:, 0].transpose(1, 0, 2), y_h[0], y_c[0]


CASES = [(1, 1, 5), (2, 3, 7), (4, 8, 20), (10, 16, 12)]


@pytest.mark.parametrize("peephole", [False, True], ids=["plain", "peephole"])
@pytest.mark.parametrize(("i_size", "h_size", "t_len"), CASES)
def test_run_float_matches_onnxruntime(i_size, h_size, t_len, peephole):
    rng = np.random.default_rng(1000 * i_size + 10 * h_size + peephole)
    n = 3
    weights = random_lstm(rng, i_size, h_size, peephole=peephole)
    x = (rng.normal(size=(n, t_len, i_size)) * 1.5).astype(np.float32)
    ours = FloatLSTM(
        w=weights["w"],
        r=weights["r"],
        b=weights["wb"].astype(np.float64) + weights["rb"],
        p=weights["p"],
    )
    y, y_h, y_c = run_ort(onnx_lstm_model(weights, t_len=t_len, n=n), x)

    seq, tr = run_float(ours, x, trace=True)
    last = run_float(ours, x, output="last")
    assert seq.shape == (n, t_len, h_size) and last.shape == (n, h_size)
    np.testing.assert_allclose(seq, y, rtol=0, atol=ATOL)
    np.testing.assert_allclose(last, y_h, rtol=0, atol=ATOL)
    np.testing.assert_array_equal(last, seq[:, -1])
    np.testing.assert_allclose(tr["c"][:, -1], y_c, rtol=RTOL, atol=ATOL)
    # the outputs are not trivially small, so the tolerance is a real test
    assert np.abs(y).max() > 0.1


def test_peepholes_change_the_output():
    """The comparison above would not notice peepholes if they had no effect at this scale."""
    rng = np.random.default_rng(5)
    weights = random_lstm(rng, 3, 4, peephole=True)
    x = rng.normal(size=(2, 10, 3)).astype(np.float32)
    b = weights["wb"].astype(np.float64) + weights["rb"]
    with_p = run_float(FloatLSTM(w=weights["w"], r=weights["r"], b=b, p=weights["p"]), x)
    without = run_float(FloatLSTM(w=weights["w"], r=weights["r"], b=b), x)
    assert np.abs(with_p - without).max() > 100 * ATOL


def test_gate_order_matters_at_this_tolerance():
    """Swapping the f and o blocks (a plausible importer bug) is far outside ATOL."""
    rng = np.random.default_rng(6)
    weights = random_lstm(rng, 3, 4, peephole=False)
    x = rng.normal(size=(2, 10, 3)).astype(np.float32)
    y, _, _ = run_ort(onnx_lstm_model(weights, t_len=10, n=2), x)

    def swap(a):
        g = by_gate(a, SPEC_GATES, 4)
        return np.concatenate([g["i"], g["o"], g["g"], g["f"]])

    b = weights["wb"].astype(np.float64) + weights["rb"]
    wrong = FloatLSTM(w=swap(weights["w"]), r=swap(weights["r"]), b=swap(b))
    assert np.abs(run_float(wrong, x) - y).max() > 100 * ATOL
