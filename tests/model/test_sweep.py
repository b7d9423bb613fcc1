"""model/sweep.py: axes, a sweep interrupted and resumed equals one run straight through,
the results file, the outputs and the command."""

from __future__ import annotations

import json

import numpy as np
import pytest
from small_network import float_network, write_config
from small_network import load as load_network
from test_report import make_config

import lstmfx
from model.config import load_config
from model.measure import measure
from model.sweep import (
    SweepError,
    TableCache,
    changes,
    parse_axis,
    run_sweep,
    summarize,
    write_outputs,
)


def test_axes():
    a = parse_axis("w=8..10")
    assert (a.targets, a.kind, a.values) == (("lstm1.w",), "width", (8, 9, 10))
    a = parse_axis("w,r=8..12:2")
    assert (a.targets, a.values) == (("lstm1.w", "lstm1.r"), (8, 10, 12))
    assert parse_axis("weights=6,8").targets == ("lstm1.w", "lstm1.r", "lstm1.b")
    assert parse_axis("weights=6,8", peephole=True).targets[-1] == "lstm1.p"
    assert len(parse_axis("all=8").targets) == 10
    a = parse_axis("preact.I=3..5")
    assert (a.kind, a.values) == ("int_bits", (3, 4, 5))
    a = parse_axis("sigmoid.segments=8..64")
    assert (a.targets, a.key, a.values) == (("lstm1.sigmoid",), "segments", (8, 16, 32, 64))
    a = parse_axis("segments=5..16")
    assert a.targets == ("lstm1.sigmoid", "lstm1.tanh", "lstm1.tanh_cell")
    assert a.values == (8, 16)
    assert parse_axis("tables.max_error_lsb=0.5..2").values == (0.5, 1, 2)
    assert parse_axis("gate,cand,tanh_cell=8").kind == "width"  # tanh_cell: tensor and table
    for bad, msg in [
        ("foo=1..2", "neither a tensor"),
        ("w=10..8", "backwards"),
        ("w=a..b", "integers"),
        ("sigmoid.bogus=1..2", "TABLE.KEY"),
        ("w=0..3", "from 1 to 32"),
        ("w", "NAME=A..B"),
        ("w.F=1..2", ".I"),
        ("lstm2.w=8", "not a layer"),
    ]:
        with pytest.raises(SweepError, match=msg):
            parse_axis(bad)


def test_axes_of_a_network():
    """Plain names: every LSTM layer; <layer>.<tensor>: one layer's; weights and all: every
    layer's, the dense layers' too."""
    net = load_network_config()
    a = parse_axis("cell=6..8", net=net)
    assert a.targets == ("lstm1.cell", "lstm2.cell")
    assert parse_axis("x=8", net=net).targets == ("lstm1.x",)  # lstm2's x is lstm1's h
    a = parse_axis("lstm2.cell.I=2..3", net=net)
    assert (a.targets, a.kind, a.values) == (("lstm2.cell",), "int_bits", (2, 3))
    assert parse_axis("lstm1.w,lstm2.w=6", net=net).targets == ("lstm1.w", "lstm2.w")
    assert parse_axis("dense1.out=8,10", net=net).targets == ("dense1.out",)
    assert parse_axis("out=8", net=net).targets == ("dense1.out", "dense2.out")
    weights = parse_axis("weights=8", net=net).targets
    assert weights[-4:] == ("dense1.w", "dense1.b", "dense2.w", "dense2.b") and len(weights) == 10
    assert len(parse_axis("all=8", net=net).targets) == 10 + 9 + 3 + 3
    a = parse_axis("lstm2.sigmoid.segments=8..16", net=net)
    assert (a.targets, a.kind, a.key) == (("lstm2.sigmoid",), "table", "segments")
    assert parse_axis("sigmoid.segments=8", net=net).targets == ("lstm1.sigmoid", "lstm2.sigmoid")
    assert len(parse_axis("tables.segments=8", net=net).targets) == 6
    for bad, msg in [
        ("lstm3.cell=8", "not a layer"),
        ("lstm2.x=8", "h of the layer below"),
        ("dense1.cell=8", "has no tensor"),
        ("dense1.sigmoid.segments=8", "dense layer"),
    ]:
        with pytest.raises(SweepError, match=msg):
            parse_axis(bad, net=net)


def load_network_config():
    return _NET_CFG[0].network


_NET_CFG = []


@pytest.fixture(scope="module", autouse=True)
def _network(tmp_path_factory):
    fnet = float_network()
    _NET_CFG[:] = [load_network(write_config(tmp_path_factory.mktemp("net"), fnet), fnet)]


def test_a_network_sweep(tmp_path):
    cfg = _NET_CFG[0]
    x = np.random.default_rng(3).normal(scale=1.5, size=(6, 5, 2))
    axes = [parse_axis("lstm2.cell=6..7", net=cfg.network)]
    axes.append(parse_axis("sigmoid.segments=4..8", net=cfg.network))
    rows = run_sweep(cfg, x, axes, tmp_path, progress=False)
    assert len(rows) == 4
    c = json.loads(rows[3]["key"])
    assert c["formats"] == {"lstm2.cell": "fixed<7,2,RND,SAT>"}
    assert c["activations"] == {"lstm1.sigmoid": {"segments": 8}, "lstm2.sigmoid": {"segments": 8}}
    new = TableCache().configure(cfg, c)
    assert str(new.layer_formats("lstm2")["cell"]) == "fixed<7,2,RND,SAT>"
    assert new.layer_formats("lstm1")["cell"] == cfg.layer_formats("lstm1")["cell"]
    assert new.tables["lstm2"]["sigmoid"].breakpoints.shape == (8,)
    fresh = summarize(measure(new, x))
    assert rows[3]["result"]["errors"]["fixed"]["y"]["rmse"] == pytest.approx(
        fresh["errors"]["fixed"]["y"]["rmse"], rel=1e-12
    )
    assert rows[3]["result"]["total_bits"] == rows[1]["result"]["total_bits"] + 1
    paths = write_outputs(rows, axes, tmp_path, title="t")
    head = paths["csv"].read_text().splitlines()[0].split(",")
    assert "h_rmse" in head and "lstm2.c_rmse" in head and "dense1.out_rmse" in head


def test_a_point_changes_what_its_axes_name(tmp_path):
    cfg = load_config(make_config(tmp_path))
    axes = [parse_axis("w,r=6"), parse_axis("cell.I=3"), parse_axis("tanh.segments=4")]
    c = changes(cfg, axes, (6, 3, 4))
    assert c["formats"] == {
        "lstm1.cell": "fixed<9,3,RND,SAT>",
        "lstm1.r": "fixed<6,2,RND,SAT>",
        "lstm1.w": "fixed<6,2,RND,SAT>",
    }
    assert c["activations"] == {"lstm1.tanh": {"segments": 4}}
    new = TableCache().configure(cfg, c)
    assert new.tables["lstm1"]["tanh"].breakpoints.shape == (4,)
    assert str(new.layer_formats("lstm1")["w"]) == "fixed<6,2,RND,SAT>"
    assert new.layer_formats("lstm1")["x"] == cfg.formats["x"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sweep")
    cfg = load_config(make_config(tmp))
    x = np.random.default_rng(3).normal(scale=1.5, size=(6, 5, 2))
    axes = [parse_axis("w,r=5..7"), parse_axis("sigmoid.segments=4..8")]
    return cfg, x, axes


def test_an_interrupted_sweep_resumes_to_the_same_results(setup, tmp_path):
    cfg, x, axes = setup
    whole = run_sweep(cfg, x, axes, tmp_path / "whole", progress=False)
    assert len(whole) == 6

    class Stop(Exception):
        pass

    def stop_after_two(k, row):
        if k == 1:
            raise Stop

    with pytest.raises(Stop):
        run_sweep(cfg, x, axes, tmp_path / "cut", on_point=stop_after_two, progress=False)
    lines = (tmp_path / "cut" / "sweep.jsonl").read_text().splitlines()
    assert len(lines) == 1 + 2  # the header and the two finished points
    ran = []
    resumed = run_sweep(
        cfg, x, axes, tmp_path / "cut", on_point=lambda k, row: ran.append(k), progress=False
    )
    assert len(ran) == 4  # only the points that were missing
    assert resumed == whole
    # and a file read back gives the numbers a fresh measurement gives
    c = json.loads(whole[3]["key"])
    fresh = summarize(measure(TableCache().configure(cfg, c), x))
    assert whole[3]["result"]["errors"]["fixed"]["y"]["rmse"] == pytest.approx(
        fresh["errors"]["fixed"]["y"]["rmse"], rel=1e-12
    )


def test_a_torn_last_line_is_dropped_and_redone(setup, tmp_path):
    cfg, x, axes = setup
    whole = run_sweep(cfg, x, axes[:1], tmp_path, progress=False)
    path = tmp_path / "sweep.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:40])  # cut mid-write
    ran = []
    again = run_sweep(
        cfg, x, axes[:1], tmp_path, on_point=lambda k, r: ran.append(k), progress=False
    )
    assert ran == [0] and again == whole
    assert len(path.read_text().splitlines()) == len(lines)


def test_another_config_or_data_is_not_mixed_in(setup, tmp_path):
    cfg, x, axes = setup
    run_sweep(cfg, x, axes[:1], tmp_path, progress=False)
    with pytest.raises(SweepError, match="another config, model or data"):
        run_sweep(cfg, x[:3], axes[:1], tmp_path, progress=False)
    with pytest.raises(SweepError, match="twice"):
        run_sweep(cfg, x, [axes[0], axes[0]], tmp_path / "b", progress=False)


def test_points_that_cannot_be_built_are_results_too(setup, tmp_path):
    cfg, x, _ = setup
    # 2-bit preact: the uniform 16-segment tables need more codes than the format has
    rows = run_sweep(cfg, x, [parse_axis("preact=2,9")], tmp_path, progress=False)
    assert "error" in rows[0]["result"] and "errors" in rows[1]["result"]
    paths = write_outputs(rows, [parse_axis("preact=2,9")], tmp_path, title="t")
    assert "error" in paths["csv"].read_text().splitlines()[0]


def test_outputs_and_command(setup, tmp_path, capsys):
    cfg, x, axes = setup
    np.save(tmp_path / "x.npy", x)
    args = ["sweep", str(cfg.source), "--data", str(tmp_path / "x.npy"), "-o", str(tmp_path)]
    assert lstmfx.main([*args, "--vary", "w,r=5..7", "sigmoid.segments=4..8"]) == 0
    out = capsys.readouterr()
    assert "6/6 points" in out.err  # progress, on stderr
    for f in ("sweep.csv", "sweep.md", "sweep.html", "sweep_axes.png", "sweep_bits.png"):
        assert (tmp_path / f).stat().st_size > 100, f
    rows = (tmp_path / "sweep.csv").read_text().splitlines()
    assert len(rows) == 7 and rows[0].startswith('"w,r",sigmoid.segments,total_bits,')
    page = (tmp_path / "sweep.html").read_text()
    assert page.count("data:image/png;base64,") == 2
    # the same command again computes nothing and writes the same table
    assert lstmfx.main([*args, "--vary", "w,r=5..7", "sigmoid.segments=4..8"]) == 0
    assert (tmp_path / "sweep.csv").read_text().splitlines() == rows
    assert lstmfx.main([*args, "--vary", "bogus=1..2"]) == 2
