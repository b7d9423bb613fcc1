"""The gate MAC lane: exact pre-activations of a few weight rows, one product per cycle."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hdl.fixed import Rom, bits_for, fmt_shape, round_into, signed_width
from hdl.host import mem_host_signature
from model.qmodel import LstmLayer, exact_sum


def operand_width(qm: LstmLayer) -> int:
    """Width of the signed operand bus that carries either an ``x`` or an ``h`` code."""
    return max(signed_width(qm.formats["x"]), signed_width(qm.formats["h"]))


def coef_width(qm: LstmLayer) -> int:
    """Width of the signed weight ROM word that holds either a ``w`` or an ``r`` code."""
    return max(signed_width(qm.formats["w"]), signed_width(qm.formats["r"]))


def preact_sum(qm: LstmLayer) -> tuple[int, int]:
    """(fractional bits, signed width) of the exact pre-activation sum (SPEC §2)."""
    return exact_sum(qm.sums()["preact"])


class GateMacLane(wiring.Component):
    """Pre-activations of ``rows`` (indices into the 4H gate rows), one row after another.

    For each row the lane takes ``K = I + H`` beats on ``i``, one per column of
    ``[x_t ; h_{t-1}]``: ``operand`` is the column's code (``x`` for the first ``I`` columns,
    ``h`` after them), ``addr`` the beat's place in the lane's weight ROM
    (``row_slot * K + column``), ``slot`` the row's place in ``rows``, ``first``/``last``
    mark the row's first and last column, and ``cell`` is ``c_{t-1}`` of the row's unit
    (read on ``first``, used only by i and f rows of a peephole model).

    It adds the exact products into an accumulator that starts from the bias and, for
    peephole i/f rows, ``p * c_{t-1}``; no rounding happens before the end. ``o`` then
    carries ``slot``, ``preact`` (the sum rounded once into the ``preact`` format) and
    ``acc`` (the exact sum at :func:`preact_sum` fractional bits; for peephole o rows it
    lacks ``p_o * c_t``, which the cell update adds before rounding).

    Handshake: ``always_ready`` streams, no stall. ``o.valid`` pulses :attr:`latency` (4)
    cycles after the beat with ``last``; rows may follow each other with no gap.

    With ``host`` the weight and bias memories are RAMs with a host port each
    (:func:`hdl.host.mem_host_signature`): ``host_w`` (word ``slot * K + c`` holds
    ``w[row][c]`` for ``c < I``, ``r[row][c - I]`` after, as a ``signed(coef_width)`` word)
    and ``host_b`` (word ``slot``: ``b[row]``); a lane with peepholes also ``host_p`` (word
    ``slot``: ``p_i`` or ``p_f`` of an i or f row, 0 for the others).
    """

    latency = 4

    def __init__(self, *, layer: LstmLayer, rows, host: bool = False):
        if not isinstance(layer, LstmLayer):
            raise TypeError(f"layer must be a model.qmodel.LstmLayer, not {layer!r}")
        rows = [int(r) for r in rows]
        h4 = 4 * layer.hidden_size
        if not rows or any(not 0 <= r < h4 for r in rows):
            raise ValueError(f"rows must be a non-empty list of gate rows in [0, {h4}), not {rows}")
        self._qm = layer
        self._rows = tuple(rows)
        k = layer.input_size + layer.hidden_size
        h = layer.hidden_size
        self._peep = layer.peephole and any(r < 2 * h for r in rows)
        cell_shape = fmt_shape(layer.formats["cell"])
        frac, acc_w = preact_sum(layer)
        self._acc_frac = frac
        self._acc_w = acc_w
        self._beat = beat = data.StructLayout(
            {
                "addr": unsigned(bits_for(len(rows) * k - 1)),
                "slot": unsigned(bits_for(len(rows) - 1)),
                "first": 1,
                "last": 1,
                "is_h": 1,
                "operand": signed(operand_width(layer)),
                "cell": cell_shape,
            }
        )
        result = data.StructLayout(
            {
                "slot": unsigned(bits_for(len(rows) - 1)),
                "preact": fmt_shape(layer.formats["preact"]),
                "acc": signed(acc_w),
            }
        )
        members = {
            "i": In(stream.Signature(beat, always_ready=True)),
            "o": Out(stream.Signature(result, always_ready=True)),
        }
        self._host = bool(host)
        if self._host:
            members["host_w"] = Out(mem_host_signature(len(rows) * k, signed(coef_width(layer))))
            members["host_b"] = Out(mem_host_signature(len(rows), fmt_shape(layer.formats["b"])))
            if self._peep:
                p_shape = fmt_shape(layer.formats["p"])
                members["host_p"] = Out(mem_host_signature(len(rows), p_shape))
        super().__init__(members)

    @property
    def rows(self) -> tuple[int, ...]:
        return self._rows

    @property
    def peephole(self) -> bool:
        """True when this lane adds ``p * c_{t-1}`` (a peephole model with i or f rows)."""
        return self._peep

    def elaborate(self, platform):
        qm = self._qm
        f = qm.formats
        h = qm.hidden_size
        m = Module()
        beat = self.i.payload

        coefs = []
        for r in self._rows:
            coefs.extend(int(v) for v in qm.w[r])
            coefs.extend(int(v) for v in qm.r[r])
        host_w, host_b = (self.host_w, self.host_b) if self._host else (None, None)
        rd_w = Rom(m, "weights", signed(coef_width(qm)), coefs, host=host_w)
        rd_b = Rom(m, "bias", fmt_shape(f["b"]), [qm.b[r] for r in self._rows], host=host_b)
        m.d.comb += [rd_w.addr.eq(beat.addr), rd_b.addr.eq(beat.slot)]

        # stage 1: ROM words arrive; the beat's fields are registered alongside
        s1 = Signal(self._beat, name="s1")
        v1 = Signal(name="v1")
        m.d.sync += [s1.eq(beat), v1.eq(self.i.valid)]

        # stage 2: the product, and the starting value of the sum
        sx = self._acc_frac - f["w"].frac - f["x"].frac
        sh = self._acc_frac - f["r"].frac - f["h"].frac
        sb = self._acc_frac - f["b"].frac
        prod = Signal(signed(len(rd_w.data) + len(s1.operand)), name="product")
        start = Signal(signed(self._acc_w), name="start")
        s2 = Signal(self._beat, name="s2")
        v2 = Signal(name="v2")
        m.d.sync += [prod.eq(rd_w.data * s1.operand), s2.eq(s1), v2.eq(v1)]
        if self._peep:
            sp = self._acc_frac - f["p"].frac - f["cell"].frac
            # p of each row (0 for g and o rows: o's peephole sees c_t, in the cell update)
            p_init = [int(qm.p[r]) if r < 2 * h else 0 for r in self._rows]
            host_p = self.host_p if self._host else None
            rd_p = Rom(m, "peephole", fmt_shape(f["p"]), p_init, host=host_p)
            m.d.comb += rd_p.addr.eq(beat.slot)
            m.d.sync += start.eq((rd_b.data << sb) + ((rd_p.data * s1.cell) << sp))
        else:
            m.d.sync += start.eq(rd_b.data << sb)

        # stage 3: accumulate, exactly
        acc = Signal(signed(self._acc_w), name="acc")
        term = Mux(s2.is_h, prod << sh, prod << sx)
        s3 = Signal(self._beat, name="s3")
        v3 = Signal(name="v3")
        with m.If(v2):
            m.d.sync += acc.eq(Mux(s2.first, start, acc) + term)
        m.d.sync += [s3.eq(s2), v3.eq(v2)]

        # stage 4: the one rounding into preact
        preact = round_into(m, acc, self._acc_frac, f["preact"], name="preact_rounded")
        m.d.sync += self.o.valid.eq(v3 & s3.last)
        with m.If(v3 & s3.last):
            m.d.sync += [
                self.o.payload.slot.eq(s3.slot),
                self.o.payload.preact.eq(preact),
                self.o.payload.acc.eq(acc),
            ]
        return m
