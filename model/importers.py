"""Loading trained networks into a :class:`~model.network.FloatNetwork` (SPEC §6).

Every importer returns weights in this specification's order (gate rows i, f, g, o;
peepholes i, f, o) with the input and recurrent biases added in float64. The ONNX and
PyTorch readers live in :mod:`model.import_onnx` and :mod:`model.import_torch`, the Keras
reader in :mod:`model.import_keras`; each is imported only when a file needs it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from model.lstm import FloatLSTM
from model.network import FloatNetwork

SUFFIXES = (".npz", ".onnx", ".pt", ".pth", ".keras", ".h5")


class ModelFileError(ValueError):
    """A model file that lstmfx cannot import as a network of SPEC §2b; says what to change."""


def load_model(
    path, *, lstm: str | None = None, head: list[tuple[str, str]] | None = None
) -> FloatNetwork:
    """Load the network in ``path``, by its suffix (one of :data:`SUFFIXES`).

    ``lstm`` names the (bottom) LSTM where a file holds several: the module prefix of an
    ``nn.LSTM`` in a PyTorch file (``"encoder.rnn"``), the LSTM node of an ONNX graph.
    ``head`` lists the dense layers after it as ``(name, activation)`` pairs, activation
    ``"linear"`` or ``"relu"``: in a PyTorch file, the ``nn.Linear`` modules to apply in
    that order (nothing is guessed from the order of a state dict); in an ONNX graph,
    which follows its own data flow, the dense nodes the graph must hold. A ``.npz`` is
    one LSTM layer and a Keras file names its own layers: neither takes ``lstm``/``head``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".onnx", ".pt", ".pth"):
        load = load_onnx if suffix == ".onnx" else load_torch
        return load(path, lstm=lstm, head=head)
    if suffix not in SUFFIXES:
        raise ValueError(
            f"cannot tell the kind of model file {path.name!r} by its suffix; use one of "
            f"{', '.join(SUFFIXES)}"
        )
    if lstm is not None or head:
        holds = "one LSTM layer" if suffix == ".npz" else "layers named by the file itself"
        raise ModelFileError(
            f"{path.name}: lstm= and head= choose layers of a PyTorch or ONNX file; a "
            f"{suffix} file holds {holds}, so leave them out"
        )
    if suffix == ".npz":
        return load_npz(path)
    from model.import_keras import load_keras

    return load_keras(path)


def load_onnx(path, *, lstm: str | None = None, head=None) -> FloatNetwork:
    """The network of an ONNX file: see :func:`model.import_onnx.load_onnx`."""
    from model.import_onnx import load_onnx as load

    return load(path, lstm=lstm, head=head)


def load_torch(path, *, lstm: str | None = None, head=None) -> FloatNetwork:
    """The network of a PyTorch file: see :func:`model.import_torch.load_torch`."""
    from model.import_torch import load_torch as load

    return load(path, lstm=lstm, head=head)


def load_npz(path) -> FloatNetwork:
    """Arrays ``w`` [4H, I], ``r`` [4H, H], ``b`` [4H] and optional ``p`` [3H] (i, f, o):
    a network of one LSTM layer."""
    path = Path(path)
    with np.load(path, allow_pickle=False) as data:
        names = set(data.files)
        missing = {"w", "r", "b"} - names
        if missing:
            raise ModelFileError(
                f"{path.name} lacks the array(s) {', '.join(sorted(missing))}; an lstmfx "
                f".npz holds w [4H, I], r [4H, H], b [4H] and optionally p [3H]"
            )
        extra = names - {"w", "r", "b", "p"}
        if extra:
            raise ModelFileError(
                f"{path.name} holds unknown array(s) {', '.join(sorted(extra))}; only "
                f"w, r, b and p are read (an .npz of several layers is not supported)"
            )
        layer = float_lstm(
            path.name,
            w=data["w"],
            r=data["r"],
            b=data["b"],
            p=data["p"] if "p" in names else None,
            name=path.stem,
        )
    return float_network(path.name, [layer], name=path.stem)


def float_lstm(source: str, **arrays) -> FloatLSTM:
    """FloatLSTM(**arrays), with the file named in a shape or NaN error."""
    try:
        return FloatLSTM(**arrays)
    except ValueError as e:
        raise ModelFileError(f"{source}: {e}") from e


def float_network(source: str, layers, **kwargs) -> FloatNetwork:
    """FloatNetwork(layers, **kwargs), with the file named in a size or order error."""
    try:
        return FloatNetwork(layers, **kwargs)
    except ValueError as e:
        raise ModelFileError(f"{source}: {e}") from e


def check_head(source: str, head) -> list[tuple[str, str]]:
    """``head`` as a list of (name, activation) pairs, each activation linear or relu."""
    pairs = []
    for item in head or ():
        try:
            name, activation = item
        except (TypeError, ValueError):
            raise ModelFileError(
                f"{source}: head entry {item!r} is not a (name, activation) pair"
            ) from None
        if activation not in ("linear", "relu"):
            raise ModelFileError(
                f"{source}: head layer {name!r} has activation {activation!r}; a dense layer's "
                f"activation is 'linear' or 'relu'"
            )
        pairs.append((str(name), activation))
    return pairs
