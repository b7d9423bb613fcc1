"""One co-simulation from the caller's side: generate, build, run a job, read the verdict.

:func:`simulate` takes a quantized network and a list of :class:`~sim.job.Phase`, writes
the design's Verilog (``hdl.generate``), builds it for the chosen simulator (cached), runs
:mod:`sim.cocotb_job` inside the simulator and returns a :class:`SimResult`: counts,
mismatches with their diagnosis (layer and quantization point), and the measured timing
checked against the manifest's hardware section for the whole chain.
:func:`standard_phases` is the mix ``lstmfx simulate`` and the tests run.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from model.qmodel import QuantizedNetwork
from sim import runner
from sim.job import JOB_ENV, Job, Phase
from sim.sequences import adversarial_sequences, random_sequences, variable_lengths

BACKPRESSURE = "random:0.3"
IDLE = "random:0.2"
PATTERN_BACKPRESSURE = "pattern:1101000"
PATTERN_IDLE = "pattern:011"
#: steps of each timing sequence at least
TIMING_STEPS = 16


def layer_lanes(net: QuantizedNetwork, hardware: dict) -> dict[str, int]:
    """Each layer's MAC lanes, from a manifest's hardware section (its ``layers`` list, as
    ``hdl`` writes it, or the config's ``layers`` table) or the shared ``lanes``."""
    shared = hardware.get("lanes", 1)
    lanes = {name: int(shared) if isinstance(shared, int) else 1 for name in net.layer_names}
    per = hardware.get("layers") or {}
    if isinstance(per, list):
        per = {item.get("name", name): item for item, name in zip(per, net.layer_names)}
    for name, item in per.items():
        if name in lanes and isinstance(item, dict) and isinstance(item.get("lanes"), int):
            lanes[name] = item["lanes"]
    return lanes


def ideal_cycles(net: QuantizedNetwork, lanes: dict[str, int] | int) -> int:
    """The MAC bound of the chain: its slowest LSTM layer's ceil(4H(I+H) / P) cycles."""
    if isinstance(lanes, int):
        lanes = dict.fromkeys(net.layer_names, lanes)
    return max(
        math.ceil(4 * la.hidden_size * (la.input_size + la.hidden_size) / max(lanes[n], 1))
        for n, la in zip(net.layer_names, net.layers)
        if la.kind == "lstm"
    )


def standard_phases(
    net: QuantizedNetwork,
    *,
    sequences: int,
    steps: int,
    seed: int = 0,
    long_steps: int = 1000,
    long_sequences: int = 1,
    adversarial: float = 0.25,
    backpressure: str = BACKPRESSURE,
    idle: str = IDLE,
    user: list[np.ndarray] | None = None,
) -> list[Phase]:
    """The phases of a full check.

    ``timing`` (three random sequences of at least :data:`TIMING_STEPS` steps back to back,
    no pauses: cycles per step; long enough that a chain's first steps, which run at the
    pace of its first layer until the buffers between layers fill, are a minority), ``latency``
    (length-1 sequences on an idle core), then either the user's sequences or: ``random``
    (random idle and back-pressure), ``adversarial`` (fixed-pattern pauses),
    ``lengths`` (random lengths from 1, back to back, random back-pressure, a reset in the
    middle of two sequences) and ``long`` (``long_steps`` steps, random back-pressure).
    """
    rng = np.random.default_rng(seed)
    lat = list(random_sequences(net, 3, 1, rng))
    timing = list(random_sequences(net, 3, max(steps, TIMING_STEPS), rng))
    if user is not None:
        main = [Phase("input", list(user), idle=idle, backpressure=backpressure)]
    else:
        n_adv = int(round(sequences * adversarial))
        n_len = max(4, sequences // 10) if sequences >= 8 else 0
        n_rand = max(0, sequences - n_adv - n_len)
        main = []
        if n_rand:
            main.append(
                Phase(
                    "random",
                    list(random_sequences(net, n_rand, steps, rng)),
                    idle=idle,
                    backpressure=backpressure,
                )
            )
        if n_adv:
            main.append(
                Phase(
                    "adversarial",
                    list(adversarial_sequences(net, n_adv, steps, rng)),
                    idle=PATTERN_IDLE,
                    backpressure=PATTERN_BACKPRESSURE,
                )
            )
        if n_len:
            seqs = variable_lengths(net, n_len, max(steps, 2), rng)
            cuts = [s for s, x in enumerate(seqs) if len(x) >= 2][:2]
            resets = {s: int(rng.integers(1, len(seqs[s]))) for s in cuts}
            main.append(Phase("lengths", seqs, backpressure=backpressure, resets=resets))
        if long_sequences and long_steps:
            seqs = list(random_sequences(net, long_sequences, long_steps, rng))
            main.append(Phase("long", seqs, backpressure=backpressure))
    return [
        Phase("timing", timing, timing=True),
        Phase("latency", lat, timing=True, isolated=True),
        *main,
    ]


@dataclass
class SimResult:
    """What a co-simulation found. ``ok`` is the verdict."""

    sim: str
    name: str
    results: dict
    hardware: dict
    ideal: int
    build: runner.Build
    work_dir: Path
    seconds: float
    timing_errors: list[str] = field(default_factory=list)
    waves_path: Path | None = None

    @property
    def phases(self) -> list[dict]:
        return self.results.get("phases", [])

    @property
    def sequences(self) -> int:
        return sum(p["sequences"] for p in self.phases)

    @property
    def steps(self) -> int:
        return sum(p["steps"] for p in self.phases)

    @property
    def mismatches(self) -> int:
        return int(self.results.get("mismatched_beats", 0))

    @property
    def sim_seconds(self) -> float:
        return sum(p["seconds"] for p in self.phases)

    @property
    def steps_per_second(self) -> float:
        return self.steps / max(self.sim_seconds, 1e-9)

    @property
    def errors(self) -> list[str]:
        """Every reason the run is not a pass, one line each."""
        out = []
        r = self.results
        if r.get("stalled"):
            out.append(f"stalled: {r['stalled']}")
        if self.mismatches:
            out.append(f"{self.mismatches} output beat(s) differ from the model")
        out += [f"interface: {v}" for v in r.get("interface", [])]
        if r.get("unreceived_beats") and not r.get("stalled"):
            out.append(f"{r['unreceived_beats']} expected beat(s) never came")
        out += [f"protocol: {v}" for v in r.get("protocol", [])]
        out += self.timing_errors
        return out

    @property
    def ok(self) -> bool:
        return not self.errors and bool(self.phases)

    def measured(self) -> dict:
        """Measured cycles per step (most common interval, and the largest) and latency."""
        t = self.results.get("timing", {})
        iv = Counter({int(k): v for k, v in t.get("intervals", {}).items()})
        lat = Counter({int(k): v for k, v in t.get("latencies", {}).items()})
        return {
            "cycles_per_step": iv.most_common(1)[0][0] if iv else None,
            "cycles_per_step_max": max(iv) if iv else None,
            "latency_min": min(lat) if lat else None,
            "latency_max": max(lat) if lat else None,
        }

    def summary(self) -> str:
        lines = []
        for p in self.phases:
            cut = f", {len(p['cut_by_reset'])} cut by a reset" if p.get("cut_by_reset") else ""
            pauses = f"idle {p.get('idle', 'none')}, back-pressure {p.get('backpressure', 'none')}"
            lines.append(
                f"  {p['name']:<12} {p['sequences']:6d} sequences {p['steps']:8d} steps "
                f"{p['mismatched_beats']:4d} mismatches  ({pauses}{cut})"
            )
        m = self.measured()
        hw = self.hardware
        lines.append(
            f"sequences {self.sequences:,}  steps {self.steps:,}  mismatches {self.mismatches}"
        )
        lines.append(
            f"cycles per step {m['cycles_per_step']} measured (largest {m['cycles_per_step_max']}),"
            f" {hw.get('cycles_per_step', '?')} in the manifest, ideal max over LSTM layers of "
            f"ceil(4H(I+H)/P) = {self.ideal}; latency "
            f"{_span(m['latency_min'], m['latency_max'])} measured, "
            f"{hw.get('latency', '?')} in the manifest"
        )
        per = hw.get("layers")
        if isinstance(per, list) and per:
            parts = [
                f"{la.get('name', '?')} {la.get('cycles_per_step', '?')} (lanes "
                f"{la.get('lanes', '?')})"
                for la in per
            ]
            lines.append("cycles per step by layer, in the manifest: " + ", ".join(parts))
        lines.append(
            f"simulated {self.steps_per_second:,.0f} steps/s on {self.sim} "
            f"({self.sim_seconds:.1f} s simulating, build "
            f"{'reused' if self.build.reused else f'{self.build.seconds:.1f} s'})"
        )
        over = Counter()
        for p in self.phases:
            over.update(p.get("overflow", {}))
        hit = ", ".join(f"{k} {v:,}" for k, v in over.items() if v)
        if hit:
            lines.append(f"values the model saturated or wrapped (exercised): {hit}")
        for mm in self.results.get("mismatches", [])[:5]:
            lines.append("  mismatch: " + describe_mismatch(mm))
        diag = self.results.get("diagnosis")
        if diag:
            lines.append("diagnosis: " + diag.get("text", ""))
            fd = diag.get("first_divergence") or {}
            for extra in fd.get("also", [])[:5]:
                lines.append(f"  also differs: {extra}")
        errs = self.errors
        lines.append("PASS: the RTL equals the bit-accurate network" if not errs else "FAIL:")
        lines += [f"  {e}" for e in errs]
        return "\n".join(lines)


def _span(a, b) -> str:
    if a is None:
        return "?"
    return str(a) if a == b else f"{a}..{b}"


def describe_mismatch(mm: dict) -> str:
    if "sequence" not in mm:
        return f"cycle {mm.get('cycle')}: {mm.get('what')} ({mm.get('got')})"
    els = ", ".join(f"y[{k}] RTL {g} model {w}" for k, g, w in mm.get("elements", [])[:4])
    more = len(mm.get("elements", [])) - 4
    if more > 0:
        els += f" and {more} more"
    if "tlast" in mm:
        els += (", " if els else "") + f"tlast RTL {mm['tlast'][0]} model {mm['tlast'][1]}"
    if "pad" in mm:
        els += (", " if els else "") + f"pad bits RTL {mm['pad']}, SPEC §5 says 0"
    return (
        f"phase {mm['phase']} sequence {mm['sequence']} step {mm['step']} "
        f"(cycle {mm['cycle']}): {els}"
    )


def check_timing(result: SimResult) -> list[str]:
    """Measured cycles per step and latency of the chain against the manifest's hardware
    section; and the chain's promise against its layers' (no chain beats its slowest layer,
    nor answers before its layers' latencies add up)."""
    hw, m = result.hardware, result.measured()
    errs = []
    per = hw.get("layers")
    if isinstance(per, list) and len(per) > 1:
        cps_layers = [la.get("cycles_per_step") for la in per]
        if hw.get("cycles_per_step") is not None and all(isinstance(c, int) for c in cps_layers):
            if hw["cycles_per_step"] < max(cps_layers):
                errs.append(
                    f"timing: the manifest says {hw['cycles_per_step']} cycles per step for the "
                    f"chain, fewer than its slowest layer's {max(cps_layers)}"
                )
    cps = hw.get("cycles_per_step")
    if cps is not None and m["cycles_per_step"] is not None:
        if m["cycles_per_step"] != cps or m["cycles_per_step_max"] != cps:
            errs.append(
                f"timing: cycles per step measured {m['cycles_per_step']} (largest "
                f"{m['cycles_per_step_max']}), the manifest says {cps}"
            )
    lat = hw.get("latency")
    if lat is not None and m["latency_min"] is not None:
        if not m["latency_min"] == m["latency_max"] == lat:
            errs.append(
                f"timing: latency measured {_span(m['latency_min'], m['latency_max'])}, "
                f"the manifest says {lat}"
            )
    return errs


def generate_design(net: QuantizedNetwork, out_dir) -> tuple[Path, dict]:
    """The design's Verilog path and its manifest (with the hardware section)."""
    try:
        from hdl.generate import generate
    except ImportError as e:
        raise RuntimeError(f"the hardware generator is not available: {e}") from None
    v_path, m_path = generate(net, out_dir)
    return Path(v_path), json.loads(Path(m_path).read_text())


def simulate(
    net: QuantizedNetwork,
    phases: list[Phase],
    *,
    sim: str = "verilator",
    case: str | None = None,
    build_root=None,
    waves: bool = False,
    seed: int = 0,
    progress: bool = True,
    expected: QuantizedNetwork | None = None,
    diagnose: bool = True,
    verbose: bool = False,
    waves_dir=None,
) -> SimResult:
    """Generate ``net``'s design, build it for ``sim`` and check it over ``phases``.

    With ``waves`` the simulator writes an FST file of this run, a new one per run, in
    ``waves_dir`` (default ``<build root>/waves``); ``SimResult.waves_path`` names it.

    ``expected`` is the network the outputs are checked against (default ``net`` itself;
    a different one makes a deliberate mismatch, which is how the diagnosis is tested).
    """
    t0 = time.perf_counter()
    case = case or net.name
    root = Path(build_root) if build_root is not None else runner.default_build_root()
    design_dir = root / f"{case}-design"
    v_path, manifest = generate_design(net, design_dir)
    b = runner.build(
        v_path, net.name, sim=sim, case=case, build_root=root, waves=waves, verbose=verbose
    )
    check = (expected or net).to_manifest()
    check["hardware"] = manifest["hardware"]
    work = root / f"{case}-{sim}-run"
    job = Job(check, phases, seed=seed, progress=progress, diagnose=diagnose, label=f"[{sim}] ")
    path = job.write(work)
    waves_path = None
    if waves:
        waves_path = new_waves_file(Path(waves_dir) if waves_dir else root / "waves", case, sim)
    runner.run_test(
        b,
        "sim.cocotb_job",
        test_dir=work,
        env={JOB_ENV: str(path)},
        seed=seed,
        log_file=None if (verbose or progress) else work / "sim.log",
        waves_path=waves_path,
    )
    res_path = work / "results.json"
    if not res_path.is_file():
        raise runner.SimulatorError(
            f"the {sim} simulation wrote no results; see {work / 'sim.log'}"
        )
    results = json.loads(res_path.read_text())
    hw = {**net.hardware, **manifest["hardware"]}
    out = SimResult(
        sim=sim,
        name=net.name,
        results=results,
        hardware=manifest["hardware"],
        ideal=ideal_cycles(net, layer_lanes(net, hw)),
        build=b,
        work_dir=work,
        seconds=time.perf_counter() - t0,
        waves_path=waves_path,
    )
    out.timing_errors = check_timing(out)
    return out


def new_waves_file(folder: Path, case: str, sim: str) -> Path:
    """A waveform file name no earlier run used: ``<case>-<sim>-<date>-<time>[-n].fst``."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{case}-{sim}-{time.strftime('%Y%m%d-%H%M%S')}"
    for n in range(1, 10_000):
        path = folder / (f"{stem}.fst" if n == 1 else f"{stem}-{n}.fst")
        try:
            path.touch(exist_ok=False)  # claimed: a run started in the same second takes -2
        except FileExistsError:
            continue
        path.unlink()
        return path
    raise RuntimeError(f"no free waveform file name in {folder}")


def replay_phase(phases: list[Phase], which: str) -> tuple[Phase, str]:
    """One sequence of ``phases`` alone, for a small waveform, and what it is.

    ``which`` is ``PHASE:K`` (sequence K of that phase, as a mismatch names it) or ``K``
    (the run's K-th sequence, from 0, over all phases). Every sequence starts from the
    reset state of the core, so the sequence alone computes what it computed in the run;
    the phase's idle and back-pressure settings are kept (their random draws differ).
    """
    name, _, k = which.rpartition(":")
    try:
        k = int(k)
    except ValueError:
        raise ValueError(f"--waves-sequence wants K or PHASE:K, not {which!r}") from None
    if name:
        found = [p for p in phases if p.name == name]
        if not found:
            names = ", ".join(p.name for p in phases)
            raise ValueError(f"--waves-sequence {which}: no phase {name!r} (phases: {names})")
        ph = found[0]
    else:
        for ph in phases:
            if k < len(ph.sequences):
                break
            k -= len(ph.sequences)
        else:
            total = sum(len(p.sequences) for p in phases)
            raise ValueError(f"--waves-sequence {which}: the run has {total} sequences")
        name = ph.name
    if not 0 <= k < len(ph.sequences):
        raise ValueError(
            f"--waves-sequence {which}: phase {name} has {len(ph.sequences)} sequences"
        )
    seq = ph.sequences[k]
    replay = Phase(f"{name}:{k}", [seq], idle=ph.idle, backpressure=ph.backpressure)
    return replay, f"sequence {k} of phase {name}, {len(seq)} steps, replayed alone"


def waves_file(result: SimResult) -> Path | None:
    """Where the simulator left its waveform, if it wrote one."""
    if result.waves_path is not None:
        p = result.waves_path
        return p if p.is_file() and p.stat().st_size > 0 else None
    for cand in (
        result.work_dir / "dump.vcd",
        result.build.directory / f"{result.build.toplevel}.fst",
        result.work_dir / f"{result.build.toplevel}.fst",
    ):
        if cand.is_file():
            return cand
    return None
