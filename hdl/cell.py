"""The cell update: gates, c_t, tanh(c_t) and h_t of one hidden unit per cycle, c in a RAM."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hdl.fixed import ROUND_LATENCY, Rom, bits_for, delay, fmt_shape, round_stages
from hdl.host import mem_host_signature
from hdl.mac import preact_sum
from hdl.pwl import PwlUnit
from model.qmodel import LstmLayer, exact_sum

#: the per-unit values the cell update shows on its ``trace_*`` ports, SPEC §2's names
TRACE = ("pre_i", "pre_f", "pre_g", "pre_o", "i", "f", "g", "o", "tanh_cell")


class CellUpdate(wiring.Component):
    """From the exact gate sums of hidden unit ``j`` to ``c_t[j]`` and ``h_t[j]``; it holds
    ``c`` (one RAM word per unit) and the peephole weights (one ROM word per unit).

    ``i.payload``: ``unit`` (j), ``acc_i``, ``acc_f``, ``acc_g``, ``acc_o``: the exact sums
    ``W x + R h + b`` of the unit's four gate rows (:class:`hdl.mac.GateMacLane`'s output,
    at :func:`hdl.mac.preact_sum` fractional bits), ``zero``: the step is a sequence's first,
    so ``c_{t-1}`` is 0 (the RAM is never cleared).

    ``o.payload``: ``unit``, ``c`` (``c_t[j]``, ``cell``), ``h`` (``h_t[j]``, ``h``), each
    rounded as SPEC §2 says::

        pre_i = round(acc_i [+ p_i c_{t-1}]), pre_f = round(acc_f [+ p_f c_{t-1}])
        pre_g = round(acc_g); i, f = sigmoid(pre_i), sigmoid(pre_f); g = tanh(pre_g)
        c    = round(f * c_{t-1} + i * g)                      -> cell (written to the RAM)
        pre_o = round(acc_o [+ p_o * c])
        o    = sigmoid(pre_o); tanh_cell = tanh_cell(c)
        h    = round(o * tanh_cell)                              -> h

    A unit's ``c_{t-1}`` is read when it enters and its ``c_t`` written :meth:`latency_for`
    minus a few cycles later, so a unit may enter again only after it has left (one step
    after the other, as :class:`hdl.core.LstmCore` runs them).

    While ``o.valid`` is high the ``trace_*`` ports hold the same unit's ``preact`` codes
    (``trace_pre_i`` ... ``trace_pre_o``, after their peephole terms), gates (``trace_i``,
    ``trace_f``, ``trace_g``, ``trace_o``) and ``trace_tanh_cell``.

    Handshake: ``always_ready`` streams, one unit per cycle, no stall; ``o.valid`` is
    ``i.valid`` delayed by :attr:`latency` cycles. Every product has a DSP's input and output
    registers (``f c``, ``i g``, ``o tanh_cell``, and ``p c`` three times with peepholes);
    every rounding is :func:`hdl.fixed.round_stages`.
    """

    def __init__(self, *, layer: LstmLayer, host: bool = False):
        if not isinstance(layer, LstmLayer):
            raise TypeError(f"layer must be a model.qmodel.LstmLayer, not {layer!r}")
        self._qm = layer
        f = layer.formats
        pre = fmt_shape(f["preact"])
        unit = unsigned(bits_for(layer.hidden_size - 1))
        acc = signed(preact_sum(layer)[1])
        inputs = data.StructLayout(
            {"unit": unit, "acc_i": acc, "acc_f": acc, "acc_g": acc, "acc_o": acc, "zero": 1}
        )
        outputs = data.StructLayout(
            {"unit": unit, "c": fmt_shape(f["cell"]), "h": fmt_shape(f["h"])}
        )
        shapes = {
            "pre_i": pre,
            "pre_f": pre,
            "pre_g": pre,
            "pre_o": pre,
            "i": fmt_shape(f["gate"]),
            "f": fmt_shape(f["gate"]),
            "g": fmt_shape(f["cand"]),
            "o": fmt_shape(f["gate"]),
            "tanh_cell": fmt_shape(f["tanh_cell"]),
        }
        members = {
            "i": In(stream.Signature(inputs, always_ready=True)),
            "o": Out(stream.Signature(outputs, always_ready=True)),
        }
        members.update({f"trace_{k}": Out(v) for k, v in shapes.items()})
        self._host = bool(host) and layer.peephole
        if self._host:
            p_host = mem_host_signature(layer.hidden_size, fmt_shape(f["p"]))
            members.update({f"host_p{g}": Out(p_host) for g in "ifo"})
        super().__init__(members)

    @staticmethod
    def _times(layer: LstmLayer) -> dict:
        """The cycle (after ``i.valid``) at which each value of a unit is ready."""
        t = {}
        lat = PwlUnit.latency_for
        sig, tanh, tanh_c = (layer.tables[k] for k in ("sigmoid", "tanh", "tanh_cell"))
        # p c_{t-1}: RAM read, registered twice (the zero flag), DSP in and out registers,
        # the sum; then round
        t["pre"] = (6 if layer.peephole else 0) + ROUND_LATENCY
        t["gates"] = t["pre"] + max(lat(sig), lat(tanh))
        t["c"] = t["gates"] + 3 + ROUND_LATENCY  # DSP in, DSP out, the sum; round
        t["pre_o"] = t["c"] + 3 + ROUND_LATENCY if layer.peephole else t["pre"]
        t["o"] = t["pre_o"] + lat(sig)
        t["tanh_cell"] = t["c"] + lat(tanh_c)
        t["meet"] = max(t["o"], t["tanh_cell"])
        t["h"] = t["meet"] + 2 + ROUND_LATENCY  # DSP in, DSP out; round
        return t

    @classmethod
    def latency_for(cls, layer: LstmLayer) -> int:
        """:attr:`latency` of the cell update of ``layer``, without building it."""
        return cls._times(layer)["h"]

    @property
    def latency(self) -> int:
        """Cycles from ``i.valid`` to ``o.valid``."""
        return self.latency_for(self._qm)

    def _p_host(self, gate: str):
        """The host port of the ``p_<gate>`` memory, or None without run-time weights."""
        return getattr(self, f"host_p{gate}") if self._host else None

    def elaborate(self, platform):
        qm = self._qm
        f = qm.formats
        h_len = qm.hidden_size
        peep = qm.peephole
        at = self._times(qm)
        lat = at["h"]
        m = Module()
        inp = self.i.payload
        valid = self.i.valid

        def reg(shape, name):
            return Signal(shape, name=name, reset_less=True)

        def later(value, cycles, name):
            return delay(m, value, cycles, name=name, reset_less=True)

        def product(a, b, name):
            """a * b with the multiplier's input and output registers (2 cycles)."""
            ra, rb = reg(a.shape(), f"{name}_a"), reg(b.shape(), f"{name}_b")
            p = reg(signed(len(ra) + len(rb) + 1), name)
            m.d.sync += [ra.eq(a), rb.eq(b), p.eq(ra * rb)]
            return p

        def pwl(name, table, code, code_valid):
            m.submodules[name] = unit = PwlUnit(table=table)
            m.d.comb += [unit.i.payload.eq(code), unit.i.valid.eq(code_valid)]
            return unit.o.payload

        # c_{t-1}: the RAM word of the unit, or 0 on a sequence's first step
        cell_shape = fmt_shape(f["cell"])
        # a unit's word is never read and written in the same cycle (it is written before
        # the step ends, read once a step): no read-during-write logic (Yosys' no_rw_check)
        m.submodules.cell_ram = cell_ram = Memory(
            shape=cell_shape, depth=max(2, h_len), init=[], attrs={"no_rw_check": 1}
        )
        rd = cell_ram.read_port()
        wr = cell_ram.write_port()
        m.d.comb += rd.addr.eq(inp.unit)
        zero2 = later(inp.zero, 2, "zero")
        c_word = reg(cell_shape, "c_word")  # at 2: the RAM's word, registered (RAM is slow)
        c_prev = reg(cell_shape, "c_prev")  # at 3
        m.d.sync += [c_word.eq(rd.data), c_prev.eq(Mux(zero2, 0, c_word))]

        pre_frac, acc_w = preact_sum(qm)
        pre_fmt = f["preact"]
        sp = pre_frac - f["p"].frac - f["cell"].frac if peep else 0
        p_shape = fmt_shape(f["p"]) if peep else None

        def peephole_sum(acc, pc, name):
            s = reg(signed(max(acc_w, len(pc) + sp) + 1), name)
            m.d.sync += s.eq(acc + (pc << sp))
            return s

        # the pre-activations of i, f (with p c_{t-1}) and g (and o without peepholes)
        pres = {}
        if peep:
            p_i = Rom(m, "peephole_i", p_shape, qm.p[:h_len], host=self._p_host("i"))
            p_f = Rom(m, "peephole_f", p_shape, qm.p[h_len : 2 * h_len], host=self._p_host("f"))
            m.d.comb += [p_i.addr.eq(inp.unit), p_f.addr.eq(inp.unit)]
            for gate, rom in (("i", p_i), ("f", p_f)):
                word = reg(p_shape, f"p_{gate}")  # at 2
                m.d.sync += word.eq(rom.data)
                pc = product(later(word, 1, f"p_{gate}_al"), c_prev, f"p{gate}_c")  # at 5
                acc = later(getattr(inp, f"acc_{gate}"), 5, f"acc_{gate}")
                total = peephole_sum(acc, pc, f"sum_{gate}")  # at 6
                pres[gate], _ = round_stages(m, total, pre_frac, pre_fmt, name=f"pre_{gate}")
            pres["g"], _ = round_stages(m, later(inp.acc_g, 6, "acc_g"), pre_frac, pre_fmt,
                                        name="pre_g")  # fmt: skip
        else:
            for gate in "ifgo":
                acc = getattr(inp, f"acc_{gate}")
                pres[gate], _ = round_stages(m, acc, pre_frac, pre_fmt, name=f"pre_{gate}")
        valid_pre = delay(m, valid, at["pre"], name="valid_pre")

        sig, tanh = qm.tables["sigmoid"], qm.tables["tanh"]
        gates = {
            "i": pwl("sigmoid_i", sig, pres["i"], valid_pre),
            "f": pwl("sigmoid_f", sig, pres["f"], valid_pre),
            "g": pwl("tanh_g", tanh, pres["g"], valid_pre),
        }
        lat_of = {"i": PwlUnit.latency_for(sig), "f": PwlUnit.latency_for(sig)}
        lat_of["g"] = PwlUnit.latency_for(tanh)
        ready = {k: at["pre"] + lat_of[k] for k in "ifg"}
        al = {k: later(v, at["gates"] - ready[k], f"{k}_al") for k, v in gates.items()}

        # c_t = f * c_{t-1} + i * g, exact, then one rounding
        cell_frac, _ = exact_sum(qm.sums()["cell"])
        s_fc = cell_frac - f["gate"].frac - f["cell"].frac
        s_ig = cell_frac - f["gate"].frac - f["cand"].frac
        fc = product(al["f"], later(c_prev, at["gates"] - 3, "c_prev_al"), "f_c")
        ig = product(al["i"], al["g"], "i_g")
        c_sum = reg(signed(max(len(fc) + s_fc, len(ig) + s_ig) + 1), "c_sum")
        m.d.sync += c_sum.eq((fc << s_fc) + (ig << s_ig))
        c_new, _ = round_stages(m, c_sum, cell_frac, f["cell"], name="c_new")
        t_c = at["c"]
        c_valid = delay(m, valid, t_c, name="c_valid")
        unit_c = later(inp.unit, t_c, "unit_c")
        m.d.comb += [wr.addr.eq(unit_c), wr.data.eq(c_new), wr.en.eq(c_valid)]

        if peep:
            # pre_o = round(acc_o + p_o * c_t): o's peephole sees this step's cell
            p_o = Rom(m, "peephole_o", p_shape, qm.p[2 * h_len :], host=self._p_host("o"))
            m.d.comb += p_o.addr.eq(later(inp.unit, t_c - 2, "unit_p"))
            word = reg(p_shape, "p_o")  # at t_c, beside c_t
            m.d.sync += word.eq(p_o.data)
            pc = product(word, c_new, "po_c")  # at t_c + 2
            acc = later(inp.acc_o, t_c + 2, "acc_o")
            total = peephole_sum(acc, pc, "sum_o")
            pres["o"], _ = round_stages(m, total, pre_frac, pre_fmt, name="pre_o")
            valid_pre_o = delay(m, valid, at["pre_o"], name="valid_pre_o")
        else:
            valid_pre_o = valid_pre
        gate_o = pwl("sigmoid_o", sig, pres["o"], valid_pre_o)
        tanh_c = pwl("tanh_cell", qm.tables["tanh_cell"], c_new, c_valid)
        o_al = later(gate_o, at["meet"] - at["o"], "o_al")
        tc_al = later(tanh_c, at["meet"] - at["tanh_cell"], "tc_al")

        # h_t = o * tanh(c_t), one rounding
        oh = product(o_al, tc_al, "o_tanh_cell")
        h_frac = f["gate"].frac + f["tanh_cell"].frac
        h_new, _ = round_stages(m, oh, h_frac, f["h"], name="h_new")
        m.d.comb += [
            self.o.valid.eq(delay(m, valid, lat, name="h_valid")),
            self.o.payload.h.eq(h_new),
            self.o.payload.c.eq(later(c_new, lat - t_c, "c_out")),
            self.o.payload.unit.eq(later(inp.unit, lat, "unit_out")),
        ]

        # the trace: every value of this unit lined up with o.valid
        shown = {
            "pre_i": (pres["i"], at["pre"]),
            "pre_f": (pres["f"], at["pre"]),
            "pre_g": (pres["g"], at["pre"]),
            "pre_o": (pres["o"], at["pre_o"]),
            "i": (al["i"], at["gates"]),
            "f": (al["f"], at["gates"]),
            "g": (al["g"], at["gates"]),
            "o": (o_al, at["meet"]),
            "tanh_cell": (tc_al, at["meet"]),
        }
        for name, (value, t) in shown.items():
            m.d.comb += getattr(self, f"trace_{name}").eq(later(value, lat - t, f"{name}_trace"))
        return m
