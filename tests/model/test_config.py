"""model/config.py: TOML in, QuantizedModel out; every bad input is an error that says what
to change."""

import numpy as np
import pytest

from model.config import ConfigError, load_config
from model.formats import parse_format
from model.qmodel import DEFAULT_FORMATS, QuantizedModel

RNG = np.random.default_rng(7)


@pytest.fixture
def npz(tmp_path):
    h, i = 3, 2
    path = tmp_path / "m.npz"
    np.savez(
        path,
        w=RNG.normal(size=(4 * h, i)),
        r=RNG.normal(size=(4 * h, h)),
        b=RNG.normal(size=4 * h),
        p=RNG.normal(size=3 * h),
    )
    return path


def write(tmp_path, text):
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


def test_defaults_are_the_spec_typical_formats(tmp_path, npz):
    cfg = load_config(write(tmp_path, 'model = "m.npz"\n'))
    qm = cfg.qmodel
    assert cfg.name == "m"
    assert qm.peephole
    for tensor, text in DEFAULT_FORMATS.items():
        assert qm.formats[tensor] == parse_format(text)


def test_default_and_overrides(tmp_path, npz):
    cfg = load_config(
        write(
            tmp_path,
            'model = "m.npz"\nname = "abc"\n[formats]\ndefault = "fixed<12,4,TRN,WRAP>"\n'
            'w = "fixed<8,2,RND_CONV,SAT_SYM>"\n',
        )
    )
    assert cfg.formats["w"] == parse_format("fixed<8,2,RND_CONV,SAT_SYM>")
    assert cfg.formats["gate"] == parse_format("fixed<12,4,TRN,WRAP>")
    assert cfg.qmodel.name == "abc"


def test_weights_are_quantized_by_the_format_and_overflow_counted(tmp_path, npz):
    cfg = load_config(write(tmp_path, 'model = "m.npz"\n[formats]\nw = "fixed<6,1,RND,SAT>"\n'))
    w = np.load(npz)["w"]
    fmt = cfg.formats["w"]
    expect = np.clip(np.floor(w * 32 + 0.5), -32, 31).astype(np.int64)
    np.testing.assert_array_equal(cfg.qmodel.w, expect)
    assert cfg.weight_overflow["w"] == int(np.sum((w * 32 + 0.5 >= 32) | (w * 32 < -32.5)))
    assert fmt.frac == 5


def test_manifest_round_trip(tmp_path, npz):
    qm = load_config(write(tmp_path, 'model = "m.npz"\n[activations]\nkind = "plan"\n')).qmodel
    path = qm.write_manifest(tmp_path / "m.json")
    back = QuantizedModel.read_manifest(path)
    assert back.to_manifest() == qm.to_manifest()
    x = RNG.integers(-3000, 3000, size=(2, 5, 2))
    from model.lstm import run_fixed

    np.testing.assert_array_equal(run_fixed(back, x).h_codes, run_fixed(qm, x).h_codes)


@pytest.mark.parametrize(
    "text, words",
    [
        ('model = "m.npz"\nfoo = 1\n', ["foo", "known keys"]),
        ('model = "m.npz"\n[formats]\nwx = "fixed<8,2>"\n', ["wx", "known"]),
        ('model = "m.npz"\n[formats]\nw = "fixd<8,2>"\n', ["fixd<8,2>", "fixed<W,I,Q,O>"]),
        ('model = "m.npz"\n[formats]\nw = "fixed<33,2>"\n', ["33", "1 to 32"]),
        ('model = "m.npz"\n[formats]\nw = "fixed<8,2,RND,CLAMP>"\n', ["CLAMP", "SAT"]),
        ('model = "m.npz"\nname = "9lives"\n', ["9lives", "Verilog identifier"]),
        ('model = "m.npz"\noutput = "all"\n', ["all", "last"]),
        ('model = "m.npz"\n[activations]\nkind = "spline"\n', ["spline", "uniform"]),
        ('model = "m.npz"\n[activations.tanh]\nsegments = 12\n', ["segments = 12", "16"]),
        ('model = "m.npz"\n[activations.tanh]\nsegmnts = 16\n', ["segmnts", "known keys"]),
        ("name = 'x'\n", ["no model"]),
        ('model = "m.npz"\n[formats\n', ["not valid TOML"]),
    ],
)
def test_bad_configs_say_what_to_change(tmp_path, npz, text, words):
    with pytest.raises(ConfigError) as e:
        _ = load_config(write(tmp_path, text)).qmodel
    for word in words:
        assert word in str(e.value)


def test_accumulator_over_62_bits_names_formats(tmp_path, npz):
    text = (
        'model = "m.npz"\n[formats]\nw = "fixed<32,2>"\nx = "fixed<32,2>"\n'
        'r = "fixed<32,2>"\nh = "fixed<32,2>"\n'
    )
    with pytest.raises(ConfigError) as e:
        _ = load_config(write(tmp_path, text)).qmodel
    msg = str(e.value)
    assert "preact" in msg and "62" in msg and "w" in msg and "x" in msg


def test_missing_model_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        _ = load_config(write(tmp_path, 'model = "nope.npz"\n')).qmodel


def test_replace_and_to_toml_round_trip(tmp_path, npz):
    cfg = load_config(write(tmp_path, 'model = "m.npz"\n[activations.tanh]\nkind = "hard"\n'))
    new = cfg.replace(formats={"h": "fixed<10,4,RND,SAT>"}, hardware={"lanes": 3})
    assert new.formats["h"] == parse_format("fixed<10,4,RND,SAT>")
    assert cfg.formats["h"] == parse_format(DEFAULT_FORMATS["h"])
    path = tmp_path / "again.toml"
    path.write_text(new.to_toml(tmp_path))
    back = load_config(path)
    assert back.formats == new.formats
    assert back.hardware == new.hardware
    assert back.activations == new.activations
    assert back.qmodel.to_manifest() == new.qmodel.to_manifest()
