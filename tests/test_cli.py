"""The command line: manifest and infer, through lstmfx.main as a user calls them."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lstmfx
from model.config import load_config
from model.network import run_fixed, run_float

RNG = np.random.default_rng(11)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def config(tmp_path):
    h, i = 3, 2
    np.savez(
        tmp_path / "m.npz",
        w=RNG.normal(size=(4 * h, i)),
        r=RNG.normal(size=(4 * h, h)),
        b=RNG.normal(size=4 * h),
    )
    path = tmp_path / "c.toml"
    path.write_text('model = "m.npz"\nname = "cli"\n[activations]\nkind = "uniform"\n')
    return path


def test_manifest_command_writes_spec_layout(tmp_path, config):
    out = tmp_path / "sub" / "cli.manifest.json"
    assert lstmfx.main(["manifest", str(config), "-o", str(out)]) == 0
    m = json.loads(out.read_text())
    assert m["spec"] == 2 and m["name"] == "cli" and len(m["layers"]) == 1
    layer = m["layers"][0]
    assert layer["kind"] == "lstm" and layer["peephole"] is False
    assert set(layer["activations"]) == {"sigmoid", "tanh", "tanh_cell"}
    assert len(layer["weights"]["w"]) == 12 and "p" not in layer["weights"]
    assert m == load_config(config).network.to_manifest()


def test_infer_floats_and_codes(tmp_path, config):
    x = RNG.normal(size=(4, 9, 2)) * 3
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "o.npz"
    assert (
        lstmfx.main(
            [
                "infer",
                str(config),
                "--input",
                str(tmp_path / "x.npy"),
                "--output",
                str(out),
                "--float",
            ]
        )
        == 0
    )
    res = np.load(out)
    cfg = load_config(config)
    net = cfg.network
    codes = net.in_fmt.from_float(x)
    expect = run_fixed(net, codes).y_codes
    assert res["y_codes"].dtype == np.int64 and res["y_codes"].shape == (4, 9, 3)
    np.testing.assert_array_equal(res["y_codes"], expect)
    np.testing.assert_array_equal(res["lstm1_h_codes"], expect)  # one layer: y is its h
    np.testing.assert_array_equal(res["y"], expect * net.out_fmt.lsb)
    np.testing.assert_array_equal(res["y_float"], run_float(cfg.float_model, x))

    np.save(tmp_path / "c.npy", codes)
    assert (
        lstmfx.main(
            [
                "infer",
                str(config),
                "--input",
                str(tmp_path / "c.npy"),
                "--output",
                str(out),
                "--codes",
            ]
        )
        == 0
    )
    np.testing.assert_array_equal(np.load(out)["y_codes"], expect)
    assert "y_float" not in np.load(out).files


def test_infer_bad_input_is_a_clear_error(tmp_path, config, capsys):
    np.save(tmp_path / "x.npy", np.zeros((4, 9, 5)))
    code = lstmfx.main(
        [
            "infer",
            str(config),
            "--input",
            str(tmp_path / "x.npy"),
            "--output",
            str(tmp_path / "o.npz"),
        ]
    )
    assert code == 2
    assert "[N, T, I=2]" in capsys.readouterr().err
    np.save(tmp_path / "f.npy", np.zeros((1, 2, 2)))
    code = lstmfx.main(
        [
            "infer",
            str(config),
            "--input",
            str(tmp_path / "f.npy"),
            "--output",
            str(tmp_path / "o.npz"),
            "--codes",
        ]
    )
    assert code == 2
    assert "integer codes" in capsys.readouterr().err


def test_console_script_help():
    out = subprocess.run(
        [sys.executable, "-m", "lstmfx", "--help"], capture_output=True, text=True, check=True
    )
    assert "manifest" in out.stdout and "infer" in out.stdout


def test_help_imports_no_heavy_package():
    """Every command is registered before one is chosen: registering must import no numpy,
    numba, amaranth or torch (they take seconds), so that ``lstmfx --help`` answers at once."""
    heavy = ("numpy", "numba", "amaranth", "torch", "scipy", "matplotlib", "onnx", "cocotb")
    code = (
        "import sys, lstmfx; lstmfx.build_parser(); "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]"
    for command in ("report", "sweep", "tune", "demo", "generate", "simulate"):
        assert command in lstmfx.build_parser().format_help()


def test_model_imports_nothing_from_hdl_or_sim():
    """model/ is the floor hdl/ and sim/ stand on: no import of them, not even one inside a
    function (the flows that cross packages live in lstmfx/)."""
    found = []
    for path in sorted((ROOT / "model").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                if name.split(".")[0] in ("hdl", "sim", "lstmfx"):
                    found.append(f"{path.name}:{node.lineno} imports {name}")
    assert not found, found


def test_infer_refuses_npz_and_integer_values(tmp_path, config, capsys):
    np.savez(tmp_path / "x.npz", x=np.zeros((1, 2, 2)))
    args = ["infer", str(config), "--output", str(tmp_path / "o")]
    assert lstmfx.main([*args, "--input", str(tmp_path / "x.npz")]) == 2
    assert "not an .npy file" in capsys.readouterr().err
    np.save(tmp_path / "i.npy", np.zeros((1, 2, 2), dtype=np.int32))
    assert lstmfx.main([*args, "--input", str(tmp_path / "i.npy")]) == 2
    assert "add --codes" in capsys.readouterr().err


def test_infer_says_the_file_it_wrote(tmp_path, config, capsys):
    np.save(tmp_path / "x.npy", np.zeros((1, 2, 2)))
    out = tmp_path / "result"
    assert (
        lstmfx.main(
            ["infer", str(config), "--input", str(tmp_path / "x.npy"), "--output", str(out)]
        )
        == 0
    )
    assert f"wrote {out}.npz" in capsys.readouterr().out
    assert (tmp_path / "result.npz").is_file()


def test_outputs_are_checked_before_work(tmp_path, config, capsys):
    (tmp_path / "afile").write_text("")
    np.save(tmp_path / "x.npy", np.zeros((1, 2, 2)))
    bad = str(tmp_path / "afile" / "o.npz")
    assert (
        lstmfx.main(["infer", str(config), "--input", str(tmp_path / "x.npy"), "--output", bad])
        == 2
    )
    err = capsys.readouterr().err
    assert "is a file, not a folder" in err and len(err.strip().splitlines()) == 1
    assert lstmfx.main(["manifest", str(config), "-o", bad]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_manifest_into_a_folder(tmp_path, config):
    (tmp_path / "d").mkdir()
    assert lstmfx.main(["manifest", str(config), "-o", str(tmp_path / "d")]) == 0
    assert (tmp_path / "d" / "cli.manifest.json").is_file()
    assert lstmfx.main(["manifest", str(config), "-o", str(tmp_path / "new") + "/"]) == 0
    assert (tmp_path / "new" / "cli.manifest.json").is_file()


def test_formats_without_q_and_o_are_named_once(tmp_path, config, capsys):
    text = config.read_text() + '[formats]\nw = "fixed<8,2>"\nr = "fixed<8,2>"\n'
    config.write_text(text)
    assert lstmfx.main(["manifest", str(config), "-o", str(tmp_path / "m.json")]) == 0
    err = capsys.readouterr().err
    assert err.count("TRN") == 1 and "[formats] w, [formats] r" in err and "WRAP" in err
