"""Installing lstmfx: the README's commands, the virtualenv, package data, the build cache."""

import fnmatch
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from model.examples import example, examples_dir
from sim.runner import default_build_root

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    block = re.search(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    return [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]


def test_readme_commands_use_the_virtualenv_that_install_sh_makes():
    demo, tests = readme_commands()[:2]
    assert demo.startswith("bash scripts/install.sh && .venv/bin/lstmfx demo")
    assert tests == "bash scripts/install.sh && .venv/bin/python -m pytest"
    script = (ROOT / "scripts" / "install.sh").read_text()
    assert "VENV=.venv" in script and '-m venv --clear "$VENV"' in script
    # Debian's python3 is externally managed (PEP 668): pip only ever runs inside .venv/
    assert re.findall(r"^\s*\S*python3? -m pip", script, re.M) == []
    for tool in ("g++", "make", "iverilog"):
        assert f"missing+=({tool})" in script
    assert f"TEST='{tests}'" in (ROOT / ".ci" / "run").read_text()
    assert "source .venv/bin/activate" in (ROOT / "README.md").read_text()


def test_build_cache_is_per_user_not_in_the_source_tree_or_site_packages(monkeypatch, tmp_path):
    monkeypatch.delenv("LSTMFX_SIM_BUILD", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_build_root() == tmp_path / "lstmfx" / "sim_build"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/not/allowed")  # the XDG spec ignores these
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_build_root() == tmp_path / "home" / ".cache" / "lstmfx" / "sim_build"
    monkeypatch.setenv("LSTMFX_SIM_BUILD", str(tmp_path / "mine"))
    assert default_build_root() == tmp_path / "mine"


def test_examples_are_found_from_the_package():
    assert (example("sunspots") / "config.toml").is_file()
    assert examples_dir() in (ROOT / "examples", ROOT / "model" / "example_data")
    with pytest.raises(FileNotFoundError, match="no example 'nope'.*sunspots"):
        example("nope")


def package_data_patterns() -> list[str]:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["package-dir"]["model.example_data"] == "examples"
    return setuptools["package-data"]["model.example_data"]


def test_every_example_file_is_package_data():
    """A new kind of file in examples/ needs its pattern in pyproject.toml, or pip drops it."""
    tracked = subprocess.run(
        ["git", "ls-files", "examples"], cwd=ROOT, capture_output=True, text=True
    ).stdout.split()
    if not tracked:
        pytest.skip("not a git checkout")
    patterns = package_data_patterns()
    for name in tracked:
        rel = name.removeprefix("examples/")
        # setuptools' "**/" also matches no folder at all
        ok = any(
            fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(rel, p.removeprefix("**/")) for p in patterns
        )
        assert ok, f"{name} is not shipped by pip install .: add its pattern to package-data"


@pytest.mark.skipif(
    os.environ.get("CI") != "true", reason="builds a wheel (about 10 s); CI runs it"
)
def test_a_wheel_holds_the_examples(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (wheel,) = tmp_path.glob("lstmfx-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for f in ("sunspots/config.toml", "sunspots/sunspots.onnx", "sunspots/x_test.npy"):
        assert f"model/example_data/{f}" in names
