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
    lanes = 4                      # every layer; or "auto" with lane_budget = N
    weights = "rom"                # or "axi-lite": run-time weights over an AXI4-Lite slave

    # networks (SPEC §2b): per-layer overrides, named lstm1, lstm2, ..., dense1, ...
    lstm = "encoder.rnn"           # which LSTM: a PyTorch prefix or an ONNX node name
    head = [{layer = "fc", activation = "relu"}]   # PyTorch: the nn.Linear head, in order
    [lstm2.formats]                # lstm2's own formats over [formats]; no x (it is lstm1's h)
    cell = "fixed<18,6,RND,SAT>"
    [lstm2.activations.tanh]
    kind = "lut"
    [lstm2.hardware]
    lanes = 8
    [dense1.formats]               # w, b, out; default: [formats] default, else SPEC's
    out = "fixed<16,8,RND,SAT>"
"""

from __future__ import annotations

import copy
import math
import re
import sys
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from model.formats import Format, FormatError, parse_format
from model.importers import load_model
from model.network import FloatNetwork
from model.pwl import (
    FITS,
    PwlTable,
    hard_table,
    plan_table,
    smallest_uniform_table,
    uniform_table,
)
from model.qmodel import (
    ACTIVATIONS,
    DEFAULT_FORMATS,
    DENSE_ACTIVATIONS,
    DENSE_DEFAULT_FORMATS,
    DENSE_TENSORS,
    OUTPUTS,
    TENSORS,
    DenseLayer,
    LstmLayer,
    QuantizedNetwork,
)

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
#: [hardware] keys: shared ones, and the ones a layer's own [<layer>.hardware] may set
HARDWARE_KEYS = ("lanes", "lane_budget", "weights")
#: [hardware] weights: constants of the design, or run-time weights over AXI4-Lite (SPEC §5b)
WEIGHTS = ("rom", "axi-lite")
LAYER_HARDWARE_KEYS = ("lanes",)
TOP_KEYS = ("name", "model", "output", "formats", "activations", "hardware", "lstm", "head")
#: per-layer sections: [lstm2.formats], [dense1.hardware], ...
LAYER_KEYS = ("formats", "activations", "hardware")
_LAYER_RE = re.compile(r"^(lstm|dense)([1-9][0-9]*)$")
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ConfigError(ValueError):
    """A config file says something lstmfx cannot do; the message says what to change."""


@dataclass
class Config:
    """A parsed config. ``network`` builds (and caches) the quantized network.

    ``formats``, ``activations`` and ``hardware`` are the shared sections; ``layers`` holds
    the per-layer ones by layer name (``{"lstm2": {"formats": {...}, "activations": {...},
    "hardware": {...}}}``). ``output`` None means: what the model file says, else sequence.
    """

    name: str
    model_path: Path
    output: str | None = None
    formats: dict[str, Format] = field(default_factory=dict)
    activations: dict[str, dict] = field(default_factory=dict)
    hardware: dict = field(default_factory=dict)
    layers: dict[str, dict] = field(default_factory=dict)
    lstm: str | None = None
    head: list[tuple[str, str]] | None = None
    default_format: Format | None = None
    source: Path | None = None

    def __post_init__(self):
        if not _NAME_RE.match(self.name):
            raise ConfigError(
                f"name {self.name!r} is not a Verilog identifier; use letters, digits and _, "
                f"not starting with a digit"
            )
        if self.output is not None and self.output not in OUTPUTS:
            raise ConfigError(f"output must be 'sequence' or 'last', not {self.output!r}")
        for act, settings in self.activations.items():
            _check_table_settings(act, settings)
        _check_hardware("[hardware]", self.hardware, HARDWARE_KEYS)
        for lname, section in self.layers.items():
            _check_layer_section(lname, section)
        self.formats = {t: parse_format(self.formats.get(t, DEFAULT_FORMATS[t])) for t in TENSORS}

    # ------------------------------------------------------------------ building

    @cached_property
    def float_model(self) -> FloatNetwork:
        options = {}
        if self.lstm is not None:
            options["lstm"] = self.lstm
        if self.head is not None:
            options["head"] = self.head
        return load_model(self.model_path, **options)

    @property
    def layer_names(self) -> list[str]:
        return self.float_model.layer_names

    def layer_formats(self, lname: str) -> dict[str, Format]:
        """The formats of one layer: its own section over the shared ones (SPEC §2 names for
        an LSTM layer, ``w``, ``b``, ``out`` for a dense one). An LSTM layer above another
        gets the ``h`` format of the one below as its ``x``."""
        own = self.layers.get(lname, {}).get("formats", {})
        if lname.startswith("dense"):
            base = self.default_format
            fmts = {t: parse_format(base or DENSE_DEFAULT_FORMATS[t]) for t in DENSE_TENSORS}
            fmts.update(own)
            return fmts
        fmts = dict(self.formats)
        fmts.update(own)
        k = int(lname[len("lstm") :])
        if k > 1:
            fmts["x"] = self.layer_formats(f"lstm{k - 1}")["h"]
        return fmts

    def table_settings(self, act: str, lname: str = "lstm1") -> dict:
        """The settings of one table of one layer: the layer's own (per table, then shared),
        over the config's (per table, then shared), over the defaults."""
        merged = {k: v for k, v in TABLE_DEFAULTS.items()}
        merged["range_log2"] = TABLE_DEFAULTS["range_log2"][act]
        own = self.layers.get(lname, {}).get("activations", {})
        for settings in (self.activations, own):
            merged.update(settings.get("*", {}))
            merged.update(settings.get(act, {}))
        return merged

    def layer_tables(self, lname: str) -> dict[str, PwlTable]:
        return {act: self.build_table(act, lname) for act in ACTIVATIONS}

    @property
    def tables(self) -> dict[str, dict[str, PwlTable]]:
        """Every LSTM layer's tables, by layer name."""
        net = self.network
        return {n: la.tables for n, la in zip(net.layer_names, net.layers) if la.kind == "lstm"}

    def build_table(self, act: str, lname: str = "lstm1") -> PwlTable:
        src, dst, func = ACTIVATIONS[act]
        s = self.table_settings(act, lname)
        fmts = self.layer_formats(lname)
        key = (act, str(fmts[src]), str(fmts[dst]), tuple(sorted(s.items())))
        if key in _TABLES:
            return _TABLES[key]
        coef = {
            "intercept_format": s.get("intercept_format"),
            "slope_format": s.get("slope_format"),
        }
        where = f"[{lname}.activations.{act}]" if lname in self.layers else f"[activations.{act}]"
        try:
            if s["kind"] == "auto":
                table = smallest_uniform_table(
                    func,
                    fmts[src],
                    fmts[dst],
                    max_error_lsb=float(s["max_error_lsb"]),
                    fit=s["fit"],
                    max_segments=s["max_segments"],
                    **coef,
                )
            elif s["kind"] in ("uniform", "lut"):
                table = uniform_table(
                    func,
                    fmts[src],
                    fmts[dst],
                    range_log2=s["range_log2"],
                    segments=s["segments"],
                    fit=s["fit"],
                    lookup=s["kind"] == "lut",
                    **coef,
                )
            else:
                builder = plan_table if s["kind"] == "plan" else hard_table
                table = builder(func, fmts[src], fmts[dst], **coef)
        except ValueError as e:
            raise ConfigError(f"{where}: {e}") from None
        _TABLES[key] = table
        return table

    @cached_property
    def weight_overflow(self) -> dict[str, int]:
        """How many weights did not fit their format, by ``<layer>.<tensor>``."""
        return self._quantized[1]

    @cached_property
    def _quantized(self) -> tuple[QuantizedNetwork, dict[str, int]]:
        fnet = self.float_model
        names = fnet.layer_names
        unknown = sorted(set(self.layers) - set(names))
        if unknown:
            raise ConfigError(
                f"the config has section(s) [{'], ['.join(unknown)}] but the model has the "
                f"layers {', '.join(names)}"
            )
        layers, over = [], {}
        for lname, fl in zip(names, fnet.layers):
            fmts = self.layer_formats(lname)
            keys = ("w", "r", "b", "p") if fl.kind == "lstm" else ("w", "b")
            codes = {}
            for k in keys:
                arr = getattr(fl, k)
                if arr is None:
                    continue
                codes[k], over[f"{lname}.{k}"] = fmts[k].from_float_counted(
                    arr, what=f"{lname} weights {k!r}"
                )
            try:
                if fl.kind == "lstm":
                    used = {t: f for t, f in fmts.items() if t != "p" or fl.p is not None}
                    layer = LstmLayer(
                        input_size=fl.input_size,
                        hidden_size=fl.hidden_size,
                        formats=used,
                        tables=self.layer_tables(lname),
                        p=codes.get("p"),
                        **{k: codes[k] for k in ("w", "r", "b")},
                    )
                else:
                    layer = DenseLayer(
                        input_size=fl.input_size,
                        output_size=fl.output_size,
                        activation=fl.activation,
                        formats=fmts,
                        w=codes["w"],
                        b=codes["b"],
                        in_fmt=layers[-1].out_fmt,
                    )
            except ValueError as e:
                raise ConfigError(f"{lname}: {e}") from None
            layers.append(layer)
        output = self.output or fnet.output or "sequence"
        if self.output and fnet.output and self.output != fnet.output:
            raise ConfigError(
                f"output = {self.output!r}, but the model's top LSTM layer gives "
                f"{'every step' if fnet.output == 'sequence' else 'only its last step'} "
                f"({fnet.output!r}); remove output from the config or set {fnet.output!r}"
            )
        hardware = dict(self.hardware)
        per_layer = {n: dict(s["hardware"]) for n, s in self.layers.items() if s.get("hardware")}
        if per_layer:
            hardware["layers"] = per_layer
        try:
            net = QuantizedNetwork(self.name, layers, output=output, hardware=hardware)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        return net, over

    @property
    def network(self) -> QuantizedNetwork:
        return self._quantized[0]

    def replace(self, *, formats=None, activations=None, hardware=None, **kw) -> Config:
        """A new config with some formats, table settings or hardware settings changed.

        Keys name a shared entry (``cell``, ``sigmoid``, ``*``) or one layer's
        (``lstm2.cell``, ``dense1.out``, ``lstm2.sigmoid``, ``lstm2.*``).
        """
        acts = copy.deepcopy(self.activations)
        layers = copy.deepcopy(self.layers)
        fmts = dict(self.formats)
        for key, text in (formats or {}).items():
            lname, tensor = _split_name(key)
            try:
                fmt = parse_format(text)
            except FormatError as e:
                raise ConfigError(f"format of {key}: {e}") from None
            if lname is None:
                if tensor not in TENSORS:
                    raise ConfigError(f"{key!r} is not a tensor; known: {', '.join(TENSORS)}")
                fmts[tensor] = fmt
            else:
                layers.setdefault(lname, {}).setdefault("formats", {})[tensor] = fmt
        for key, settings in (activations or {}).items():
            lname, act = _split_name(key)
            target = acts if lname is None else layers.setdefault(lname, {})
            if lname is not None:
                target = target.setdefault("activations", {})
            target.setdefault(act, {}).update(settings)
        hw = dict(self.hardware)
        hw.update(hardware or {})
        new = Config(
            name=kw.get("name", self.name),
            model_path=kw.get("model_path", self.model_path),
            output=kw.get("output", self.output),
            formats=fmts,
            activations=acts,
            hardware=hw,
            layers=layers,
            lstm=self.lstm,
            head=self.head,
            default_format=self.default_format,
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
        lines = [f"name = {_toml_str(self.name)}", f"model = {_toml_str(model.as_posix())}"]
        if self.output is not None:
            lines.append(f"output = {_toml_str(self.output)}")
        if self.lstm is not None:
            lines.append(f"lstm = {_toml_str(self.lstm)}")
        if self.head is not None:
            items = [
                f"{{layer = {_toml_str(n)}, activation = {_toml_str(a)}}}" for n, a in self.head
            ]
            lines.append(f"head = [{', '.join(items)}]")
        lines += ["", "[formats]"]
        if self.default_format is not None:
            lines.append(f"default = {_toml_str(str(self.default_format))}")
        lines += [f"{t} = {_toml_str(str(f))}" for t, f in self.formats.items()]
        sections = [("activations", self.activations.get("*", {}))]
        sections += [
            (f"activations.{a}", self.activations[a]) for a in ACTIVATIONS if a in self.activations
        ]
        sections.append(("hardware", self.hardware))
        for lname, section in self.layers.items():
            sections.append(
                (f"{lname}.formats", {k: str(v) for k, v in section.get("formats", {}).items()})
            )
            acts = section.get("activations", {})
            sections.append((f"{lname}.activations", acts.get("*", {})))
            sections += [(f"{lname}.activations.{a}", acts[a]) for a in ACTIVATIONS if a in acts]
            sections.append((f"{lname}.hardware", section.get("hardware", {})))
        for title, body in sections:
            if not body and "." in title and not title.startswith("activations"):
                continue
            lines += ["", f"[{title}]"]
            lines += [f"{k} = {_toml_value(v)}" for k, v in body.items()]
        return "\n".join(lines) + "\n"


#: tables by (activation, in format, out format, settings): layers and configs that ask for
#: the same table share it (an auto table over a wide input takes a while to build)
_TABLES: dict = {}


def _split_name(key: str) -> tuple[str | None, str]:
    """``lstm2.cell`` -> ("lstm2", "cell"); ``cell`` -> (None, "cell")."""
    if "." not in key:
        return None, key
    lname, rest = key.split(".", 1)
    if not _LAYER_RE.match(lname):
        raise ConfigError(
            f"{key!r} does not start with a layer name such as lstm1, lstm2 or dense1"
        )
    return lname, rest


def _check_hardware(where: str, hw: dict, keys: tuple[str, ...]) -> None:
    unknown = sorted(set(hw) - set(keys))
    if unknown:
        raise ConfigError(
            f"{where} has the unknown key(s) {', '.join(unknown)}; known keys: {', '.join(keys)}"
        )
    shared = where == "[hardware]"
    lanes = hw.get("lanes")
    if "lanes" in hw and not (shared and lanes == "auto") and not _whole(lanes):
        allowed = 'a whole number >= 1 or "auto"' if shared else "a whole number >= 1"
        raise ConfigError(f"{where} lanes = {lanes!r}; it must be {allowed}, such as 2")
    budget = hw.get("lane_budget")
    if "lane_budget" in hw and not _whole(budget):
        raise ConfigError(f"{where} lane_budget = {budget!r}; it must be a whole number >= 1")
    weights = hw.get("weights", "rom")
    if weights not in WEIGHTS:
        raise ConfigError(
            f"{where} weights = {weights!r}; choose one of {', '.join(map(repr, WEIGHTS))} "
            f'("rom": constants of the design; "axi-lite": written and read at run time)'
        )
    if lanes == "auto" and budget is None:
        raise ConfigError(
            f'{where} lanes = "auto" needs lane_budget = N, the total number of MAC lanes '
            f"to share among the layers"
        )


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _check_layer_section(lname: str, section: dict) -> None:
    m = _LAYER_RE.match(lname)
    if not m:
        raise ConfigError(f"[{lname}] is not a layer name; use lstm1, lstm2, ..., dense1, ...")
    unknown = sorted(set(section) - set(LAYER_KEYS))
    if unknown:
        raise ConfigError(
            f"[{lname}] has the unknown key(s) {', '.join(unknown)}; a layer section holds "
            f"[{lname}.formats], [{lname}.activations] and [{lname}.hardware]"
        )
    kind, k = m.group(1), int(m.group(2))
    fmts = section.get("formats", {})
    known = TENSORS if kind == "lstm" else DENSE_TENSORS
    for t in fmts:
        if t not in known:
            raise ConfigError(
                f"[{lname}.formats] has the unknown tensor {t!r}; a {kind} layer has "
                f"{', '.join(known)}"
            )
    if kind == "lstm" and k > 1 and "x" in fmts:
        raise ConfigError(
            f"[{lname}.formats] sets x, but {lname}'s x is the h of lstm{k - 1} (SPEC §2b: "
            f"a layer reads the layer below in that tensor's own format); set "
            f"[lstm{k - 1}.formats] h instead"
        )
    acts = section.get("activations", {})
    if kind == "dense" and acts:
        raise ConfigError(
            f"[{lname}.activations]: a dense layer has no tables; its activation "
            f"({' or '.join(DENSE_ACTIVATIONS)}) comes from the model"
        )
    for act, settings in acts.items():
        _check_table_settings(act, settings, prefix=f"{lname}.")
    _check_hardware(f"[{lname}.hardware]", section.get("hardware", {}), LAYER_HARDWARE_KEYS)


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


def _check_table_settings(act: str, settings: dict, prefix: str = "") -> None:
    if act != "*" and act not in ACTIVATIONS:
        raise ConfigError(
            f"[{prefix}activations.{act}] names no table; tables: {', '.join(ACTIVATIONS)}"
        )
    where = f"[{prefix}activations]" if act == "*" else f"[{prefix}activations.{act}]"
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


def parse_config(
    data: dict, *, base: Path, source: Path | None = None, notes: list | None = None
) -> Config:
    """A config from the dict TOML gives; relative paths are taken from ``base``. Things worth
    telling the user (formats whose Q and O took their defaults) are added to ``notes``."""
    notes = [] if notes is None else notes
    layer_sections = {k: data[k] for k in data if _LAYER_RE.match(k)}
    unknown = set(data) - set(TOP_KEYS) - set(layer_sections)
    if unknown:
        raise ConfigError(
            f"unknown top-level key(s) {', '.join(sorted(unknown))}; known keys: "
            f"{', '.join(TOP_KEYS)}, and layer sections such as [lstm2.formats]"
        )
    if "model" not in data:
        raise ConfigError('the config names no model: add model = "path/to/model.onnx"')
    model_path = (base / str(data["model"])).resolve()
    fmt_section = _table(data, "formats")
    default = fmt_section.pop("default", None)
    unknown = set(fmt_section) - set(TENSORS)
    if unknown:
        raise ConfigError(
            f"[formats] has unknown tensor(s) {', '.join(sorted(unknown))}; known: "
            f"default, {', '.join(TENSORS)} (a dense layer's w, b, out go in "
            f"[dense1.formats])"
        )
    formats, defaulted = {}, []
    for tensor in TENSORS:
        text = fmt_section.get(tensor, default)
        if text is not None:
            formats[tensor] = _format(text, f"[formats] {tensor}", defaulted)
    activations = _activations(_table(data, "activations"), "")
    hardware = dict(HARDWARE_DEFAULTS)
    hardware.update(_table(data, "hardware"))
    layers = {}
    for lname, section in layer_sections.items():
        if not isinstance(section, dict):
            raise ConfigError(f"{lname} must be a section such as [{lname}.formats]")
        section = dict(section)
        if "formats" in section:
            section["formats"] = {
                t: _format(v, f"[{lname}.formats] {t}", defaulted)
                for t, v in _table(section, "formats", lname + ".").items()
            }
        if "activations" in section:
            acts = _table(section, "activations", lname + ".")
            section["activations"] = _activations(acts, lname + ".")
        if "hardware" in section:
            section["hardware"] = _table(section, "hardware", lname + ".")
        layers[lname] = section
    if defaulted:
        notes.append(
            f"{', '.join(defaulted)}: no Q or O given, so they are TRN (truncate toward -inf) "
            f"and WRAP (keep the low bits), as in ac_fixed; write e.g. fixed<16,6,RND,SAT> to "
            f"round and saturate"
        )
    lstm = data.get("lstm")
    if lstm is not None and not isinstance(lstm, str):
        raise ConfigError(f'lstm = {lstm!r}; name the LSTM as a string, e.g. lstm = "rnn"')
    return Config(
        name=str(data.get("name", model_path.stem)).replace("-", "_"),
        model_path=model_path,
        output=str(data["output"]) if "output" in data else None,
        formats=formats,
        activations=activations,
        hardware=hardware,
        layers=layers,
        lstm=lstm,
        head=_head(data.get("head")),
        default_format=_format(default, "[formats] default") if default is not None else None,
        source=source,
    )


def _table(data: dict, key: str, prefix: str = "") -> dict:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{prefix}{key} must be a section [{prefix}{key}], not {value!r}")
    return dict(value)


def _format(text, where: str, defaulted: list | None = None) -> Format:
    try:
        fmt = parse_format(text)
    except FormatError as e:
        raise ConfigError(f"{where}: {e}") from None
    if defaulted is not None and str(text).count(",") < 3:
        defaulted.append(where)
    return fmt


def _activations(section: dict, prefix: str) -> dict[str, dict]:
    """``{"*": shared settings, "sigmoid": {...}, ...}`` from an [activations] section."""
    out = {}
    for key in list(section):
        if isinstance(section[key], dict):
            if key not in ACTIVATIONS:
                raise ConfigError(
                    f"[{prefix}activations.{key}] names no table; tables: {', '.join(ACTIVATIONS)}"
                )
            out[key] = dict(section.pop(key))
    if section:
        out["*"] = section
    return out


def _head(value) -> list[tuple[str, str]] | None:
    """``head = [{layer = "fc1", activation = "relu"}, {layer = "fc2"}]``."""
    if value is None:
        return None
    example = 'head = [{layer = "fc", activation = "relu"}]'
    if not isinstance(value, list):
        raise ConfigError(f"head must be a list of layers, such as {example}")
    out = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("layer"), str):
            raise ConfigError(f"head holds {item!r}; each entry names a layer: {example}")
        extra = sorted(set(item) - {"layer", "activation"})
        if extra:
            raise ConfigError(f"head entry {item!r} has unknown key(s) {', '.join(extra)}")
        act = item.get("activation", "linear")
        if act not in DENSE_ACTIVATIONS:
            raise ConfigError(
                f"head entry {item['layer']!r} has activation {act!r}; use one of "
                f"{', '.join(DENSE_ACTIVATIONS)}"
            )
        out.append((item["layer"], act))
    return out


def load_config(path) -> Config:
    """Read a config file; a model path in it is taken relative to the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {str(path)!r} does not exist")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path.name} is not valid TOML: {e}") from None
    notes: list[str] = []
    cfg = parse_config(data, base=path.parent, source=path, notes=notes)
    for note in notes:
        print(f"note: {path.name}: {note}", file=sys.stderr)
    return cfg
