"""Loading trained LSTM weights into a :class:`~model.lstm.FloatLSTM` (SPEC §6).

Every importer returns weights in this specification's order (gate rows i, f, g, o;
peepholes i, f, o) with the input and recurrent biases added in float64.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from model.lstm import FloatLSTM

SUFFIXES = (".npz", ".onnx", ".pt", ".pth")


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
            raise ValueError(
                f"{Path(path).name} lacks the array(s) {', '.join(sorted(missing))}; an lstmfx "
                f".npz holds w [4H, I], r [4H, H], b [4H] and optionally p [3H]"
            )
        extra = names - {"w", "r", "b", "p"}
        if extra:
            raise ValueError(
                f"{Path(path).name} holds unknown array(s) {', '.join(sorted(extra))}; only "
                f"w, r, b and p are read (an .npz of several layers is not supported)"
            )
        return FloatLSTM(
            w=data["w"],
            r=data["r"],
            b=data["b"],
            p=data["p"] if "p" in names else None,
            name=Path(path).stem,
        )


def load_onnx(path) -> FloatLSTM:
    raise NotImplementedError("ONNX import is not written yet")


def load_torch(path) -> FloatLSTM:
    raise NotImplementedError("PyTorch import is not written yet")
