"""The cocotb test module: runs the :class:`~sim.job.Job` named by ``$LSTMFX_SIM_JOB``.

Loaded by the simulator (cocotb's ``COCOTB_TEST_MODULES``), never by pytest directly.
It writes ``results.json`` next to the job, also when the core stalls, and fails the
cocotb test on any mismatch, protocol violation or stall.
"""

from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path

import cocotb

from model.qmodel import QuantizedNetwork
from sim.diagnose import diagnose
from sim.drivers import pause_generator
from sim.job import JOB_ENV, load_phase
from sim.tb import TB, Stalled, stderr_progress


def _pause_seeds(seed: int, k: int) -> tuple[int, int]:
    return 1000 * seed + 2 * k, 1000 * seed + 2 * k + 1


@cocotb.test()
async def run_job(dut):
    path = Path(os.environ[JOB_ENV])
    folder = path.parent
    job = json.loads(path.read_text())
    net = QuantizedNetwork.read_manifest(folder / job["manifest"])
    seed = int(job.get("seed", 0))
    tb = TB(
        dut,
        net,
        seed=seed,
        progress=stderr_progress if job.get("progress") else None,
        label=job.get("label", ""),
    )
    results: dict = {"phases": [], "stalled": None, "diagnosis": None}
    t0 = time.perf_counter()
    failing = None
    try:
        await tb.start()
        for k, meta in enumerate(job["phases"]):
            xs, h = load_phase(folder, meta)
            s_idle, s_bp = _pause_seeds(seed, k)
            pauses = (
                pause_generator(meta["idle"], seed=s_idle),
                pause_generator(meta["backpressure"], seed=s_bp),
            )
            before = tb.scoreboard.mismatched
            r = await tb.run_phase(meta, xs, h, pauses=pauses)
            r.update(idle=meta["idle"], backpressure=meta["backpressure"])
            r["overflow"] = meta.get("overflow", {})
            results["phases"].append(r)
            if failing is None and tb.scoreboard.mismatched > before:
                failing = (k, meta, xs)
    except Stalled as e:
        results["stalled"] = str(e)
    finally:
        results["seconds"] = time.perf_counter() - t0
        results["cycles"] = tb.cycle
        # this process is the simulator with cocotb's Python inside; ru_maxrss is in KiB
        results["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        _collect(tb, results)
        (folder / "results.json").write_text(json.dumps(results, indent=1))
    if failing is not None and job.get("diagnose", True):
        k, meta, xs = failing
        first = next(m for m in tb.scoreboard.mismatches if m.get("phase") == meta["name"])
        results["diagnosis"] = await diagnose(tb, first, xs, meta, _pause_seeds(seed, k)[0])
        (folder / "results.json").write_text(json.dumps(results, indent=1))
    assert results["stalled"] is None, results["stalled"]
    assert not tb.scoreboard.mismatched, f"{tb.scoreboard.mismatched} output beats differ"
    assert not results["protocol"], results["protocol"]
    assert not results["interface"], results["interface"]


def _collect(tb: TB, results: dict) -> None:
    board = tb.scoreboard
    results["mismatched_beats"] = board.mismatched
    results["checked_beats"] = board.checked
    results["unreceived_beats"] = len(board.pending)
    results["mismatches"] = board.mismatches
    results["protocol"] = list(tb.sink.violations)
    results["interface"] = list(tb.interface)
    results["timing"] = {k: {str(a): b for a, b in v.items()} for k, v in tb.timing.items()}
