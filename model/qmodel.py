"""The quantized network: every number as an integer code, and its manifest (SPEC §2-§4).

:class:`QuantizedNetwork` (LSTM layers, then dense layers) is the one object that crosses
from ``model/`` to ``hdl/`` and ``sim/``: the bit-accurate model runs from it, the hardware
is built from it, and :meth:`QuantizedNetwork.to_manifest` /
:meth:`QuantizedNetwork.from_manifest` carry it as JSON (SPEC §4, ``"spec": 2``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from model.formats import ACC_BITS, Format, parse_format
from model.pwl import PwlTable

SPEC_VERSION = 2
TENSORS = ("x", "w", "r", "b", "p", "preact", "gate", "cand", "cell", "tanh_cell", "h")
#: SPEC §2's typical formats, the defaults when a config names none.
DEFAULT_FORMATS = {
    "x": "fixed<16,6,RND,SAT>",
    "w": "fixed<16,3,RND,SAT>",
    "r": "fixed<16,3,RND,SAT>",
    "b": "fixed<16,6,RND,SAT>",
    "p": "fixed<16,3,RND,SAT>",
    "preact": "fixed<16,6,RND,SAT>",
    "gate": "ufixed<16,1,RND,SAT>",
    "cand": "fixed<16,1,RND,SAT>",
    "cell": "fixed<16,6,RND,SAT>",
    "tanh_cell": "fixed<16,1,RND,SAT>",
    "h": "fixed<16,6,RND,SAT>",
}
#: activation name -> (input tensor, output tensor, function)
ACTIVATIONS = {
    "sigmoid": ("preact", "gate", "sigmoid"),
    "tanh": ("preact", "cand", "tanh"),
    "tanh_cell": ("cell", "tanh_cell", "tanh"),
}
#: quantization points whose overflows are counted, in kernel order
POINTS = ("preact", "gate", "cand", "cell", "tanh_cell", "h")
OUTPUTS = ("sequence", "last")
#: the quantization points of a dense layer (SPEC §2b) and its activations
DENSE_TENSORS = ("w", "b", "out")
DENSE_ACTIVATIONS = ("linear", "relu")
DENSE_DEFAULT_FORMATS = {
    "w": "fixed<16,3,RND,SAT>",
    "b": "fixed<16,6,RND,SAT>",
    "out": "fixed<16,6,RND,SAT>",
}


def _bits(bound: int) -> int:
    """Signed width that holds every integer of magnitude <= bound."""
    return int(bound).bit_length() + 1


@dataclass(frozen=True)
class SumTerm:
    """One group of exact terms of a sum: ``count`` products of codes of ``fmts``."""

    name: str
    count: int
    fmts: tuple[Format, ...]

    @property
    def frac(self) -> int:
        return sum(f.frac for f in self.fmts)

    @property
    def bound(self) -> int:
        b = self.count
        for f in self.fmts:
            b *= f.max_abs_code
        return b


def exact_sum(terms: list[SumTerm]) -> tuple[int, int]:
    """(fractional bits, signed width) of the exact sum of ``terms`` aligned to the finest."""
    frac = max(t.frac for t in terms)
    bound = sum(t.bound << (frac - t.frac) for t in terms)
    return frac, _bits(bound)


@dataclass
class LstmLayer:
    """One quantized LSTM layer (SPEC §2). Weight rows are ordered i, f, g, o; peepholes i, f, o.

    ``formats`` holds every name of SPEC §2 in use (``p`` only with peepholes), ``x`` too: for
    a layer above another, ``x`` is the ``h`` format of the layer below (SPEC §2b).
    """

    input_size: int
    hidden_size: int
    formats: dict[str, Format]
    w: np.ndarray
    r: np.ndarray
    b: np.ndarray
    tables: dict[str, PwlTable]
    p: np.ndarray | None = None

    kind: ClassVar[str] = "lstm"

    def __post_init__(self):
        self.formats = {k: parse_format(v) for k, v in self.formats.items()}
        self.validate()

    @property
    def peephole(self) -> bool:
        return self.p is not None

    @property
    def output_size(self) -> int:
        return self.hidden_size

    @property
    def in_fmt(self) -> Format:
        return self.formats["x"]

    @property
    def out_fmt(self) -> Format:
        return self.formats["h"]

    def validate(self) -> None:
        """Shapes, codes in range, tables wired to the right formats, sums within 62 bits."""
        ix, h = self.input_size, self.hidden_size
        if ix < 1 or h < 1:
            raise ValueError(f"input_size and hidden_size must be >= 1, not {ix}, {h}")
        need = [t for t in TENSORS if t != "p" or self.peephole]
        missing = [t for t in need if t not in self.formats]
        if missing:
            raise ValueError(f"formats missing for {', '.join(missing)}")
        shapes = {"w": (4 * h, ix), "r": (4 * h, h), "b": (4 * h,), "p": (3 * h,)}
        _check_weights(self, shapes)
        for act, (src, dst, _) in ACTIVATIONS.items():
            if act not in self.tables:
                raise ValueError(f"activation table {act!r} is missing")
            t = self.tables[act]
            if t.in_fmt != self.formats[src] or t.out_fmt != self.formats[dst]:
                raise ValueError(
                    f"activation {act!r} maps {t.in_fmt} -> {t.out_fmt}, but the model needs "
                    f"{self.formats[src]} ({src}) -> {self.formats[dst]} ({dst})"
                )
        _check_sums(self.sums())

    def sums(self) -> dict[str, list[SumTerm]]:
        """Every exact sum of SPEC §2, as the terms that make it."""
        f = self.formats
        pre = [
            SumTerm("w*x", self.input_size, (f["w"], f["x"])),
            SumTerm("r*h", self.hidden_size, (f["r"], f["h"])),
            SumTerm("b", 1, (f["b"],)),
        ]
        if self.peephole:
            pre.append(SumTerm("p*cell", 1, (f["p"], f["cell"])))
        return {
            "preact": pre,
            "cell": [
                SumTerm("gate*cell", 1, (f["gate"], f["cell"])),
                SumTerm("gate*cand", 1, (f["gate"], f["cand"])),
            ],
            "h": [SumTerm("gate*tanh_cell", 1, (f["gate"], f["tanh_cell"]))],
        }

    def to_json(self) -> dict:
        used = [t for t in TENSORS if t != "p" or self.peephole]
        weights = {"w": self.w.tolist(), "r": self.r.tolist(), "b": self.b.tolist()}
        if self.peephole:
            weights["p"] = self.p.tolist()
        return {
            "kind": "lstm",
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "peephole": self.peephole,
            "formats": {t: str(self.formats[t]) for t in used},
            "weights": weights,
            "activations": {k: self.tables[k].to_json() for k in ACTIVATIONS},
        }

    @classmethod
    def from_json(cls, obj: dict, *, what: str = "layer") -> LstmLayer:
        weights = obj["weights"]
        peephole = bool(obj["peephole"])
        if peephole and "p" not in weights:
            raise ValueError(f"{what} says peephole: true but has no weights 'p'")
        return cls(
            input_size=int(obj["input_size"]),
            hidden_size=int(obj["hidden_size"]),
            formats=dict(obj["formats"]),
            w=np.array(weights["w"], dtype=np.int64),
            r=np.array(weights["r"], dtype=np.int64),
            b=np.array(weights["b"], dtype=np.int64),
            p=np.array(weights["p"], dtype=np.int64) if peephole else None,
            tables={
                k: PwlTable.from_json(obj["activations"][k], what=f"{what} activation {k!r}")
                for k in ACTIVATIONS
            },
        )


@dataclass
class DenseLayer:
    """One quantized dense layer (SPEC §2b): ``y = act(W u + b)``, rounded once into ``out``.

    ``in_fmt`` is the format of ``u``: the ``h`` of the top LSTM layer or the ``out`` of the
    dense layer below; it is not one of the layer's own formats (``w``, ``b``, ``out``).
    """

    input_size: int
    output_size: int
    activation: str
    formats: dict[str, Format]
    w: np.ndarray
    b: np.ndarray
    in_fmt: Format

    kind: ClassVar[str] = "dense"

    def __post_init__(self):
        self.formats = {k: parse_format(v) for k, v in self.formats.items()}
        self.in_fmt = parse_format(self.in_fmt)
        self.validate()

    @property
    def out_fmt(self) -> Format:
        return self.formats["out"]

    def validate(self) -> None:
        if self.activation not in DENSE_ACTIVATIONS:
            raise ValueError(
                f"dense activation must be one of {', '.join(DENSE_ACTIVATIONS)}, not "
                f"{self.activation!r}"
            )
        n_in, n_out = self.input_size, self.output_size
        if n_in < 1 or n_out < 1:
            raise ValueError(f"input_size and output_size must be >= 1, not {n_in}, {n_out}")
        missing = [t for t in DENSE_TENSORS if t not in self.formats]
        if missing:
            raise ValueError(f"dense formats missing for {', '.join(missing)}")
        extra = sorted(set(self.formats) - set(DENSE_TENSORS))
        if extra:
            raise ValueError(
                f"a dense layer has the formats {', '.join(DENSE_TENSORS)} only, not "
                f"{', '.join(extra)}"
            )
        _check_weights(self, {"w": (n_out, n_in), "b": (n_out,)})
        _check_sums(self.sums())

    def sums(self) -> dict[str, list[SumTerm]]:
        f = self.formats
        return {
            "out": [
                SumTerm("w*in", self.input_size, (f["w"], self.in_fmt)),
                SumTerm("b", 1, (f["b"],)),
            ]
        }

    def to_json(self) -> dict:
        return {
            "kind": "dense",
            "input_size": self.input_size,
            "output_size": self.output_size,
            "activation": self.activation,
            "formats": {t: str(self.formats[t]) for t in DENSE_TENSORS},
            "weights": {"w": self.w.tolist(), "b": self.b.tolist()},
        }

    @classmethod
    def from_json(cls, obj: dict, *, in_fmt: Format, what: str = "layer") -> DenseLayer:
        return cls(
            input_size=int(obj["input_size"]),
            output_size=int(obj["output_size"]),
            activation=str(obj["activation"]),
            formats=dict(obj["formats"]),
            w=np.array(obj["weights"]["w"], dtype=np.int64),
            b=np.array(obj["weights"]["b"], dtype=np.int64),
            in_fmt=in_fmt,
        )


Layer = LstmLayer | DenseLayer


def _check_weights(layer, shapes: dict[str, tuple]) -> None:
    for name, shape in shapes.items():
        arr = getattr(layer, name)
        if arr is None:
            continue
        arr = np.asarray(arr)
        if arr.shape != shape:
            raise ValueError(f"weights {name!r} have shape {arr.shape}, expected {shape}")
        setattr(layer, name, layer.formats[name].check_codes(arr, what=f"weights {name!r}"))


def _check_sums(sums: dict[str, list[SumTerm]]) -> None:
    for what, terms in sums.items():
        frac, bits = exact_sum(terms)
        if bits > ACC_BITS:
            names = sorted({n for t in terms for n in t.name.split("*")})
            raise ValueError(
                f"the exact {what} sum needs {bits} bits, more than {ACC_BITS}; narrow "
                f"the formats of {', '.join(names)} (fewer bits, or fewer fractional bits)"
            )


def layer_names(layers) -> list[str]:
    """``lstm1, lstm2, ..., dense1, ...``: SPEC §2b's numbering, the prefix of tensor names."""
    count = {"lstm": 0, "dense": 0}
    names = []
    for layer in layers:
        count[layer.kind] += 1
        names.append(f"{layer.kind}{count[layer.kind]}")
    return names


class LayerChain:
    """What a float and a quantized network share: an ordered list of layers, LSTM layers
    first, each reading what the layer below gives (SPEC §2b)."""

    layers: list

    def check_chain(self) -> None:
        """LSTM layers first, then dense layers; each layer's input size is the output size
        of the layer below."""
        if not self.layers or self.layers[0].kind != "lstm":
            raise ValueError("a network starts with at least one LSTM layer")
        names = self.layer_names
        kinds = [layer.kind for layer in self.layers]
        first_dense = kinds.index("dense") if "dense" in kinds else len(kinds)
        if "lstm" in kinds[first_dense:]:
            late = names[first_dense + kinds[first_dense:].index("lstm")]
            raise ValueError(f"{late} follows a dense layer; LSTM layers come first")
        for k, layer in enumerate(self.layers[1:], start=1):
            below = self.layers[k - 1]
            if layer.input_size != below.output_size:
                raise ValueError(
                    f"{names[k]} takes {layer.input_size} inputs but {names[k - 1]} gives "
                    f"{below.output_size}"
                )

    @property
    def layer_names(self) -> list[str]:
        return layer_names(self.layers)

    @property
    def lstm_layers(self) -> list:
        return [la for la in self.layers if la.kind == "lstm"]

    @property
    def dense_layers(self) -> list:
        return [la for la in self.layers if la.kind == "dense"]

    @property
    def input_size(self) -> int:
        return self.layers[0].input_size

    @property
    def output_size(self) -> int:
        return self.layers[-1].output_size


@dataclass
class QuantizedNetwork(LayerChain):
    """A quantized network (SPEC §2b): LSTM layers, then dense layers; one LSTM layer is the
    simplest network. The one object that crosses from ``model/`` to ``hdl/`` and ``sim/``."""

    name: str
    layers: list[Layer]
    output: str = "sequence"
    hardware: dict = field(default_factory=dict)

    def __post_init__(self):
        self.layers = list(self.layers)
        self.validate()

    def validate(self) -> None:
        """Layer order, sizes and formats chained as SPEC §2b says."""
        if self.output not in OUTPUTS:
            raise ValueError(f"output must be 'sequence' or 'last', not {self.output!r}")
        for k, layer in enumerate(self.layers):
            if not isinstance(layer, LstmLayer | DenseLayer):
                raise TypeError(f"layer {k} is a {type(layer).__name__}, not a layer")
        self.check_chain()
        names = self.layer_names
        for k, layer in enumerate(self.layers[1:], start=1):
            below = self.layers[k - 1]
            if layer.in_fmt != below.out_fmt:
                src = "h" if below.kind == "lstm" else "out"
                own = "x" if layer.kind == "lstm" else "input"
                raise ValueError(
                    f"{names[k]}'s {own} format {layer.in_fmt} is not {names[k - 1]}'s {src} "
                    f"format {below.out_fmt}: a layer reads the layer below in that "
                    f"tensor's own format (SPEC §2b)"
                )

    # ------------------------------------------------------------------ formats

    @property
    def in_fmt(self) -> Format:
        """The network's input format: ``x`` of the first LSTM layer."""
        return self.layers[0].in_fmt

    @property
    def out_fmt(self) -> Format:
        """The network's output format: ``h`` of the top LSTM layer, or the last ``out``."""
        return self.layers[-1].out_fmt

    # ------------------------------------------------------------------ manifest

    def to_manifest(self) -> dict:
        return {
            "spec": SPEC_VERSION,
            "name": self.name,
            "output": self.output,
            "input_size": self.input_size,
            "output_size": self.output_size,
            "layers": [layer.to_json() for layer in self.layers],
            "hardware": dict(self.hardware),
        }

    @classmethod
    def from_manifest(cls, obj: dict) -> QuantizedNetwork:
        if obj.get("spec") != SPEC_VERSION:
            raise ValueError(
                f"manifest spec version {obj.get('spec')!r} is not {SPEC_VERSION}; regenerate "
                f"it with this lstmfx"
            )
        try:
            layers, below = [], None
            for k, item in enumerate(obj["layers"]):
                what = f"layer {k}"
                kind = item.get("kind")
                if kind == "lstm":
                    layers.append(LstmLayer.from_json(item, what=what))
                elif kind == "dense":
                    if below is None:
                        raise ValueError("the manifest's first layer is dense, not lstm")
                    layers.append(DenseLayer.from_json(item, in_fmt=below.out_fmt, what=what))
                else:
                    raise ValueError(f"{what} has kind {kind!r}, not 'lstm' or 'dense'")
                below = layers[-1]
            net = cls(
                name=obj["name"],
                layers=layers,
                output=obj.get("output", "sequence"),
                hardware=dict(obj.get("hardware", {})),
            )
        except KeyError as e:
            raise ValueError(f"manifest is missing the key {e.args[0]!r}") from None
        for key, value in (("input_size", net.input_size), ("output_size", net.output_size)):
            if key in obj and int(obj[key]) != value:
                raise ValueError(f"manifest says {key} {obj[key]}, but its layers give {value}")
        return net

    def write_manifest(self, path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dump_json(self.to_manifest()))
        return path

    @classmethod
    def read_manifest(cls, path) -> QuantizedNetwork:
        return cls.from_manifest(json.loads(Path(path).read_text()))


_NUMBER_LIST = re.compile(r"\[[-\d,\s]*\]")


def dump_json(obj) -> str:
    """JSON with one line per list of numbers: diffable, and small for large weights."""
    text = json.dumps(obj, indent=1)
    return _NUMBER_LIST.sub(lambda m: "[" + " ".join(m.group(0)[1:-1].split()) + "]", text) + "\n"
