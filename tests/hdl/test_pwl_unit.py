"""The PWL unit against the model's table evaluation, over every input code."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from hdl import pwl
from hdl.pwl import PwlUnit
from model.formats import parse_format
from model.pwl import PwlTable, hard_table, plan_table, uniform_table

PRE = parse_format("fixed<16,6,RND,SAT>")


def run_unit(table: PwlTable, codes) -> np.ndarray:
    """Every code through the unit at one per cycle; the outputs in input order."""
    dut = PwlUnit(table=table)
    got = []

    async def bench(ctx):
        ctx.set(dut.i.valid, 1)
        for k in range(len(codes) + dut.latency):
            if k == len(codes):
                ctx.set(dut.i.valid, 0)
            elif k < len(codes):
                ctx.set(dut.i.payload, int(codes[k]))
            _, _, valid, out = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if valid:
                got.append(out)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return np.array(got, dtype=np.int64)


def all_codes(fmt):
    return np.arange(fmt.code_min, fmt.code_max + 1, dtype=np.int64)


def random_table(in_fmt, out_fmt, rng) -> PwlTable:
    """Breakpoints on no grid, coefficients anywhere in their formats."""
    ca, cb = parse_format("fixed<14,3,RND,SAT>"), parse_format("fixed<12,4,RND,SAT>")
    bps = np.sort(rng.choice(np.arange(in_fmt.code_min, in_fmt.code_max), 9, replace=False))
    return PwlTable(
        in_fmt,
        out_fmt,
        ca,
        cb,
        bps,
        int(rng.integers(bps[-1], in_fmt.code_max + 1)),
        rng.integers(ca.code_min, ca.code_max + 1, size=9),
        rng.integers(cb.code_min, cb.code_max + 1, size=9),
    )


TABLES = {
    # a power-of-two grid: segment and offset are bit slices
    "uniform_sigmoid": lambda: uniform_table(
        "sigmoid", PRE, "ufixed<16,1,RND,SAT>", range_log2=4, segments=64
    ),
    # PLAN: breakpoints on no grid, comparators
    "plan_tanh": lambda: plan_table("tanh", PRE, "fixed<16,1,RND,SAT>"),
    # any breakpoints, any coefficients, an output that overflows by SAT_SYM and ties to even
    "random_sat_sym": lambda: random_table(
        PRE, parse_format("fixed<8,2,RND_CONV,SAT_SYM>"), np.random.default_rng(3)
    ),
}


@pytest.mark.parametrize("where", ["logic", "rom"])
@pytest.mark.parametrize("name", list(TABLES))
def test_every_16bit_code(name, where, monkeypatch):
    """Every code, with the coefficients in LUT logic and (a tiny LOGIC_SEGMENTS) in ROMs."""
    if where == "rom":
        monkeypatch.setattr(pwl, "LOGIC_SEGMENTS", 1)
    table = TABLES[name]()
    assert (table.uniform_log2 is None) == (name != "uniform_sigmoid")  # both paths run
    codes = all_codes(table.in_fmt)
    got = run_unit(table, codes)
    want = table(codes)
    bad = np.flatnonzero(got != want)
    assert got.shape == want.shape
    assert bad.size == 0, f"code {codes[bad[0]]}: unit {got[bad[0]]}, model {want[bad[0]]}"


def test_one_segment_table():
    """Hard tanh: one segment, no segment ROM at all."""
    in_fmt = parse_format("fixed<11,3,RND,SAT>")
    table = hard_table("tanh", in_fmt, "fixed<9,1,RND_CONV,SAT>")
    assert len(table.breakpoints) == 1
    codes = all_codes(in_fmt)
    np.testing.assert_array_equal(run_unit(table, codes), table(codes))


@pytest.mark.parametrize("out", ["ufixed<6,0,TRN_ZERO,WRAP>", "fixed<7,1,RND_ZERO,SAT_ZERO>"])
def test_lookup_table_unsigned_input(out):
    """All slopes 0 (the hls4ml scheme) on an unsigned input; modes that wrap and zero."""
    in_fmt = parse_format("ufixed<10,4,RND,SAT>")
    table = uniform_table("sigmoid", in_fmt, out, range_log2=4, segments=32, lookup=True)
    codes = all_codes(in_fmt)
    np.testing.assert_array_equal(run_unit(table, codes), table(codes))
