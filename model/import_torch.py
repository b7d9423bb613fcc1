"""PyTorch networks (SPEC §6): an ``nn.LSTM`` of ``num_layers`` layers, then the
``nn.Linear`` layers ``head`` names, from a state dict or a whole saved module.

A state dict says nothing of the order in which ``forward`` applies its modules, so no
dense layer is guessed: ``head`` lists them, each with its activation.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from model.importers import ModelFileError, check_head, float_lstm, float_network
from model.network import FloatDense, FloatNetwork

#: keys of one nn.LSTM layer, after its prefix
_LSTM_KEY = re.compile(r"^(weight|bias)_(ih|hh|hr)_l(\d+)(_reverse)?$")
#: what torch.load(weights_only=True) says of a file that pickles more than tensors
_NOT_WEIGHTS_ONLY = ("Weights only load failed", "Unsupported global")


def load_torch(path, *, lstm: str | None = None, head=None) -> FloatNetwork:
    """The network of a PyTorch file: a state dict (``torch.save(model.state_dict())``) or a
    whole module (``torch.save(model)``).

    ``lstm`` is the module prefix of the ``nn.LSTM`` (``"encoder.rnn"``; needed only when
    the file holds several), ``head`` the ``nn.Linear`` layers applied after it, in order,
    as ``(prefix, activation)`` with activation ``"linear"`` or ``"relu"``. A state dict is
    read with ``weights_only=True``, so no code in it runs. A file that is not a plain state
    dict is read again with ``weights_only=False``, which RUNS THE PICKLE in it, as
    ``torch.load`` of any whole module does: load only files from a source you trust. Needs
    torch.
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
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle.UnpicklingError, RuntimeError, ... by the kind of damage
        if not any(mark in str(e) for mark in _NOT_WEIGHTS_ONLY):
            first = (str(e).strip().splitlines() or [""])[0]
            raise ModelFileError(
                f"{path.name} cannot be read as a PyTorch file ({type(e).__name__}: {first}); "
                f"save the model with torch.save(model.state_dict(), {path.name!r})"
            ) from e
        obj = _load_pickle(torch, path)
    if isinstance(obj, torch.nn.Module):
        return from_module(obj, lstm=lstm, head=head, name=path.stem, source=path.name)
    if not isinstance(obj, dict):
        raise ModelFileError(
            f"{path.name} holds a {type(obj).__name__}, not a state dict or a module; save it "
            f"with torch.save(model.state_dict(), {path.name!r})"
        )
    state = {k: _to_numpy(torch, v) for k, v in obj.items()}
    return from_state_dict(state, lstm=lstm, head=head, name=path.stem, source=path.name)


def _load_pickle(torch, path: Path):
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # the pickle names a class this program cannot import, ...
        first = (str(e).strip().splitlines() or [""])[0]
        raise ModelFileError(
            f"{path.name} pickles more than tensors and cannot be unpickled here "
            f"({type(e).__name__}: {first}); if it holds a module whose class is defined in "
            f"the training script, save its state dict instead: "
            f"torch.save(model.state_dict(), {path.name!r})"
        ) from e


def _to_numpy(torch, value):
    if isinstance(value, torch.Tensor):
        if not value.is_floating_point():
            return value.numpy()
        return value.detach().to(torch.float64).numpy()
    return value


def from_module(module, *, lstm: str | None = None, head=None, name="network", source="module"):
    """:func:`load_torch` for an ``nn.Module``: the state dict's rules, and the modules'
    types and attributes checked (``bidirectional``, ``proj_size``, GRU and RNN layers)."""
    import torch

    modules = dict(module.named_modules())
    recurrent = {pre: m for pre, m in modules.items() if isinstance(m, torch.nn.RNNBase)}
    shown = ", ".join(f"{_show(pre)} ({type(m).__name__})" for pre, m in recurrent.items())
    if lstm is None:
        if len(recurrent) != 1:
            raise ModelFileError(
                f"{source} holds {len(recurrent)} recurrent layers ({shown or 'none'}); name "
                f"the nn.LSTM with lstm=PREFIX"
            )
        lstm = next(iter(recurrent))
    lstm = lstm.rstrip(".")
    if lstm not in recurrent:
        what = f"a {type(modules[lstm]).__name__}" if lstm in modules else "not a module of it"
        raise ModelFileError(
            f"{source}: lstm={lstm!r} is {what}; its recurrent layers are {shown or 'none'}"
        )
    layer = recurrent[lstm]
    where = f"{source}: layer {_show(lstm)}"
    if not isinstance(layer, torch.nn.LSTM):
        raise ModelFileError(
            f"{where} is an nn.{type(layer).__name__}; lstmfx implements nn.LSTM layers only"
        )
    if layer.bidirectional:
        raise ModelFileError(f"{where} has bidirectional=True; only a forward LSTM is implemented")
    if layer.proj_size:
        raise ModelFileError(
            f"{where} has proj_size={layer.proj_size}; only proj_size=0 is implemented"
        )
    linears = [pre for pre, m in modules.items() if isinstance(m, torch.nn.Linear)]
    for pre, _ in check_head(source, head):
        if pre.rstrip(".") not in linears:
            found = modules.get(pre.rstrip("."))
            what = f"an nn.{type(found).__name__}" if found is not None else "not a module of it"
            raise ModelFileError(
                f"{source}: head layer {pre!r} is {what}, not an nn.Linear; its Linear layers "
                f"are {', '.join(map(repr, linears)) or 'none'}"
            )
    state = {k: _to_numpy(torch, v) for k, v in module.state_dict().items()}
    net = from_state_dict(state, lstm=lstm, head=head, name=name, source=source)
    if len(net.lstm_layers) != layer.num_layers:
        raise ModelFileError(
            f"{where} has num_layers={layer.num_layers} but weights for "
            f"{len(net.lstm_layers)}; the module is damaged"
        )
    return net


def from_state_dict(
    state: dict, *, lstm: str | None = None, head=None, name="network", source="state dict"
) -> FloatNetwork:
    """:func:`load_torch` for a state dict already in memory, its tensors as NumPy arrays."""
    keys = [k for k in state if isinstance(k, str)]
    head = check_head(source, head)
    prefix = _lstm_prefix(state, keys, lstm, source)
    layers = _lstm_layers(state, keys, prefix, source)
    linears = _linear_prefixes(state, keys)
    for pre, activation in head:
        layers.append(_linear(state, keys, pre.rstrip("."), activation, linears, source))
    return float_network(source, layers, name=name)


def _show(prefix: str) -> str:
    return repr(prefix) if prefix else "'' (the root)"


def _children(keys, prefix: str) -> dict[str, str]:
    """The keys of the module at ``prefix`` itself (not of its submodules): short -> key."""
    start = prefix + "." if prefix else ""
    return {k[len(start) :]: k for k in keys if k.startswith(start) and "." not in k[len(start) :]}


def _lstm_prefix(state, keys, wanted: str | None, source: str) -> str:
    firsts = [k for k in keys if k == "weight_ih_l0" or k.endswith(".weight_ih_l0")]
    prefixes = sorted({k[: -len("weight_ih_l0")].rstrip(".") for k in firsts})
    shown = ", ".join(map(_show, prefixes))
    if wanted is None:
        if not prefixes:
            nested = [k for k, v in state.items() if isinstance(v, dict)]
            hint = (
                f"; it holds the dict(s) {', '.join(map(repr, nested))}: if it is a training "
                f"checkpoint, save the model's state dict alone"
                if nested
                else ""
            )
            listed = ", ".join(map(repr, keys[:8])) + (", ..." if len(keys) > 8 else "")
            raise ModelFileError(
                f"{source} holds no nn.LSTM weights (no key ending in 'weight_ih_l0'; its keys "
                f"are {listed or 'none'}){hint}"
            )
        if len(prefixes) > 1:
            raise ModelFileError(
                f"{source} holds {len(prefixes)} recurrent layers, under the prefixes {shown}; "
                f"name the nn.LSTM with lstm=PREFIX"
            )
        return prefixes[0]
    wanted = wanted.rstrip(".")
    if wanted not in prefixes:
        raise ModelFileError(
            f"{source} has no LSTM under the prefix {wanted!r}; its recurrent layers are under "
            f"{shown or 'no prefix at all'}"
        )
    return wanted


def _lstm_layers(state, keys, prefix: str, source: str) -> list:
    """The FloatLSTM of each layer ``k`` of the nn.LSTM at ``prefix``."""
    where = f"{source}: the nn.LSTM {_show(prefix)}"
    found, problems = {}, []
    for short, key in _children(keys, prefix).items():
        match = _LSTM_KEY.match(short)
        if match is None:
            problems.append(f"{key!r} (not a key of nn.LSTM)")
            continue
        _, kind, depth, reverse = match.groups()
        if reverse:
            problems.append(f"{key!r} (bidirectional=True; only a forward LSTM is implemented)")
        elif kind == "hr":
            problems.append(f"{key!r} (proj_size > 0; only proj_size=0 is implemented)")
        found[short] = key
    if problems:
        raise ModelFileError(f"{where} is not supported: " + "; ".join(sorted(set(problems))))
    depths = sorted({int(_LSTM_KEY.match(s).group(3)) for s in found})
    if depths != list(range(len(depths))):
        raise ModelFileError(
            f"{where} has layers {depths}; nn.LSTM numbers them 0 to num_layers - 1: the "
            f"state dict is damaged"
        )

    def array(short: str) -> np.ndarray:
        if short not in found:
            raise ModelFileError(f"{source} lacks {found_key(short)!r}; it is damaged")
        value = np.asarray(state[found[short]])
        if not np.issubdtype(value.dtype, np.floating):
            raise ModelFileError(f"{source}: {found[short]!r} holds {value.dtype}, not floats")
        return value.astype(np.float64)

    def found_key(short: str) -> str:
        return f"{prefix}.{short}" if prefix else short

    layers = []
    for k in depths:
        w = array(f"weight_ih_l{k}")
        r = array(f"weight_hh_l{k}")
        if r.ndim != 2 or r.shape[0] != 4 * r.shape[1]:
            rows = r.shape[0] / r.shape[1] if r.ndim == 2 and r.shape[1] else None
            kind = {3: " (a GRU's shape)", 1: " (a plain RNN's shape)"}.get(rows, "")
            raise ModelFileError(
                f"{source}: {found_key(f'weight_hh_l{k}')!r} is {list(r.shape)}{kind}, but an "
                f"nn.LSTM has [4H, H]; lstmfx implements LSTM layers only"
            )
        biases = [s for s in (f"bias_ih_l{k}", f"bias_hh_l{k}") if s in found]
        if len(biases) == 1:
            raise ModelFileError(
                f"{source} has {found_key(biases[0])!r} without its pair; nn.LSTM has both "
                f"biases (bias=True) or neither (bias=False): the state dict is damaged"
            )
        if biases:
            b_ih, b_hh = array(biases[0]), array(biases[1])
            if b_ih.shape != b_hh.shape:
                raise ModelFileError(
                    f"{source}: {biases[0]} {list(b_ih.shape)} and {biases[1]} "
                    f"{list(b_hh.shape)} differ in shape"
                )
            b = b_ih + b_hh  # float64: the two biases are added before any quantization
        else:
            b = np.zeros(r.shape[0])
        layers.append(float_lstm(source, w=w, r=r, b=b, name=found_key(f"l{k}")))
    return layers


def _linear_prefixes(state, keys) -> list[str]:
    """Modules whose keys are those of an nn.Linear: ``weight`` [out, in], maybe ``bias``."""
    modules = sorted({k.rpartition(".")[0] for k in keys})
    return [pre for pre in modules if _is_linear(state, _children(keys, pre))]


def _is_linear(state, children: dict[str, str]) -> bool:
    if set(children) not in ({"weight"}, {"weight", "bias"}):
        return False
    w = np.asarray(state[children["weight"]])
    b = np.asarray(state[children["bias"]]) if "bias" in children else None
    return w.ndim == 2 and (b is None or b.shape == (w.shape[0],))


def _linear(state, keys, prefix: str, activation: str, linears, source) -> FloatDense:
    children = _children(keys, prefix) if prefix else {}
    if not _is_linear(state, children):
        what = (
            f"a module with the keys {', '.join(sorted(children))}"
            if children
            else "not in the state dict"
        )
        raise ModelFileError(
            f"{source}: head layer {prefix!r} is {what}, not an nn.Linear; its Linear "
            f"layers are {', '.join(map(repr, linears)) or 'none'}"
        )
    w = np.asarray(state[children["weight"]])
    if not np.issubdtype(w.dtype, np.floating):
        raise ModelFileError(f"{source}: {children['weight']!r} holds {w.dtype}, not floats")
    b = state[children["bias"]] if "bias" in children else np.zeros(w.shape[0])
    try:
        return FloatDense(w, b, activation, name=prefix)
    except ValueError as e:
        raise ModelFileError(f"{source}: head layer {prefix!r}: {e}") from e
