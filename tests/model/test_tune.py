"""model/tune.py: budgets, a tuned config that meets its budget when measured afresh and
costs no more bits than one width for all or the one-tensor-at-a-time search."""

from __future__ import annotations

import numpy as np
import pytest
from test_report import make_config

import lstmfx
from model.config import load_config
from model.measure import measure, total_bits
from model.tune import Budget, TuneError, parse_budget, tune, tuned_toml

#: a config at the SPEC's typical 16-bit formats, to tune down from
WIDE = {
    "x": "fixed<16,6,RND,SAT>",
    "w": "fixed<16,3,RND,SAT>",
    "r": "fixed<16,3,RND,SAT>",
    "b": "fixed<16,6,RND,SAT>",
    "preact": "fixed<14,6,RND,SAT>",
    "gate": "ufixed<14,1,RND,SAT>",
    "cand": "fixed<14,1,RND,SAT>",
    "cell": "fixed<14,6,RND,SAT>",
    "tanh_cell": "fixed<14,1,RND,SAT>",
    "h": "fixed<14,6,RND,SAT>",
}


def test_budgets():
    assert parse_budget("h_max_abs=0.01") == Budget("h_max_abs", 0.01)
    assert parse_budget("c_rmse<=1e-3") == Budget("c_rmse", 1e-3)
    b = parse_budget("h_sqnr_db>=40")
    assert b.floor and str(b) == "h_sqnr_db >= 40"
    assert parse_budget("metric_drop=0.5%").limit == pytest.approx(0.005)
    assert parse_budget("preact_f_max_lsb=3").name == "preact_f_max_lsb"
    for bad, msg in [("h_max=1", "unknown budget"), ("nope", "NAME=VALUE"), ("q_rmse=1", "SIGNAL")]:
        with pytest.raises(TuneError, match=msg):
            parse_budget(bad)


@pytest.fixture(scope="module")
def problem(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tune")
    cfg = load_config(
        make_config(
            tmp, h=3, i=2, seed=4, formats=WIDE, tables='kind = "auto"\nmax_error_lsb = 2.0'
        )
    )
    x = np.random.default_rng(8).normal(scale=1.2, size=(12, 10, 2))
    return cfg, x


def test_the_tuned_config_meets_its_budget_with_fewer_bits(problem, tmp_path):
    cfg, x = problem
    budgets = [parse_budget("h_max_abs=0.03")]
    res = tune(cfg, x, budgets, say=lambda s: None)
    path = tmp_path / "tuned.toml"
    path.write_text(tuned_toml(res, cfg, budgets, path))
    tuned = load_config(path)  # measured afresh, from the file a user gets
    m = measure(tuned, x)
    assert m["errors"]["fixed"]["h"]["max_abs"] <= 0.03
    assert total_bits(tuned.formats, False) == res.bits
    assert res.bits < res.config_bits
    # no worse than the two searches a person would try first; here strictly better
    assert res.uniform and res.bits < res.uniform["bits"]
    assert res.bits < res.greedy["bits"]
    # integer bits came from the data's ranges: h is in (-1, 1)
    assert tuned.formats["h"].int_bits == 1
    # no single bit can be taken away without breaking the budget (a local minimum)
    for t, w in res.widths.items():
        if t == "p" or w - 1 <= tuned.formats[t].int_bits:
            continue
        fewer = tuned.replace(formats={t: str(tuned.formats[t]).replace(f"<{w},", f"<{w - 1},")})
        assert measure(fewer, x, pwl=False)["errors"]["fixed"]["h"]["max_abs"] > 0.03, t


def test_a_task_budget_needs_labels_and_an_unreachable_one_says_why(problem):
    cfg, x = problem
    with pytest.raises(TuneError, match="--labels"):
        tune(cfg, x, [parse_budget("metric_drop=0.01")], say=lambda s: None)
    with pytest.raises(TuneError, match="not met even with the tuned tensors at 10 bits"):
        tune(cfg, x, [parse_budget("h_max_abs=1e-6")], max_width=10, say=lambda s: None)


def test_tune_command(problem, tmp_path, capsys):
    cfg, x = problem
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", rng.integers(0, 3, size=len(x)))
    np.savez(tmp_path / "head.npz", w=rng.normal(size=(3, 3)), b=np.zeros(3), task="classify")
    out = tmp_path / "t.toml"
    args = ["tune", str(cfg.source), "--data", str(tmp_path / "x.npy"), "-o", str(out)]
    args += ["--labels", str(tmp_path / "y.npy"), "--head", str(tmp_path / "head.npz")]
    args += ["--budget", "metric_drop=0.09", "h_rmse=0.01", "--tensors", "w", "r", "h"]
    assert lstmfx.main(args) == 0
    text = capsys.readouterr().out
    assert "total bits" in text and f"wrote {out}" in text
    tuned = load_config(out)
    assert out.read_text().startswith("# Tuned by `lstmfx tune`")
    # only the named tensors changed
    for t in ("x", "b", "preact", "gate", "cand", "cell", "tanh_cell"):
        assert tuned.formats[t] == cfg.formats[t], t
    assert tuned.formats["w"].width < 16
