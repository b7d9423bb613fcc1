"""Input sequences for the testbench, as integer codes of the network's input format.

- :func:`random_sequences`: normal inputs at a few scales, from a fraction of an LSB of
  the range up to the whole range (so some saturate ``x`` itself);
- :func:`adversarial_sequences`: the format's extremes, zeros, alternating signs, impulses,
  ramps, and constant inputs the model itself shows drive some layer's cell state to its
  limits;
- :func:`variable_lengths`: sequences of random lengths, including length 1, so ``tlast``
  lands on every kind of step.

Everything is drawn from a ``numpy.random.Generator`` the caller seeds.
"""

from __future__ import annotations

import numpy as np

from model.network import run_fixed
from model.qmodel import QuantizedNetwork

ADVERSARIAL_KINDS = (
    "max",
    "min",
    "zeros",
    "alternating",
    "extremes",
    "impulse",
    "ramp",
    "saturate_cell",
)


def _x_range(net: QuantizedNetwork) -> tuple[int, int]:
    f = net.in_fmt
    return f.code_min, f.code_max


def random_sequences(net: QuantizedNetwork, n: int, steps: int, rng) -> np.ndarray:
    """``n`` sequences of ``steps`` normal inputs; each sequence has its own scale."""
    lo, hi = _x_range(net)
    span = max(abs(lo), abs(hi), 1)
    scales = span * np.array([1 / 256, 1 / 32, 1 / 8, 1 / 2])[rng.integers(0, 4, size=n)]
    x = rng.normal(size=(n, steps, net.input_size)) * scales[:, None, None]
    return np.clip(np.rint(x), lo, hi).astype(np.int64)


def adversarial_sequences(net: QuantizedNetwork, n: int, steps: int, rng) -> np.ndarray:
    """``n`` sequences of ``steps`` inputs, cycling through :data:`ADVERSARIAL_KINDS`."""
    lo, hi = _x_range(net)
    i_size = net.input_size
    out = np.zeros((n, steps, i_size), dtype=np.int64)
    saturating = saturating_inputs(net, max(steps, 8), rng)
    t = np.arange(steps)[:, None]
    k = np.arange(i_size)[None, :]
    for s in range(n):
        kind = ADVERSARIAL_KINDS[s % len(ADVERSARIAL_KINDS)]
        if kind == "max":
            out[s] = hi
        elif kind == "min":
            out[s] = lo
        elif kind == "alternating":
            out[s] = np.where((t + k + s // len(ADVERSARIAL_KINDS)) % 2 == 0, hi, lo)
        elif kind == "extremes":
            choices = np.array([lo, lo + 1, -1, 0, 1, hi - 1, hi]).clip(lo, hi)
            out[s] = rng.choice(choices, size=(steps, i_size))
        elif kind == "impulse":
            out[s, rng.integers(0, steps)] = rng.choice([lo, hi], size=i_size)
        elif kind == "ramp":
            out[s] = np.rint(np.linspace(lo, hi, steps))[:, None]
        elif kind == "saturate_cell":
            out[s] = saturating[(s // len(ADVERSARIAL_KINDS)) % len(saturating)]
    return out


def saturating_inputs(net: QuantizedNetwork, steps: int, rng, candidates: int = 64) -> np.ndarray:
    """Constant input vectors that drive a cell state furthest, as the model shows.

    Tries sign patterns of the input at full and quarter scale, runs the bit-accurate
    network on each held for ``steps`` steps, and keeps the eight whose cell state (of
    whichever LSTM layer gets closest) reaches nearest to, or past, its format's limits.
    Returns ``[8, I]`` codes.
    """
    lo, hi = _x_range(net)
    i_size = net.input_size
    if 2**i_size <= candidates // 2:
        signs = ((np.arange(2**i_size)[:, None] >> np.arange(i_size)) & 1) * 2 - 1
    else:
        signs = rng.choice([-1, 1], size=(candidates // 2, i_size))
    full = np.where(signs > 0, hi, lo)
    quarter = np.where(signs > 0, hi // 4, -(-lo // 4))
    amps = np.concatenate([full, quarter]).astype(np.int64)
    x = np.repeat(amps[:, None, :], steps, axis=1).astype(np.int64)
    res = run_fixed(net, x, trace=True)
    reach = np.zeros(len(amps))
    for layer, r in zip(net.layers, res.layers):
        if layer.kind == "lstm":
            cell = layer.formats["cell"]
            reach = np.maximum(reach, np.abs(r.trace["c"]).max(axis=(1, 2)) / cell.max_abs_code)
    best = np.argsort(-reach, kind="stable")[:8]
    return amps[best]


def variable_lengths(
    net: QuantizedNetwork, n: int, max_steps: int, rng, *, adversarial_every: int = 4
) -> list[np.ndarray]:
    """``n`` sequences of random lengths 1..``max_steps`` (the first two of length 1, the
    next two of ``max_steps``); every few one is adversarial."""
    lengths = rng.integers(1, max_steps + 1, size=n)
    lengths[: min(n, 2)] = 1  # length-1 sequences: tlast on the first step
    lengths[2:4] = max_steps  # and two full ones, long enough to be cut by a reset
    out = []
    for s, t_len in enumerate(lengths):
        if adversarial_every and s % adversarial_every == adversarial_every - 1:
            out.append(adversarial_sequences(net, 1 + s % 8, int(t_len), rng)[-1])
        else:
            out.append(random_sequences(net, 1, int(t_len), rng)[0])
    return out


def expected_outputs(net: QuantizedNetwork, sequences: list[np.ndarray]):
    """The network's output codes for each sequence (``[T, n]``, or ``[n]`` for output
    "last"), and the overflow counts of every layer's quantization points (``lstm2.cell``)
    summed over all of them."""
    out: list = [None] * len(sequences)
    overflow: dict[str, int] = {}
    by_len: dict[int, list[int]] = {}
    for s, x in enumerate(sequences):
        by_len.setdefault(len(x), []).append(s)
    for _, idx in sorted(by_len.items()):
        res = run_fixed(net, np.stack([sequences[s] for s in idx]))
        for j, s in enumerate(idx):
            out[s] = res.y_codes[j]
        for k, v in res.overflow.items():
            overflow[k] = overflow.get(k, 0) + v
    return out, overflow
