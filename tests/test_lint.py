"""The code base stays ruff clean (pyproject.toml [tool.ruff])."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("args", [["check", "."], ["format", "--check", "."]])
def test_ruff(args):
    # ruff of this interpreter's environment: .venv/bin/python -m pytest needs no PATH
    out = subprocess.run(
        [sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True
    )
    assert "No module named ruff" not in out.stderr, "ruff is missing: pip install -e '.[test]'"
    assert out.returncode == 0, out.stdout + out.stderr
