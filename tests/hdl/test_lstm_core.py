"""The streaming core against the bit-accurate model, with back-pressure and idle gaps."""

from dataclasses import dataclass, field

import numpy as np
import pytest
from amaranth.sim import Simulator
from hdl_models import ODD_FORMATS, make_qmodel, random_inputs

from hdl.core import LstmCore, valid_lanes
from model.lstm import run_fixed


def pack(codes, width: int) -> int:
    """SPEC §5: element k in bits [k*W +: W]."""
    word = 0
    for k, c in enumerate(codes):
        word |= (int(c) & ((1 << width) - 1)) << (k * width)
    return word


def unpack(word: int, n: int, width: int, signed: bool) -> list[int]:
    out = []
    for k in range(n):
        v = (word >> (k * width)) & ((1 << width) - 1)
        if signed and v >> (width - 1):
            v -= 1 << width
        out.append(v)
    return out


@dataclass
class Run:
    beats: list = field(default_factory=list)  # (h codes, tlast)
    beat_cycles: list = field(default_factory=list)
    in_cycles: list = field(default_factory=list)  # cycle of each input transfer
    trace: list = field(default_factory=list)  # one dict per finished hidden unit
    cycles: int = 0


def run_core(qm, seqs, *, lanes, idle=0.0, stall=0.0, seed=0, trace=False) -> Run:
    """Drive ``seqs`` (x codes [T, I] each) through the core; idle/stall: probabilities of an
    idle input cycle and of tready low on the output."""
    dut = LstmCore(qmodel=qm, lanes=lanes)
    rng_in, rng_out = np.random.default_rng(seed), np.random.default_rng(seed + 1)
    fx, fh = qm.formats["x"], qm.formats["h"]
    h = qm.hidden_size
    n_out = sum(len(s) for s in seqs) if qm.output == "sequence" else len(seqs)
    budget = (sum(len(s) for s in seqs) + 2) * dut.cycles_per_step * 4 + 200
    res = Run()
    sim = Simulator(dut)  # elaborates: dut.probes exists from here on
    probes = dut.probes

    async def source(ctx):
        cycle = 0
        for seq in seqs:
            for t, x in enumerate(seq):
                while rng_in.random() < idle:
                    ctx.set(dut.s_axis_tvalid, 0)
                    await ctx.tick()
                    cycle += 1
                ctx.set(dut.s_axis_tdata, pack(x, fx.width))
                ctx.set(dut.s_axis_tlast, t == len(seq) - 1)
                ctx.set(dut.s_axis_tvalid, 1)
                while True:  # tvalid stays up, data stays put, until the transfer
                    _, _, ready = await ctx.tick().sample(dut.s_axis_tready)
                    cycle += 1
                    if ready:
                        res.in_cycles.append(cycle - 1)
                        break
        ctx.set(dut.s_axis_tvalid, 0)

    async def sink(ctx):
        cycle = 0
        last_data = None
        while len(res.beats) < n_out:
            ready = rng_out.random() >= stall
            ctx.set(dut.m_axis_tready, ready)
            _, _, valid, data, last = await ctx.tick().sample(
                dut.m_axis_tvalid, dut.m_axis_tdata, dut.m_axis_tlast
            )
            if valid and last_data is not None:  # AXI: data stays put while stalled
                assert (data, last) == last_data
            last_data = (data, last) if valid and not ready else None
            if valid and ready:
                res.beats.append((unpack(data, h, fh.width, fh.signed), bool(last)))
                res.beat_cycles.append(cycle)
            cycle += 1
            assert cycle < budget, f"only {len(res.beats)} of {n_out} beats in {cycle} cycles"
        for _ in range(dut.cycles_per_step + 5):  # nothing more may come out
            ctx.set(dut.m_axis_tready, 1)
            _, _, valid = await ctx.tick().sample(dut.m_axis_tvalid)
            assert not valid, "the core sent a beat nobody expected"
        res.cycles = cycle

    async def monitor(ctx):
        names = sorted(k for k in probes if k.endswith("_valid"))
        while True:
            for vname in names:
                u = vname[len("trace") : -len("_valid")]
                keys = [k for k in probes if k.startswith(f"trace{u}_") and k != vname]
                vals = await ctx.tick().sample(probes[vname], *(probes[k] for k in keys))
                if vals[2]:
                    res.trace.append({k.split("_", 1)[1]: v for k, v in zip(keys, vals[3:])})

    sim.add_clock(1e-8)
    sim.add_testbench(source)
    sim.add_testbench(sink)
    if trace:
        assert len([k for k in probes if k.endswith("_valid")]) == 1, "monitor one cell update"
        sim.add_testbench(monitor, background=True)
    sim.run()
    return res, dut


def expected(qm, seqs):
    """The model's output beats: (h codes, tlast)."""
    beats = []
    for seq in seqs:
        out = run_fixed(qm, seq[None]).h_codes[0]
        if qm.output == "sequence":
            beats += [(list(map(int, row)), t == len(seq) - 1) for t, row in enumerate(out)]
        else:
            beats.append((list(map(int, out)), True))
    return beats


CASES = {
    # name: (I, H, lanes, model options)
    "p1": (3, 4, 1, {}),
    "p2_peephole_odd": (2, 3, 2, {"peephole": True, "formats": ODD_FORMATS}),
    "p4_last_plan": (3, 2, 4, {"output": "last", "table": "plan"}),
    "p8_peephole": (2, 4, 8, {"peephole": True}),
    "p12_full_odd": (2, 3, 12, {"formats": ODD_FORMATS}),
    "p4_h1_hard_peephole": (2, 1, 4, {"peephole": True, "table": "hard"}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_core_matches_model(case):
    i, h, lanes, opts = CASES[case]
    qm = make_qmodel(i, h, lanes=lanes, seed=len(case), **opts)
    seqs = random_inputs(qm, [4, 1, 6, 3], seed=5)
    res, _ = run_core(qm, seqs, lanes=lanes, idle=0.3, stall=0.4, seed=11)
    want = expected(qm, seqs)
    assert len(res.beats) == len(want)
    for k, (got, exp) in enumerate(zip(res.beats, want)):
        assert got == exp, f"beat {k}: core {got}, model {exp}"


@pytest.mark.parametrize("peephole", [False, True], ids=["plain", "peephole"])
def test_trace_signals_show_each_step(peephole):
    """The trace0_* signals named in LstmCore's docstring carry the model's trace."""
    qm = make_qmodel(2, 3, lanes=2, peephole=peephole, formats=ODD_FORMATS, seed=9)
    seqs = random_inputs(qm, [3, 2], seed=2)
    res, _ = run_core(qm, seqs, lanes=2, idle=0.2, stall=0.3, seed=3, trace=True)
    rows = []
    for seq in seqs:
        tr = run_fixed(qm, seq[None], trace=True).trace
        h = qm.hidden_size
        for t in range(len(seq)):
            for j in range(h):
                pre = tr["preact"][0, t]
                rows.append(
                    {
                        "unit": j,
                        **{f"pre_{g}": int(pre[k * h + j]) for k, g in enumerate("ifgo")},
                        **{k: int(tr[k][0, t, j]) for k in ("i", "f", "g", "o", "c", "h")},
                        "tanh_cell": int(tr["tanh_cell"][0, t, j]),
                    }
                )
    assert res.trace == rows


@pytest.mark.parametrize("lanes", [1, 2, 4, 8])
def test_cycles_per_step_and_latency_as_stated(lanes):
    """Continuous input, output always ready: beats come every cycles_per_step cycles, the
    first one `latency` cycles after its input; the manifest's numbers are these."""
    i, h = 3, 2
    qm = make_qmodel(i, h, lanes=lanes, peephole=lanes == 2)
    seqs = random_inputs(qm, [6], seed=4)
    res, dut = run_core(qm, seqs, lanes=lanes)
    hw = dut.hardware()
    gaps = set(np.diff(res.beat_cycles).tolist())
    assert gaps == {hw["cycles_per_step"]}
    assert res.beat_cycles[0] - res.in_cycles[0] == hw["latency"]
    # within the bound every design with P lanes obeys, plus the pipeline depth
    bound = -(-4 * h * (i + h) // lanes)
    assert hw["min_cycles_per_step"] == bound == hw["mac_cycles_per_step"]
    assert hw["cycles_per_step"] == bound + hw["pipeline_depth"]
    assert hw["pipeline_depth"] <= 20


def test_lane_counts():
    assert valid_lanes(3) == [1, 2, 4, 12]
    qm = make_qmodel(2, 3)
    for bad in (3, 6, 8, 0, 24, 2.0, True):
        with pytest.raises(ValueError, match="lanes"):
            LstmCore(qmodel=qm, lanes=bad)
