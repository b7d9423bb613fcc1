"""model/weightmap.py: the weight map of SPEC §5b and the words a host writes; and the
``lstmfx weights`` command that writes them."""

from __future__ import annotations

import numpy as np
import pytest

import lstmfx
from model.config import ConfigError, load_config
from model.weightmap import (
    address_bits,
    decode_words,
    read_words_bin,
    region_bytes,
    tensor_codes,
    weight_map,
    weight_words,
    words_bin,
)
from tests.sim.conftest import make_network

RNG = np.random.default_rng(17)


@pytest.mark.parametrize("name", ["net_relu", "net_last", "net_peephole", "small"])
def test_map_covers_every_code_once_in_aligned_regions(name):
    net = make_network(name)
    wmap = weight_map(net)
    expect = [
        (k, t)
        for k, layer in enumerate(net.layers, start=1)
        for t in (("w", "r", "b") + (("p",) if layer.kind == "lstm" and layer.peephole else ()))
        if layer.kind == "lstm" or t in ("w", "b")
    ]
    assert [(e["layer"], e["tensor"]) for e in wmap] == expect
    spans = []
    for e in wmap:
        layer = net.layers[e["layer"] - 1]  # 1-based over all layers, the manifest's order
        codes = np.asarray(getattr(layer, e["tensor"]))
        assert (e["rows"], e["cols"]) == (codes.shape if codes.ndim == 2 else (1, codes.size))
        size = region_bytes(e["rows"], e["cols"])
        assert e["base"] % size == 0 and size >= 4 * e["rows"] * e["cols"]
        spans.append((e["base"], e["base"] + size))
    spans.sort()
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))  # disjoint
    assert spans[-1][1] <= 1 << address_bits(wmap)


def test_words_sit_at_base_plus_4_row_cols_and_round_trip():
    net = make_network("net_peephole")  # peepholes, a ufixed gate format elsewhere
    pairs = weight_words(net)
    assert len(pairs) == sum(e["rows"] * e["cols"] for e in weight_map(net))
    by_addr = dict(pairs)
    for e in weight_map(net):
        codes = tensor_codes(net.layers[e["layer"] - 1], e["tensor"])
        i, j = e["rows"] - 1, e["cols"] - 1
        word = by_addr[e["base"] + 4 * (i * e["cols"] + j)]
        assert word == int(codes[i, j]) & 0xFFFFFFFF
        assert all(0 <= w < 1 << 32 for w in by_addr.values())
    back = decode_words(net, read_words_bin(words_bin(pairs)))
    for e in weight_map(net):
        want = tensor_codes(net.layers[e["layer"] - 1], e["tensor"])
        np.testing.assert_array_equal(back[(e["layer"], e["tensor"])], want)
    with pytest.raises(ValueError, match="outside the weight map"):
        decode_words(net, [*pairs, (1 << 30, 0)])
    with pytest.raises(ValueError, match="no value"):
        decode_words(net, pairs[1:])


# ---------------------------------------------------------------------- config and CLI


def _npz(path, h=3, i=2, scale=1.0):
    np.savez(
        path,
        w=RNG.normal(scale=scale, size=(4 * h, i)),
        r=RNG.normal(scale=scale, size=(4 * h, h)),
        b=RNG.normal(scale=scale, size=4 * h),
    )
    return path


@pytest.fixture
def config(tmp_path):
    _npz(tmp_path / "m.npz")
    path = tmp_path / "c.toml"
    path.write_text(
        'model = "m.npz"\nname = "wts"\n[activations]\nkind = "uniform"\n'
        '[formats]\nw = "fixed<8,2,RND,SAT>"\n[hardware]\nweights = "axi-lite"\n'
    )
    return path


def test_config_weights_choice(tmp_path, config):
    cfg = load_config(config)
    assert cfg.network.hardware["weights"] == "axi-lite"
    bad = tmp_path / "bad.toml"
    bad.write_text('model = "m.npz"\n[hardware]\nweights = "ram"\n')
    with pytest.raises(ConfigError, match=r"weights = 'ram'.*'rom', 'axi-lite'"):
        load_config(bad)
    bad.write_text('model = "m.npz"\n[lstm1.hardware]\nweights = "axi-lite"\n')
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(bad)


def test_weights_command_round_trip(tmp_path, config, capsys):
    new = _npz(tmp_path / "new.npz", scale=3.0)  # large enough that some w saturate
    out = tmp_path / "out" / "load"
    assert lstmfx.main(["weights", str(config), str(new), "-o", str(out) + ".bin"]) == 0
    text = capsys.readouterr().out
    assert "weight(s) of lstm1.w do not fit fixed<8,2,RND,SAT> and were saturated" in text
    data = (tmp_path / "out" / "load.bin").read_bytes()
    header = (tmp_path / "out" / "load.h").read_text()
    want = load_config(config).replace(model_path=new).network
    over = load_config(config).replace(model_path=new).weight_overflow["lstm1.w"]
    assert over > 0 and f"warning: {over} weight(s)" in text
    pairs = read_words_bin(data)
    assert len(data) == 8 * len(pairs) == 8 * sum(e["rows"] * e["cols"] for e in weight_map(want))
    got = decode_words(want, pairs)
    for name in ("w", "r", "b"):
        np.testing.assert_array_equal(got[(1, name)], tensor_codes(want.layers[0], name))
    # the .bin is in map order; the header names each tensor's base and format
    assert [a for a, _ in pairs] == [a for a, _ in weight_words(want)]
    for e in weight_map(want):
        assert f"#define WTS_LSTM1_{e['tensor'].upper()}_BASE 0x{e['base']:08x}u" in header
    assert "fixed<8,2,RND,SAT>" in header and "static const uint32_t wts_lstm1_r[36]" in header


def test_weights_command_errors(tmp_path, config, capsys):
    wrong = _npz(tmp_path / "wrong.npz", h=4)
    assert lstmfx.main(["weights", str(config), str(wrong), "-o", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "lstm1 weights 'w' have shape [16, 2], but the design's have [12, 2]" in err
    assert not (tmp_path / "x.bin").exists()
    (tmp_path / "adir.bin").mkdir()  # the output is checked before any work
    assert lstmfx.main(["weights", str(config), "nope.npz", "-o", str(tmp_path / "adir")]) == 2
    err = capsys.readouterr().err
    assert "is a folder" in err and "nope" not in err
