"""cocotb test module: run-time weights (SPEC §5b) through cocotbext-axi's AxiLiteMaster.

Loaded by the simulator for ``test_axil.py`` (never collected by pytest). cocotbext-axi
drives ``s_axil_*`` (:class:`AxiLiteMaster`), ``s_axis_*`` (:class:`AxiStreamSource`) and
takes ``m_axis_*`` (:class:`AxiStreamSink`). In order:

1. sequences with the design's initial weights match the first model (the manifest's);
2. every word of a second model is written (each answered OKAY), then ``rst`` is pulsed
   (it must not change them);
3. sequences match the second model bit for bit, while reads of random weights run on the
   bus during them (each returns the second model's word);
4. every word reads back as the second model's;
5. writes outside the map (a gap, past the end, unaligned) and with a partial ``wstrb``,
   and a read outside the map, answer SLVERR and change nothing.

The job (``$LSTMFX_AXIL_JOB``, JSON) holds the widths, the input codes, both models'
expected outputs and their (address, word) lists; this writes ``axil_results.json``.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import cocotb
from axis_ext_tb import _signed, compare
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, SimTimeoutError, with_timeout
from cocotb.utils import get_sim_time
from cocotbext.axi import (
    AxiLiteBus,
    AxiLiteMaster,
    AxiStreamBus,
    AxiStreamFrame,
    AxiStreamSink,
    AxiStreamSource,
)

JOB_ENV = "LSTMFX_AXIL_JOB"
CLOCK_NS = 10
OKAY, SLVERR = 0, 2


def word_bytes(word: int) -> bytes:
    return int(word & 0xFFFFFFFF).to_bytes(4, "little")


async def run_sequences(source, sink, xs, ys, n_out, w_out, w_in, label, mismatches):
    """Send every sequence, then take one frame per sequence and compare it."""
    mask = (1 << w_in) - 1
    for seq in xs:
        source.send_nowait(AxiStreamFrame([v & mask for row in seq for v in row]))
    for s, (seq, want) in enumerate(zip(xs, ys)):
        limit = 4000 + 600 * len(seq)
        try:
            frame = await with_timeout(sink.recv(), limit * CLOCK_NS, "ns")
        except SimTimeoutError:
            return f"{label} sequence {s}: no frame within {limit} cycles"
        got = [_signed(v, w_out) for v in frame.tdata]
        bad = compare(got, want, n_out)
        if bad is not None:
            mismatches.append({"phase": label, "sequence": s, **bad})
    return None


@cocotb.test()
async def axil_check(dut):
    path = Path(os.environ[JOB_ENV])
    job = json.loads(path.read_text())
    rng = random.Random(job["seed"])
    w_in, w_out, n_out = job["x_width"], job["y_width"], job["output_size"]

    Clock(dut.clk, CLOCK_NS, unit="ns").start(start_high=False)
    axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk, dut.rst)
    source = AxiStreamSource(
        AxiStreamBus.from_prefix(dut, "s_axis"), dut.clk, dut.rst, byte_size=w_in
    )
    sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis"), dut.clk, dut.rst, byte_size=w_out)
    dut.rst.value = 1
    await ClockCycles(dut.clk, 5)
    dut.rst.value = 0
    await RisingEdge(dut.clk)

    res = {"mismatches": [], "stalled": None, "bad_resp": [], "bad_read": []}
    words1 = [tuple(p) for p in job["words1"]]
    words2 = [tuple(p) for p in job["words2"]]

    # 1. the initial weights are the first model's
    res["stalled"] = await run_sequences(
        source, sink, job["x"][:2], job["y1"][:2], n_out, w_out, w_in, "initial", res["mismatches"]
    )
    for addr, want in rng.sample(words1, min(len(words1), job["initial_reads"])):
        r = await axil.read(addr, 4)
        if int(r.resp) != OKAY or int.from_bytes(r.data, "little") != want:
            res["bad_read"].append(["initial", addr, int.from_bytes(r.data, "little"), want])

    # 2. write the second model, then a reset that must not touch the weights
    t0 = get_sim_time("ns")
    for addr, word in words2:
        w = await axil.write(addr, word_bytes(word))
        if int(w.resp) != OKAY:
            res["bad_resp"].append(["write", addr, int(w.resp)])
    res["write_cycles"] = int((get_sim_time("ns") - t0) / CLOCK_NS)
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await RisingEdge(dut.clk)

    # 3. the second model's outputs, with reads on the bus while sequences run
    reads_during = {"count": 0, "in_flight": 0}

    async def reader():
        while True:
            addr, want = rng.choice(words2)
            busy = not source.idle() or sink.active or bool(dut.m_axis_tvalid.value)
            r = await axil.read(addr, 4)
            got = int.from_bytes(r.data, "little")
            if int(r.resp) != OKAY or got != want:
                res["bad_read"].append(["during", addr, got, want])
            reads_during["count"] += 1
            reads_during["in_flight"] += int(busy)

    task = cocotb.start_soon(reader())
    stalled = await run_sequences(
        source, sink, job["x"], job["y2"], n_out, w_out, w_in, "second", res["mismatches"]
    )
    task.cancel()
    await ClockCycles(dut.clk, 200)  # a read the cancel cut short completes on the bus
    res["stalled"] = res["stalled"] or stalled
    res["reads_during"] = reads_during

    # 4. every word reads back
    t0 = get_sim_time("ns")
    for addr, want in words2:
        r = await axil.read(addr, 4)
        got = int.from_bytes(r.data, "little")
        if int(r.resp) != OKAY or got != want:
            res["bad_read"].append(["readback", addr, got, want])
    res["read_cycles"] = int((get_sim_time("ns") - t0) / CLOCK_NS)

    # 5. SLVERR: outside the map, unaligned, partial strobes; nothing changes
    slverr = []
    for addr in job["outside"]:
        w = await axil.write(addr, word_bytes(0x5A5A5A5A))
        r = await axil.read(addr, 4)
        slverr.append(["outside", addr, int(w.resp), int(r.resp), int.from_bytes(r.data, "little")])
    for addr, _ in job["partial"]:
        w = await axil.write(addr, b"\x5a\x5a")  # wstrb 0b0011
        slverr.append(["partial", addr, int(w.resp), SLVERR, 0])
        w = await axil.write(addr + 2, b"\x5a\x5a")  # unaligned, wstrb 0b1100
        slverr.append(["unaligned", addr + 2, int(w.resp), SLVERR, 0])
    res["slverr"] = slverr
    for addr, want in job["partial"]:
        r = await axil.read(addr, 4)
        got = int.from_bytes(r.data, "little")
        if int(r.resp) != OKAY or got != want:
            res["bad_read"].append(["after_slverr", addr, got, want])
    stalled = await run_sequences(
        source, sink, job["x"][:2], job["y2"][:2], n_out, w_out, w_in, "after", res["mismatches"]
    )
    res["stalled"] = res["stalled"] or stalled
    await ClockCycles(dut.clk, 100)
    res["extra_frames"] = sink.count()
    res["sequences"] = len(job["x"]) + 4
    res["writes"] = len(words2)
    (path.parent / "axil_results.json").write_text(json.dumps(res, indent=1))
    assert res["stalled"] is None, res["stalled"]
    assert not res["mismatches"], res["mismatches"][0]
    assert not res["bad_resp"] and not res["bad_read"], (res["bad_resp"][:3], res["bad_read"][:3])
