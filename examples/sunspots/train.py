"""Trains the built-in example: a one-year-ahead forecaster of the yearly sunspot number.

Data: ``sunspots.csv`` (yearly means 1700-2008; see SOURCE.md). An ``nn.LSTM`` (I=1, H=8)
reads a window of 32 years, one year per step, and a linear head on ``h_t`` forecasts the
next year (a one-LSTM-layer network). It is trained on the years up to 1929 and tested on every year from 1930 to
2008, each forecast from the 32 years before it.

Writes, beside this file:

- ``sunspots.onnx``: the whole network (LSTM and linear head) as exported by ``torch.onnx``,
  the target scaling folded into the head after training, so that it forecasts sunspots.
- ``x_test.npy`` [79, 32, 1] (scaled inputs) and ``y_test.npy`` [79] (sunspot numbers).

Needs PyTorch (CPU; ``pip install torch==2.13.0``), onnx and onnxruntime; about 20 s on
two cores. ``python3 examples/sunspots/train.py`` from anywhere.
"""

from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
HIDDEN = 8
WINDOW = 32
WARMUP = 8  # steps of each training window that are not scored: the state is still cold
TEST_FROM = 1930
EPOCHS = 400
SEED = 2


class Forecaster(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(1, HIDDEN, batch_first=True)
        self.head = torch.nn.Linear(HIDDEN, 1)

    def forward(self, x):
        h, _ = self.lstm(x)
        return self.head(h)[..., 0]  # a forecast of the next (scaled) value at every step


def load_series() -> tuple[np.ndarray, np.ndarray]:
    data = np.loadtxt(HERE / "sunspots.csv", delimiter=",", skiprows=1)
    return data[:, 0].astype(int), data[:, 1]


def windows(series: np.ndarray, ends: range) -> tuple[np.ndarray, np.ndarray]:
    """Inputs [N, WINDOW] ending at each index in ``ends`` and the value after each step."""
    x = np.stack([series[e - WINDOW + 1 : e + 1] for e in ends])
    y = np.stack([series[e - WINDOW + 2 : e + 2] for e in ends])
    return x, y


def main() -> None:
    torch.manual_seed(SEED)
    torch.set_num_threads(2)
    years, spots = load_series()
    n_train = int(np.searchsorted(years, TEST_FROM))
    offset = float(spots[:n_train].mean())
    scale = float(spots[:n_train].std())
    z = (spots - offset) / scale

    # training: every window whose targets all lie before TEST_FROM
    x_tr, y_tr = windows(z, range(WINDOW - 1, n_train - 1))
    xt = torch.tensor(x_tr[..., None], dtype=torch.float32)
    yt = torch.tensor(y_tr, dtype=torch.float32)
    # test: the forecast of each year from TEST_FROM on, from the WINDOW years before it
    ends = range(n_train - 1, len(z) - 1)
    x_te = np.stack([z[e - WINDOW + 1 : e + 1] for e in ends])[..., None]
    y_te = spots[n_train:]

    model = Forecaster()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, EPOCHS)
    for epoch in range(EPOCHS):
        opt.zero_grad()
        loss = torch.mean((model(xt)[:, WARMUP:] - yt[:, WARMUP:]) ** 2)
        loss.backward()
        opt.step()
        sched.step()
        if epoch % 100 == 0 or epoch == EPOCHS - 1:
            print(f"epoch {epoch:4d}: training MSE (scaled) {loss.item():.4f}")

    # fold the target scaling into the head: the network's output is in sunspots
    with torch.no_grad():
        model.head.weight.mul_(scale)
        model.head.bias.mul_(scale).add_(offset)
    model.eval()
    with torch.no_grad():
        pred = model(torch.tensor(x_te, dtype=torch.float32))[:, -1].numpy()
    rmse = float(np.sqrt(np.mean((pred - y_te) ** 2)))
    persistence = float(np.sqrt(np.mean((spots[n_train - 1 : -1] - y_te) ** 2)))
    print(
        f"test {years[n_train]}-{years[-1]} ({len(y_te)} forecasts): RMSE {rmse:.2f} sunspots "
        f"(persistence, next year = this year: {persistence:.2f})"
    )

    onnx_path = HERE / "sunspots.onnx"
    torch.onnx.export(
        model,
        (torch.zeros(1, WINDOW, 1),),
        str(onnx_path),
        input_names=["x"],
        output_names=["forecast"],
        dynamic_axes={"x": {0: "batch", 1: "steps"}, "forecast": {0: "batch", 1: "steps"}},
        dynamo=False,
    )
    np.save(HERE / "x_test.npy", x_te)
    np.save(HERE / "y_test.npy", y_te)
    check(onnx_path, model, x_te)
    print(f"wrote {onnx_path.name}, x_test.npy, y_test.npy in {HERE}")


def check(onnx_path: Path, model: Forecaster, x: np.ndarray) -> None:
    """The exported file, run by onnxruntime and read by lstmfx, agrees with PyTorch."""
    import onnxruntime

    from model.importers import load_model
    from model.network import run_float

    with torch.no_grad():
        want = model(torch.tensor(x, dtype=torch.float32)).numpy()
    sess = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"x": x.astype(np.float32)})[0]
    assert np.allclose(got, want, atol=1e-3), np.abs(got - want).max()
    y = run_float(load_model(onnx_path), x)[..., 0]
    assert np.allclose(y, want, atol=1e-3), np.abs(y - want).max()


if __name__ == "__main__":
    main()
