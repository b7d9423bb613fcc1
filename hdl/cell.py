"""The cell update: gates, c_t, tanh(c_t) and h_t of one hidden unit per cycle."""

from __future__ import annotations

from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hdl.fixed import Rom, bits_for, delay, fmt_shape, round_into
from hdl.host import mem_host_signature
from hdl.mac import preact_sum
from hdl.pwl import PwlUnit
from model.qmodel import LstmLayer, exact_sum

#: the per-unit values the cell update shows on its ``trace_*`` ports, SPEC §2's names
TRACE = ("pre_i", "pre_f", "pre_g", "pre_o", "i", "f", "g", "o", "tanh_cell")


class CellUpdate(wiring.Component):
    """From the pre-activations of hidden unit ``j`` and ``c_{t-1}[j]`` to ``c_t[j]``, ``h_t[j]``.

    ``i.payload``: ``unit`` (j), ``pre_i``, ``pre_f``, ``pre_g`` (``preact`` codes),
    ``pre_o`` (the ``preact`` code of o; with peepholes instead the exact sum of o's row
    without ``p_o * c_t``, as :class:`hdl.mac.GateMacLane` leaves it in ``acc``), ``cell``
    (``c_{t-1}[j]``, ``cell`` format).

    ``o.payload``: ``unit``, ``c`` (``c_t[j]``, ``cell``), ``h`` (``h_t[j]``, ``h``), each
    rounded as SPEC §2 says::

        i, f = sigmoid(pre_i), sigmoid(pre_f); g = tanh(pre_g)
        c    = round(f * c_{t-1} + i * g)                      -> cell
        pre_o = round(acc_o + p_o * c) with peepholes           -> preact
        o    = sigmoid(pre_o); tanh_cell = tanh_cell(c)
        h    = round(o * tanh_cell)                              -> h

    While ``o.valid`` is high the ``trace_*`` ports hold the same unit's ``preact`` codes
    (``trace_pre_i`` ... ``trace_pre_o``, the latter after its peephole term), gates
    (``trace_i``, ``trace_f``, ``trace_g``, ``trace_o``) and ``trace_tanh_cell``: a
    testbench can compare them with :func:`model.lstm.lstm_fixed`'s trace.

    Handshake: ``always_ready`` streams, one unit per cycle, no stall; ``o.valid`` is
    ``i.valid`` delayed by :attr:`latency` cycles (12, or 14 with peepholes).

    With ``host`` and peepholes the ``p_o`` table is a RAM behind ``host_po``
    (:func:`hdl.host.mem_host_signature`, word j: ``p_o[j]``).
    """

    def __init__(self, *, layer: LstmLayer, host: bool = False):
        if not isinstance(layer, LstmLayer):
            raise TypeError(f"layer must be a model.qmodel.LstmLayer, not {layer!r}")
        self._qm = layer
        f = layer.formats
        pre = fmt_shape(f["preact"])
        unit = unsigned(bits_for(layer.hidden_size - 1))
        o_in = signed(preact_sum(layer)[1]) if layer.peephole else pre
        inputs = data.StructLayout(
            {
                "unit": unit,
                "pre_i": pre,
                "pre_f": pre,
                "pre_g": pre,
                "pre_o": o_in,
                "cell": fmt_shape(f["cell"]),
            }
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
            members["host_po"] = Out(mem_host_signature(layer.hidden_size, fmt_shape(f["p"])))
        super().__init__(members)

    @staticmethod
    def latency_for(layer: LstmLayer) -> int:
        """:attr:`latency` of the cell update of ``layer``, without building it."""
        pwl = PwlUnit.latency
        return pwl + 2 + (2 if layer.peephole else 0) + pwl + 2

    @property
    def latency(self) -> int:
        """Cycles from ``i.valid`` to ``o.valid``."""
        return self.latency_for(self._qm)

    def elaborate(self, platform):
        qm = self._qm
        f = qm.formats
        peep = qm.peephole
        pwl_lat = PwlUnit.latency
        lat = self.latency
        m = Module()
        inp = self.i.payload
        valid = self.i.valid

        def pwl(name, table, code, code_valid):
            m.submodules[name] = unit = PwlUnit(table=table)
            m.d.comb += [unit.i.payload.eq(code), unit.i.valid.eq(code_valid)]
            return unit.o.payload

        # the activations of i, f, g (and o without peepholes)
        sig, tanh = qm.tables["sigmoid"], qm.tables["tanh"]
        gate_i = pwl("sigmoid_i", sig, inp.pre_i, valid)
        gate_f = pwl("sigmoid_f", sig, inp.pre_f, valid)
        gate_g = pwl("tanh_g", tanh, inp.pre_g, valid)
        cell_prev = delay(m, inp.cell, pwl_lat, name="cell_prev")
        unit = inp.unit

        # c_t = f * c_{t-1} + i * g, exact, then one rounding (two cycles)
        cell_frac, _ = exact_sum(qm.sums()["cell"])
        s_fc = cell_frac - f["gate"].frac - f["cell"].frac
        s_ig = cell_frac - f["gate"].frac - f["cand"].frac
        fc = Signal(signed(len(gate_f) + len(cell_prev) + 1), name="f_c")
        ig = Signal(signed(len(gate_i) + len(gate_g) + 1), name="i_g")
        m.d.sync += [fc.eq(gate_f * cell_prev), ig.eq(gate_i * gate_g)]
        c_sum = Signal(signed(max(len(fc) + s_fc, len(ig) + s_ig) + 1), name="c_sum")
        m.d.comb += c_sum.eq((fc << s_fc) + (ig << s_ig))
        c_new = Signal(fmt_shape(f["cell"]), name="c_new")
        m.d.sync += c_new.eq(round_into(m, c_sum, cell_frac, f["cell"], name="c_rounded"))
        t_c = pwl_lat + 2  # c_new holds unit's c_t this many cycles after i.valid
        c_valid = delay(m, valid, t_c, name="c_valid")

        pre_frac, acc_w = preact_sum(qm)
        if peep:
            # pre_o = round(acc_o + p_o * c_t): o's peephole sees this step's cell (two cycles)
            sp = pre_frac - f["p"].frac - f["cell"].frac
            p_o = [int(v) for v in qm.p[2 * qm.hidden_size :]]
            host = self.host_po if self._host else None
            rd = Rom(m, "peephole_o", fmt_shape(f["p"]), p_o, host=host)
            m.d.comb += rd.addr.eq(delay(m, unit, t_c - 1, name="unit_p"))
            pc = Signal(signed(len(rd.data) + len(c_new)), name="p_c")
            m.d.sync += pc.eq(rd.data * c_new)
            acc_o = delay(m, inp.pre_o, t_c + 1, name="acc_o")
            o_sum = Signal(signed(max(acc_w, len(pc) + sp) + 1), name="o_sum")
            m.d.comb += o_sum.eq(acc_o + (pc << sp))
            pre_o = Signal(fmt_shape(f["preact"]), name="pre_o")
            m.d.sync += pre_o.eq(round_into(m, o_sum, pre_frac, f["preact"], name="o_rounded"))
            t_pre_o = t_c + 2
            gate_o = pwl("sigmoid_o", sig, pre_o, delay(m, valid, t_pre_o, name="pre_o_valid"))
            t_o = t_pre_o + pwl_lat
        else:
            pre_o = inp.pre_o
            t_pre_o = 0
            gate_o = pwl("sigmoid_o", sig, pre_o, valid)
            t_o = pwl_lat
        tanh_c = pwl("tanh_cell", qm.tables["tanh_cell"], c_new, c_valid)
        t_tc = t_c + pwl_lat
        t_h = max(t_o, t_tc)  # o and tanh(c_t) meet here
        o_al = delay(m, gate_o, t_h - t_o, name="o_al")
        tc_al = delay(m, tanh_c, t_h - t_tc, name="tc_al")

        # h_t = o * tanh(c_t), one rounding (two cycles)
        oh = Signal(signed(len(o_al) + len(tc_al) + 1), name="o_tanh_cell")
        m.d.sync += oh.eq(o_al * tc_al)
        h_frac = f["gate"].frac + f["tanh_cell"].frac
        h_new = round_into(m, oh, h_frac, f["h"], name="h_rounded")
        assert t_h + 2 == lat
        m.d.sync += [
            self.o.valid.eq(delay(m, valid, lat - 1, name="h_valid")),
            self.o.payload.h.eq(h_new),
            self.o.payload.c.eq(delay(m, c_new, lat - t_c - 1, name="c_out")),
            self.o.payload.unit.eq(delay(m, unit, lat - 1, name="unit_out")),
        ]

        # the trace: every value of this unit lined up with o.valid
        at = {
            "pre_i": (inp.pre_i, 0),
            "pre_f": (inp.pre_f, 0),
            "pre_g": (inp.pre_g, 0),
            "pre_o": (pre_o, t_pre_o),
            "i": (gate_i, pwl_lat),
            "f": (gate_f, pwl_lat),
            "g": (gate_g, pwl_lat),
            "o": (o_al, t_h),
            "tanh_cell": (tc_al, t_h),
        }
        for name, (value, t) in at.items():
            m.d.comb += getattr(self, f"trace_{name}").eq(
                delay(m, value, lat - t, name=f"{name}_trace")
            )
        return m
