"""round_into against model.formats.quantize: every Q and O mode, both signednesses."""

import itertools

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.sim import Simulator

from hdl.fixed import ROUND_LATENCY, round_into, round_stages
from model.formats import O_MODES, Q_MODES, Format, quantize

#: (source width, source signed, source frac, target format without Q/O)
CASES = [
    (10, True, 6, (True, 5, 3)),  # drop 3 bits, signed -> signed
    (10, True, 6, (False, 4, 4)),  # into unsigned: negatives, ties by the source's sign
    (10, False, 4, (True, 4, 2)),  # unsigned source
    (8, True, 2, (True, 6, 2)),  # same position
    (8, True, 1, (True, 10, 4)),  # target finer: a left shift that overflows
    (6, True, 8, (True, 3, 1)),  # shift wider than the source
    (9, True, 4, (True, 1, 1)),  # W = 1 target
]


def run_case(src_w, src_signed, src_frac, tgt, q, o):
    fmt = Format(tgt[0], tgt[1], tgt[1] - tgt[2], q, o)
    m = Module()
    v = Signal(signed(src_w) if src_signed else unsigned(src_w))
    out = round_into(m, v, src_frac, fmt)
    lo = -(1 << (src_w - 1)) if src_signed else 0
    values = list(range(lo, lo + (1 << src_w)))
    got = []

    async def bench(ctx):
        for val in values:
            ctx.set(v, val)
            got.append(ctx.get(out))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    want = [int(quantize(val, src_frac, *fmt.args())[0]) for val in values]
    return values, got, want


@pytest.mark.parametrize("case", CASES, ids=[f"case{k}" for k in range(len(CASES))])
def test_round_into_every_mode(case):
    bad = []
    for q, o in itertools.product(Q_MODES, O_MODES):
        values, got, want = run_case(*case, q, o)
        diff = np.flatnonzero(np.array(got) != np.array(want))
        if diff.size:
            k = diff[0]
            bad.append(f"{q},{o}: value {values[k]} gave {got[k]}, model {want[k]}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("case", CASES, ids=[f"case{k}" for k in range(len(CASES))])
def test_round_stages_every_mode(case):
    """round_stages, fed a new value every cycle, gives round_into's codes ROUND_LATENCY
    cycles later: the pipelined rounding is the same circuit, registered."""
    src_w, src_signed, src_frac, tgt = case
    m = Module()
    v = Signal(signed(src_w) if src_signed else unsigned(src_w))
    modes = list(itertools.product(Q_MODES, O_MODES))
    fmts = [Format(tgt[0], tgt[1], tgt[1] - tgt[2], q, o) for q, o in modes]
    outs = []
    for k, fmt in enumerate(fmts):
        out, latency = round_stages(m, v, src_frac, fmt, name=f"r{k}")
        assert latency == ROUND_LATENCY
        outs.append(out)
    lo = -(1 << (src_w - 1)) if src_signed else 0
    values = list(range(lo, lo + (1 << src_w)))
    got = [[] for _ in fmts]

    async def bench(ctx):
        for n in range(len(values) + ROUND_LATENCY):
            if n < len(values):
                ctx.set(v, values[n])
            await ctx.tick()
            if n >= ROUND_LATENCY - 1 and n - (ROUND_LATENCY - 1) < len(values):
                for k, out in enumerate(outs):
                    got[k].append(ctx.get(out))

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    bad = []
    for k, fmt in enumerate(fmts):
        want = [int(quantize(val, src_frac, *fmt.args())[0]) for val in values]
        diff = np.flatnonzero(np.array(got[k]) != np.array(want))
        if diff.size:
            j = diff[0]
            bad.append(f"{fmt.q},{fmt.o}: value {values[j]} gave {got[k][j]}, model {want[j]}")
    assert not bad, "\n".join(bad)
