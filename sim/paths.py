"""Where co-simulation files live: the repository, and the root of the build cache.

Its own module so that :mod:`sim.runner` and :mod:`sim.verilator_cache` both read it
without importing each other.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def default_build_root() -> Path:
    """Where builds live: $LSTMFX_SIM_BUILD, else the user's cache folder.

    That is ``$XDG_CACHE_HOME/lstmfx/sim_build`` (``~/.cache/lstmfx/sim_build`` when the
    variable is unset or not an absolute path, as the XDG spec says): never site-packages
    or the source tree, and one cache for every checkout and install of this user.
    """
    env = os.environ.get("LSTMFX_SIM_BUILD")
    if env:
        return Path(env).expanduser().resolve()
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    cache = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"
    return cache / "lstmfx" / "sim_build"
