"""The one TOML file that says how to quantize a model.

::

    name = "sunspots"              # design name: Verilog module and manifest
    model = "sunspots.onnx"        # .npz, .onnx, .pt/.pth; relative to this file
    output = "sequence"            # or "last"

    [formats]                      # SPEC §2 names; unnamed ones take `default`, else SPEC's
    default = "fixed<16,6,RND,SAT>"
    w = "fixed<12,2,RND,SAT>"

    [activations]                  # settings shared by the three tables...
    kind = "auto"                  # auto | uniform | lut | plan | hard
    [activations.sigmoid]          # ...and per table (sigmoid, tanh, tanh_cell)
    segments = 64

    [hardware]                     # read by hdl/
    lanes = 4
"""

from __future__ import annotations

import copy
import math
import re
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from model.formats import Format, FormatError, parse_format
from model.importers import load_model
from model.lstm import FloatLSTM
from model.pwl import (
    FITS,
    PwlTable,
    hard_table,
    plan_table,
    smallest_uniform_table,
    uniform_table,
)
from model.qmodel import ACTIVATIONS, DEFAULT_FORMATS, OUTPUTS, TENSORS, QuantizedModel

TABLE_KINDS = ("auto", "uniform", "lut", "plan", "hard")
TABLE_KEYS = {
    "kind": str,
    "range_log2": int,
    "segments": int,
    "fit": str,
    "max_error_lsb": (int, float),
    "max_segments": int,
    "intercept_format": str,
    "slope_format": str,
}
#: what a table gets when the config says nothing
TABLE_DEFAULTS = {
    "kind": "auto",
    "fit": "minimax",
    "max_error_lsb": 4.0,
    "max_segments": 4096,
    "range_log2": {"sigmoid": 4, "tanh": 3, "tanh_cell": 3},
    "segments": 64,
}
HARDWARE_DEFAULTS = {"lanes": 1}
TOP_KEYS = ("name", "model", "output", "formats", "activations", "hardware")
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ConfigError(ValueError):
    """A config file says something lstmfx cannot do; the message says what to change."""


@dataclass
class Config:
    """A parsed config. ``qmodel`` builds (and caches) the quantized model."""

    name: str
    model_path: Path
    output: str = "sequence"
    formats: dict[str, Format] = field(default_factory=dict)
    activations: dict[str, dict] = field(default_factory=dict)
    hardware: dict = field(default_factory=dict)
    source: Path | None = None

    def __post_init__(self):
        if not _NAME_RE.match(self.name):
            raise ConfigError(
                f"name {self.name!r} is not a Verilog identifier; use letters, digits and _, "
                f"not starting with a digit"
            )
        if self.output not in OUTPUTS:
            raise ConfigError(f"output must be 'sequence' or 'last', not {self.output!r}")
        for act, settings in self.activations.items():
            _check_table_settings(act, settings)
        self.formats = {t: parse_format(self.formats.get(t, DEFAULT_FORMATS[t])) for t in TENSORS}

    # ------------------------------------------------------------------ building

    @cached_property
    def float_model(self) -> FloatLSTM:
        return load_model(self.model_path)

    @cached_property
    def tables(self) -> dict[str, PwlTable]:
        return {act: self.build_table(act) for act in ACTIVATIONS}

    def table_settings(self, act: str) -> dict:
        """The settings of one table: its own, over the shared ones, over the defaults."""
        merged = {k: v for k, v in TABLE_DEFAULTS.items()}
        merged["range_log2"] = TABLE_DEFAULTS["range_log2"][act]
        merged.update(self.activations.get("*", {}))
        merged.update(self.activations.get(act, {}))
        return merged

    def build_table(self, act: str) -> PwlTable:
        src, dst, func = ACTIVATIONS[act]
        s = self.table_settings(act)
        fmts = (self.formats[src], self.formats[dst])
        coef = {
            "intercept_format": s.get("intercept_format"),
            "slope_format": s.get("slope_format"),
        }
        try:
            if s["kind"] == "auto":
                return smallest_uniform_table(
                    func,
                    *fmts,
                    max_error_lsb=float(s["max_error_lsb"]),
                    fit=s["fit"],
                    max_segments=s["max_segments"],
                    **coef,
                )
            if s["kind"] in ("uniform", "lut"):
                return uniform_table(
                    func,
                    *fmts,
                    range_log2=s["range_log2"],
                    segments=s["segments"],
                    fit=s["fit"],
                    lookup=s["kind"] == "lut",
                    **coef,
                )
            builder = plan_table if s["kind"] == "plan" else hard_table
            return builder(func, *fmts, **coef)
        except ValueError as e:
            raise ConfigError(f"[activations.{act}]: {e}") from None

    @cached_property
    def weight_overflow(self) -> dict[str, int]:
        """How many weights did not fit their format (saturated, wrapped or zeroed)."""
        return self._quantized[1]

    @cached_property
    def _quantized(self) -> tuple[QuantizedModel, dict[str, int]]:
        fm = self.float_model
        codes, over = {}, {}
        for k in ("w", "r", "b", "p"):
            arr = getattr(fm, k)
            if arr is None:
                continue
            codes[k], over[k] = self.formats[k].from_float_counted(arr, what=f"weights {k!r}")
        used = {t: f for t, f in self.formats.items() if t != "p" or fm.p is not None}
        try:
            qm = QuantizedModel(
                name=self.name,
                input_size=fm.input_size,
                hidden_size=fm.hidden_size,
                formats=used,
                w=codes["w"],
                r=codes["r"],
                b=codes["b"],
                p=codes.get("p"),
                tables=self.tables,
                output=self.output,
                hardware=dict(self.hardware),
            )
        except ValueError as e:
            raise ConfigError(str(e)) from None
        return qm, over

    @property
    def qmodel(self) -> QuantizedModel:
        return self._quantized[0]

    def replace(self, *, formats=None, activations=None, hardware=None, **kw) -> Config:
        """A new config with some formats, table settings or hardware settings changed."""
        acts = copy.deepcopy(self.activations)
        for act, settings in (activations or {}).items():
            acts.setdefault(act, {}).update(settings)
        fmts = dict(self.formats)
        fmts.update({k: parse_format(v) for k, v in (formats or {}).items()})
        hw = dict(self.hardware)
        hw.update(hardware or {})
        new = Config(
            name=kw.get("name", self.name),
            model_path=kw.get("model_path", self.model_path),
            output=kw.get("output", self.output),
            formats=fmts,
            activations=acts,
            hardware=hw,
            source=self.source,
        )
        if new.model_path == self.model_path and "float_model" in self.__dict__:
            new.__dict__["float_model"] = self.float_model  # no need to read it again
        return new

    def to_toml(self, base: Path | None = None) -> str:
        """The config as TOML; ``model`` relative to ``base`` (the file's folder) if given."""
        model = self.model_path
        if base is not None:
            try:
                model = Path(_relpath(self.model_path, base))
            except ValueError:
                pass
        lines = [
            f"name = {_toml_str(self.name)}",
            f"model = {_toml_str(model.as_posix())}",
            f"output = {_toml_str(self.output)}",
            "",
            "[formats]",
        ]
        lines += [f"{t} = {_toml_str(str(f))}" for t, f in self.formats.items()]
        sections = [("activations", self.activations.get("*", {}))]
        sections += [
            (f"activations.{a}", self.activations[a]) for a in ACTIVATIONS if a in self.activations
        ]
        sections.append(("hardware", self.hardware))
        for title, body in sections:
            lines += ["", f"[{title}]"]
            lines += [f"{k} = {_toml_value(v)}" for k, v in body.items()]
        return "\n".join(lines) + "\n"


def _relpath(path: Path, base: Path) -> str:
    import os

    return os.path.relpath(Path(path).resolve(), Path(base).resolve())


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    return _toml_str(str(v))


def _check_table_settings(act: str, settings: dict) -> None:
    where = "[activations]" if act == "*" else f"[activations.{act}]"
    for key, value in settings.items():
        if key not in TABLE_KEYS:
            raise ConfigError(
                f"{where} has the unknown key {key!r}; known keys: {', '.join(TABLE_KEYS)}"
            )
        if not isinstance(value, TABLE_KEYS[key]) or isinstance(value, bool):
            raise ConfigError(f"{where} {key} = {value!r} has the wrong type")
    if "kind" in settings and settings["kind"] not in TABLE_KINDS:
        raise ConfigError(
            f"{where} kind = {settings['kind']!r}; choose one of {', '.join(TABLE_KINDS)}"
        )
    if "fit" in settings and settings["fit"] not in FITS:
        raise ConfigError(f"{where} fit = {settings['fit']!r}; choose one of {', '.join(FITS)}")
    seg = settings.get("segments")
    if seg is not None and (seg < 1 or seg & (seg - 1)):
        raise ConfigError(f"{where} segments = {seg}; use a power of two such as {_pow2(seg)}")
    err = settings.get("max_error_lsb")
    if err is not None and not err > 0:
        raise ConfigError(f"{where} max_error_lsb = {err}; it must be above 0")
    for key in ("intercept_format", "slope_format"):
        if key in settings:
            try:
                parse_format(settings[key])
            except FormatError as e:
                raise ConfigError(f"{where} {key}: {e}") from None


def _pow2(n: int) -> int:
    return 1 << max(0, round(math.log2(max(n, 1))))


def parse_config(data: dict, *, base: Path, source: Path | None = None) -> Config:
    """A config from the dict TOML gives; relative paths are taken from ``base``."""
    unknown = set(data) - set(TOP_KEYS)
    if unknown:
        raise ConfigError(
            f"unknown top-level key(s) {', '.join(sorted(unknown))}; known keys: "
            f"{', '.join(TOP_KEYS)}"
        )
    if "model" not in data:
        raise ConfigError('the config names no model: add model = "path/to/model.onnx"')
    model_path = (base / str(data["model"])).resolve()
    fmt_section = dict(data.get("formats", {}))
    default = fmt_section.pop("default", None)
    unknown = set(fmt_section) - set(TENSORS)
    if unknown:
        raise ConfigError(
            f"[formats] has unknown tensor(s) {', '.join(sorted(unknown))}; known: "
            f"default, {', '.join(TENSORS)}"
        )
    formats = {}
    for tensor in TENSORS:
        text = fmt_section.get(tensor, default)
        if text is None:
            continue
        try:
            formats[tensor] = parse_format(text)
        except FormatError as e:
            raise ConfigError(f"[formats] {tensor}: {e}") from None
    acts_section = dict(data.get("activations", {}))
    activations = {}
    for act in ACTIVATIONS:
        if act in acts_section:
            sub = acts_section.pop(act)
            if not isinstance(sub, dict):
                raise ConfigError(f"activations.{act} must be a table [activations.{act}]")
            activations[act] = dict(sub)
    if acts_section:
        activations["*"] = acts_section
    hardware = dict(HARDWARE_DEFAULTS)
    hardware.update(data.get("hardware", {}))
    return Config(
        name=str(data.get("name", model_path.stem)).replace("-", "_"),
        model_path=model_path,
        output=str(data.get("output", "sequence")),
        formats=formats,
        activations=activations,
        hardware=hardware,
        source=source,
    )


def load_config(path) -> Config:
    """Read a config file; a model path in it is taken relative to the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {str(path)!r} does not exist")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path.name} is not valid TOML: {e}") from None
    return parse_config(data, base=path.parent, source=path)
