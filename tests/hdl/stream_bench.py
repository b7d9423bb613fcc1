"""An Amaranth-simulator bench for NetworkCore: AXI4-Stream source and sink with idle cycles,
back-pressure, junk in the input's padding bits, and a monitor of the probe signals."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from amaranth.sim import Simulator

from hdl.network import NetworkCore
from model.network import run_fixed


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
    beats: list = field(default_factory=list)  # (output codes, tlast)
    words: list = field(default_factory=list)  # the raw m_axis_tdata of each beat
    beat_cycles: list = field(default_factory=list)
    in_cycles: list = field(default_factory=list)  # cycle of each input transfer
    trace: dict = field(default_factory=dict)  # probe group prefix -> list of dicts
    cycles: int = 0


def run_network(net, seqs, *, lanes=None, idle=0.0, stall=0.0, seed=0, junk=True, monitor=()):
    """Drive ``seqs`` (x codes [T, I] each) through a NetworkCore of ``net``.

    ``idle``/``stall``: probabilities of an idle input cycle and of tready low on the output;
    ``junk``: random bits above ``I*W_x`` on the input bus; ``monitor``: probe prefixes
    (``lstm1_trace0``, ``dense1_trace``) whose ``_valid`` strobes are recorded.
    """
    dut = NetworkCore(net, lanes=lanes)
    rng_in, rng_out = np.random.default_rng(seed), np.random.default_rng(seed + 1)
    fx, fy = net.in_fmt, net.out_fmt
    n = net.output_size
    in_bits = net.input_size * fx.width
    pad = len(dut.s_axis_tdata) - in_bits
    n_out = sum(len(s) for s in seqs) if net.output == "sequence" else len(seqs)
    budget = (sum(len(s) for s in seqs) + 2) * dut.latency * 2 + 200
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
                word = pack(x, fx.width)
                if junk and pad:
                    word |= int(rng_in.integers(0, 1 << pad)) << in_bits
                ctx.set(dut.s_axis_tdata, word)
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
                res.beats.append((unpack(data, n, fy.width, fy.signed), bool(last)))
                res.words.append(data)
                res.beat_cycles.append(cycle)
            cycle += 1
            assert cycle < budget, f"only {len(res.beats)} of {n_out} beats in {cycle} cycles"
        for _ in range(dut.cycles_per_step + 5):  # nothing more may come out
            ctx.set(dut.m_axis_tready, 1)
            _, _, valid = await ctx.tick().sample(dut.m_axis_tvalid)
            assert not valid, "the core sent a beat nobody expected"
        res.cycles = cycle

    def watcher(prefix):
        keys = [k for k in probes if k.startswith(prefix + "_") and k != prefix + "_valid"]
        res.trace[prefix] = rows = []

        async def watch(ctx):
            while True:
                strobe = probes[prefix + "_valid"]
                vals = await ctx.tick().sample(strobe, *(probes[k] for k in keys))
                if vals[2]:
                    rows.append({k[len(prefix) + 1 :]: v for k, v in zip(keys, vals[3:])})

        return watch

    sim.add_clock(1e-8)
    sim.add_testbench(source)
    sim.add_testbench(sink)
    for prefix in monitor:
        sim.add_testbench(watcher(prefix), background=True)
    sim.run()
    return res, dut


def expected(net, seqs) -> list:
    """The model's output beats: (codes, tlast)."""
    beats = []
    for seq in seqs:
        out = run_fixed(net, seq[None]).y_codes[0]
        if net.output == "sequence":
            beats += [(list(map(int, row)), t == len(seq) - 1) for t, row in enumerate(out)]
        else:
            beats.append((list(map(int, out)), True))
    return beats


def assert_same(res, want):
    assert len(res.beats) == len(want)
    for k, (got, exp) in enumerate(zip(res.beats, want)):
        assert got == exp, f"beat {k}: core {got}, model {exp}"
