"""Trains the sequence classifier example: handwritten digits read one pixel row per step.

Data: ``digits.csv.gz`` (1797 8x8 images of handwritten digits, pixels 0..16, label last;
see SOURCE.md). An ``nn.LSTM`` (I=8, H=16) reads the eight rows of an image top to bottom,
one row of eight pixels (scaled to 0..1) per step, and a linear head on the last ``h``
picks one of the ten digits. A fixed shuffle keeps 1200 images for training and tests on
the other 597.

Writes, beside this file:

- ``digits.npz``: the LSTM weights in lstmfx's order (``w``, ``r``, ``b``; SPEC §6).
- ``head.npz``: the head (``w`` [10, H], ``b`` [10]) that ``lstmfx report --labels`` uses.
- ``x_test.npy`` [597, 8, 8] (scaled pixels, float32) and ``y_test.npy`` [597] (digits).

Needs PyTorch (CPU; ``pip install torch==2.13.0``); about 15 s on two cores.
``python3 examples/digits/train.py`` from anywhere.
"""

from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
HIDDEN = 16
N_TRAIN = 1200
EPOCHS = 300
SEED = 0


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    data = np.loadtxt(HERE / "digits.csv.gz", delimiter=",", dtype=np.int64)
    return data[:, :64].reshape(-1, 8, 8) / 16.0, data[:, 64]


def main() -> None:
    torch.manual_seed(SEED)
    torch.set_num_threads(2)
    x, y = load_digits()
    order = np.random.default_rng(SEED).permutation(len(y))
    tr, te = order[:N_TRAIN], order[N_TRAIN:]
    xt = torch.tensor(x[tr], dtype=torch.float32)
    yt = torch.tensor(y[tr])

    lstm = torch.nn.LSTM(8, HIDDEN, batch_first=True)
    head = torch.nn.Linear(HIDDEN, 10)
    params = list(lstm.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=1e-2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, EPOCHS)
    for epoch in range(EPOCHS):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(head(lstm(xt)[0][:, -1]), yt)
        loss.backward()
        opt.step()
        sched.step()
        if epoch % 50 == 0 or epoch == EPOCHS - 1:
            print(f"epoch {epoch:3d}: training loss {loss.item():.4f}")

    with torch.no_grad():
        h = lstm(torch.tensor(x[te], dtype=torch.float32))[0].numpy()
        pred = head(torch.tensor(h[:, -1])).argmax(1).numpy()
    print(f"test accuracy {np.mean(pred == y[te]):.4f} on {len(te)} images")

    state = {k: v.detach().numpy().astype(np.float64) for k, v in lstm.state_dict().items()}
    np.savez(
        HERE / "digits.npz",
        w=state["weight_ih_l0"],
        r=state["weight_hh_l0"],
        b=state["bias_ih_l0"] + state["bias_hh_l0"],  # one bias per row (SPEC §2)
    )
    np.savez(
        HERE / "head.npz",
        w=head.weight.detach().numpy().astype(np.float64),
        b=head.bias.detach().numpy().astype(np.float64),
        task=np.array("classify"),
    )
    np.save(HERE / "x_test.npy", x[te].astype(np.float32))  # k/16: exact in float32
    np.save(HERE / "y_test.npy", y[te])

    from model.importers import load_npz
    from model.lstm import run_float

    got = run_float(load_npz(HERE / "digits.npz"), x[te])
    assert np.allclose(got, h, atol=1e-5), np.abs(got - h).max()
    print(f"wrote digits.npz, head.npz, x_test.npy, y_test.npy in {HERE}")


if __name__ == "__main__":
    main()
