"""The gate MAC lane: exact sums of its rows, back to back."""

import numpy as np
import pytest
from amaranth.sim import Simulator
from hdl_models import ODD_FORMATS, make_layer

from hdl import mac
from hdl.mac import GateMacLane, preact_sum


def naive_sum(qm, row, x, h):
    """The exact sum W x + R h + b of one row, SPEC §2, in Python integers (the peephole
    terms are the cell update's)."""
    f = qm.formats
    frac, _ = preact_sum(qm)
    acc = sum(int(a) * int(b) for a, b in zip(qm.w[row], x)) << (frac - f["w"].frac - f["x"].frac)
    acc += sum(int(a) * int(b) for a, b in zip(qm.r[row], h)) << (frac - f["r"].frac - f["h"].frac)
    acc += int(qm.b[row]) << (frac - f["b"].frac)
    return acc


@pytest.mark.parametrize("bank_words", [2048, 8], ids=["one_rom", "pieces"])
@pytest.mark.parametrize("peephole", [False, True], ids=["plain", "peephole"])
def test_rows_back_to_back(peephole, bank_words, monkeypatch):
    """Rows back to back; a bank deeper than BANK_WORDS (made small here) is read from
    several ROMs with the same result and latency."""
    monkeypatch.setattr(mac, "BANK_WORDS", bank_words)
    qm = make_layer(3, 4, peephole=peephole, formats=ODD_FORMATS, scale=3.0, seed=2)
    rows = [0, 5, 9, 14, 3]  # i, f, g, o rows of different units
    rng = np.random.default_rng(6)
    fx, fh = qm.formats["x"], qm.formats["h"]
    jobs = []
    for row in rows * 3:
        x = rng.integers(fx.code_min, fx.code_max + 1, size=qm.input_size)
        h = rng.integers(fh.code_min, fh.code_max + 1, size=qm.hidden_size)
        jobs.append((rows.index(row), [*x, *h], naive_sum(qm, row, x, h)))
    dut = GateMacLane(layer=qm, rows=rows)
    k_len = qm.input_size + qm.hidden_size
    got = []

    async def bench(ctx):
        beat = dut.i.payload
        for slot, cols, _ in jobs:
            for k, v in enumerate(cols):
                ctx.set(dut.i.valid, 1)
                ctx.set(beat.addr, slot * k_len + k)
                ctx.set(beat.slot, slot)
                ctx.set(beat.first, k == 0)
                ctx.set(beat.last, k == k_len - 1)
                ctx.set(beat.is_h, k >= qm.input_size)
                ctx.set(beat.operand, int(v))
                await ctx.tick()
                await collect(ctx, False)
        ctx.set(dut.i.valid, 0)
        for _ in range(dut.latency):
            await ctx.tick()
            await collect(ctx, False)

    async def collect(ctx, _):
        if ctx.get(dut.o.valid):
            got.append(ctx.get(dut.o.payload))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert len(got) == len(jobs)
    assert got == [want for _, _, want in jobs]
