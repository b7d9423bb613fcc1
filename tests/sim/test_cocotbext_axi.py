"""An independent AXI4-Stream check: cocotbext-axi's source and sink against the model.

The rest of the co-simulation uses the project's own drivers (``sim/drivers.py``) and
bench (``sim/tb.py``); a shared misreading of SPEC §5 there would pass unseen. Here
cocotbext-axi, code nobody on the project wrote, drives and receives the generated core
of ``examples/tiny`` (output ``"sequence"``, and the same network with ``"last"``): random
sequences of random length, its own pause generators for idle gaps and back-pressure,
and every output frame (data, and ``tlast`` through where frames end) compared with
``model.network.run_fixed``. The cocotb side is ``axis_ext_tb.py`` next to this file.

Builds use ``sim.runner`` (cached by the Verilog's hash in the build cache), in
their own directories so this never rebuilds a directory another run is using.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from model.config import load_config
from model.network import run_fixed
from sim import runner

HERE = Path(__file__).resolve().parent
TINY = runner.REPO / "examples" / "tiny" / "config.toml"
JOB_ENV = "LSTMFX_AXIS_EXT_JOB"
#: sequences per run, by simulator and output mode; lengths are 1..MAX_STEPS
PLAN = {
    "verilator": {"sequence": 64, "last": 40},
    "icarus": {"sequence": 24, "last": 16},
}
MAX_STEPS = 16


@pytest.fixture(scope="module")
def tiny():
    return load_config(TINY)


def draw_sequences(net, n: int, rng) -> list[np.ndarray]:
    """``n`` input-code sequences [T, I], T in 1..MAX_STEPS (the first two of length 1).

    Each has its own kind: uniform over the whole code range (saturates everything), normal
    at 1/8 or 1/64 of the range, or the range's extremes and their neighbours.
    """
    f = net.in_fmt
    lo, hi = f.code_min, f.code_max
    lengths = rng.integers(1, MAX_STEPS + 1, size=n)
    lengths[:2] = 1
    out = []
    for s, t_len in enumerate(lengths):
        shape = (int(t_len), net.input_size)
        kind = s % 4
        if kind == 0:
            x = rng.integers(lo, hi + 1, size=shape)
        elif kind in (1, 2):
            x = np.rint(rng.normal(scale=hi / (8 if kind == 1 else 64), size=shape))
        else:
            x = rng.choice([lo, lo + 1, -1, 0, 1, hi - 1, hi], size=shape)
        out.append(np.clip(x, lo, hi).astype(np.int64))
    return out


def run_case(net, sim: str, n: int, seed: int) -> dict:
    from hdl.generate import generate

    root = runner.default_build_root()
    case = f"axis_ext_{net.name}"
    v_path, _ = generate(net, root / f"{case}-design")
    b = runner.build(v_path, net.name, sim=sim, case=case, build_root=root)
    rng = np.random.default_rng(seed)
    xs = draw_sequences(net, n, rng)
    ys = [run_fixed(net, x[None]).y_codes[0] for x in xs]
    work = root / f"{case}-{sim}-run"
    work.mkdir(parents=True, exist_ok=True)
    job = {
        "x_width": net.in_fmt.width,
        "input_size": net.input_size,
        "h_width": net.out_fmt.width,
        "hidden_size": net.output_size,
        "output": net.output,
        "seed": seed,
        "x": [x.tolist() for x in xs],
        "h": [y.tolist() for y in ys],
    }
    path = work / "axis_ext_job.json"
    path.write_text(json.dumps(job))
    res_path = work / "axis_ext_results.json"
    res_path.unlink(missing_ok=True)
    # the test module lives here, not in sim/ (cocotbext-axi is a test-only dependency);
    # cocotb's runner hands the simulator this process's sys.path as its PYTHONPATH
    if str(HERE) not in sys.path:
        sys.path.append(str(HERE))
    xml = runner.run_test(
        b,
        "axis_ext_tb",
        test_dir=work,
        env={JOB_ENV: str(path)},
        seed=seed,
        log_file=work / "sim.log",
    )
    from cocotb_tools.runner import get_results

    total, failed = get_results(xml)
    assert res_path.is_file(), f"no results; see {work / 'sim.log'}"
    res = json.loads(res_path.read_text())
    res.update(tests=total, failed=failed, expected_beats=sum(len(x) for x in xs))
    if net.output == "last":
        res["expected_beats"] = n
    return res


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
@pytest.mark.parametrize("output", ["sequence", "last"])
def test_cocotbext_axi_stream(tiny, output, sim):
    net = tiny.network
    if output == "last":
        net = dataclasses.replace(net, output="last", name="tiny_last")
    n = PLAN[sim][output]
    res = run_case(net, sim, n, seed=11 + len(output))
    assert res["stalled"] is None, res["stalled"]
    assert not res["mismatches"], res["mismatches"][:3]
    assert res["tests"] == 1 and res["failed"] == 0, res
    assert res["sequences"] == n
    assert res["beats"] == res["expected_beats"] > 0
    assert res["extra_frames"] == 0 and not res["sink_active"] and res["source_idle"]
    # the pause generators did stall both sides
    assert res["stall_cycles"]["backpressure"] > 0 and res["stall_cycles"]["input_idle"] > 0
