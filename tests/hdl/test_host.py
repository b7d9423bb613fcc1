"""hdl/host.py and hdl/axil.py: where each weight code lives in a core's banks, and the
sequential divider of the AXI4-Lite slave."""

from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator

from hdl.axil import SeqDivmod
from hdl.core import LstmCore, valid_lanes
from hdl.dense import valid_dense_lanes
from hdl.host import core_routes, locate, unit_indexed_peephole_route
from model.weightmap import tensor_codes, weight_map
from tests.sim.conftest import make_network


def bank_words(layer, lanes: int) -> list[list[int]]:
    """The initial words of each bank as the cores fill them (weights per lane, then
    biases; with peepholes the cell update's p_i, p_f, p_o), from the cores' own row
    assignment."""
    if layer.kind == "lstm":
        core = LstmCore(layer, lanes=lanes)
        core._MustUse__silence = True  # only its row assignment is read
        groups = 4 * layer.hidden_size // lanes
        rows = [[core._row(k, lane)[0] for k in range(groups)] for lane in range(lanes)]
        weights = [[int(v) for r in rs for v in (*layer.w[r], *layer.r[r])] for rs in rows]
    else:
        groups = layer.output_size // lanes
        rows = [[g * lanes + lane for g in range(groups)] for lane in range(lanes)]
        weights = [[int(v) for r in rs for v in layer.w[r]] for rs in rows]
    banks = weights + [[int(layer.b[r]) for r in rs] for rs in rows]
    if layer.kind == "lstm" and layer.peephole:
        h = layer.hidden_size
        banks += [[int(v) for v in layer.p[g * h : (g + 1) * h]] for g in range(3)]
    return banks


@pytest.mark.parametrize(
    "name", ["net_relu", "net_last", "small", "last", "peephole", "net_peephole"]
)
def test_routes_find_every_code_in_its_bank(name):
    net = make_network(name)
    for e in weight_map(net):
        layer = net.layers[e["layer"] - 1]
        options = valid_lanes(layer.hidden_size) if layer.kind == "lstm" else None
        options = options or valid_dense_lanes(layer.output_size)
        for lanes in options:
            banks = bank_words(layer, lanes)
            routes = core_routes(layer, lanes)[e["tensor"]]
            codes = tensor_codes(layer, e["tensor"]).ravel()
            for n, code in enumerate(codes):
                bank, word = locate(routes, n)
                assert banks[bank][word] == code, (e, lanes, n)


def test_unit_indexed_peephole_route():
    """For a core that keeps p_i, p_f, p_o in three memories indexed by unit."""
    layer = make_network("net_peephole").layers[0]
    h = layer.hidden_size
    route = unit_indexed_peephole_route(layer, bank_base=10)
    assert [route.locate(n) for n in range(3 * h)] == [
        (10 + g, j) for g in range(3) for j in range(h)
    ]


def test_seq_divmod():
    bits = 7
    dut = SeqDivmod(bits)
    rng = random.Random(3)
    cases = [(0, 1), (127, 1), (127, 127), (126, 127), (5, 3), (64, 4)]
    cases += [(rng.randrange(128), rng.randrange(1, 128)) for _ in range(40)]
    bad = []

    async def bench(ctx):
        for a, d in cases:
            ctx.set(dut.start, 1)
            ctx.set(dut.dividend, a)
            ctx.set(dut.divisor, d)
            await ctx.tick()
            ctx.set(dut.start, 0)
            ctx.set(dut.dividend, 0)  # the divider keeps what it took
            busy = 0
            while ctx.get(dut.busy):
                busy += 1
                await ctx.tick()
            if (ctx.get(dut.quotient), ctx.get(dut.remainder), busy) != (a // d, a % d, bits):
                bad.append((a, d, ctx.get(dut.quotient), ctx.get(dut.remainder), busy))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert not bad, bad[:3]


# ---------------------------------------------------------------------- the generated Verilog


def test_axi_lite_verilog(tmp_path):
    """The AXI4-Lite ports of SPEC §5b, lint-clean, weights in <name>_ram modules, no
    multiplier more than the ROM design, a manifest with the map that regenerates the same
    files; the ROM design of the same network has no RAM and no s_axil port."""
    import dataclasses
    import json
    import re

    from hdl_models import make_network as make_hdl_network
    from test_verilog import lint

    from hdl.generate import generate, stats
    from model.qmodel import QuantizedNetwork

    hw = {"lanes": 1, "layers": {"lstm1": {"lanes": 4}}, "weights": "axi-lite"}
    net = make_hdl_network(2, [3, 2], [2], activations=["relu"], name="net_ax", hardware=hw)
    v_path, m_path = generate(net, tmp_path / "a")
    lint(v_path)
    text = v_path.read_text()
    header = re.search(r"^module net_ax\((.*?)\);", text, re.M | re.S)
    ports = {p.strip() for p in header.group(1).split(",")}
    axil = "awaddr awvalid awready wdata wstrb wvalid wready bresp bvalid bready araddr "
    axil += "arvalid arready rdata rresp rvalid rready"
    assert {f"s_axil_{n}" for n in axil.split()} <= ports
    assert re.search(r"^module net_ax_ram ", text, re.M) and "$readmemh" in text
    assert "Run-time weights: an AXI4-Lite slave" in text
    man = json.loads(m_path.read_text())["hardware"]
    assert man["weights"] == "axi-lite" and man["weight_map"][0] == {
        "layer": 1, "tensor": "w", "base": 0, "rows": 12, "cols": 2,
    }  # fmt: skip
    rom_net = dataclasses.replace(net, hardware={**hw, "weights": "rom"}, name="net_rom")
    v_rom, m_rom = generate(rom_net, tmp_path / "r")
    assert "net_rom_ram" not in v_rom.read_text() and "s_axil" not in v_rom.read_text()
    assert "weight_map" not in json.loads(m_rom.read_text())["hardware"]
    s_ax, s_rom = stats(v_path, synth=False), stats(v_rom, synth=False)
    assert s_ax["multipliers"] == s_rom["multipliers"] and s_ax["latches"] == 0
    # every bank (a weight and a bias memory per lane: 4 + 1 + 1 lanes) is a RAM instance
    assert len(re.findall(r"^\s*net_ax_ram #\(", text, re.M)) == 2 * (4 + 1 + 1)
    assert s_ax["memories"] >= s_rom["memories"]
    back = QuantizedNetwork.read_manifest(m_path)
    v2, m2 = generate(back, tmp_path / "b")
    assert v2.read_bytes() == v_path.read_bytes() and m2.read_bytes() == m_path.read_bytes()


@pytest.mark.parametrize("bank_words", [8, 2048])
def test_lane_host_port_reads_and_writes_every_piece(bank_words, monkeypatch):
    """A lane's weight bank through its host port, whole or cut into pieces: every word
    reads back as the layer's code HOST_READ_LATENCY - 3 cycles after its address (the
    core's bus adds three), and a written word reads back as written."""
    from hdl_models import make_qmodel

    from hdl import mac
    from hdl.host import HOST_READ_LATENCY
    from hdl.mac import GateMacLane

    monkeypatch.setattr(mac, "BANK_WORDS", bank_words)
    layer = make_qmodel(3, 4, seed=5).layers[0]
    rows = [0, 5, 9, 14]
    words = [int(v) for r in rows for v in (*layer.w[r], *layer.r[r])]
    dut = GateMacLane(layer=layer, rows=rows, host=True)
    rng = random.Random(1)
    new = {n: rng.randrange(-(1 << 7), 1 << 7) for n in rng.sample(range(len(words)), 9)}
    got, again = [], []

    async def read(ctx, n):
        ctx.set(dut.host_w.addr, n)
        for _ in range(HOST_READ_LATENCY - 3):
            await ctx.tick()
        return ctx.get(dut.host_w.rdata)

    async def bench(ctx):
        for n in range(len(words)):
            got.append(await read(ctx, n))
        for n, v in new.items():
            ctx.set(dut.host_w.addr, n)
            ctx.set(dut.host_w.wdata, v)
            ctx.set(dut.host_w.we, 1)
            await ctx.tick()
            ctx.set(dut.host_w.we, 0)
        for n in range(len(words)):
            again.append(await read(ctx, n))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert got == words
    assert again == [new.get(n, w) for n, w in enumerate(words)]
