"""Random formats, codes and PWL tables for the bit-accurate model's tests (LSTM layers and
networks): every Q and O mode, formats with I outside [1, W], and every kind of table."""

from __future__ import annotations

import numpy as np

from model.formats import O_MODES, Q_MODES, Format
from model.pwl import PwlTable, fit_table, hard_table, plan_table, uniform_table

# integer bits a tensor usually has (SPEC §2's table), from which a random format strays
TYPICAL_INT_BITS = {
    "x": (1, 6),
    "w": (0, 3),
    "r": (0, 3),
    "b": (1, 6),
    "p": (0, 3),
    "preact": (2, 6),
    "gate": (0, 2),
    "cand": (1, 2),
    "cell": (2, 6),
    "tanh_cell": (1, 2),
    "h": (1, 6),
}


def random_format(rng, name: str, *, widths=(3, 12)) -> Format:
    signed = name != "gate" or rng.random() < 0.2
    if name == "x" and rng.random() < 0.1:
        signed = False
    width = int(rng.integers(widths[0], widths[1] + 1))
    lo, hi = TYPICAL_INT_BITS[name]
    int_bits = int(rng.integers(lo, hi + 1))
    if rng.random() < 0.1:  # I outside [1, W]: F > W or F < 0, as ac_fixed allows
        int_bits = int(rng.choice([-2, -1, width + 1, width + 3]))
    return Format(signed, width, int_bits, str(rng.choice(Q_MODES)), str(rng.choice(O_MODES)))


def random_codes(rng, fmt: Format, shape, *, spread: float | None = None) -> np.ndarray:
    """Codes spread over a random fraction of the format's range (1.0: all of it)."""
    spread = spread if spread is not None else float(rng.choice([0.05, 0.2, 0.5, 1.0]))
    lo = max(fmt.code_min, int(-spread * fmt.max_abs_code) - 1)
    hi = min(fmt.code_max, int(spread * fmt.max_abs_code) + 1)
    return rng.integers(lo, hi + 1, size=shape, dtype=np.int64)


def coef_format(rng) -> Format:
    width = int(rng.integers(6, 20))
    return Format(True, width, int(rng.integers(1, 4)), "RND", "SAT")


def random_table(rng, func: str, in_fmt: Format, out_fmt: Format) -> PwlTable:
    """A table of one of the kinds SPEC §3 allows; random integers when a builder declines."""
    kind = str(rng.choice(["uniform", "lookup", "nonuniform", "random", "plan", "hard"]))
    ca, cb = coef_format(rng), coef_format(rng)
    lo, hi = in_fmt.code_min, in_fmt.code_max
    try:
        if kind in ("uniform", "lookup"):
            return uniform_table(
                func,
                in_fmt,
                out_fmt,
                range_log2=int(rng.integers(0, 4)),
                segments=int(2 ** rng.integers(0, 5)),
                fit=str(rng.choice(["minimax", "lsq", "interp"])),
                lookup=kind == "lookup",
                intercept_format=ca,
                slope_format=cb,
            )
        if kind == "nonuniform":
            k = int(rng.integers(1, min(8, hi - lo + 1) + 1))
            bps = np.sort(rng.choice(np.arange(lo, hi + 1), size=k, replace=False))
            x_hi = int(rng.integers(bps[-1], hi + 1))
            return fit_table(func, in_fmt, out_fmt, bps, x_hi, intercept_format=ca, slope_format=cb)
        if kind in ("plan", "hard"):
            build = plan_table if kind == "plan" else hard_table
            return build(func, in_fmt, out_fmt, intercept_format=ca, slope_format=cb)
    except ValueError:
        pass  # the format is too coarse for this builder: fall through to random integers
    k = int(rng.integers(1, min(6, hi - lo + 1) + 1))
    bps = np.sort(rng.choice(np.arange(lo, hi + 1), size=k, replace=False))
    return PwlTable(
        in_fmt,
        out_fmt,
        ca,
        cb,
        bps,
        int(rng.integers(bps[-1], hi + 1)),
        random_codes(rng, ca, k),
        random_codes(rng, cb, k),
        info={"kind": "random"},
    )
