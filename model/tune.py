"""Tuning: the fewest bits whose error, measured on the user's data, stays within a budget.

The search, for a config and data:

1. **Ranges.** Each tensor's integer bits I come from the range the float64 model puts
   there on the data (plus ``headroom``), so no bit is spent on range that is never used.
2. **Sensitivity.** From a starting point within the budget, each tensor in turn loses
   bits while the others keep theirs; the growth of the error power of ``h`` gives its
   gain ``g_t`` in a noise model  ``P = P_0 + Σ g_t 4^(-F_t)`` (each rounding adds noise
   of power ∝ LSB², carried to ``h`` with its own gain).
3. **Allocation.** For a target power τ, the fewest total bits with modelled ``P ≤ τ``
   come from adding one bit at a time where it removes the most power: for a separable
   convex cost this marginal rule is optimal. A ladder of τ (×4 a rung) and then a
   bisection, each allocation measured for real, find the cheapest allocation that meets
   every budget (the budget may be the task's metric; the model only shapes it).
4. **Polish.** From the model's allocation, from one width for all, and from the
   one-at-a-time cut a person would script (each tensor in turn loses bits while the
   budget holds), single bits are taken away and pairs traded (two bits off one tensor,
   one onto another) while the measured budget still holds; the cheapest result wins,
   so the tuner is never worse than those two baselines, which it reports beside its own.
   Then, with what budget is left, each ``auto`` table may grow its error target (fewer
   segments).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field

import numpy as np

from model.config import ConfigError
from model.formats import Format
from model.measure import SIGNALS, int_bits_needed, layer_tensors, measure, total_bits
from model.sweep import SweepError, TableCache, expand_name, layer_layout, tensor_format

STATS = ("max_abs", "rmse", "sqnr_db", "max_lsb")
TASK_BUDGETS = ("metric_drop", "accuracy_drop", "rmse_increase")
_BUDGET_RE = re.compile(r"^\s*([a-z0-9_.]+)\s*(<=|>=|=)\s*([-+0-9.eE]+)\s*(%?)\s*$")
_LAYER_SIGNAL_RE = re.compile(r"^(lstm|dense)[1-9][0-9]*\.([a-z_]+)$")
#: how many bits a probe takes off a tensor, tried in turn until the error moves
PROBE_STEPS = (4, 8)


class TuneError(ValueError):
    """A budget that cannot be read or met; the message says what to change."""


@dataclass(frozen=True)
class Budget:
    """One limit: ``h_max_abs=0.01``, ``h_sqnr_db=40`` (a floor), ``metric_drop=0.5%``."""

    name: str
    limit: float

    @property
    def floor(self) -> bool:
        """True when the value must stay at or above the limit (SQNR)."""
        return self.name.endswith("sqnr_db")

    def value(self, m: dict) -> float:
        if self.name in TASK_BUDGETS:
            task = m.get("task")
            if not task:
                raise TuneError(
                    f"budget {self.name} needs the task metric: give --labels (and --head)"
                )
            return task["drop"]["fixed"]
        if self.name == "overflow":
            return float(sum(m["overflow"].values()))
        sig, stat = _split(self.name)
        errors = m["errors"]["fixed"]
        if sig in ("h", "y"):
            return errors["y"][stat]  # h, as ever, names the network's output
        if "." in sig:
            if sig not in errors:
                raise TuneError(
                    f"budget {self.name}: this network has no signal {sig}; its signals are "
                    f"{', '.join(errors)}"
                )
            return errors[sig][stat]
        # a plain LSTM signal: the worst of every LSTM layer
        vals = [e[stat] for k, e in errors.items() if k.split(".")[-1] == sig and k != "y"]
        return min(vals) if self.floor else max(vals)

    def ok(self, m: dict) -> bool:
        v = self.value(m)
        return v >= self.limit if self.floor else v <= self.limit

    def __str__(self) -> str:
        return f"{self.name} {'>=' if self.floor else '<='} {self.limit:g}"


def _split(name: str) -> tuple[str, str]:
    for stat in STATS:
        if name.endswith("_" + stat):
            sig = name[: -len(stat) - 1]
            if sig in SIGNALS or sig == "y":
                return sig, stat
            m = _LAYER_SIGNAL_RE.match(sig)
            if m and (m.group(2) in SIGNALS if m.group(1) == "lstm" else m.group(2) == "out"):
                return sig, stat
    raise TuneError(
        f"unknown budget {name!r}: use SIGNAL_STAT with STAT one of {', '.join(STATS)} and "
        f"SIGNAL y or h (the network's output), one of {', '.join(SIGNALS)} (the worst of "
        f"every LSTM layer), or one layer's (lstm2.c, dense1.out); or metric_drop (the task "
        f"metric's loss, with --labels), or overflow"
    )


def parse_budget(text: str) -> Budget:
    m = _BUDGET_RE.match(text)
    if not m:
        raise TuneError(
            f"cannot read the budget {text!r}: write NAME=VALUE, for example h_max_abs=0.01, "
            f"h_sqnr_db=40 or metric_drop=0.5%"
        )
    name, _, value, pct = m.groups()
    limit = float(value) / (100 if pct else 1)
    if name not in TASK_BUDGETS and name != "overflow":
        _split(name)
    return Budget(name, limit)


# --------------------------------------------------------------------------- evaluation


@dataclass
class Point:
    """One measured candidate."""

    widths: dict[str, int]
    acts: dict
    metrics: dict | None
    error: str | None = None

    def ok(self, budgets) -> bool:
        return self.metrics is not None and all(b.ok(self.metrics) for b in budgets)


class Evaluator:
    """Measures candidates (word lengths per tensor, table settings), each once."""

    def __init__(self, base, x, int_bits, budgets, *, labels=None, head=None):
        self.base = base
        self.x = x
        self.int_bits = int_bits
        self.budgets = budgets
        self.labels = labels
        self.head = head
        self.tables = TableCache()
        self.float_cache = {}
        self.seen: dict[str, Point] = {}
        #: the network's order of its tensors: the tuned config's sections follow it
        self.order = {t: k for k, t in enumerate(layer_tensors(base.network))}

    def formats(self, widths: dict[str, int]) -> dict[str, str]:
        """The formats that ``widths`` change (``<layer>.<tensor>``: text); a tensor left as
        the config has it is not named, so the tuned config names only what tuning moved."""
        out = {}
        order = self.order
        for t, w in sorted(widths.items(), key=lambda kv: order.get(kv[0], len(order))):
            f = tensor_format(self.base, t)
            new = Format(f.signed, int(w), self.int_bits[t], f.q, f.o)
            if new != f:
                out[t] = str(new)
        return out

    def __call__(self, widths: dict[str, int], acts: dict | None = None) -> Point:
        acts = acts or {}
        key = json.dumps([widths, acts], sort_keys=True)
        if key in self.seen:
            return self.seen[key]
        change = {"formats": self.formats(widths), "activations": acts}
        try:
            cfg = self.tables.configure(self.base, change)
            _ = cfg.network
            m = measure(
                cfg,
                self.x,
                labels=self.labels,
                head=self.head,
                float_cache=self.float_cache,
                pwl=False,
            )
            m["overflow"] = {t: g["overflowed"] for t, g in m["ranges"].items()}
            point = Point(dict(widths), acts, m)
        except (ConfigError, ValueError) as e:
            point = Point(dict(widths), acts, None, str(e))
        self.seen[key] = point
        return point

    @property
    def count(self) -> int:
        return len(self.seen)

    def config(self, widths, acts):
        return self.tables.configure(
            self.base, {"formats": self.formats(widths), "activations": acts}
        )


def power(p: Point) -> float:
    """The error power of h: the quantity the noise model predicts."""
    if p.metrics is None:
        return math.inf
    return p.metrics["errors"]["fixed"]["y"]["rmse"] ** 2


# --------------------------------------------------------------------------- the search


@dataclass
class TuneResult:
    config: object
    widths: dict[str, int]
    acts: dict
    config_bits: int
    bits: int
    uniform: dict | None
    greedy: dict
    values: dict[str, float]
    evaluations: int
    gains: dict[str, float]
    log: list[str] = field(default_factory=list)


def tune(
    base,
    x,
    budgets: list[Budget],
    *,
    labels=None,
    head=None,
    tensors=None,
    min_width: int = 2,
    max_width: int = 24,
    headroom: int = 0,
    keep_int_bits: bool = False,
    shrink_tables: bool = True,
    say=print,
) -> TuneResult:
    """The config with the fewest total bits (sum of word lengths) within ``budgets``."""
    if not budgets:
        raise TuneError("give at least one --budget, for example --budget h_max_abs=0.01")
    x = np.asarray(x, dtype=np.float64)
    net = base.network
    fmt_of = layer_tensors(net)
    used = list(fmt_of)
    if tensors:
        named = []
        for t in tensors:
            try:
                named += expand_name(t, layer_layout(net, False), False, f"--tensors {t}")
            except SweepError as e:
                raise TuneError(str(e).replace("--vary ", "")) from None
        tensors = list(dict.fromkeys(named))
    else:
        tensors = used
    bad = [t for t in tensors if t not in used]
    if bad:
        raise TuneError(f"cannot tune {', '.join(bad)}: the tensors in use are {', '.join(used)}")

    # 1. ranges -> integer bits
    m0 = measure(base, x, labels=labels, head=head, pwl=False)
    for b in budgets:
        b.value(m0)  # fails early on a task budget without labels, or an unknown signal
    int_bits = {}
    for t in used:
        f = fmt_of[t]
        g = m0["ranges"][t]
        need = int_bits_needed(g["min"], g["max"], signed=f.signed)
        keep = keep_int_bits or t not in tensors or need is None
        int_bits[t] = f.int_bits if keep else need + headroom
    ev = Evaluator(base, x, int_bits, budgets, labels=labels, head=head)
    lowest = {t: max(min_width, int_bits[t] + 1) for t in tensors}
    fixed_w = {t: fmt_of[t].width for t in used if t not in tensors}

    def widths_of(w: dict[str, int]) -> dict[str, int]:
        return {**fixed_w, **w}

    def check(w: dict[str, int], acts=None) -> Point:
        return ev(widths_of(w), acts)

    # 2. a start within the budget: the config's precision (fractional bits) on new ranges
    start = {t: min(max_width, max(lowest[t], fmt_of[t].frac + int_bits[t])) for t in tensors}
    p_start = check(start)
    while not p_start.ok(budgets):
        if all(w >= max_width for w in start.values()):
            raise TuneError(unreachable(p_start, budgets, max_width))
        start = {t: min(max_width, w + 2) for t, w in start.items()}
        p_start = check(start)

    def bits_of(w: dict[str, int]) -> int:
        return sum(widths_of(w).values())

    say(f"start: {bits_of(start)} bits within budget ({values_text(p_start, budgets)})")

    # 3. sensitivity: the noise gain of each tensor
    p0 = power(p_start)
    gains = {}
    for t in tensors:
        gains[t] = 0.0
        for d in PROBE_STEPS:
            w = max(lowest[t], start[t] - d)
            if w == start[t]:
                break
            p = check({**start, t: w})
            moved = power(p) - p0
            if not math.isfinite(moved):
                gains[t] = math.inf  # cannot even be built that narrow: keep its bits
                break
            gains[t] = max(moved, 0.0) / (
                4.0 ** (-frac(t, w, int_bits)) - 4.0 ** -frac(t, start[t], int_bits)
            )
            if moved > 0.05 * p0 or w == lowest[t]:
                break
    floor = max(0.0, p0 - sum(g * 4.0 ** -frac(t, start[t], int_bits) for t, g in gains.items()
                              if math.isfinite(g)))  # fmt: skip
    say("gains: " + ", ".join(f"{t} {g:.3g}" for t, g in gains.items()))

    def allocate(tau: float) -> dict[str, int] | None:
        w = {t: (start[t] if not math.isfinite(g) else lowest[t]) for t, g in gains.items()}
        model = floor + sum(
            g * 4.0 ** -frac(t, w[t], int_bits) for t, g in gains.items() if math.isfinite(g)
        )
        while model > tau:
            best, gain = None, 0.0
            for t, g in gains.items():
                if math.isfinite(g) and w[t] < max_width:
                    drop = 0.75 * g * 4.0 ** -frac(t, w[t], int_bits)
                    if drop > gain:
                        best, gain = t, drop
            if best is None:
                return None
            w[best] += 1
            model -= gain
        return w

    # 4. the largest tau whose allocation meets the budget: up a ladder of tau from the
    # start's power (x4 a rung) to the first allocation that fails, then bisection
    def feasible(log_tau: float) -> dict[str, int] | None:
        w = allocate(math.exp(log_tau))
        return w if w is not None and check(w).ok(budgets) else None

    rung = math.log(4.0)
    ok_at, bad_at, model_w = None, None, None
    log_tau = math.log(max(p0, 1e-300)) - rung
    for _ in range(16):
        w = feasible(log_tau)
        if w is None:
            if ok_at is not None:
                bad_at = log_tau
                break
        else:
            ok_at, model_w = log_tau, w
        log_tau += rung
    if ok_at is not None and bad_at is not None:
        for _ in range(5):
            mid = (ok_at + bad_at) / 2
            w = feasible(mid)
            if w is None:
                bad_at = mid
            else:
                ok_at, model_w = mid, w
    if model_w is not None:
        say(f"model allocation: {bits_of(model_w)} bits after {ev.count} runs")

    # 5. polish from several starts: the model's allocation, one width for all, and the
    # one-at-a-time cut (which alone is what a person would script); keep the cheapest
    uni = uniform_baseline(tensors, lowest, start, max_width, check, budgets)
    gw = greedy_baseline(start, check, budgets, lowest, tensors)
    starts = {"model": model_w, "one width": uni and uni["widths"], "one at a time": gw}
    polished = {
        name: descend(w, check, budgets, lowest, gains, int_bits, max_width)
        for name, w in starts.items()
        if w is not None
    }
    say("polished: " + ", ".join(f"from {n} {bits_of(w)} bits" for n, w in polished.items()))
    best_w = min(polished.values(), key=lambda w: (sum(w.values()), power(check(w))))

    acts = {}
    if shrink_tables:
        acts = shrink(
            base, widths_of(best_w), check_full=lambda a: check(best_w, a), budgets=budgets
        )
    final = check(best_w, acts)
    bits = bits_of(best_w)
    say(f"tuned: {bits} bits after {ev.count} runs")
    if uni:
        uni["bits"] = bits_of(uni["widths"])
    gr = {"widths": gw, "bits": bits_of(gw)}
    return TuneResult(
        config=ev.config(widths_of(best_w), acts),
        widths={t: widths_of(best_w)[t] for t in used},  # in the network's order
        acts=acts,
        config_bits=total_bits(net),
        bits=bits,
        uniform=uni,
        greedy=gr,
        values={str(b): b.value(final.metrics) for b in budgets},
        evaluations=ev.count,
        gains=gains,
    )


def frac(t: str, width: int, int_bits: dict[str, int]) -> int:
    return width - int_bits[t]


def descend(w, check, budgets, lowest, gains, int_bits, max_width) -> dict[str, int]:
    """Take single bits away, then trade two bits of one tensor for one of another, while
    the budget holds; the cheapest-looking moves (by the noise model) first."""

    def cost(t, width):
        g = gains.get(t, 0.0)
        return g * 4.0 ** -frac(t, width, int_bits) if math.isfinite(g) else math.inf

    w = dict(w)
    improved = True
    while improved:
        improved = False
        for t in sorted(w, key=lambda t: cost(t, w[t] - 1)):
            if w[t] - 1 >= lowest[t] and check({**w, t: w[t] - 1}).ok(budgets):
                w[t] -= 1
                improved = True
        if improved:
            continue
        # two bits off t, one onto the tensor whose extra bit removes the most noise
        for t in sorted(w, key=lambda t: cost(t, w[t] - 2)):
            if w[t] - 2 < lowest[t]:
                continue
            others = [u for u in w if u != t and w[u] < max_width]
            if not others:
                continue
            u = max(others, key=lambda u: cost(u, w[u]))
            trial = {**w, t: w[t] - 2, u: w[u] + 1}
            if check(trial).ok(budgets):
                w = trial
                improved = True
                break
    return w


def shrink(base, widths, *, check_full, budgets) -> dict:
    """Grow the error target of each ``auto`` table (halve the segments of a ``uniform``
    or ``lut`` one) while the budget holds."""
    acts = {}
    tables = [
        (f"{lname}.{act}", lname, act)
        for lname in base.network.layer_names
        if lname.startswith("lstm")
        for act in ("sigmoid", "tanh", "tanh_cell")
    ]
    for key, lname, act in tables:
        s = base.table_settings(act, lname)
        for _ in range(6):
            if s["kind"] == "auto":
                trial = {"max_error_lsb": float(acts.get(key, s)["max_error_lsb"]) * 2}
            elif s["kind"] in ("uniform", "lut"):
                seg = int(acts.get(key, s)["segments"])
                if seg <= 1:
                    break
                trial = {"segments": seg // 2}
            else:
                break
            cand = {**acts, key: {**acts.get(key, {}), **trial}}
            p = check_full(cand)
            if not p.ok(budgets):
                break
            acts = cand
    return acts


def uniform_baseline(tensors, lowest, start, max_width, check, budgets) -> dict | None:
    """The one word length for every tuned tensor (integer bits as tuned) that meets the
    budget with the fewest bits: a bisection below the start's widest word, a scan above."""

    def ok(width: int) -> bool:
        return check({t: max(width, lowest[t]) for t in tensors}).ok(budgets)

    lo, hi = max(lowest.values()) - 1, max(start.values())
    while not ok(hi):
        if hi >= max_width:
            return None
        lo, hi = hi, hi + 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return {"width": hi, "widths": {t: max(hi, lowest[t]) for t in tensors}}


def greedy_baseline(start, check, budgets, lowest, tensors) -> dict[str, int]:
    """Each tensor in SPEC order cut one bit at a time while the budget holds: the
    one-at-a-time search a person would script."""
    w = dict(start)
    for t in tensors:
        while w[t] - 1 >= lowest[t] and check({**w, t: w[t] - 1}).ok(budgets):
            w[t] -= 1
    return w


def values_text(p: Point, budgets) -> str:
    return ", ".join(f"{b.name} {b.value(p.metrics):.4g}" for b in budgets)


def unreachable(p: Point, budgets, max_width: int) -> str:
    if p.metrics is None:
        return f"no config within the budget could be built: {p.error}"
    pwl = p.metrics["errors"]
    return (
        f"the budget {', '.join(map(str, budgets))} is not met even with the tuned tensors at "
        f"{max_width} bits "
        f"({values_text(p, budgets)}, output RMSE {pwl['fixed']['y']['rmse']:.3g}); the activation "
        f"tables may be the floor: lower [activations] max_error_lsb, or allow wider words "
        f"with --max-width"
    )


def tuned_toml(result: TuneResult, base, budgets, path) -> str:
    """The tuned config as TOML, with a header that says how it was found."""
    from pathlib import Path

    lines = [
        f"# Tuned by `lstmfx tune` from {base.source.name if base.source else base.name}: the "
        f"fewest bits within {', '.join(map(str, budgets))}",
        f"# on the data it was given; total bits {result.bits} (the config had "
        f"{result.config_bits}; one word length for all: "
        f"{result.uniform['bits'] if result.uniform else 'none met the budget'}).",
        "",
    ]
    return "\n".join(lines) + result.config.to_toml(base=Path(path).parent)
