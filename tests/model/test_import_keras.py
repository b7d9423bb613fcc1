"""model/import_keras.py: Keras models, built and saved here by Keras itself (PyTorch
backend), read back without Keras and run by :func:`model.network.run_float`; and a clear
error naming the layer and attribute for every model that is not a chain of LSTM and Dense
layers (SPEC §6)."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from model.import_keras import load_keras
from model.importers import ModelFileError
from model.network import run_float

os.environ.setdefault("KERAS_BACKEND", "torch")
try:  # Keras writes the files here; lstmfx reads them without it
    import keras
    from keras import layers
except ImportError:  # Keras, or the PyTorch it runs on here, is not installed
    keras = layers = None
needs_keras = pytest.mark.skipif(
    keras is None, reason="needs Keras on PyTorch: pip install keras torch (CPU)"
)

ROOT = Path(__file__).resolve().parents[2]
N_IN, H1, H2, OUT, T = 3, 6, 5, 4, 9


def randomize(model, seed=0):
    """Weights of every sign and size: Keras' own initial biases are 0 and 1, which would
    hide a gate or bias block in the wrong place."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, 0.6, w.shape).astype(np.float32) for w in model.get_weights()])
    return model


def stacked(activation="linear", sequences=False):
    return randomize(
        keras.Sequential(
            [
                keras.Input((None, N_IN)),
                layers.LSTM(H1, return_sequences=True),
                layers.LSTM(H2, return_sequences=sequences),
                layers.Dense(OUT, activation=activation),
            ],
            name="stacked",
        )
    )


def functional():
    x = keras.Input((T, N_IN), name="x")
    h = layers.LSTM(H1, return_sequences=True, use_bias=False, name="enc")(x)
    h = layers.LSTM(H2, return_sequences=True, name="dec")(h)
    h = layers.Dense(7, activation="relu", name="hidden")(h)
    y = layers.Dense(OUT, use_bias=False, name="head")(h)
    return randomize(keras.Model(x, y, name="chain"), seed=1)


def save(model, tmp_path, suffix):
    path = tmp_path / f"{model.name}{suffix}"
    model.save(path)
    return path


def data(n=5):
    return np.random.default_rng(7).normal(0, 1.5, (n, T, N_IN)).astype(np.float32)


def assert_same(net, model):
    x = data()
    want = model.predict(x, verbose=0)
    got = run_float(net, x, output=net.output)
    assert got.shape == want.shape
    # Keras computes in float32, run_float in float64
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6 * np.abs(want).max())


@needs_keras
@pytest.mark.parametrize("suffix", [".keras", ".h5"])
@pytest.mark.parametrize(
    "build, output, kinds",
    [
        (stacked, "last", ["lstm", "lstm", "dense"]),
        (lambda: stacked("relu", sequences=True), "sequence", ["lstm", "lstm", "dense"]),
        (functional, "sequence", ["lstm", "lstm", "dense", "dense"]),
    ],
    ids=["sequential", "sequential-relu-per-step", "functional"],
)
def test_load_matches_keras(tmp_path, suffix, build, output, kinds):
    model = build()
    net = load_keras(save(model, tmp_path, suffix))
    assert net.output == output
    assert [la.kind for la in net.layers] == kinds
    assert net.name == model.name
    assert [la.name for la in net.layers] == [
        la.name for la in model.layers if not isinstance(la, layers.InputLayer)
    ]
    assert_same(net, model)


@needs_keras
def test_weights_in_spec_order(tmp_path):
    """kernel [I, 4H] and recurrent_kernel [H, 4H] transpose; Keras' i, f, c, o is i, f, g, o;
    use_bias=False is a zero bias; Dense kernel [in, out] transposes."""
    model = functional()
    net = load_keras(save(model, tmp_path, ".keras"))
    enc, dec, hidden, head = (model.get_layer(n) for n in ("enc", "dec", "hidden", "head"))
    kernel, recurrent = (w.astype(np.float64) for w in enc.get_weights())
    assert np.array_equal(net.layers[0].w, kernel.T)
    assert np.array_equal(net.layers[0].r, recurrent.T)
    assert np.array_equal(net.layers[0].b, np.zeros(4 * H1))
    assert np.array_equal(net.layers[1].b, dec.get_weights()[2])
    assert net.layers[1].p is None
    assert np.array_equal(net.layers[2].w, hidden.get_weights()[0].T)
    assert net.layers[2].activation == "relu"
    assert np.array_equal(net.layers[3].b, np.zeros(OUT))


@needs_keras
def test_single_lstm_and_dropout_settings(tmp_path):
    """One LSTM layer, no Dense; dropout only acts in training, so its settings are read."""
    model = randomize(
        keras.Sequential(
            [
                keras.Input((None, N_IN)),
                layers.LSTM(H1, dropout=0.3, recurrent_dropout=0.2, unit_forget_bias=False),
            ]
        )
    )
    net = load_keras(save(model, tmp_path, ".keras"))
    assert net.output == "last" and len(net.layers) == 1
    assert_same(net, model)


def test_does_not_import_keras():
    """The example file is read in a fresh interpreter, which never imports Keras."""
    code = (
        "import sys\n"
        "from model.import_keras import load_keras\n"
        "assert load_keras('examples/keras_digits/keras_digits.keras').output == 'last'\n"
        "assert not [m for m in sys.modules if m.split('.')[0] == 'keras'], 'keras imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


# --- refusals ---------------------------------------------------------------------------


def seq(*body, steps=None):
    return keras.Sequential([keras.Input((steps, N_IN)), *body])


REFUSALS = {
    "bidirectional": (
        lambda: seq(layers.Bidirectional(layers.LSTM(H1))),
        r"layer 'bidirectional\w*' is a Bidirectional;",
    ),
    "gru": (lambda: seq(layers.GRU(H1)), r"layer 'gru\w*' is a GRU;"),
    "simple-rnn": (lambda: seq(layers.SimpleRNN(H1)), r"layer 'simple_rnn\w*' is a SimpleRNN;"),
    "conv": (lambda: seq(layers.Conv1D(4, 3), layers.LSTM(H1)), r"layer 'conv1d\w*' is a Conv1D;"),
    "masking": (
        lambda: seq(layers.Masking(), layers.LSTM(H1)),
        r"layer 'masking\w*' is a Masking;",
    ),
    "dropout-layer": (
        lambda: seq(layers.LSTM(H1, return_sequences=True), layers.Dropout(0.2), layers.LSTM(2)),
        r"layer 'dropout\w*' is a Dropout;",
    ),
    "lstm-activation": (lambda: seq(layers.LSTM(H1, activation="relu")), "activation='relu'"),
    "lstm-recurrent-activation": (
        lambda: seq(layers.LSTM(H1, recurrent_activation="hard_sigmoid")),
        "recurrent_activation='hard_sigmoid'",
    ),
    "go-backwards": (lambda: seq(layers.LSTM(H1, go_backwards=True)), "go_backwards=True"),
    "stateful": (
        lambda: keras.Sequential(
            [keras.Input((T, N_IN), batch_size=2), layers.LSTM(H1, stateful=True)]
        ),
        "stateful=True",
    ),
    "lower-lstm-last": (
        lambda: seq(layers.LSTM(H1), layers.Reshape((1, H1)), layers.LSTM(H2)),
        "return_sequences=False but another LSTM layer reads it",
    ),
    "dense-activation": (
        lambda: seq(layers.LSTM(H1), layers.Dense(OUT, activation="tanh")),
        r"Dense layer 'dense\w*' has activation='tanh'",
    ),
    "dense-before-lstm": (
        lambda: seq(layers.Dense(4), layers.LSTM(H1)),
        "starts with at least one LSTM",
    ),
}


@needs_keras
@pytest.mark.parametrize("suffix", [".keras", ".h5"])
@pytest.mark.parametrize("case", REFUSALS, ids=list(REFUSALS))
def test_refuses(tmp_path, suffix, case):
    build, message = REFUSALS[case]
    model = build()
    model.name = "m"
    with pytest.raises(ModelFileError, match=message):
        load_keras(save(model, tmp_path, suffix))


@needs_keras
def test_weights_found_without_layer_names(tmp_path):
    """Files from Keras releases that do not name each layer's ``vars`` group are read by
    the paths Keras gives each layer of a class (lstm, lstm_1, ...)."""
    import h5py

    model = stacked()
    path = save(model, tmp_path, ".keras")
    with zipfile.ZipFile(path) as zf:
        files = {n: zf.read(n) for n in zf.namelist()}
    weights = tmp_path / "model.weights.h5"
    weights.write_bytes(files["model.weights.h5"])
    with h5py.File(weights, "a") as h5:
        h5.visit(lambda name: h5[name].attrs.pop("name", None))
    files["model.weights.h5"] = weights.read_bytes()
    with zipfile.ZipFile(path, "w") as zf:
        for n, b in files.items():
            zf.writestr(n, b)
    assert_same(load_keras(path), model)


@needs_keras
def test_refuses_return_state(tmp_path):
    x = keras.Input((T, N_IN))
    h, _, _ = layers.LSTM(H1, return_state=True, name="l")(x)
    path = save(keras.Model(x, h, name="m"), tmp_path, ".keras")
    with pytest.raises(ModelFileError, match="'l'.*return_state=True"):
        load_keras(path)


@needs_keras
def test_refuses_branches_and_inputs(tmp_path):
    x = keras.Input((T, N_IN))
    a = layers.LSTM(H1, return_sequences=True, name="a")(x)
    b = layers.LSTM(H1, return_sequences=True, name="b")(x)
    y = layers.Add(name="sum")([a, b])
    with pytest.raises(ModelFileError, match="'sum'.*called on 'a', 'b'"):
        load_keras(save(keras.Model(x, y, name="m"), tmp_path, ".keras"))

    x2 = keras.Input((T, N_IN))
    y2 = layers.LSTM(H1, name="c")(x2)
    model = keras.Model([x, x2], [y2, layers.LSTM(2)(x)], name="two")
    with pytest.raises(ModelFileError, match="2 input.*2 output"):
        load_keras(save(model, tmp_path, ".h5"))


@needs_keras
def test_refuses_bfloat16_weights(tmp_path):
    model = seq(layers.LSTM(H1, dtype="bfloat16", name="l"))
    with pytest.raises(ModelFileError, match="'l'.*bfloat16"):
        load_keras(save(model, tmp_path, ".keras"))


@needs_keras
@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_refuses_quantized_layers(tmp_path, suffix):
    model = seq(layers.LSTM(H1), layers.Dense(OUT, name="d"))
    with pytest.warns(UserWarning):  # Keras: LSTM layers have no quantize()
        model.quantize("int8")
    with pytest.raises(ModelFileError, match="'d'.*mode='int8'.*quantized"):
        load_keras(save(model, tmp_path, suffix))


@needs_keras
def test_refuses_weights_only_and_damaged_files(tmp_path):
    model = stacked()
    weights = tmp_path / "w.weights.h5"
    model.save_weights(weights)
    legacy = tmp_path / "w.h5"
    legacy.write_bytes(weights.read_bytes())
    with pytest.raises(ModelFileError, match="no model_config.*weights only"):
        load_keras(legacy)
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ModelFileError, match="not a .keras file"):
        load_keras(bad)
    with zipfile.ZipFile(tmp_path / "nocfg.keras", "w") as zf:
        zf.writestr("model.weights.h5", b"")
    with pytest.raises(ModelFileError, match="no config.json"):
        load_keras(tmp_path / "nocfg.keras")
    (tmp_path / "bad.h5").write_bytes(b"not hdf5")
    with pytest.raises(ModelFileError, match="not an HDF5 file"):
        load_keras(tmp_path / "bad.h5")
    with pytest.raises(FileNotFoundError):
        load_keras(tmp_path / "absent.keras")


@needs_keras
def test_refuses_subclassed_model(tmp_path):
    path = save(stacked(), tmp_path, ".keras")
    edit_config(path, lambda c: c.update(class_name="MyModel"))
    with pytest.raises(ModelFileError, match="'MyModel'.*subclassed"):
        load_keras(path)


def edit_config(path, change):
    with zipfile.ZipFile(path) as zf:
        files = {n: zf.read(n) for n in zf.namelist()}
    config = json.loads(files["config.json"])
    change(config)
    files["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as zf:
        for n, b in files.items():
            zf.writestr(n, b)


def test_keras_digits_example_holds_its_published_numbers():
    """examples/keras_digits, read without Keras, scores as examples/README.md says."""
    ex = ROOT / "examples" / "keras_digits"
    net = load_keras(ex / "keras_digits.keras")
    assert net.output == "last"
    assert [(la.kind, la.input_size, la.output_size) for la in net.layers] == [
        ("lstm", 8, 16),
        ("lstm", 16, 16),
        ("dense", 16, 10),
    ]
    x, y = np.load(ex / "x_test.npy"), np.load(ex / "y_test.npy")
    assert np.sum(run_float(net, x, output=net.output).argmax(1) == y) == 570
