"""The quantized LSTM: every number as an integer code, and its manifest (SPEC §2, §4).

:class:`QuantizedModel` is the one object that crosses from ``model/`` to ``hdl/`` and
``sim/``: the bit-accurate model runs from it, the hardware is built from it, and
:meth:`QuantizedModel.to_manifest` / :meth:`QuantizedModel.from_manifest` carry it as JSON.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from model.formats import ACC_BITS, Format, parse_format
from model.pwl import PwlTable

SPEC_VERSION = 1
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
class QuantizedModel:
    """A quantized LSTM cell. Weight rows are ordered i, f, g, o; peepholes i, f, o."""

    name: str
    input_size: int
    hidden_size: int
    formats: dict[str, Format]
    w: np.ndarray
    r: np.ndarray
    b: np.ndarray
    tables: dict[str, PwlTable]
    p: np.ndarray | None = None
    output: str = "sequence"
    hardware: dict = field(default_factory=dict)

    def __post_init__(self):
        self.formats = {k: parse_format(v) for k, v in self.formats.items()}
        self.validate()

    @property
    def peephole(self) -> bool:
        return self.p is not None

    # ------------------------------------------------------------------ checks

    def validate(self) -> None:
        """Shapes, codes in range, tables wired to the right formats, sums within 62 bits."""
        if self.output not in OUTPUTS:
            raise ValueError(f"output must be 'sequence' or 'last', not {self.output!r}")
        ix, h = self.input_size, self.hidden_size
        if ix < 1 or h < 1:
            raise ValueError(f"input_size and hidden_size must be >= 1, not {ix}, {h}")
        need = [t for t in TENSORS if t != "p" or self.peephole]
        missing = [t for t in need if t not in self.formats]
        if missing:
            raise ValueError(f"formats missing for {', '.join(missing)}")
        shapes = {"w": (4 * h, ix), "r": (4 * h, h), "b": (4 * h,), "p": (3 * h,)}
        for name, shape in shapes.items():
            arr = getattr(self, name)
            if arr is None:
                continue
            arr = np.asarray(arr)
            if arr.shape != shape:
                raise ValueError(f"weights {name!r} have shape {arr.shape}, expected {shape}")
            setattr(self, name, self.formats[name].check_codes(arr, what=f"weights {name!r}"))
        for act, (src, dst, _) in ACTIVATIONS.items():
            if act not in self.tables:
                raise ValueError(f"activation table {act!r} is missing")
            t = self.tables[act]
            if t.in_fmt != self.formats[src] or t.out_fmt != self.formats[dst]:
                raise ValueError(
                    f"activation {act!r} maps {t.in_fmt} -> {t.out_fmt}, but the model needs "
                    f"{self.formats[src]} ({src}) -> {self.formats[dst]} ({dst})"
                )
        for what, terms in self.sums().items():
            frac, bits = exact_sum(terms)
            if bits > ACC_BITS:
                names = sorted({n for t in terms for n in t.name.split("*")})
                raise ValueError(
                    f"the exact {what} sum needs {bits} bits, more than {ACC_BITS}; narrow "
                    f"the formats of {', '.join(names)} (fewer bits, or fewer fractional bits)"
                )

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

    # ------------------------------------------------------------------ manifest

    def to_manifest(self) -> dict:
        used = [t for t in TENSORS if t != "p" or self.peephole]
        weights = {
            "w": self.w.tolist(),
            "r": self.r.tolist(),
            "b": self.b.tolist(),
        }
        if self.peephole:
            weights["p"] = self.p.tolist()
        return {
            "spec": SPEC_VERSION,
            "name": self.name,
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "peephole": self.peephole,
            "output": self.output,
            "formats": {t: str(self.formats[t]) for t in used},
            "weights": weights,
            "activations": {k: self.tables[k].to_json() for k in ACTIVATIONS},
            "hardware": dict(self.hardware),
        }

    @classmethod
    def from_manifest(cls, obj: dict) -> QuantizedModel:
        if obj.get("spec") != SPEC_VERSION:
            raise ValueError(
                f"manifest spec version {obj.get('spec')!r} is not {SPEC_VERSION}; regenerate "
                f"it with this lstmfx"
            )
        try:
            weights = obj["weights"]
            peephole = bool(obj["peephole"])
            if peephole and "p" not in weights:
                raise ValueError("manifest says peephole: true but has no weights 'p'")
            return cls(
                name=obj["name"],
                input_size=int(obj["input_size"]),
                hidden_size=int(obj["hidden_size"]),
                formats=dict(obj["formats"]),
                w=np.array(weights["w"], dtype=np.int64),
                r=np.array(weights["r"], dtype=np.int64),
                b=np.array(weights["b"], dtype=np.int64),
                p=np.array(weights["p"], dtype=np.int64) if peephole else None,
                tables={
                    k: PwlTable.from_json(obj["activations"][k], what=f"activation {k!r}")
                    for k in ACTIVATIONS
                },
                output=obj.get("output", "sequence"),
                hardware=dict(obj.get("hardware", {})),
            )
        except KeyError as e:
            raise ValueError(f"manifest is missing the key {e.args[0]!r}") from None

    def write_manifest(self, path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dump_json(self.to_manifest()))
        return path

    @classmethod
    def read_manifest(cls, path) -> QuantizedModel:
        return cls.from_manifest(json.loads(Path(path).read_text()))


_NUMBER_LIST = re.compile(r"\[[-\d,\s]*\]")


def dump_json(obj) -> str:
    """JSON with one line per list of numbers: diffable, and small for large weights."""
    text = json.dumps(obj, indent=1)
    return _NUMBER_LIST.sub(lambda m: "[" + " ".join(m.group(0)[1:-1].split()) + "]", text) + "\n"
