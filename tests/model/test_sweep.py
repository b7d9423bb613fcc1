"""model/sweep.py: axes, a sweep interrupted and resumed equals one run straight through,
the results file, the outputs and the command."""

from __future__ import annotations

import json

import numpy as np
import pytest
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
    assert (a.targets, a.kind, a.values) == (("w",), "width", (8, 9, 10))
    a = parse_axis("w,r=8..12:2")
    assert (a.targets, a.values) == (("w", "r"), (8, 10, 12))
    assert parse_axis("weights=6,8").targets == ("w", "r", "b")
    assert parse_axis("weights=6,8", peephole=True).targets == ("w", "r", "b", "p")
    assert len(parse_axis("all=8").targets) == 10
    a = parse_axis("preact.I=3..5")
    assert (a.kind, a.values) == ("int_bits", (3, 4, 5))
    a = parse_axis("sigmoid.segments=8..64")
    assert (a.targets, a.key, a.values) == (("sigmoid",), "segments", (8, 16, 32, 64))
    a = parse_axis("segments=5..16")
    assert a.targets == ("sigmoid", "tanh", "tanh_cell") and a.values == (8, 16)
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
    ]:
        with pytest.raises(SweepError, match=msg):
            parse_axis(bad)


def test_a_point_changes_what_its_axes_name(tmp_path):
    cfg = load_config(make_config(tmp_path))
    axes = [parse_axis("w,r=6"), parse_axis("cell.I=3"), parse_axis("tanh.segments=4")]
    c = changes(cfg, axes, (6, 3, 4))
    assert c["formats"] == {
        "cell": "fixed<9,3,RND,SAT>",
        "r": "fixed<6,2,RND,SAT>",
        "w": "fixed<6,2,RND,SAT>",
    }
    assert c["activations"] == {"tanh": {"segments": 4}}
    new = TableCache().configure(cfg, c)
    assert new.qmodel.tables["tanh"].breakpoints.shape == (4,)
    assert str(new.formats["w"]) == "fixed<6,2,RND,SAT>"
    assert new.formats["x"] == cfg.formats["x"]


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
    assert whole[3]["result"]["errors"]["fixed"]["h"]["rmse"] == pytest.approx(
        fresh["errors"]["fixed"]["h"]["rmse"], rel=1e-12
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
