"""The cell update on random operands, with and without peepholes."""

import numpy as np
import pytest
from amaranth.sim import Simulator
from hdl_models import ODD_FORMATS, make_layer

from hdl.cell import TRACE, CellUpdate
from hdl.mac import preact_sum
from model.formats import quantize
from model.qmodel import exact_sum


def reference(qm, unit, pre_i, pre_f, pre_g, pre_o, c_prev):
    """One unit of SPEC §2 from the model's tables and its quantize routine."""
    f = qm.formats
    t = qm.tables
    sig = t["sigmoid"]
    gi, gf, gg = int(sig([pre_i])[0]), int(sig([pre_f])[0]), int(t["tanh"]([pre_g])[0])
    cell_frac, _ = exact_sum(qm.sums()["cell"])
    s_fc = cell_frac - f["gate"].frac - f["cell"].frac
    s_ig = cell_frac - f["gate"].frac - f["cand"].frac
    c = int(quantize((gf * c_prev << s_fc) + (gi * gg << s_ig), cell_frac, *f["cell"].args())[0])
    if qm.peephole:
        pre_frac, _ = preact_sum(qm)
        sp = pre_frac - f["p"].frac - f["cell"].frac
        p_o = int(qm.p[2 * qm.hidden_size + unit])
        pre_o = int(quantize(pre_o + (p_o * c << sp), pre_frac, *f["preact"].args())[0])
    go = int(sig([pre_o])[0])
    tc = int(t["tanh_cell"]([c])[0])
    h_frac = f["gate"].frac + f["tanh_cell"].frac
    h = int(quantize(go * tc, h_frac, *f["h"].args())[0])
    return {
        "unit": unit, "c": c, "h": h, "pre_i": pre_i, "pre_f": pre_f, "pre_g": pre_g,
        "pre_o": pre_o, "i": gi, "f": gf, "g": gg, "o": go, "tanh_cell": tc,
    }  # fmt: skip


@pytest.mark.parametrize("peephole", [False, True], ids=["plain", "peephole"])
@pytest.mark.parametrize("formats", [None, ODD_FORMATS], ids=["spec", "odd"])
def test_random_operands(peephole, formats):
    qm = make_layer(2, 5, peephole=peephole, formats=formats, seed=4)
    rng = np.random.default_rng(7)
    pre, cell = qm.formats["preact"], qm.formats["cell"]
    n = 600
    _, acc_w = preact_sum(qm)
    acc_lim = 1 << (acc_w - 3)
    ops = []
    for _ in range(n):
        unit = int(rng.integers(qm.hidden_size))
        pres = [int(v) for v in rng.integers(pre.code_min, pre.code_max + 1, size=3)]
        o_in = (
            int(rng.integers(-acc_lim, acc_lim))
            if peephole
            else int(rng.integers(pre.code_min, pre.code_max + 1))
        )
        ops.append((unit, *pres, o_in, int(rng.integers(cell.code_min, cell.code_max + 1))))
    want = [reference(qm, *op) for op in ops]

    dut = CellUpdate(layer=qm)
    got = []
    fed_at = []  # the cycle of each operand, to check the latency
    watch = [dut.o.valid, dut.o.payload.unit, dut.o.payload.c, dut.o.payload.h]
    watch += [getattr(dut, f"trace_{k}") for k in TRACE]
    names = ["unit", "c", "h", *TRACE]

    async def bench(ctx):
        k = 0
        cycles = 0
        while len(got) < n:
            feed = k < n and rng.random() < 0.7  # gaps between operands
            if feed:
                p = dut.i.payload
                for sig, v in zip((p.unit, p.pre_i, p.pre_f, p.pre_g, p.pre_o, p.cell), ops[k]):
                    ctx.set(sig, v)
                k += 1
                fed_at.append(cycles)
            ctx.set(dut.i.valid, feed)
            sampled = await ctx.tick().sample(*watch)
            if sampled[2]:
                assert cycles - fed_at[len(got)] == dut.latency
                got.append(dict(zip(names, sampled[3:])))
            cycles += 1
            assert cycles < 4 * n, "the cell update lost operands"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    for k, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"operand {k} {ops[k]}: got {g}, model {w}"
