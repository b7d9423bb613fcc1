"""Writes tiny.npz: a small LSTM (I=2, H=4, no peepholes) with fixed random weights.

A stand-in built-in example until a trained one replaces it; run from this folder.
"""

import numpy as np

rng = np.random.default_rng(2026)
H, N_IN = 4, 2
np.savez(
    "tiny.npz",
    w=rng.normal(scale=0.6, size=(4 * H, N_IN)),
    r=rng.normal(scale=0.4, size=(4 * H, H)),
    b=rng.normal(scale=0.2, size=4 * H),
)
