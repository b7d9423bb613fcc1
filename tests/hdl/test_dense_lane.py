"""The dense MAC lane: exact sums of its rows, relu on the exact sum, one rounding, back to back."""

import numpy as np
import pytest
from amaranth.sim import Simulator
from hdl_models import make_dense

from hdl.dense import DenseMacLane, out_sum
from model.formats import parse_format, quantize

ODD_DENSE = {
    "w": "fixed<9,2,RND_CONV,SAT>",
    "b": "fixed<7,3,TRN,SAT>",
    "out": "fixed<6,2,RND_ZERO,WRAP>",
}


def naive(layer, row, u):
    """SPEC §2b for one row, in Python integers: (exact sum, out code)."""
    f = layer.formats
    frac, _ = out_sum(layer)
    acc = sum(int(a) * int(b) for a, b in zip(layer.w[row], u)) << (
        frac - f["w"].frac - layer.in_fmt.frac
    )
    acc += int(layer.b[row]) << (frac - f["b"].frac)
    act = max(acc, 0) if layer.activation == "relu" else acc
    return acc, int(quantize(act, frac, *f["out"].args())[0])


@pytest.mark.parametrize("activation", ["linear", "relu"])
@pytest.mark.parametrize("in_fmt", ["fixed<10,3,RND,SAT>", "ufixed<8,2,RND,SAT>"])
def test_rows_back_to_back(activation, in_fmt):
    fin = parse_format(in_fmt)
    layer = make_dense(4, 5, fin, activation=activation, formats=ODD_DENSE, scale=2.0, seed=3)
    rows = [4, 0, 2]
    rng = np.random.default_rng(7)
    jobs = []
    for row in rows * 3:
        u = rng.integers(fin.code_min, fin.code_max + 1, size=layer.input_size)
        jobs.append((rows.index(row), u, *naive(layer, row, u)))
    dut = DenseMacLane(layer=layer, rows=rows)
    k_len = layer.input_size
    got = []

    async def bench(ctx):
        beat = dut.i.payload
        for slot, u, _, _ in jobs:
            for k, v in enumerate(u):
                ctx.set(dut.i.valid, 1)
                ctx.set(beat.addr, slot * k_len + k)
                ctx.set(beat.slot, slot)
                ctx.set(beat.first, k == 0)
                ctx.set(beat.last, k == k_len - 1)
                ctx.set(beat.operand, int(v))
                await ctx.tick()
                collect(ctx)
        ctx.set(dut.i.valid, 0)
        for _ in range(dut.latency):
            await ctx.tick()
            collect(ctx)

    def collect(ctx):
        if ctx.get(dut.o.valid):
            p = dut.o.payload
            got.append((ctx.get(p.slot), ctx.get(p.acc), ctx.get(p.out)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert got == [(slot, acc, out) for slot, _, acc, out in jobs]
