"""model/config.py: TOML in, QuantizedNetwork out; every bad input is an error that says what
to change."""

import numpy as np
import pytest

from model.config import ConfigError, load_config
from model.formats import parse_format
from model.lstm import FloatLSTM
from model.network import FloatDense, FloatNetwork, run_fixed
from model.qmodel import DEFAULT_FORMATS, DENSE_DEFAULT_FORMATS, QuantizedNetwork

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
    qm = cfg.network.layers[0]
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
    assert cfg.network.name == "abc"


def test_weights_are_quantized_by_the_format_and_overflow_counted(tmp_path, npz):
    cfg = load_config(write(tmp_path, 'model = "m.npz"\n[formats]\nw = "fixed<6,1,RND,SAT>"\n'))
    w = np.load(npz)["w"]
    fmt = cfg.formats["w"]
    expect = np.clip(np.floor(w * 32 + 0.5), -32, 31).astype(np.int64)
    np.testing.assert_array_equal(cfg.network.layers[0].w, expect)
    assert cfg.weight_overflow["lstm1.w"] == int(np.sum((w * 32 + 0.5 >= 32) | (w * 32 < -32.5)))
    assert fmt.frac == 5


def test_manifest_round_trip(tmp_path, npz):
    net = load_config(write(tmp_path, 'model = "m.npz"\n[activations]\nkind = "plan"\n')).network
    path = net.write_manifest(tmp_path / "m.json")
    back = QuantizedNetwork.read_manifest(path)
    assert back.to_manifest() == net.to_manifest()
    x = RNG.integers(-3000, 3000, size=(2, 5, 2))
    np.testing.assert_array_equal(run_fixed(back, x).y_codes, run_fixed(net, x).y_codes)


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
        _ = load_config(write(tmp_path, text)).network
    for word in words:
        assert word in str(e.value)


def test_accumulator_over_62_bits_names_formats(tmp_path, npz):
    text = (
        'model = "m.npz"\n[formats]\nw = "fixed<32,2>"\nx = "fixed<32,2>"\n'
        'r = "fixed<32,2>"\nh = "fixed<32,2>"\n'
    )
    with pytest.raises(ConfigError) as e:
        _ = load_config(write(tmp_path, text)).network
    msg = str(e.value)
    assert "preact" in msg and "62" in msg and "w" in msg and "x" in msg


def test_missing_model_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        _ = load_config(write(tmp_path, 'model = "nope.npz"\n')).network


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
    assert back.network.to_manifest() == new.network.to_manifest()


# --------------------------------------------------------------------------- networks


def float_network(rng, sizes=(2, 3, 4), dense=(2,), acts=("relu",)) -> FloatNetwork:
    layers, n_in = [], sizes[0]
    for h in sizes[1:]:
        layers.append(
            FloatLSTM(
                rng.normal(size=(4 * h, n_in)), rng.normal(size=(4 * h, h)), rng.normal(size=4 * h)
            )
        )
        n_in = h
    for n, act in zip(dense, acts):
        layers.append(FloatDense(rng.normal(size=(n, n_in)), rng.normal(size=n), act))
        n_in = n
    return FloatNetwork(layers, name="net")


def network_config(tmp_path, npz, text, net=None):
    """A config over ``net`` (two LSTM layers and a relu dense layer unless given)."""
    cfg = load_config(write(tmp_path, 'model = "m.npz"\n' + text))
    cfg.__dict__["float_model"] = net or float_network(np.random.default_rng(1))
    return cfg


def test_network_layers_take_shared_formats_and_their_own(tmp_path, npz):
    cfg = network_config(
        tmp_path,
        npz,
        '[formats]\ncell = "fixed<14,5,RND,SAT>"\nh = "fixed<12,3,RND,SAT>"\n'
        '[lstm2.formats]\ncell = "fixed<18,6,RND,SAT>"\nh = "fixed<10,2,TRN,WRAP>"\n'
        '[dense1.formats]\nout = "fixed<16,8,RND,SAT>"\n',
    )
    net = cfg.network
    assert net.layer_names == ["lstm1", "lstm2", "dense1"]
    lstm1, lstm2, dense1 = net.layers
    assert lstm1.formats["cell"] == parse_format("fixed<14,5,RND,SAT>")
    assert lstm2.formats["cell"] == parse_format("fixed<18,6,RND,SAT>")
    # lstm2 reads lstm1's h in its own format: that is lstm2's x
    assert lstm2.formats["x"] == lstm1.formats["h"] == parse_format("fixed<12,3,RND,SAT>")
    assert dense1.in_fmt == lstm2.formats["h"] == parse_format("fixed<10,2,TRN,WRAP>")
    assert dense1.formats["out"] == parse_format("fixed<16,8,RND,SAT>")
    assert dense1.formats["w"] == parse_format(DENSE_DEFAULT_FORMATS["w"])
    assert dense1.activation == "relu"
    # lstm2's tables follow its own cell format
    assert lstm2.tables["tanh_cell"].in_fmt == lstm2.formats["cell"]
    assert set(cfg.weight_overflow) == {
        "lstm1.w", "lstm1.r", "lstm1.b", "lstm2.w", "lstm2.r", "lstm2.b", "dense1.w", "dense1.b",
    }  # fmt: skip


def test_default_format_reaches_dense_layers(tmp_path, npz):
    cfg = network_config(tmp_path, npz, '[formats]\ndefault = "fixed<12,4,RND,SAT>"\n')
    dense1 = cfg.network.layers[-1]
    assert all(f == parse_format("fixed<12,4,RND,SAT>") for f in dense1.formats.values())


def test_per_layer_tables_and_hardware(tmp_path, npz):
    cfg = network_config(
        tmp_path,
        npz,
        '[activations]\nkind = "plan"\n[lstm2.activations.tanh]\nkind = "lut"\nsegments = 32\n'
        "[hardware]\nlanes = 2\n[lstm2.hardware]\nlanes = 4\n[dense1.hardware]\nlanes = 1\n",
    )
    lstm1, lstm2, _ = cfg.network.layers
    assert lstm1.tables["tanh"].info["kind"] == "plan"
    assert lstm2.tables["sigmoid"].info["kind"] == "plan"
    assert lstm2.tables["tanh"].info["kind"] != "plan"
    assert cfg.network.hardware == {
        "lanes": 2,
        "layers": {"lstm2": {"lanes": 4}, "dense1": {"lanes": 1}},
    }


def test_replace_names_one_layer_or_all(tmp_path, npz):
    cfg = network_config(tmp_path, npz, "")
    new = cfg.replace(
        formats={"cell": "fixed<20,6,RND,SAT>", "lstm2.preact": "fixed<9,4,RND,SAT>",
                 "dense1.out": "fixed<11,5,RND,SAT>"},
        activations={"lstm1.tanh": {"kind": "hard"}},
    )  # fmt: skip
    lstm1, lstm2, dense1 = new.network.layers
    assert lstm1.formats["cell"] == lstm2.formats["cell"] == parse_format("fixed<20,6,RND,SAT>")
    assert lstm2.formats["preact"] == parse_format("fixed<9,4,RND,SAT>")
    assert lstm1.formats["preact"] == parse_format(DEFAULT_FORMATS["preact"])
    assert dense1.formats["out"] == parse_format("fixed<11,5,RND,SAT>")
    assert lstm1.tables["tanh"].info["kind"] == "hard"
    assert lstm2.tables["tanh"].info["kind"] != "hard"
    with pytest.raises(ConfigError, match="layer name"):
        cfg.replace(formats={"layer2.cell": "fixed<8,2>"})
    # to_toml keeps the per-layer sections
    path = tmp_path / "again.toml"
    path.write_text(new.to_toml(tmp_path))
    back = load_config(path)
    back.__dict__["float_model"] = cfg.float_model
    assert back.network.to_manifest() == new.network.to_manifest()


@pytest.mark.parametrize(
    "text, words",
    [
        (
            '[lstm2.formats]\nx = "fixed<8,2>"\n',
            ["lstm2's x is the h of lstm1", "[lstm1.formats] h"],
        ),
        ('[lstm3.formats]\nh = "fixed<8,2>"\n', ["[lstm3]", "lstm1, lstm2, dense1"]),
        ('[dense1.formats]\ncell = "fixed<8,2>"\n', ["dense1.formats", "cell", "w, b, out"]),
        ('[dense1.activations]\nkind = "lut"\n', ["dense layer has no tables"]),
        ('[lstm2.activations.softmax]\nkind = "lut"\n', ["softmax", "names no table"]),
        ("[lstm2]\nlanes = 4\n", ["unknown key", "[lstm2.hardware]"]),
        ("[layer2.formats]\n", ["layer2", "known keys"]),
        ('[hardware]\nlanes = "2"\n', ["lanes = '2'", "whole number"]),
        ("[hardware]\nlanes = 0\n", ["lanes = 0", "whole number"]),
        ("[hardware]\nlanes = -1\n", ["lanes = -1"]),
        ('[hardware]\nlanes = "auto"\n', ["lane_budget"]),
        ('[hardware]\nlanes = "auto"\nlane_budget = 0\n', ["lane_budget = 0"]),
        ("[hardware]\nlane = 2\n", ["unknown key", "lane"]),
        ('[lstm2.hardware]\nlanes = "auto"\n', ["[lstm2.hardware] lanes = 'auto'"]),
        ('head = "fc"\n', ["head must be a list"]),
        ('head = [{layer = "fc", activation = "gelu"}]\n', ["gelu", "relu"]),
    ],
)
def test_bad_network_configs_say_what_to_change(tmp_path, npz, text, words):
    with pytest.raises(ConfigError) as e:
        _ = network_config(tmp_path, npz, text).network
    for word in words:
        assert word in str(e.value)


def test_output_must_agree_with_the_model(tmp_path, npz):
    net = float_network(np.random.default_rng(2))
    net.output = "last"
    assert network_config(tmp_path, npz, "", net).network.output == "last"
    with pytest.raises(ConfigError, match="only its last step"):
        _ = network_config(tmp_path, npz, 'output = "sequence"\n', net).network
