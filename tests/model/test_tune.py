"""model/tune.py: budgets, a tuned config that meets its budget when measured afresh and
costs no more bits than one width for all or the one-tensor-at-a-time search."""

from __future__ import annotations

import numpy as np
import pytest
from small_network import float_network, write_config
from small_network import load as load_network
from test_report import make_config

import lstmfx
from model.config import load_config
from model.measure import measure, total_bits
from model.sweep import tensor_format
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
    # the network's output, one layer's signal
    assert parse_budget("y_rmse=0.1").name == "y_rmse"
    assert parse_budget("lstm2.c_rmse=0.1").name == "lstm2.c_rmse"
    assert parse_budget("dense1.out_max_abs=0.1").name == "dense1.out_max_abs"
    for bad, msg in [
        ("h_max=1", "unknown budget"),
        ("nope", "NAME=VALUE"),
        ("q_rmse=1", "SIGNAL"),
        ("dense1.c_rmse=1", "SIGNAL"),
        ("lstm1.out_rmse=1", "SIGNAL"),
    ]:
        with pytest.raises(TuneError, match=msg):
            parse_budget(bad)


def test_budget_values_on_a_network():
    """h and y name the network's output, a plain signal the worst LSTM layer."""
    errors = {
        "lstm1.c": {"rmse": 0.1, "sqnr_db": 30.0},
        "lstm2.c": {"rmse": 0.3, "sqnr_db": 20.0},
        "dense1.out": {"rmse": 0.2, "sqnr_db": 25.0},
        "y": {"rmse": 0.2, "sqnr_db": 25.0},
    }
    m = {"errors": {"fixed": errors}}
    assert parse_budget("h_rmse=1").value(m) == parse_budget("y_rmse=1").value(m) == 0.2
    assert parse_budget("c_rmse=1").value(m) == 0.3
    assert parse_budget("c_sqnr_db=1").value(m) == 20.0
    assert parse_budget("lstm1.c_rmse=1").value(m) == 0.1
    with pytest.raises(TuneError, match="no signal lstm3.c"):
        parse_budget("lstm3.c_rmse=1").value(m)


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
    assert m["errors"]["fixed"]["y"]["max_abs"] <= 0.03
    assert total_bits(tuned.network) == res.bits
    assert res.bits < res.config_bits
    # no worse than the two searches a person would try first; here strictly better
    assert res.uniform and res.bits < res.uniform["bits"]
    assert res.bits < res.greedy["bits"]
    # integer bits came from the data's ranges: h is in (-1, 1)
    assert tensor_format(tuned, "lstm1.h").int_bits == 1
    # no single bit can be taken away without breaking the budget (a local minimum)
    for t, w in res.widths.items():
        f = tensor_format(tuned, t)
        if w - 1 <= f.int_bits:
            continue
        fewer = tuned.replace(formats={t: str(f).replace(f"<{w},", f"<{w - 1},")})
        assert measure(fewer, x, pwl=False)["errors"]["fixed"]["y"]["max_abs"] > 0.03, t


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
        assert tensor_format(tuned, f"lstm1.{t}") == cfg.formats[t], t
    assert tensor_format(tuned, "lstm1.w").width < 16


def test_tune_allocates_bits_across_the_layers_of_a_network(tmp_path):
    """Every <layer>.<tensor> is a knob of one budget on the output; the tuned config has
    per-layer sections, and meets the budget when read back."""
    fnet = float_network(seed=2)
    cfg = load_network(write_config(tmp_path, fnet), fnet)
    x = np.random.default_rng(8).normal(scale=1.2, size=(10, 8, 2))
    budgets = [parse_budget("y_max_abs=0.05"), parse_budget("lstm2.c_rmse=0.05")]
    tensors = ["lstm1.w", "lstm2.w", "cell", "h", "dense1.w", "dense1.out"]
    res = tune(cfg, x, budgets, tensors=tensors, max_width=14, say=lambda s: None)
    want = {"lstm1.w", "lstm2.w", "lstm1.cell", "lstm2.cell", "lstm1.h", "lstm2.h"}
    assert want | {"dense1.w", "dense1.out"} <= set(res.widths)
    assert res.bits < res.config_bits
    path = tmp_path / "tuned.toml"
    text = tuned_toml(res, cfg, budgets, path)
    assert "[lstm2.formats]" in text and "[dense1.formats]" in text
    path.write_text(text)
    tuned = load_network(path, fnet)
    m = measure(tuned, x, pwl=False)
    assert all(b.ok(m) for b in budgets)
    assert total_bits(tuned.network) == res.bits
    # the tensors not named kept their formats
    assert tensor_format(tuned, "lstm2.preact") == tensor_format(cfg, "lstm2.preact")
    assert tensor_format(tuned, "dense2.w") == tensor_format(cfg, "dense2.w")


def test_sweep_and_tune_commands_on_a_pytorch_network(tmp_path, capsys):
    """A model file as users bring it: nn.LSTM(num_layers=2) and two nn.Linear, named by the
    config's head; the commands run on it and name every layer's tensors (the report command
    on a network: test_report.py)."""
    torch = pytest.importorskip("torch")

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(2, 3, num_layers=2, batch_first=True)
            self.fc = torch.nn.Linear(3, 2)
            self.out = torch.nn.Linear(2, 1)

    torch.manual_seed(0)
    torch.save(Net().state_dict(), tmp_path / "m.pt")
    (tmp_path / "c.toml").write_text(
        'name = "pt"\nmodel = "m.pt"\n'
        'head = [{layer = "fc", activation = "relu"}, {layer = "out"}]\n'
        '[activations]\nkind = "uniform"\nsegments = 16\n'
    )
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.normal(size=(8, 6, 2)))
    data = [str(tmp_path / "c.toml"), "--data", str(tmp_path / "x.npy")]
    vary = ["--vary", "lstm2.cell=8,10", "out=10"]
    assert lstmfx.main(["sweep", *data, *vary, "-o", str(tmp_path / "s")]) == 0
    assert len((tmp_path / "s" / "sweep.csv").read_text().splitlines()) == 3
    out = tmp_path / "t.toml"
    budget = ["--budget", "y_rmse=0.01", "lstm2.c_rmse=0.1"]
    args = ["tune", *data, *budget, "--tensors", "lstm2.cell", "dense1.w", "-o", str(out)]
    capsys.readouterr()
    assert lstmfx.main(args) == 0
    text = capsys.readouterr().out
    assert "lstm2.cell" in text and "dense1.w" in text
    tuned = out.read_text()
    assert "[lstm2.formats]\ncell = " in tuned and "[dense1.formats]\nw = " in tuned
    assert "[lstm1.formats]" not in tuned  # nothing of lstm1 was tuned
