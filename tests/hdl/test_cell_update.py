"""The cell update on random gate sums over several steps, with and without peepholes."""

import numpy as np
import pytest
from amaranth.sim import Simulator
from hdl_models import ODD_FORMATS, make_layer

from hdl.cell import TRACE, CellUpdate
from hdl.mac import preact_sum
from model.formats import quantize
from model.qmodel import exact_sum


def reference(qm, unit, acc_i, acc_f, acc_g, acc_o, c_prev):
    """One unit of SPEC §2 from the exact gate sums, the model's tables and its quantize."""
    f = qm.formats
    t = qm.tables
    h = qm.hidden_size
    pre_frac, _ = preact_sum(qm)
    sp = pre_frac - f["p"].frac - f["cell"].frac

    def pre(acc, p_row=None, c=0):
        if qm.peephole and p_row is not None:
            acc += int(qm.p[p_row]) * c << sp
        return int(quantize(acc, pre_frac, *f["preact"].args())[0])

    sig = t["sigmoid"]
    pre_i, pre_f, pre_g = pre(acc_i, unit, c_prev), pre(acc_f, h + unit, c_prev), pre(acc_g)
    gi, gf, gg = int(sig([pre_i])[0]), int(sig([pre_f])[0]), int(t["tanh"]([pre_g])[0])
    cell_frac, _ = exact_sum(qm.sums()["cell"])
    s_fc = cell_frac - f["gate"].frac - f["cell"].frac
    s_ig = cell_frac - f["gate"].frac - f["cand"].frac
    c = int(quantize((gf * c_prev << s_fc) + (gi * gg << s_ig), cell_frac, *f["cell"].args())[0])
    pre_o = pre(acc_o, 2 * h + unit, c)
    go = int(sig([pre_o])[0])
    tc = int(t["tanh_cell"]([c])[0])
    h_frac = f["gate"].frac + f["tanh_cell"].frac
    hv = int(quantize(go * tc, h_frac, *f["h"].args())[0])
    return {
        "unit": unit, "c": c, "h": hv, "pre_i": pre_i, "pre_f": pre_f, "pre_g": pre_g,
        "pre_o": pre_o, "i": gi, "f": gf, "g": gg, "o": go, "tanh_cell": tc,
    }  # fmt: skip


@pytest.mark.parametrize("peephole", [False, True], ids=["plain", "peephole"])
@pytest.mark.parametrize("formats", [None, ODD_FORMATS], ids=["spec", "odd"])
def test_random_sums_over_steps(peephole, formats):
    """Steps of H units in order (gaps between units), some starting a sequence (zero):
    every output, trace value and the c the RAM carries match the model."""
    qm = make_layer(2, 5, peephole=peephole, formats=formats, seed=4)
    h = qm.hidden_size
    rng = np.random.default_rng(7)
    pre_fmt = qm.formats["preact"]
    pre_frac, _ = preact_sum(qm)
    lim = int(1.25 * 2 ** (pre_fmt.width - 1) * 2.0 ** (pre_frac - pre_fmt.frac)) + 2
    steps = 24
    zero = [s == 0 or rng.random() < 0.2 for s in range(steps)]
    ops = [[[int(v) for v in rng.integers(-lim, lim, size=4)] for _ in range(h)]
           for _ in range(steps)]  # fmt: skip
    want = []
    cell = [0] * h
    for s in range(steps):
        if zero[s]:
            cell = [0] * h
        for j in range(h):
            row = reference(qm, j, *ops[s][j], cell[j])
            cell[j] = row["c"]
            want.append(row)

    dut = CellUpdate(layer=qm)
    got = []
    fed_at = []  # the cycle of each unit, to check the latency
    watch = [dut.o.valid, dut.o.payload.unit, dut.o.payload.c, dut.o.payload.h]
    watch += [getattr(dut, f"trace_{k}") for k in TRACE]
    names = ["unit", "c", "h", *TRACE]

    async def bench(ctx):
        cycles = 0

        async def tick():
            nonlocal cycles
            sampled = await ctx.tick().sample(*watch)
            if sampled[2]:  # after the clock and reset
                assert cycles - fed_at[len(got)] == dut.latency
                got.append(dict(zip(names, sampled[3:])))
            cycles += 1

        p = dut.i.payload
        for s in range(steps):
            j = 0
            while j < h:
                feed = rng.random() < 0.7  # gaps between units
                if feed:
                    for sig, v in zip((p.acc_i, p.acc_f, p.acc_g, p.acc_o), ops[s][j]):
                        ctx.set(sig, v)
                    ctx.set(p.unit, j)
                    ctx.set(p.zero, zero[s])
                    fed_at.append(cycles)
                    j += 1
                ctx.set(dut.i.valid, feed)
                await tick()
            ctx.set(dut.i.valid, 0)
            while len(got) < len(fed_at):  # a step ends when its last unit has left
                await tick()
                assert cycles < 100 * steps * h, "the cell update lost units"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert len(got) == len(want)
    for k, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"step {k // h} unit {k % h}: got {g}, model {w}"
