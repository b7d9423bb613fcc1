"""`lstmfx synth`: Yosys and nextpnr on a small network, and the parsing of their reports."""

import copy
import json

import numpy as np
import pytest

import lstmfx
from hdl.synth import (
    DEVICES,
    SynthResult,
    critical_path,
    fmax,
    pack_block_registers,
    parse_report,
)

KEYS = ("fmax_mhz", "lut", "ff", "dsp", "bram", "device", "target_mhz", "critical_path", "met")
LANES = 2
DEVICE = "ecp5-25k"  # the smallest ECP5: the fastest place and route with DSPs and BRAM


def write_config(folder, *, input_size=1, hidden_size=2, lanes=LANES, name="lstm_s"):
    """A config of one random LSTM layer (the .npz layout of SPEC §6)."""
    rng = np.random.default_rng(0)
    i, h = input_size, hidden_size
    np.savez(
        folder / f"{name}.npz",
        w=rng.normal(size=(4 * h, i)) * 0.5,
        r=rng.normal(size=(4 * h, h)) * 0.5,
        b=rng.normal(size=4 * h) * 0.2,
    )
    cfg = folder / "config.toml"
    cfg.write_text(
        f'name = "{name}"\nmodel = "{name}.npz"\noutput = "sequence"\n\n'
        f"[hardware]\nlanes = {lanes}\n"
    )
    return cfg


@pytest.fixture(scope="module")
def flow(tmp_path_factory):
    """One run of the whole flow, kept: its --json and nextpnr's own report."""
    folder = tmp_path_factory.mktemp("synth")
    cfg = write_config(folder)
    out, js = folder / "out", folder / "synth.json"
    argv = ["synth", str(cfg), "--device", DEVICE, "--freq", "150", "--json", str(js)]
    rc = lstmfx.main([*argv, "-o", str(out), "--timeout", "600"])
    assert rc == 0
    report = json.loads((out / f"lstm_s_{DEVICE}.report.json").read_text())
    return json.loads(js.read_text()), report


def test_json_has_every_key_with_plausible_values(flow):
    res, _ = flow
    assert set(KEYS) <= set(res)
    assert res["device"] == DEVICE and res["target_mhz"] == 150.0
    assert 1 < res["fmax_mhz"] < 1000
    assert res["met"] == (res["fmax_mhz"] >= 150)
    assert res["lut"] > 0 and res["ff"] > 0
    assert res["dsp"] >= LANES  # a lane costs at least one MULT18X18D
    assert res["bram"] >= 0
    cp = res["critical_path"]
    assert set(cp) == {"from", "to", "levels", "delay_ns"}
    assert cp["from"] and cp["to"] and cp["levels"] >= 1
    # the critical path is the period that Fmax is the inverse of (to nextpnr's rounding)
    assert cp["delay_ns"] == pytest.approx(1000 / res["fmax_mhz"], rel=0.02)
    assert res["cycles_per_step"] > 0
    assert res["steps_per_s"] == pytest.approx(res["fmax_mhz"] * 1e6 / res["cycles_per_step"])


def test_parse_report_reads_nextpnrs_report(flow):
    res, report = flow
    r = parse_report(report, {}, DEVICES[DEVICE], 150)
    assert r.to_json() | {"seconds": res["seconds"]} == {
        k: v for k, v in res.items() if k not in ("cycles_per_step", "steps_per_s", "design")
    }
    (clock,) = report["fmax"].values()
    assert r.fmax_mhz == round(clock["achieved"], 2)
    assert r.utilization["MULT18X18D"][0] == r.dsp


def canned(report):
    """A small report with the real one's shape: its clock, and two paths of its own."""
    (clk,) = report["fmax"]
    seg = report["critical_paths"][0]["path"][0]

    def step(kind, cell_from, cell_to, delay):
        s = copy.deepcopy(seg)
        s.update(type=kind, delay=delay)
        s["from"]["cell"], s["to"]["cell"] = cell_from, cell_to
        return s

    clocked = [
        step("clk-to-q", "a", "a", 0.5),
        step("routing", "a", "l1", 1.0),
        step("logic", "l1", "l1", 0.25),
        step("routing", "l1", "l2", 1.0),
        step("logic", "l2", "l2", 0.25),
        step("setup", "b", "b", 0.0),
    ]
    ports = [step("routing", "p", "q", 9.0), step("logic", "q", "q", 1.0)]
    return {
        "fmax": {clk: {"achieved": 333.33, "constraint": 150}},
        "utilization": {
            "TRELLIS_COMB": {"used": 10, "available": 24288},
            "TRELLIS_FF": {"used": 7, "available": 24288},
            "MULT18X18D": {"used": 2, "available": 28},
            "DP16KD": {"used": 0, "available": 56},
        },
        "critical_paths": [
            {"from": "<async>", "to": f"posedge {clk}", "path": ports},
            {"from": f"posedge {clk}", "to": f"posedge {clk}", "path": clocked},
        ],
    }


def test_critical_path_is_register_to_register(flow):
    rep = canned(flow[1])
    # the port path is longer, but it is the clock's path that sets Fmax
    assert critical_path(rep) == {"from": "a", "to": "b", "levels": 2, "delay_ns": 3.0}
    rep["critical_paths"] = rep["critical_paths"][:1]
    assert critical_path(rep)["from"] == "p"
    rep["critical_paths"] = []
    assert critical_path(rep) == {"from": None, "to": None, "levels": 0, "delay_ns": 0.0}


def test_parse_canned_report(flow):
    rep = canned(flow[1])
    r = parse_report(rep, {}, DEVICES["ecp5-85k"], 400)
    assert isinstance(r, SynthResult)
    assert (r.lut, r.ff, r.dsp, r.bram, r.fmax_mhz) == (10, 7, 2, 0, 333.33)
    assert r.met is False and r.to_json()["met"] is False
    assert "DP16KD" not in r.utilization  # only what is used
    assert fmax({"fmax": {}}) == 0.0
    # iCE40 logic cells hold a LUT and a flip-flop: those come from Yosys' cell counts
    rep["utilization"] = {"ICESTORM_DSP": {"used": 3, "available": 8}}
    cells = {"SB_LUT4": 40, "SB_DFFE": 5, "SB_DFFSR": 6, "SB_CARRY": 9}
    r = parse_report(rep, cells, DEVICES["ice40-up5k"], 48)
    assert (r.lut, r.ff, r.dsp, r.bram, r.met) == (40, 11, 3, 0, True)


def test_unknown_device_is_one_line(tmp_path, capsys):
    cfg = write_config(tmp_path)
    assert lstmfx.main(["synth", str(cfg), "--device", "ecp5-99k"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "'ecp5-99k'" in err
    assert all(name in err for name in DEVICES)


def test_timeout_kills_the_tool(tmp_path, capsys):
    cfg = write_config(tmp_path)
    rc = lstmfx.main(["synth", str(cfg), "--device", DEVICE, "--timeout", "0.5"])
    assert rc == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert "time limit" in err[-1] and "yosys killed" in err[-1]


def test_intel_estimate_is_labelled_and_counts_cells(tmp_path, capsys):
    cfg = write_config(tmp_path)
    js = tmp_path / "estimate.json"
    assert lstmfx.main(["synth", str(cfg), "--estimate", "intel", "--json", str(js)]) == 0
    assert capsys.readouterr().out.startswith("ESTIMATE (synth_intel_alm")
    est = json.loads(js.read_text())
    assert est["estimate"] is True and est["vendor"] == "intel"
    assert est["lut"] > 0 and est["ff"] > 0 and est["dsp"] >= LANES
    assert "fmax_mhz" not in est  # no place and route, so no timing


def _ff(d, q, *, clk=1, enable=False):
    prm = {"CEMUX": "CE" if enable else "1 ", "CLKMUX": "CLK", "GSR": "DISABLED",
           "LSRMUX": "LSR", "REGSET": "RESET"}  # fmt: skip
    con = {"CLK": [clk], "DI": [d], "LSR": ["0"], "Q": [q]}
    if enable:
        con["CE"] = [2]
    dirs = {"CLK": "input", "DI": "input", "LSR": "input", "Q": "output", "CE": "input"}
    return {"type": "TRELLIS_FF", "parameters": prm, "connections": con, "port_directions": dirs}


def _netlist(*, enable_b=False):
    """A MULT18X18D between plain registers (B's with an enable if ``enable_b``) and a
    DP16KD port whose outputs feed plain registers: Yosys' shape of hdl/mac.py's lane."""
    cells, bit = {}, iter(range(10, 10_000))
    mult = {"type": "MULT18X18D", "parameters": {}, "connections": {}, "port_directions": {}}
    for group in "AB":
        for k in range(18):
            d, q = next(bit), next(bit)
            cells[f"ff_{group}{k}"] = _ff(d, q, enable=group == "B" and enable_b)
            mult["connections"][f"{group}{k}"] = [q]
            mult["port_directions"][f"{group}{k}"] = "input"
    for k in range(36):
        p, q = next(bit), next(bit)
        mult["connections"][f"P{k}"] = [p]
        mult["port_directions"][f"P{k}"] = "output"
        cells[f"ff_P{k}"] = _ff(p, q)
    cells["mult"] = mult
    ram = {"type": "DP16KD", "parameters": {"REGMODE_A": "NOREG"}, "port_directions": {},
           "connections": {"CLKA": [1], "OCEA": ["1"], "RSTA": ["0"]}}  # fmt: skip
    for k in range(18):
        do, q = next(bit), next(bit)
        ram["connections"][f"DOA{k}"] = [do]
        ram["port_directions"][f"DOA{k}"] = "output"
        cells[f"ff_DO{k}"] = _ff(do, q)
    cells["ram"] = ram
    return {"modules": {"top": {"ports": {"clk": {"bits": [1]}}, "cells": cells}}}


def test_block_registers_are_packed():
    """Plain registers around the multiplier and after the RAM move into the blocks: the
    pins take the registers' D (inputs) or Q (outputs), the registers go."""
    net = _netlist()
    cells = net["modules"]["top"]["cells"]
    want_a = cells["ff_A3"]["connections"]["DI"]
    want_p = cells["ff_P5"]["connections"]["Q"]
    want_do = cells["ff_DO2"]["connections"]["Q"]
    assert pack_block_registers(net, "top") == 4
    mult, ram = cells["mult"], cells["ram"]
    assert {mult["parameters"][f"REG_{k}_CLK"] for k in ("INPUTA", "INPUTB", "OUTPUT")} == {"CLK0"}
    assert mult["connections"]["CLK0"] == [1] and mult["connections"]["A3"] == want_a
    assert mult["connections"]["P5"] == want_p
    assert ram["parameters"]["REGMODE_A"] == "OUTREG" and ram["connections"]["DOA2"] == want_do
    assert not [n for n, c in cells.items() if c["type"] == "TRELLIS_FF"]


def test_registers_with_an_enable_stay():
    net = _netlist(enable_b=True)
    cells = net["modules"]["top"]["cells"]
    assert pack_block_registers(net, "top") == 3
    assert "REG_INPUTB_CLK" not in cells["mult"]["parameters"]
    assert sum(c["type"] == "TRELLIS_FF" for c in cells.values()) == 18
