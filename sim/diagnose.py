"""Where a mismatch starts: replay the failing sequence and compare each layer's internal
quantization points with that layer's trace from the model, step by step.

The main run only watches the output stream (fast). When it finds a mismatch, the
failing sequence is sent again after a reset with :class:`~sim.tb.Probes` on: first alone
with no pauses, and if it is then exact, after the sequence that preceded it with the
phase's pauses (the error may depend on what came before, or on stalls). The first
quantization point that differs from the model's trace, in time order over all layers,
names the layer and the point where the hardware went wrong; everything downstream of it
differs because of it.
"""

from __future__ import annotations

import numpy as np

from model.network import run_fixed
from sim.drivers import pause_generator
from sim.sequences import expected_outputs
from sim.tb import DENSE_POINTS, POINTS, Probes, Scoreboard, Stalled, resolve

GATES = "ifgo"
#: cell-update units (dense: lanes) probed per layer at most (a core has far fewer)
MAX_UNITS = 64
#: a dense layer's strobe signals, in the order valid, index, out
SIGNALS = ("valid", "index", "out")


#: an LSTM layer's per-unit trace wires (hdl/core.py): <layer>_trace<u>_<field> -> (point,
#: row offset in units of H)
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


def _find(dut, names: list[str]) -> str | None:
    """The first of ``names`` the design has."""
    for path in names:
        try:
            resolve(dut, path)
            return path
        except (AttributeError, KeyError):
            continue
    return None


def _layer_paths(name: str, signal: str, legacy: bool) -> list[str]:
    """Where a layer's signal may be: ``<layer>_<signal>`` at the top (the contract), in
    the layer's own instance, or (one-layer designs of SPEC version 1) unprefixed."""
    paths = [f"{name}_{signal}", f"{name}.{signal}"]
    return paths + [signal] if legacy else paths


def probe_groups(dut, net) -> list[dict]:
    """The strobes a design offers for diagnosis, as :class:`~sim.tb.Probes` groups.

    ``hardware.debug`` in the manifest, if present, is taken as is (a list of groups).
    Otherwise each layer's own wires: for an LSTM layer and each of its cell-update units
    ``u``, ``<layer>_trace<u>_valid`` strobes unit ``<layer>_trace<u>_unit``'s codes of
    the step (``<layer>_trace<u>_pre_i``, ``_i``, ``_c``, ``_h``, ...); for a dense layer
    and each lane ``l``, ``<layer>_trace<l>_valid`` strobes element
    ``<layer>_trace<l>_index`` of ``out`` in ``<layer>_trace<l>_out`` (or, lane-less,
    ``<layer>_trace_valid``, ``_index``, ``_out``). Groups whose signals the design does
    not have are left out.
    """
    hw = net.hardware
    if hw.get("debug"):
        candidates = [dict(g) for g in hw["debug"]]
    else:
        candidates = []
        legacy = len(net.layers) == 1
        for name, layer in zip(net.layer_names, net.layers):
            if layer.kind == "dense":
                candidates += _dense_groups(dut, name)
                continue
            h = layer.hidden_size
            for u in range(MAX_UNITS):
                valid = _find(dut, _layer_paths(name, f"trace{u}_valid", legacy))
                if valid is None:
                    break
                prefix = valid[: -len("valid")]
                fields = [
                    [point, f"{prefix}{field}", gate * h]
                    for field, (point, gate) in TRACE_FIELDS.items()
                ]
                candidates.append(
                    {"layer": name, "valid": valid, "index": f"{prefix}unit", "fields": fields}
                )
    groups = []
    for g in candidates:
        if _find(dut, [g["valid"]]) is None or _find(dut, [g["index"]]) is None:
            continue
        fields = [f for f in g["fields"] if _find(dut, [f[1]]) is not None]
        if fields:
            groups.append({**g, "fields": fields})
    return groups


def _dense_groups(dut, name: str) -> list[dict]:
    """A dense layer's strobes: one per lane (``<layer>_trace<l>_valid``, ``_index``,
    ``_out``), else the lane-less ``<layer>_trace_valid``, ``_index``, ``_out``. Never
    both: lane 0 under two names would count each write twice."""
    tags = [f"trace{lane}" for lane in range(MAX_UNITS)]
    groups = []
    for tag in tags if _find(dut, _layer_paths(name, "trace0_valid", False)) else ["trace"]:
        found = [_find(dut, _layer_paths(name, f"{tag}_{s}", False)) for s in SIGNALS]
        if None in found:
            break
        valid, index, out = found
        groups.append({"layer": name, "valid": valid, "index": index, "fields": [["out", out, 0]]})
    return groups


def element_name(layer: str, point: str, k: int, hidden: int) -> str:
    """``lstm2 preact[f, j=1] (row 5)``, ``lstm1 c[j=3]``, ``dense1 out[2]``."""
    if point == "preact":
        return f"{layer} preact[{GATES[k // hidden]}, j={k % hidden}] (row {k})"
    if point == "out":
        return f"{layer} out[{k}]"
    return f"{layer} {point}[j={k}]"


def compare(probes: Probes, net, traces: list[dict], lengths: list[int]) -> dict | None:
    """The first probed value (in clock cycles) that differs from the layers' ``traces``.

    ``traces`` are the model's per-layer traces of the last of the replayed sequences,
    whose lengths are ``lengths``: its step ``t`` is the probes' step ``sum(lengths[:-1])
    + t`` (for a dense layer of an output "last" network, whose trace has one row per
    sequence, its row is the probes' ``len(lengths) - 1``). Layers run concurrently, so
    the earliest cycle, not the lowest layer, is where the hardware first went wrong.
    """
    seen = probes.points
    silent = set()
    diffs = []
    for li, (name, layer, trace) in enumerate(zip(net.layer_names, net.layers, traces)):
        hidden = getattr(layer, "hidden_size", 0)
        for pi, point in enumerate(DENSE_POINTS if layer.kind == "dense" else POINTS):
            if (name, point) not in seen:
                continue
            model = np.asarray(trace[point])
            if model.ndim == 2:  # one row per sequence: the dense head of output "last"
                model, offset, first = model[:, None], len(lengths) - 1, lengths[-1] - 1
            else:
                offset, first = sum(lengths[:-1]), 0
            for t in range(model.shape[1]):
                for k, want in enumerate(model[0, t]):
                    got = probes.values.get(((name, point), offset + t, k))
                    if got is None:
                        silent.add(f"{name}.{point}")
                    elif got[0] != int(want):
                        where = element_name(name, point, k, hidden)
                        step = first + t
                        diffs.append(
                            (got[1], li, step, pi, k, name, point, where, got[0], int(want))
                        )
    if not diffs:
        return {"step": None, "silent": sorted(silent)} if silent else None
    diffs.sort(key=lambda d: d[:5])
    cycle, _, t, _, k, name, point, where, rtl, want = diffs[0]
    return {
        "layer": name,
        "step": t,
        "point": point,
        "element": k,
        "where": where,
        "rtl": rtl,
        "model": want,
        "cycle": cycle,
        "also": [f"step {d[2]} {d[7]}: RTL {d[8]}, model {d[9]}" for d in diffs[1:11]],
        "silent": sorted(silent),
    }


async def replay(tb, sequences, net, *, pauses=(None, None)):
    """Run ``sequences`` after a reset with a fresh scoreboard; return it and the per-layer
    traces of the last sequence."""
    res = run_fixed(net, np.stack([sequences[-1]]), trace=True)
    outs, _ = expected_outputs(net, sequences)
    expected = np.concatenate([np.reshape(y, (-1, net.output_size)) for y in outs])
    saved = tb.scoreboard
    tb.scoreboard = Scoreboard(net.output_size, net.out_fmt)
    try:
        await tb.reset()
        phase = {"name": "replay", "resets": {}, "timing": False}
        await tb.run_phase(phase, sequences, expected, pauses=pauses)
        return tb.scoreboard, [r.trace for r in res.layers]
    finally:
        tb.scoreboard = saved


async def diagnose(tb, mismatch: dict, sequences: list, phase: dict, seed: int) -> dict:
    """Replay the sequence of ``mismatch`` and locate the layer and the first quantization
    point in it that differs from the model. ``sequences`` are the phase's inputs."""
    net = tb.net
    out: dict = {k: mismatch.get(k) for k in ("phase", "sequence", "step")}
    if "sequence" not in mismatch:
        out["text"] = "the core sent a beat nobody expected; no replay possible"
        return out
    seq = mismatch["sequence"]
    groups = probe_groups(tb.dut, net)
    if not groups:
        out["probes"] = False
        out["text"] = (
            "the design exposes no probes (manifest hardware.debug or <layer>_trace* "
            "signals): only the outputs were compared"
        )
    else:
        tb.probes = Probes(tb.dut, net, groups)
        out["probes"] = sorted(f"{la}.{p}" for la, p in tb.probes.points)
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
                board, traces = await replay(tb, seqs, net, pauses=pauses)
            except Stalled as e:
                out.update(reproduced=how, stalled=str(e))
                break
            if not board.mismatched:
                continue
            out["reproduced"] = how
            out["replay_mismatch"] = board.mismatches[0]
            if tb.probes is not None:
                lengths = [len(x) for x in seqs]
                out["first_divergence"] = compare(tb.probes, net, traces, lengths)
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
        f"{head}: reproduced {d['reproduced']}; first divergence in layer {fd['layer']} at "
        f"step {fd['step']}, {fd['where']}: RTL {fd['rtl']}, model {fd['model']} (cycle "
        f"{fd['cycle']}); every point probed before that cycle matched"
    )
