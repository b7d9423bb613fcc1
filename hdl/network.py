"""The network of SPEC §2b as one core: a chain of layer cores behind the ports of SPEC §5.

The one place that composes the chain. Each layer's core (:class:`hdl.core.LstmCore`,
:class:`hdl.dense.DenseCore`) knows only its own layer and two streams; here they are
connected in order, and here each layer's lane count is chosen (:func:`layer_lanes`,
:func:`choose_lanes` for ``lanes = "auto"``).
"""

from __future__ import annotations

import itertools

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hdl.axil import WeightBus, axil_members
from hdl.core import LstmCore, Schedule, valid_lanes
from hdl.dense import DenseCore, DenseSchedule, valid_dense_lanes
from hdl.skid import SkidBuffer
from model.qmodel import QuantizedNetwork
from model.weightmap import weight_map

#: keys of the network's ``hardware`` dict that a config may set
HARDWARE_KEYS = ("lanes", "lane_budget", "layers", "weights")
#: ``weights``: constants of the design, or run-time weights over AXI4-Lite (SPEC §5b)
WEIGHTS = ("rom", "axi-lite")
#: keys generate() writes into the manifest's ``hardware``; reading one back must not fail
DERIVED_KEYS = (
    "cycles_per_step", "latency", "chaining_cycles", "interface", "clock", "reset", "rom_files",
    "weight_map",
)  # fmt: skip
#: extra cycles per step that chaining the layers costs: none (each layer's output
#: register feeds the next layer's holding register directly; see NetworkCore)
CHAIN_CYCLES_PER_STEP = 0
#: cycles the output skid buffer (:class:`hdl.skid.SkidBuffer`) adds to the latency
OUTPUT_CYCLES = SkidBuffer.latency


def padded(bits: int) -> int:
    """SPEC §5: a bus of ``bits`` payload bits rounded up to whole bytes."""
    return 8 * -(-bits // 8)


def lane_options(layer) -> list[int]:
    """The lane counts a layer's core can be built with."""
    if layer.kind == "lstm":
        return valid_lanes(layer.hidden_size)
    return valid_dense_lanes(layer.output_size)


def layer_schedule(layer, lanes: int, name: str):
    """The :class:`~hdl.core.Schedule` or :class:`~hdl.dense.DenseSchedule` of a layer."""
    if layer.kind == "lstm":
        return Schedule.of(layer, lanes, name=name)
    return DenseSchedule.of(layer, lanes, name=name)


def per_step_layers(network: QuantizedNetwork) -> list[str]:
    """Names of the layers that run once per time step: all of them with ``sequence``; with
    ``last`` the LSTM layers (the dense layers run once per sequence)."""
    return [
        name
        for name, layer in zip(network.layer_names, network.layers)
        if network.output == "sequence" or layer.kind == "lstm"
    ]


def _objective(network: QuantizedNetwork, lanes: dict[str, int]) -> tuple[int, int, int]:
    """What ``auto`` minimises, in order: the slowest per-step layer's cycles per step, the
    slowest layer's (once-per-sequence layers too), the lanes spent."""
    cps = {
        name: layer_schedule(layer, lanes[name], name).cycles_per_step
        for name, layer in zip(network.layer_names, network.layers)
    }
    steps = per_step_layers(network)
    return max(cps[n] for n in steps), max(cps.values()), sum(lanes.values())


def choose_lanes(network: QuantizedNetwork, budget: int, fixed: dict | None = None) -> dict:
    """``lanes = "auto"``: a lane count per layer (name -> lanes) with at most ``budget`` lanes
    in all that minimises :func:`_objective` (per-step throughput first, then the
    once-per-sequence layers, then fewest lanes). ``fixed`` layers keep their count (it
    counts against the budget). A pure function of the network's shapes.

    Exact: for each threshold pair (A for per-step layers, B for all) in increasing order,
    every free layer takes the fewest lanes that meet its threshold; the first pair whose
    sum fits the budget is optimal, since cycles per step never grow with more lanes.
    """
    fixed = dict(fixed or {})
    names = network.layer_names
    layers = dict(zip(names, network.layers))
    free = [n for n in names if n not in fixed]
    need = len(free) + sum(fixed.values())
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < need:
        raise ValueError(
            f"[hardware] lane_budget = {budget!r} cannot give every layer a lane: the network "
            f"needs at least {need} ({len(free)} layer(s) with 1 lane each"
            + (f", plus the fixed lanes of {', '.join(sorted(fixed))}" if fixed else "")
            + "); raise lane_budget"
        )
    options = {
        n: sorted(
            (layer_schedule(layers[n], p, n).cycles_per_step, p) for p in lane_options(layers[n])
        )
        for n in free
    }
    steps = set(per_step_layers(network))
    fixed_cps = {n: layer_schedule(layers[n], p, n).cycles_per_step for n, p in fixed.items()}
    values = sorted({c for opts in options.values() for c, _ in opts} | set(fixed_cps.values()))
    best = None
    for a in values:
        if any(fixed_cps[n] > a for n in fixed_cps if n in steps):
            continue
        for b in values:
            if b < a or any(c > b for c in fixed_cps.values()):
                continue
            pick = dict(fixed)
            for n in free:
                limit = a if n in steps else b
                ok = [p for c, p in options[n] if c <= limit]
                if not ok:
                    break
                pick[n] = min(ok)
            else:
                if sum(pick.values()) <= budget:
                    best = {n: pick[n] for n in names}
                    break
        if best is not None:
            break
    assert best is not None  # one lane each fits: the largest thresholds always succeed
    return best


def brute_force_lanes(network: QuantizedNetwork, budget: int) -> tuple[int, int, int]:
    """The best :func:`_objective` over every lane assignment within ``budget`` (for tests)."""
    names = network.layer_names
    opts = [lane_options(layer) for layer in network.layers]
    best = None
    for combo in itertools.product(*opts):
        if sum(combo) <= budget:
            score = _objective(network, dict(zip(names, combo)))
            best = score if best is None or score < best else best
    return best


def layer_lanes(network: QuantizedNetwork) -> dict[str, int]:
    """Each layer's lane count from ``network.hardware``, or a ValueError that says why not.

    ``lanes`` (default 1) is an int for every layer or ``"auto"`` (then ``lane_budget`` is
    required); ``layers`` maps a layer name to ``{"lanes": n}`` (a config) or is the list a
    manifest holds (``{"name": ..., "lanes": n}`` each); a layer's own entry wins. A shared
    int that a dense layer cannot build (it must divide the layer's output size) gives that
    layer the largest count that can, below the int: a head of 1 output takes 1 lane.
    """
    hw = network.hardware or {}
    names = network.layer_names
    layers = dict(zip(names, network.layers))
    unknown = sorted(set(hw) - set(HARDWARE_KEYS) - set(DERIVED_KEYS))
    if unknown:
        raise ValueError(
            f"[hardware] has unknown key(s) {', '.join(map(repr, unknown))}; the hardware "
            f"reads only {', '.join(HARDWARE_KEYS)}"
        )
    per = hw.get("layers") or {}
    if isinstance(per, list):  # a manifest's hardware.layers
        per = {entry.get("name"): entry for entry in per}
    fixed = {}
    for name, entry in per.items():
        if name not in layers:
            raise ValueError(
                f"[hardware] names a layer {name!r} the network does not have; its layers are "
                f"{', '.join(names)}"
            )
        if "lanes" in entry:
            fixed[name] = _checked(layers[name], entry["lanes"], name)
    shared = hw.get("lanes", 1)
    if shared == "auto":
        if "lane_budget" not in hw:
            raise ValueError(
                '[hardware] lanes = "auto" needs lane_budget = N, the most lanes all layers '
                "may use together"
            )
        return choose_lanes(network, hw["lane_budget"], fixed)
    if isinstance(shared, bool) or not isinstance(shared, int) or shared < 1:
        raise ValueError(
            f'[hardware] lanes = {shared!r} must be a positive int or "auto" (with lane_budget)'
        )
    out = {}
    for name in names:
        if name in fixed:
            out[name] = fixed[name]
        elif layers[name].kind == "dense":
            out[name] = max(p for p in lane_options(layers[name]) if p <= shared)
        else:
            out[name] = _checked(layers[name], shared, name)
    return out


def _checked(layer, lanes, name: str) -> int:
    layer_schedule(layer, lanes, name)  # raises with the layer's name and valid counts
    return lanes


def network_hardware(network: QuantizedNetwork, lanes: dict | None = None) -> dict:
    """The manifest's ``hardware`` section of the chain, without building it: the config's
    ``lanes`` (and ``lane_budget``), the chain's ``cycles_per_step`` (the slowest per-step
    layer's + :data:`CHAIN_CYCLES_PER_STEP`) and ``latency`` (the sum of the layers', plus
    :data:`OUTPUT_CYCLES` of the output skid buffer), and
    ``layers``: each layer's name, kind, lanes, cycles per step, latency and pipeline."""
    lanes = dict(lanes) if lanes is not None else layer_lanes(network)
    hw = network.hardware or {}
    names = network.layer_names
    entries = [
        {"name": n, **layer_schedule(layer, lanes[n], n).hardware()}
        for n, layer in zip(names, network.layers)
    ]
    steps = set(per_step_layers(network))
    out = {"lanes": hw.get("lanes", 1)}
    if out["lanes"] == "auto":
        out["lane_budget"] = hw["lane_budget"]
    out.update(
        {
            "cycles_per_step": CHAIN_CYCLES_PER_STEP
            + max(e["cycles_per_step"] for e in entries if e["name"] in steps),
            "latency": OUTPUT_CYCLES + sum(e["latency"] for e in entries),
            "chaining_cycles": CHAIN_CYCLES_PER_STEP,
            "interface": "axi4-stream",
            "clock": "clk",
            "reset": "rst (synchronous, active high)",
            "layers": entries,
        }
    )
    if run_time_weights(network):
        out["weights"] = "axi-lite"
        out["weight_map"] = weight_map(network)
    return out


def run_time_weights(network: QuantizedNetwork) -> bool:
    """True when ``network.hardware`` asks for run-time weights (``weights = "axi-lite"``);
    a ValueError for a value that is neither choice."""
    value = (network.hardware or {}).get("weights", "rom")
    if value not in WEIGHTS:
        raise ValueError(
            f"[hardware] weights = {value!r}; choose one of {', '.join(map(repr, WEIGHTS))}"
        )
    return value == "axi-lite"


class NetworkCore(wiring.Component):
    """A quantized network (SPEC §2b) behind the AXI4-Stream ports of SPEC §5.

    Ports (``sync`` domain, Verilog ``clk`` and synchronous ``rst``): ``s_axis_tdata``
    (``8*ceil(I*W_x/8)`` bits, element k in bits ``[k*W_x +: W_x]``, bits above ``I*W_x``
    ignored), ``s_axis_tvalid``, ``s_axis_tready``, ``s_axis_tlast``; ``m_axis_tdata``
    (``8*ceil(n*W_out/8)`` bits, padding 0), ``m_axis_tvalid``, ``m_axis_tready``,
    ``m_axis_tlast``; one output beat per step with ``sequence``, per sequence with
    ``last``.

    The layers' cores are chained by streams (``tlast`` carried): each core's output
    register feeds the next core's one-beat holding register, so the layers run at the
    same time (layer 2 on step t while layer 1 is on step t+1). When input and output never
    wait, the network takes a step every ``max`` over per-step layers of their
    ``cycles_per_step`` (+ :data:`CHAIN_CYCLES_PER_STEP` = 0) cycles, and an input beat's
    output is valid the sum of the layers' ``latency`` (+ :data:`OUTPUT_CYCLES`) after its
    transfer, when idle. The last core's output reaches ``m_axis`` through a
    :class:`hdl.skid.SkidBuffer`, so ``m_axis_tready`` drives no core's enables.
    Only the top LSTM layer has ``output = "last"``.

    With run-time weights (``hardware["weights"] == "axi-lite"``, SPEC §5b) the top module
    also has the AXI4-Lite slave ``s_axil_*`` (:class:`hdl.axil.WeightBus`, submodule
    ``weight_bus``) and every layer core a host bus to its weight memories.

    For a testbench, every probe of every layer core appears in the top module as
    ``<layer>_<probe>`` (``lstm2_trace0_pre_i``, ``lstm1_step_commit``, ``dense1_trace0_out``);
    a dense layer's lane 0 also as ``<layer>_trace_valid``, ``_index``, ``_out``, ``_acc``.
    """

    def __init__(self, network: QuantizedNetwork, *, lanes: dict | None = None):
        self._MustUse__silence = True  # until built: a rejected core is not an unused one
        if not isinstance(network, QuantizedNetwork):
            raise TypeError(f"network must be a model.qmodel.QuantizedNetwork, not {network!r}")
        self._net = network
        self._lanes = dict(lanes) if lanes is not None else layer_lanes(network)
        names = network.layer_names
        top = max(k for k, la in enumerate(network.layers) if la.kind == "lstm")
        host = run_time_weights(network)
        self._cores = []
        for k, (name, layer) in enumerate(zip(names, network.layers)):
            lanes = self._lanes[name]
            if layer.kind == "lstm":
                out = network.output if k == top else "sequence"
                core = LstmCore(layer, lanes=lanes, output=out, name=name, host=host)
            else:
                core = DenseCore(layer, lanes=lanes, name=name, host=host)
            self._cores.append(core)
        self._weight_bus = WeightBus(network, self._lanes) if host else None
        self._probes = {}
        members = {
            "s_axis_tdata": In(padded(network.input_size * network.in_fmt.width)),
            "s_axis_tvalid": In(1),
            "s_axis_tready": Out(1),
            "s_axis_tlast": In(1),
            "m_axis_tdata": Out(padded(network.output_size * network.out_fmt.width)),
            "m_axis_tvalid": Out(1),
            "m_axis_tready": In(1),
            "m_axis_tlast": Out(1),
        }
        if host:
            members.update(axil_members(self._weight_bus.addr_bits))
        super().__init__(members)
        self._MustUse__silence = False

    @property
    def network(self) -> QuantizedNetwork:
        return self._net

    @property
    def lanes(self) -> dict[str, int]:
        return dict(self._lanes)

    @property
    def cores(self) -> dict:
        return dict(zip(self._net.layer_names, self._cores))

    @property
    def cycles_per_step(self) -> int:
        return self.hardware()["cycles_per_step"]

    @property
    def latency(self) -> int:
        return self.hardware()["latency"]

    def hardware(self) -> dict:
        """The manifest's ``hardware`` section (:func:`network_hardware`)."""
        return network_hardware(self._net, self._lanes)

    @property
    def probes(self) -> dict:
        """The top module's ``<layer>_<probe>`` signals by name, once elaborated."""
        return dict(self._probes)

    def elaborate(self, platform):
        net = self._net
        m = Module()
        cores = self.cores
        for name, core in cores.items():
            m.submodules[name] = core
        chain = list(cores.values())
        first, last = chain[0], chain[-1]

        n_in = net.input_size * net.in_fmt.width
        m.d.comb += [
            first.i.payload.data.eq(self.s_axis_tdata[:n_in]),
            first.i.payload.last.eq(self.s_axis_tlast),
            first.i.valid.eq(self.s_axis_tvalid),
            self.s_axis_tready.eq(first.i.ready),
        ]
        for below, above in itertools.pairwise(chain):
            wiring.connect(m, below.o, above.i)
        # m_axis_tready reaches only the skid buffer's registers, not the cores' state
        m.submodules.out_skid = skid = SkidBuffer(last.o.payload.shape())
        wiring.connect(m, last.o, skid.i)
        m.d.comb += [
            self.m_axis_tdata.eq(skid.o.payload.data),  # zero-extends into the padding
            self.m_axis_tlast.eq(skid.o.payload.last),
            self.m_axis_tvalid.eq(skid.o.valid),
            skid.o.ready.eq(self.m_axis_tready),
        ]

        bus = self._weight_bus
        if bus is not None:
            m.submodules.weight_bus = bus
            for port, member in axil_members(bus.addr_bits).items():
                if member.flow == In:
                    m.d.comb += getattr(bus, port).eq(getattr(self, port))
                else:
                    m.d.comb += getattr(self, port).eq(getattr(bus, port))
            for k, core in enumerate(chain, start=1):
                wiring.connect(m, getattr(bus, f"layer{k}"), core.host)

        self._probes = {}
        for name, core in cores.items():
            for member in core.probe.signature.members:
                value = getattr(core.probe, member)
                aliases = [f"{name}_{member}"]
                if core.layer.kind == "dense" and member.startswith("trace0_"):
                    aliases.append(f"{name}_trace_{member[len('trace0_') :]}")
                for alias in aliases:
                    sig = Signal(value.shape(), name=alias)
                    m.d.comb += sig.eq(value)
                    self._probes[alias] = sig
        return m
