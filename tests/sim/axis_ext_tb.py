"""cocotb test module: the generated core driven by cocotbext-axi's AXI4-Stream models.

Loaded by the simulator for ``test_cocotbext_axi.py`` (never collected by pytest). Nothing
of ``sim/``'s own bench is used here: :class:`AxiStreamSource` drives ``s_axis_*``,
:class:`AxiStreamSink` takes ``m_axis_*``, both with cocotbext-axi's ``set_pause_generator``
for idle gaps and back-pressure. Each byte lane is one vector element (``byte_size`` = the
element width, ``byte_lanes`` = the element count), so cocotbext-axi itself packs element
``k`` into bits ``[k*W +: W]`` (SPEC §5). One input frame is one sequence; each output
frame, which cocotbext-axi ends at ``tlast``, must be exactly that sequence's outputs.

The job (``$LSTMFX_AXIS_EXT_JOB``, JSON) holds the widths, the input codes and the
expected ``h`` codes computed by the caller with ``model.lstm.run_fixed``; this writes
``axis_ext_results.json`` next to it.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, SimTimeoutError, with_timeout
from cocotb.utils import get_sim_time
from cocotbext.axi import AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource

JOB_ENV = "LSTMFX_AXIS_EXT_JOB"
CLOCK_NS = 10


def blocky_pauses(rng: random.Random, probabilities, longest: int) -> Iterator[bool]:
    """Pause (True) per cycle, in blocks of 1..``longest`` cycles, each block with its own
    probability: 0 gives back-to-back runs, 1 a stall of the whole block."""

    def gen():
        while True:
            p = rng.choice(probabilities)
            for _ in range(rng.randint(1, longest)):
                yield rng.random() < p

    return gen()


async def count_stalls(dut, counts: dict) -> None:
    """Per cycle: output beats held by back-pressure, and input idle while the core waits."""
    edge = RisingEdge(dut.clk)
    while True:
        await edge
        if dut.m_axis_tvalid.value and not dut.m_axis_tready.value:
            counts["backpressure"] += 1
        if dut.s_axis_tready.value and not dut.s_axis_tvalid.value:
            counts["input_idle"] += 1


def _signed(code: int, width: int) -> int:
    return code - (1 << width) if code >> (width - 1) else code


def compare(got: list[int], rows: list[list[int]], n_h: int) -> dict | None:
    """None if the frame's elements equal ``rows`` (beat by beat), else the first beat that
    differs; a frame of the wrong length (tlast early or late) differs at its end."""
    beats = [got[t * n_h : (t + 1) * n_h] for t in range(len(got) // n_h)]
    if beats == rows and len(got) == len(rows) * n_h:
        return None
    t = next((t for t, (g, w) in enumerate(zip(beats, rows)) if g != w), min(len(beats), len(rows)))
    return {
        "beats_expected": len(rows),
        "beats_got": len(got) / n_h,
        "first_bad_beat": t,
        "got": beats[t] if t < len(beats) else None,
        "expected": rows[t] if t < len(rows) else None,
    }


@cocotb.test()
async def axis_ext_check(dut):
    path = Path(os.environ[JOB_ENV])
    job = json.loads(path.read_text())
    w_x, n_x = job["x_width"], job["input_size"]
    w_h, n_h = job["h_width"], job["hidden_size"]
    last_only = job["output"] == "last"
    rng = random.Random(job["seed"])

    Clock(dut.clk, CLOCK_NS, unit="ns").start(start_high=False)
    source = AxiStreamSource(
        AxiStreamBus.from_prefix(dut, "s_axis"),
        dut.clk,
        dut.rst,
        reset_active_level=True,
        byte_size=w_x,
    )
    sink = AxiStreamSink(
        AxiStreamBus.from_prefix(dut, "m_axis"),
        dut.clk,
        dut.rst,
        reset_active_level=True,
        byte_size=w_h,
    )
    assert (source.byte_lanes, sink.byte_lanes) == (n_x, n_h), "port widths differ from SPEC §5"
    dut.rst.value = 1
    await ClockCycles(dut.clk, 5)
    dut.rst.value = 0
    await RisingEdge(dut.clk)

    stalls = {"backpressure": 0, "input_idle": 0}
    cocotb.start_soon(count_stalls(dut, stalls))
    # a step takes a few dozen cycles: input gaps must outlast one to show at the core
    source.set_pause_generator(blocky_pauses(rng, [0.0, 0.0, 0.5, 0.95, 1.0], 160))
    sink.set_pause_generator(blocky_pauses(rng, [0.0, 0.3, 0.6, 0.9, 1.0], 40))

    mask_x = (1 << w_x) - 1
    for seq in job["x"]:
        # row t = x_t; the frame's flat tdata is lane-major within a beat, as the bus packs it
        flat = [v & mask_x for row in seq for v in row]
        source.send_nowait(AxiStreamFrame(flat))

    mismatches: list[dict] = []
    beats = 0
    stalled = None
    for s, (seq, want) in enumerate(zip(job["x"], job["h"])):
        rows = [want] if last_only else want
        # generous: a step is a few dozen cycles, a stall at most a block of 160
        limit = 4000 + 600 * len(seq)
        try:
            frame = await with_timeout(sink.recv(), limit * CLOCK_NS, "ns")
        except SimTimeoutError:
            stalled = f"sequence {s}: no output frame ended (tlast) within {limit} cycles"
            break
        got = [_signed(v, w_h) for v in frame.tdata]
        beats += len(got) // n_h
        bad = compare(got, rows, n_h)
        if bad is not None:
            mismatches.append({"sequence": s, "steps": len(seq), **bad})
    # nothing more may come out: no extra beat, no unterminated frame
    counted = dict(stalls)
    source.clear_pause_generator()
    sink.clear_pause_generator()
    await ClockCycles(dut.clk, 200)
    extra = sink.count()
    results = {
        "sequences": len(job["x"]),
        "steps": sum(len(x) for x in job["x"]),
        "beats": beats,
        "mismatches": mismatches,
        "stalled": stalled,
        "extra_frames": extra,
        "stall_cycles": counted,
        "sink_active": bool(sink.active),
        "source_idle": bool(source.idle()),
        "sim_time_ns": int(get_sim_time("ns")),
    }
    (path.parent / "axis_ext_results.json").write_text(json.dumps(results, indent=1))
    assert stalled is None, stalled
    assert not mismatches, f"{len(mismatches)} sequence(s) differ; first: {mismatches[0]}"
    assert extra == 0 and not sink.active, "output beats after the last expected one"
    assert source.idle(), "the core did not take every input beat"
