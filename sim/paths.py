"""Where co-simulation files live: the repository, and the root of the build cache.

Its own module so that :mod:`sim.runner` and :mod:`sim.verilator_cache` both read it
without importing each other.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def default_build_root() -> Path:
    """Where builds live: $LSTMFX_SIM_BUILD, else the repository's ignored .sim_build/."""
    env = os.environ.get("LSTMFX_SIM_BUILD")
    if env:
        return Path(env).resolve()
    if os.access(REPO, os.W_OK):
        return REPO / ".sim_build"
    return Path.home() / ".cache" / "lstmfx" / "sim_build"
