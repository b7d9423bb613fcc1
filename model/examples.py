"""Where the example folders are: the repository's ``examples/`` or the installed copy.

A source checkout (or an editable install) reads ``examples/`` beside ``model/``. A
``pip install .`` that is not editable has no source tree: pyproject.toml installs the same
folders as the package data ``model/example_data/``.
"""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent


def examples_dir() -> Path:
    """The folder holding ``<name>/config.toml`` for every example."""
    installed = _HERE / "example_data"
    if installed.is_dir():
        return installed
    checkout = _HERE.parent / "examples"
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(
        f"no examples: neither {installed} (a pip install) nor {checkout} (a source checkout) "
        "exists; reinstall lstmfx (pip install .) or run from its repository"
    )


def example(name: str) -> Path:
    """The folder of one example (``sunspots``, ``digits``, ``tiny``, ...)."""
    root = examples_dir()
    folder = root / name
    if not (folder / "config.toml").is_file():
        names = sorted(p.name for p in root.iterdir() if (p / "config.toml").is_file())
        raise FileNotFoundError(f"no example {name!r} in {root}; there are {', '.join(names)}")
    return folder
