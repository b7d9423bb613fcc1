"""A small random network (LSTM layers, then dense layers) and a config of narrow formats for
the report, sweep and tune tests, without a model file: the float network is built in code
and ``load_model`` is replaced while the config is read."""

from __future__ import annotations

import numpy as np

from model import config as config_module
from model.lstm import FloatLSTM
from model.network import FloatDense, FloatNetwork

#: formats narrow enough to overflow and round visibly, and quick to build tables for
SMALL_FORMATS = {
    "x": "fixed<8,2,RND,SAT>",
    "w": "fixed<8,2,RND,SAT>",
    "r": "fixed<8,2,RND,SAT>",
    "b": "fixed<8,2,RND,SAT>",
    "preact": "fixed<9,3,RND,SAT>",
    "gate": "ufixed<8,0,RND,SAT>",
    "cand": "fixed<8,1,RND,SAT>",
    "cell": "fixed<9,2,RND,SAT>",
    "tanh_cell": "fixed<8,1,RND,SAT>",
    "h": "fixed<8,1,RND,SAT>",
}
DENSE_FORMATS = {"w": "fixed<8,2,RND,SAT>", "b": "fixed<8,2,RND,SAT>", "out": "fixed<10,3,RND,SAT>"}


def float_network(*, i=2, hidden=(3, 3), dense=((2, "relu"), (1, "linear")), seed=0):
    rng = np.random.default_rng(seed)
    layers, n_in = [], i
    for h in hidden:
        layers.append(
            FloatLSTM(
                w=rng.normal(scale=1.0, size=(4 * h, n_in)),
                r=rng.normal(scale=0.8, size=(4 * h, h)),
                b=rng.normal(scale=0.5, size=4 * h),
            )
        )
        n_in = h
    for n_out, act in dense:
        layers.append(
            FloatDense(rng.normal(scale=0.8, size=(n_out, n_in)), rng.normal(size=n_out), act)
        )
        n_in = n_out
    return FloatNetwork(layers, name="small")


def write_config(tmp_path, fnet, *, extra: str = "", name="small", output="sequence"):
    """A config file for ``fnet`` (a stand-in model file beside it); returns its path. Read
    it inside :func:`serving` so that its model is ``fnet``."""
    (tmp_path / "m.bin").write_bytes(repr(fnet).encode())
    lines = [f'name = "{name}"', 'model = "m.bin"', f'output = "{output}"', "[formats]"]
    lines += [f'{k} = "{v}"' for k, v in SMALL_FORMATS.items()]
    lines += ["[activations]", 'kind = "uniform"', "segments = 16"]
    for lname in fnet.layer_names:
        if lname.startswith("dense"):
            lines.append(f"[{lname}.formats]")
            lines += [f'{k} = "{v}"' for k, v in DENSE_FORMATS.items()]
    path = tmp_path / "c.toml"
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


def serve(monkeypatch, fnet) -> None:
    """Make every config read from now on load ``fnet`` as its model."""
    monkeypatch.setattr(config_module, "load_model", lambda path, **kw: fnet)


def load(path, fnet):
    """The config at ``path`` with ``fnet`` as its model."""
    cfg = config_module.load_config(path)
    cfg.__dict__["float_model"] = fnet
    return cfg
