"""model/measure.py and model/report.py: the report's numbers against direct computation on
small cases, the three files it writes, the page in a headless browser, and the demo."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from small_network import float_network, serve, write_config
from small_network import load as load_network

import lstmfx
from lstmfx.report_cli import DEMO_EXAMPLE
from model.config import load_config
from model.measure import (
    SIGNALS,
    Head,
    int_bits_needed,
    load_head,
    measure,
    pwl_function,
    sqnr_db,
)
from model.network import run_fixed, run_float
from model.pwl import FUNCTIONS
from model.qmodel import ACTIVATIONS, TENSORS
from model.report import json_safe, write_report
from model.sweep import tensor_format

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
#: formats narrow enough to overflow and round visibly, and quick to build tables for
SMALL_FORMATS = {
    "x": "fixed<8,2,RND,SAT>",
    "w": "fixed<8,2,RND,SAT>",
    "r": "fixed<8,2,RND,SAT>",
    "b": "fixed<8,2,RND,SAT>",
    "preact": "fixed<9,3,RND,SAT>",
    "gate": "ufixed<8,0,RND,SAT>",
    "cand": "fixed<8,1,RND,SAT>",
    "cell": "fixed<9,2,RND,SAT>",
    "tanh_cell": "fixed<8,1,RND,SAT>",
    "h": "fixed<8,1,RND,WRAP>",
}


def make_config(
    tmp_path, *, h=3, i=2, seed=0, formats=SMALL_FORMATS, tables='kind = "uniform"\nsegments = 16'
) -> Path:
    """A small random LSTM and a config of narrow formats; returns the config's path."""
    rng = np.random.default_rng(seed)
    np.savez(
        tmp_path / "m.npz",
        w=rng.normal(scale=1.0, size=(4 * h, i)),
        r=rng.normal(scale=0.8, size=(4 * h, h)),
        b=rng.normal(scale=0.5, size=4 * h),
    )
    lines = ['name = "small"', 'model = "m.npz"', "[formats]"]
    lines += [f'{k} = "{v}"' for k, v in formats.items()]
    lines += ["[activations]", tables]
    path = tmp_path / "c.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def direct(got: np.ndarray, ref: np.ndarray) -> dict:
    err = (got - ref).ravel()
    return {
        "max_abs": float(np.abs(err).max()),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "sqnr_db": float(10 * np.log10(np.sum(ref**2) / np.sum(err**2))),
    }


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """Two LSTM layers and a relu and a linear dense layer, narrow formats."""
    tmp = tmp_path_factory.mktemp("small")
    fnet = float_network()
    cfg = load_network(write_config(tmp, fnet), fnet)
    rng = np.random.default_rng(5)
    x = rng.normal(scale=1.5, size=(7, 6, 2))
    return cfg, x, measure(cfg, x)


FMT_OF = {"preact": "preact", "i": "gate", "f": "gate", "o": "gate", "g": "cand"}
FMT_OF.update(c="cell", tanh_cell="tanh_cell", h="h")


def test_errors_match_direct_computation(small):
    cfg, x, r = small
    net = cfg.network
    y_ref, refs = run_float(cfg.float_model, x, output=net.output, trace=True)
    res = run_fixed(net, net.in_fmt.from_float(x), trace=True)
    tables = [{a: pwl_function(la.tables[a]) for a in ACTIVATIONS} for la in net.lstm_layers]
    y_pwl, approxes = run_float(
        cfg.float_model, x, output=net.output, activations=tables, trace=True
    )
    for lname, layer, lres, ref, approx in zip(
        net.layer_names, net.layers, res.layers, refs, approxes
    ):
        if layer.kind == "dense":
            got = layer.out_fmt.codes_to_values(lres.trace["out"])
            want = direct(got, ref["out"])
            for stat, v in want.items():
                assert r["errors"]["fixed"][f"{lname}.out"][stat] == pytest.approx(v, rel=1e-9)
            continue
        h = layer.hidden_size
        fixed = lres.trace
        for sig, (key, block) in SIGNALS.items():
            cols = slice(None) if block is None else slice(block * h, (block + 1) * h)
            got = layer.formats[FMT_OF[key]].codes_to_values(fixed[key])[..., cols]
            want = direct(got, ref[key][..., cols])
            name = f"{lname}.{sig}"
            for stat, v in want.items():
                assert r["errors"]["fixed"][name][stat] == pytest.approx(v, rel=1e-9), (name, stat)
            assert r["errors"]["fixed"][name]["max_lsb"] == pytest.approx(
                want["max_abs"] / layer.formats[FMT_OF[key]].lsb
            )
            want = direct(approx[key][..., cols], ref[key][..., cols])
            for stat, v in want.items():
                assert r["errors"]["pwl"][name][stat] == pytest.approx(v, rel=1e-9), (name, stat)
        # per step: RMSE over sequences and units of each step
        hv = layer.formats["h"].codes_to_values(fixed["h"])
        want_t = np.sqrt(np.mean((hv - ref["h"]) ** 2, axis=(0, 2)))
        assert np.allclose(r["per_step"]["fixed"][f"{lname}.h"]["rmse"], want_t, rtol=1e-9)
    # the network's output, and its error per step
    y_fixed = net.out_fmt.codes_to_values(res.y_codes)
    for stat, v in direct(y_fixed, y_ref).items():
        assert r["errors"]["fixed"]["y"][stat] == pytest.approx(v, rel=1e-9)
    for stat, v in direct(y_pwl, y_ref).items():
        assert r["errors"]["pwl"]["y"][stat] == pytest.approx(v, rel=1e-9)
    want_t = np.abs(y_fixed - y_ref).max(axis=(0, 2))
    assert np.allclose(r["per_step"]["fixed"]["y"]["max_abs"], want_t)
    assert r["layer_outputs"] == ["lstm1.h", "lstm2.h", "dense1.out", "dense2.out"]
    assert r["errors"]["fixed"]["dense2.out"] == r["errors"]["fixed"]["y"]


def test_ranges_and_overflow_match_direct_computation(small):
    cfg, x, r = small
    net, fnet = cfg.network, cfg.float_model
    _, refs = run_float(fnet, x, output=net.output, trace=True)
    res = run_fixed(net, net.in_fmt.from_float(x))
    held = {"lstm1.x": x}
    for lname, fl, ref in zip(net.layer_names, fnet.layers, refs):
        held.update({f"{lname}.{k}": getattr(fl, k) for k in ("w", "b")})
        if fl.kind == "dense":
            held[f"{lname}.out"] = ref["out"]
            continue
        held[f"{lname}.r"] = fl.r
        held.update(
            {
                f"{lname}.preact": ref["preact"],
                f"{lname}.gate": np.concatenate([ref["i"], ref["f"], ref["o"]], axis=-1),
                f"{lname}.cand": ref["g"],
                f"{lname}.cell": ref["c"],
                f"{lname}.tanh_cell": ref["tanh_cell"],
                f"{lname}.h": ref["h"],
            }
        )
    assert set(r["ranges"]) == set(held)
    for t, values in held.items():
        g, f = r["ranges"][t], tensor_format(cfg, t)
        assert g["min"] == values.min() and g["max"] == values.max()
        assert g["count"] == values.size
        lo, hi = f.value_min - f.lsb / 2, f.value_max + f.lsb / 2
        assert g["outside"] == np.count_nonzero((values < lo) | (values > hi)), t
        assert (g["format_min"], g["format_max"]) == (f.value_min, f.value_max)
    for point, n in res.overflow.items():
        assert r["ranges"][point]["overflowed"] == n
    assert r["ranges"]["lstm1.x"]["overflowed"] == net.in_fmt.from_float_counted(x)[1]
    # the narrow formats do overflow somewhere, so the counts above were not all zeros
    assert sum(g["overflowed"] for g in r["ranges"].values()) > 0
    assert r["ranges"]["lstm2.cell"]["overflow_mode"] == "saturated"
    assert r["total_bits"] == sum(tensor_format(cfg, t).width for t in held)


def test_table_errors_are_exhaustive(small):
    cfg, _, r = small
    for lname, tables in cfg.tables.items():
        for act, table in tables.items():
            codes = np.arange(table.in_fmt.code_min, table.in_fmt.code_max + 1)
            got = table.out_fmt.codes_to_values(table(codes))
            exact = FUNCTIONS[ACTIVATIONS[act][2]](table.in_fmt.codes_to_values(codes))
            worst = np.abs(got - exact).max()
            t = r["tables"][f"{lname}.{act}"]
            assert t["max_abs"] == worst and t["layer"] == lname
            assert t["max_lsb"] == pytest.approx(worst / table.out_fmt.lsb)
            assert t["segments"] == 16
    assert len(r["tables"]) == 6


def test_pwl_in_float_is_the_table_before_its_output_rounding(small):
    cfg, _, _ = small
    for table in cfg.tables["lstm1"].values():
        codes = np.arange(table.in_fmt.code_min, table.in_fmt.code_max + 1)
        real = pwl_function(table)(table.in_fmt.codes_to_values(codes))
        rounded = table.out_fmt.codes_to_values(table(codes))
        inside = (real > table.out_fmt.value_min) & (real < table.out_fmt.value_max)
        assert np.all(np.abs(real - rounded)[inside] <= table.out_fmt.lsb / 2)


def test_the_network_is_its_own_head(small, tmp_path):
    """Labels are scored on the network's output; a head file beside a network with dense
    layers is an error, not a second head."""
    cfg, x, _ = small
    net = cfg.network
    y = np.random.default_rng(3).normal(size=x.shape[0])
    r = measure(cfg, x, labels=y)
    y_float = run_float(cfg.float_model, x, output=net.output)[:, -1, 0]
    assert r["task"]["float"]["rmse"] == pytest.approx(np.sqrt(np.mean((y_float - y) ** 2)))
    assert r["task"]["head_layers"] == ["dense1", "dense2"]
    head = Head(np.ones((1, 1)), np.zeros(1), "regress", source=str(tmp_path / "head.npz"))
    with pytest.raises(ValueError, match="own dense layers"):
        measure(cfg, x, labels=y, head=head)


def test_sqnr_and_int_bits_on_known_values():
    assert sqnr_db(2.0, 0.02) == pytest.approx(20.0)
    assert sqnr_db(1.0, 0.0) == math.inf
    for lo, hi, signed in [(-1.0, 0.99, True), (0.0, 1.0, False), (-4.4, 10.14, True)]:
        need = int_bits_needed(lo, hi, signed=signed)
        # brute force: the fewest I whose range holds [lo, hi], the bound itself counted in
        for bits in range(-8, 12):
            top = 2.0 ** (bits - 1) if signed else 2.0**bits
            if hi <= top and (not signed or lo >= -top):
                break
        assert need == bits, (lo, hi, signed)
    assert int_bits_needed(-0.1, 1.0, signed=False) is None


def test_task_metrics_for_classes_and_forecasts(tmp_path):
    cfg = load_config(make_config(tmp_path, formats={}))
    qm = cfg.network
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20, 4, 2))
    head = Head(rng.normal(size=(3, qm.output_size)), rng.normal(size=3), "classify")
    y = rng.integers(0, 3, size=20)
    r = measure(cfg, x, labels=y, head=head)
    h_float = run_float(cfg.float_model, x)[:, -1]
    want = np.mean((h_float @ head.w.T + head.b).argmax(1) == y)
    assert r["task"]["float"]["accuracy"] == pytest.approx(want)
    h_fixed = qm.out_fmt.codes_to_values(run_fixed(qm, qm.in_fmt.from_float(x)).y_codes)
    got = (h_fixed[:, -1] @ head.w.T + head.b).argmax(1)
    assert r["task"]["fixed"]["accuracy"] == pytest.approx(np.mean(got == y))
    assert r["task"]["agreement"]["fixed"] == pytest.approx(
        np.mean(got == (h_float @ head.w.T + head.b).argmax(1))
    )
    # a forecast at every step, NaN labels not scored
    head = Head(rng.normal(size=(1, qm.output_size)), rng.normal(size=1), "regress")
    y = rng.normal(size=(20, 4))
    y[:, 0] = np.nan
    r = measure(cfg, x, labels=y, head=head)
    pred = (h_fixed @ head.w.T + head.b)[..., 0]
    want = np.sqrt(np.mean((pred[:, 1:] - y[:, 1:]) ** 2))
    assert r["task"]["steps"] == "all" and r["task"]["labels"] == 60
    assert r["task"]["fixed"]["rmse"] == pytest.approx(want)
    assert r["task"]["drop"]["fixed"] == pytest.approx(
        r["task"]["fixed"]["rmse"] - r["task"]["float"]["rmse"]
    )


def test_chunks_give_the_numbers_of_one_pass(small, monkeypatch):
    import model.measure as measure_mod

    cfg, x, r = small
    monkeypatch.setattr(measure_mod, "CHUNK_ELEMENTS", 1)  # one sequence per chunk
    again = measure(cfg, x)
    for m in ("fixed", "pwl"):
        for sig in r["errors"][m]:
            for stat in ("max_abs", "rmse", "sqnr_db"):
                assert again["errors"][m][sig][stat] == pytest.approx(r["errors"][m][sig][stat])
    for t, g in r["ranges"].items():
        assert again["ranges"][t] == pytest.approx(g), t  # sums in another order: rms


def test_report_files(small, tmp_path):
    cfg, _, r = small
    paths = write_report(r, cfg.tables, tmp_path)
    assert json.loads(paths["json"].read_text()) == json.loads(json.dumps(json_safe(r)))
    md = paths["md"].read_text()
    for heading in ("## Summary", "## Formats and ranges", "## Error against float64"):
        assert heading in md
    for plot in ("ranges", "errors", "steps", "tables"):
        assert f"({plot}.png)" in md and (tmp_path / f"{plot}.png").stat().st_size > 1000
    page = paths["html"].read_text()
    assert page.count('src="data:image/png;base64,') == 4
    # self-contained: nothing is fetched from anywhere
    assert not re.search(r"""(src|href)=["'](?!data:)""", page)


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def render(html_path: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--virtual-time-budget=10000",
    ]
    return subprocess.run(
        [chromium(), *flags, *extra, html_path.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_report_renders_in_a_headless_browser(small, tmp_path):
    if chromium() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is missing in CI: scripts/install.sh must install it")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    cfg, _, r = small
    page = write_report(r, cfg.tables, tmp_path / "report")["html"]
    out = render(page, tmp_path, "--dump-dom")
    dom = out.stdout
    assert out.returncode == 0, out.stderr[-2000:]
    for heading in ("Summary", "Formats and ranges", "Error against float64", "Activation tables"):
        assert f">{heading}</h2>" in dom
    # every plot decoded to a real image (the page's own script counts them on load)
    assert 'data-images-decoded="4/4"' in dom, dom[:500]
    shot = tmp_path / "shot.png"
    out = render(page, tmp_path, f"--screenshot={shot}", "--window-size=1100,1400")
    assert out.returncode == 0 and shot.stat().st_size > 10000
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)
    assert pixels.std() > 0.05  # not a blank page


def test_report_command(tmp_path):
    cfg = make_config(tmp_path)
    rng = np.random.default_rng(2)
    np.save(tmp_path / "x.npy", rng.normal(size=(5, 4, 2)))
    np.save(tmp_path / "y.npy", rng.integers(0, 3, size=5))
    np.savez(tmp_path / "head.npz", w=rng.normal(size=(3, 3)), b=np.zeros(3))
    args = ["report", str(cfg), "--data", str(tmp_path / "x.npy"), "-o", str(tmp_path / "out")]
    assert lstmfx.main([*args, "--labels", str(tmp_path / "y.npy")]) == 0
    r = json.loads((tmp_path / "out" / "report.json").read_text())
    assert r["task"]["task"] == "classify"  # integer labels, head found beside the config
    assert r["task"]["head"].endswith("head.npz")
    assert set(r["ranges"]) == {f"lstm1.{t}" for t in TENSORS if t != "p"}
    assert lstmfx.main(["report", str(cfg), "--data", str(tmp_path / "nope.npy"), "-o", "x"]) == 2


def test_report_command_on_a_network(tmp_path, monkeypatch, capsys):
    fnet = float_network()
    serve(monkeypatch, fnet)
    cfg = write_config(tmp_path, fnet)
    rng = np.random.default_rng(2)
    np.save(tmp_path / "x.npy", rng.normal(size=(5, 4, 2)))
    np.save(tmp_path / "y.npy", rng.normal(size=5))
    args = ["report", str(cfg), "--data", str(tmp_path / "x.npy"), "-o", str(tmp_path / "out")]
    assert lstmfx.main([*args, "--labels", str(tmp_path / "y.npy")]) == 0
    md = (tmp_path / "out" / "report.md").read_text()
    for row in ("| lstm2.cell |", "| dense1.out |", "| lstm2.tanh_cell (tanh) |", "| dense2.out |"):
        assert row in md
    assert "SQNR at the output of each layer" in md
    # a head file beside a network that has its own dense layers is refused
    np.savez(tmp_path / "head.npz", w=np.ones((1, 1)), b=np.zeros(1))
    capsys.readouterr()
    assert lstmfx.main([*args, "--labels", str(tmp_path / "y.npy")]) == 2
    assert "own dense layers" in capsys.readouterr().err


def test_head_file_errors(tmp_path):
    np.savez(tmp_path / "bad.npz", w=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="lacks b"):
        load_head(tmp_path / "bad.npz")
    np.savez(tmp_path / "bad.npz", w=np.zeros((2, 3)), b=np.zeros(2), task=np.array("rank"))
    with pytest.raises(ValueError, match="classify"):
        load_head(tmp_path / "bad.npz")


def example_head(ex: Path):
    """head.npz beside a config of LSTM layers alone (digits); a network has its own head."""
    return load_head(ex / "head.npz") if (ex / "head.npz").is_file() else None


@pytest.mark.parametrize("name", ["sunspots", "sunspots_net", "digits", "keras_digits"])
def test_examples_hold_their_published_numbers(name):
    """The trained examples load and score as examples/README.md says (nothing is trained)."""
    ex = EXAMPLES / name
    cfg = load_config(ex / "config.toml")
    x, y = np.load(ex / "x_test.npy"), np.load(ex / "y_test.npy")
    r = measure(cfg, x, labels=y, head=example_head(ex), pwl=False)
    task = r["task"]
    published = {"digits": 567 / 597, "keras_digits": 570 / 597, "sunspots": 18.26}
    published["sunspots_net"] = 19.04
    if "digits" in name:
        assert task["float"]["accuracy"] == pytest.approx(published[name])
        assert task["fixed"]["accuracy"] >= task["float"]["accuracy"] - 0.005
    else:
        assert task["float"]["rmse"] == pytest.approx(published[name], abs=0.01)
        assert abs(task["drop"]["fixed"]) < 0.05
    # every range fits its integer bits (sigma and tanh may touch their bound: an edge LSB)
    assert all(g["headroom_bits"] >= 0 for g in r["ranges"].values())


def test_demo_without_simulation(tmp_path, capsys):
    assert lstmfx.main(["demo", "-o", str(tmp_path), "--no-sim"]) == 0
    out = capsys.readouterr().out
    assert "skipped (--no-sim)" in out
    for f in ("infer.npz", "report/report.html", "report/report.json"):
        assert (tmp_path / f).is_file()
    if (tmp_path / "verilog").exists():
        assert (tmp_path / "verilog" / f"{DEMO_EXAMPLE}.v").is_file()


@pytest.mark.parametrize(
    "name, budget",
    [
        ("sunspots", {"metric": 0.1, "h_max_abs": 0.05}),
        ("digits", {"metric": 0.005, "h_rmse": 0.02}),
    ],
)
def test_tuned_example_configs_meet_the_budget_they_were_tuned_for(name, budget):
    ex = EXAMPLES / name
    cfg = load_config(ex / "config.tuned.toml")
    x, y = np.load(ex / "x_test.npy"), np.load(ex / "y_test.npy")
    r = measure(cfg, x, labels=y, head=example_head(ex), pwl=False)
    assert r["task"]["drop"]["fixed"] <= budget.pop("metric")
    for key, limit in budget.items():
        # tuned when h_* meant h at every step; with output "last" y is h at the last step
        assert r["errors"]["fixed"]["lstm1.h"][key.removeprefix("h_")] <= limit
    untuned = measure(load_config(ex / "config.toml"), x[:1], pwl=False)
    assert r["total_bits"] < untuned["total_bits"]


def test_demo_on_a_network(tmp_path, monkeypatch):
    """The demo runs a network with dense layers end to end: its output is the forecast."""
    from lstmfx.demo import run_demo

    fnet = float_network()
    serve(monkeypatch, fnet)
    ex = tmp_path / "example"
    ex.mkdir()
    write_config(ex, fnet, name="net")
    (ex / "c.toml").rename(ex / "config.toml")
    rng = np.random.default_rng(4)
    np.save(ex / "x_test.npy", rng.normal(size=(6, 5, 2)))
    np.save(ex / "y_test.npy", rng.normal(size=6))
    said = []
    assert run_demo(ex, tmp_path / "out", no_sim=True, say=said.append) == 0
    text = "\n".join(said)
    assert "lstm1 2→3, lstm2 3→3, dense1 3→2 relu, dense2 2→1 linear" in text
    assert "forecast float64" in text
    with np.load(tmp_path / "out" / "infer.npz") as out:
        assert out["y"].shape == (6, 5, 1) and out["pred"].shape == (6, 1)
    md = (tmp_path / "out" / "report" / "report.md").read_text()
    assert "| dense2.out |" in md


def test_a_network_that_gives_its_last_step(tmp_path):
    """output = "last": y is one vector per sequence, the error along the sequence is the top
    LSTM layer's, and labels of every step are refused."""
    fnet = float_network(dense=((3, "relu"),))
    cfg = load_network(write_config(tmp_path, fnet, output="last"), fnet)
    x = np.random.default_rng(1).normal(size=(9, 5, 2))
    y = np.random.default_rng(2).integers(0, 3, size=9)
    r = measure(cfg, x, labels=y)
    assert r["growth_signal"] == "lstm2.h" and "y" not in r["per_step"]["fixed"]
    y_float = run_float(cfg.float_model, x, output="last")
    assert r["task"]["float"]["accuracy"] == pytest.approx(np.mean(y_float.argmax(-1) == y))
    assert r["errors"]["fixed"]["y"]["count"] == 9 * 3
    with pytest.raises(ValueError, match="need output = 'sequence'"):
        measure(cfg, x, labels=np.zeros((9, 5), dtype=int))


def test_demo_with_a_named_simulator_that_is_missing_fails(tmp_path, monkeypatch, capsys):
    runner = pytest.importorskip("sim.runner")
    pytest.importorskip(
        "sim.session", exc_type=ImportError
    )  # the demo's co-simulation needs the whole package

    def missing(name):
        raise runner.SimulatorError(f"{name} is not installed")

    monkeypatch.setattr(runner, "setup", missing)
    assert lstmfx.main(["demo", "-o", str(tmp_path), "--sim", "icarus"]) == 1
    assert "failed: icarus is not available" in capsys.readouterr().out


def test_a_report_over_wide_table_inputs_samples_its_plots(tmp_path):
    """A 30-bit preact: the tables' plots sample the input (2^30 codes would need 8 GiB)."""
    formats = {**SMALL_FORMATS, "preact": "fixed<30,6,RND,SAT>", "cell": "fixed<28,6,RND,SAT>"}
    cfg = load_config(make_config(tmp_path, formats=formats))
    r = measure(cfg, np.random.default_rng(0).normal(size=(3, 4, 2)))
    paths = write_report(r, cfg.tables, tmp_path / "out")
    assert (tmp_path / "out" / "tables.png").stat().st_size > 1000
    assert "| lstm1.sigmoid (sigmoid) |" in paths["md"].read_text()
