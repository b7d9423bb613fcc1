"""Where a mismatch starts: replay the failing sequence and compare the core's internal
quantization points with the model's trace, step by step.

The main run only watches the output stream (fast). When it finds a mismatch, the
failing sequence is sent again after a reset with :class:`~sim.tb.Probes` on: first alone
with no pauses, and if it is then exact, after the sequence that preceded it with the
phase's pauses (the error may depend on what came before, or on stalls). The first
quantization point that differs from the model's trace, in time order, is where the
hardware went wrong; everything downstream of it differs because of it.
"""

from __future__ import annotations

import numpy as np

from model.lstm import run_fixed
from sim.drivers import pause_generator
from sim.tb import POINTS, Probes, Scoreboard, Stalled, resolve

GATES = "ifgo"


#: the core's per-unit trace wires (hdl/core.py): trace<u>_<field> -> (point, row offset)
TRACE_FIELDS = {
    "pre_i": ("preact", 0),
    "pre_f": ("preact", 1),
    "pre_g": ("preact", 2),
    "pre_o": ("preact", 3),
    "i": ("i", 0),
    "f": ("f", 0),
    "g": ("g", 0),
    "o": ("o", 0),
    "c": ("c", 0),
    "tanh_cell": ("tanh_cell", 0),
    "h": ("h", 0),
}


def probe_groups(dut, qm) -> list[dict]:
    """The strobes a design offers for diagnosis, as :class:`~sim.tb.Probes` groups.

    ``hardware.debug`` in the manifest, if present, is taken as is (a list of groups).
    Otherwise the core's own wires: for each cell update ``u`` < ``hardware.cell_units``,
    ``trace<u>_valid`` strobes unit ``trace<u>_unit``'s codes of the step. Groups whose
    signals the design does not have are left out.
    """
    hw = qm.hardware
    if hw.get("debug"):
        candidates = list(hw["debug"])
    else:
        h = qm.hidden_size
        candidates = []
        for u in range(int(hw.get("cell_units", 1) or 1)):
            fields = [
                [point, f"trace{u}_{name}", gate * h]
                for name, (point, gate) in TRACE_FIELDS.items()
            ]
            candidates.append(
                {"valid": f"trace{u}_valid", "index": f"trace{u}_unit", "fields": fields}
            )
    groups = []
    for g in candidates:
        try:
            resolve(dut, g["valid"])
            resolve(dut, g["index"])
        except (AttributeError, KeyError):
            continue
        fields = []
        for point, path, offset in g["fields"]:
            try:
                resolve(dut, path)
            except (AttributeError, KeyError):
                continue
            fields.append([point, path, offset])
        if fields:
            groups.append({"valid": g["valid"], "index": g["index"], "fields": fields})
    return groups


def element_name(point: str, k: int, hidden: int) -> str:
    if point == "preact":
        return f"preact[{GATES[k // hidden]}, j={k % hidden}] (row {k})"
    return f"{point}[j={k}]"


def compare(probes: Probes, trace: dict, hidden: int, offset: int, steps: int) -> dict | None:
    """The first step where a probed point differs from ``trace`` (steps from ``offset``)."""
    seen = probes.points
    silent = set()
    for t in range(steps):
        diffs = []
        for point in POINTS:
            if point not in seen:
                continue
            model = trace[point][0, t]
            for k, want in enumerate(model):
                got = probes.values.get((point, offset + t, k))
                if got is None:
                    silent.add(point)
                elif got[0] != int(want):
                    diffs.append((got[1], POINTS.index(point), k, point, got[0], int(want)))
        if diffs:
            diffs.sort()
            cycle, _, k, point, rtl, want = diffs[0]
            return {
                "step": t,
                "point": point,
                "element": k,
                "where": element_name(point, k, hidden),
                "rtl": rtl,
                "model": want,
                "cycle": cycle,
                "also": [
                    f"{element_name(p, kk, hidden)}: RTL {r}, model {w}"
                    for _, _, kk, p, r, w in diffs[1:11]
                ],
                "silent": sorted(silent),
            }
    return {"step": None, "silent": sorted(silent)} if silent else None


async def replay(tb, sequences, qm, *, pauses=(None, None)):
    """Run ``sequences`` after a reset with a fresh scoreboard; return it and the trace."""
    res = run_fixed(qm, np.stack([sequences[-1]]), trace=True)
    expected = []
    for x in sequences:
        out = run_fixed(qm, x[None]).h_codes[0]
        expected.extend(np.reshape(out, (-1, qm.hidden_size)))
    saved = tb.scoreboard
    tb.scoreboard = Scoreboard(qm.hidden_size, qm.formats["h"])
    try:
        await tb.reset()
        phase = {"name": "replay", "resets": {}, "timing": False}
        await tb.run_phase(phase, sequences, np.array(expected), pauses=pauses)
        return tb.scoreboard, res.trace
    finally:
        tb.scoreboard = saved


async def diagnose(tb, mismatch: dict, sequences: list, phase: dict, seed: int) -> dict:
    """Replay the sequence of ``mismatch`` and locate the first quantization point that
    differs from the model. ``sequences`` are the phase's inputs."""
    qm = tb.qm
    out: dict = {k: mismatch.get(k) for k in ("phase", "sequence", "step")}
    if "sequence" not in mismatch:
        out["text"] = "the core sent a beat nobody expected; no replay possible"
        return out
    seq = mismatch["sequence"]
    groups = probe_groups(tb.dut, qm)
    if not groups:
        out["probes"] = False
        out["text"] = (
            "the design exposes no probes (manifest hardware.debug or dbg_<point>_* "
            "signals): only the outputs were compared"
        )
    else:
        tb.probes = Probes(tb.dut, qm, groups)
        out["probes"] = sorted(tb.probes.points)
    attempts = [("alone, no pauses", [sequences[seq]], (None, None))]
    if seq > 0:
        pauses = (
            pause_generator(phase.get("idle"), seed=seed),
            pause_generator(phase.get("backpressure"), seed=seed + 1),
        )
        attempts.append(
            ("after its predecessor, with the phase's pauses", sequences[seq - 1 : seq + 1], pauses)
        )
    try:
        for how, seqs, pauses in attempts:
            try:
                board, trace = await replay(tb, seqs, qm, pauses=pauses)
            except Stalled as e:
                out.update(reproduced=how, stalled=str(e))
                break
            if not board.mismatched:
                continue
            out["reproduced"] = how
            out["replay_mismatch"] = board.mismatches[0]
            if tb.probes is not None:
                offset = sum(len(x) for x in seqs[:-1])
                out["first_divergence"] = compare(
                    tb.probes, trace, qm.hidden_size, offset, len(seqs[-1])
                )
            break
        else:
            out["reproduced"] = False
    finally:
        tb.probes = None
    out["text"] = describe(out)
    return out


def describe(d: dict) -> str:
    """One paragraph a person can act on."""
    if "text" in d and "reproduced" not in d:
        return d["text"]
    head = f"phase {d.get('phase')}, sequence {d['sequence']}, step {d['step']}"
    if d.get("reproduced") is False:
        return (
            f"{head}: the replay (alone, then after its predecessor) was exact, so the "
            f"error depends on the timing of stalls or on earlier history"
        )
    if "stalled" in d:
        return f"{head}: the replay ({d['reproduced']}) stalled: {d['stalled']}"
    fd = d.get("first_divergence")
    if d.get("probes") is False:
        return f"{head}: reproduced {d['reproduced']}; " + (
            "no probes in the design, so the first diverging point is unknown"
        )
    if fd is None:
        return (
            f"{head}: reproduced {d['reproduced']}, yet every probed point matched the model: "
            f"the error is between the last probe and the output port"
        )
    if fd["step"] is None:
        return f"{head}: probes {', '.join(fd['silent'])} never strobed; cannot locate"
    return (
        f"{head}: reproduced {d['reproduced']}; first divergence at step {fd['step']}, "
        f"{fd['where']}: RTL {fd['rtl']}, model {fd['model']} (cycle {fd['cycle']}); "
        f"every earlier point matched"
    )
