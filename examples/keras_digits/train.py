"""Trains the Keras example: handwritten digits read one pixel row per step by two LSTMs.

Data: ``../digits/digits.csv.gz`` (1797 8x8 images of handwritten digits, pixels 0..16,
label last; see ``../digits/SOURCE.md``), split as ``examples/digits`` splits it: a fixed
shuffle keeps 1200 images for training and tests on the other 597. A Keras
``Sequential`` model reads the eight rows of an image top to bottom, one row of eight
pixels (scaled to 0..1) per step: ``LSTM(16, return_sequences=True)``, ``LSTM(16)`` (its
last ``h``) and ``Dense(10)``, whose largest output is the digit.

Writes, beside this file:

- ``keras_digits.keras``: the whole model as ``model.save`` writes it; lstmfx reads it
  with h5py and json (:func:`model.import_keras.load_keras`), not with Keras.
- ``x_test.npy`` [597, 8, 8] (scaled pixels, float32) and ``y_test.npy`` [597] (digits).

Needs Keras 3 on PyTorch (``pip install keras torch==2.13.0``, CPU); about 30 s on one
core. ``python3 examples/keras_digits/train.py`` from anywhere.
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
HIDDEN = 16
N_TRAIN = 1200
EPOCHS = 60
BATCH = 50
SEED = 0


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    data = np.loadtxt(HERE.parent / "digits" / "digits.csv.gz", delimiter=",", dtype=np.int64)
    return data[:, :64].reshape(-1, 8, 8) / 16.0, data[:, 64]


def main() -> None:
    keras.utils.set_random_seed(SEED)
    x, y = load_digits()
    order = np.random.default_rng(SEED).permutation(len(y))
    tr, te = order[:N_TRAIN], order[N_TRAIN:]
    x = x.astype(np.float32)  # k/16: exact in float32

    model = keras.Sequential(
        [
            keras.Input((None, 8), name="rows"),
            keras.layers.LSTM(HIDDEN, return_sequences=True, name="rows_lstm"),
            keras.layers.LSTM(HIDDEN, name="image_lstm"),
            keras.layers.Dense(10, name="digit"),
        ],
        name="keras_digits",
    )
    steps = EPOCHS * (N_TRAIN // BATCH)
    model.compile(
        optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(1e-2, steps)),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(x[tr], y[tr], batch_size=BATCH, epochs=EPOCHS, verbose=0, shuffle=True,
              callbacks=[Progress()])  # fmt: skip
    logits = model.predict(x[te], verbose=0)
    print(f"test accuracy {np.mean(logits.argmax(1) == y[te]):.4f} on {len(te)} images")

    path = HERE / "keras_digits.keras"
    model.save(path)
    np.save(HERE / "x_test.npy", x[te])
    np.save(HERE / "y_test.npy", y[te])
    check(path, x[te], logits)
    print(f"wrote {path.name} ({path.stat().st_size // 1024} kB), x_test.npy, y_test.npy in {HERE}")


class Progress(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch % 10 == 0 or epoch == EPOCHS - 1:
            print(f"epoch {epoch:3d}: training loss {logs['loss']:.4f}")


def check(path: Path, x: np.ndarray, logits: np.ndarray) -> None:
    """The saved file, read by lstmfx without Keras, computes what Keras computed."""
    sys.path.insert(0, str(HERE.parents[1]))
    from model.import_keras import load_keras
    from model.network import run_float

    net = load_keras(path)
    got = run_float(net, x, output=net.output)
    assert net.output == "last" and got.shape == logits.shape
    assert np.allclose(got, logits, atol=1e-5), np.abs(got - logits).max()


if __name__ == "__main__":
    main()
