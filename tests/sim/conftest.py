"""Configurations the co-simulation tests run, and a tally of what they simulated."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model.config import parse_config

NARROW = {
    "x": "fixed<8,3,TRN,WRAP>",
    "w": "fixed<8,2,TRN,WRAP>",
    "r": "fixed<8,2,TRN,WRAP>",
    "b": "fixed<8,3,TRN,WRAP>",
    "preact": "fixed<10,4,TRN,WRAP>",
    "gate": "ufixed<8,1,TRN,WRAP>",
    "cand": "fixed<8,1,TRN,WRAP>",
    "cell": "fixed<9,2,TRN,WRAP>",
    "tanh_cell": "fixed<8,1,TRN,WRAP>",
    "h": "fixed<8,3,TRN,WRAP>",
}

#: name -> (input size, hidden size, peephole, output, lanes, formats)
CONFIGS = {
    # small, no peepholes, one MAC lane (P = 1), typical 16-bit formats
    "small": (3, 4, False, "sequence", 1, {}),
    # peepholes, P = 4, a cell format the adversarial inputs saturate
    "peephole": (2, 4, True, "sequence", 4, {"cell": "fixed<16,3,RND,SAT>"}),
    # narrow formats, TRN and WRAP everywhere, P = 2
    "narrow": (2, 3, False, "sequence", 2, NARROW),
    # output "last", P = 8: two cell-update units side by side
    "last": (
        2,
        8,
        False,
        "last",
        8,
        {"cell": "fixed<16,2,RND,SAT_SYM>", "h": "fixed<16,4,RND_CONV,SAT>"},
    ),
}


def make_config(name: str, folder: Path):
    """The config of case ``name``: fixed seeded weights, so the same Verilog every run."""
    i_size, h, peephole, output, lanes, formats = CONFIGS[name]
    rng = np.random.default_rng(sum(map(ord, name)))
    b = rng.normal(scale=0.3, size=4 * h)
    b[h : 2 * h] += 2.0  # forget gates mostly open: the cell state can run to its limits
    arrays = {
        "w": rng.normal(scale=0.7, size=(4 * h, i_size)),
        "r": rng.normal(scale=0.4, size=(4 * h, h)),
        "b": b,
    }
    if peephole:
        arrays["p"] = rng.normal(scale=0.3, size=3 * h)
    np.savez(folder / f"{name}.npz", **arrays)
    data = {
        "name": f"sim_{name}",
        "model": f"{name}.npz",
        "output": output,
        "formats": dict(formats),
        "activations": {"kind": "uniform", "segments": 32},
        "hardware": {"lanes": lanes},
    }
    return parse_config(data, base=folder)


@pytest.fixture(scope="session")
def configs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sim_configs")
    return {name: make_config(name, folder) for name in CONFIGS}


#: (sim, case, random + adversarial sequences, mismatches) of every co-simulation run
TALLY: list[tuple[str, str, int, int]] = []


def pytest_terminal_summary(terminalreporter):
    if not TALLY:
        return
    by_sim: dict[str, list[int]] = {}
    for sim, _, n, bad in TALLY:
        s = by_sim.setdefault(sim, [0, 0])
        s[0] += n
        s[1] += bad
    parts = [f"{sim} {n:,} ({bad} mismatches)" for sim, (n, bad) in sorted(by_sim.items())]
    total = sum(n for n, _ in by_sim.values())
    terminalreporter.write_line(
        f"co-simulation: {total:,} random and adversarial sequences against the model: "
        + ", ".join(parts)
    )
