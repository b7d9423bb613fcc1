"""The gate MAC lane: exact pre-activations of a few weight rows, one product per cycle."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hdl.fixed import Rom, bits_for, delay, fmt_shape, pick, signed_width
from hdl.host import mem_host_signature
from model.qmodel import LstmLayer, exact_sum

#: the deepest weight bank piece: one block RAM deep in every ECP5 / 7-series / Cyclone
#: shape of up to 18 bits (2048 x 9, two wide), so that Yosys adds no multiplexer after it
BANK_WORDS = 2048


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
    """The exact pre-activation sums of ``rows`` (indices into the 4H gate rows), one row
    after another, one product per cycle on one multiplier.

    For each row the lane takes ``K = I + H`` beats on ``i``, one per column of
    ``[x_t ; h_{t-1}]``: ``operand`` is the column's code (``x`` for the first ``I`` columns,
    ``h`` after them), ``addr`` the beat's place in the lane's weight bank
    (``row_slot * K + column``), ``slot`` the row's place in ``rows`` (the bias bank's
    address), ``first``/``last`` mark the row's first and last column, ``is_h`` the ``h``
    columns.

    It adds the exact products into an accumulator that starts from the bias; nothing is
    rounded. ``o.payload`` is the exact sum ``W x + R h + b`` at :func:`preact_sum`
    fractional bits (peephole terms are the cell update's business).

    Pipeline (the shape a DSP block and a block RAM want): weight bank read (a bank deeper
    than :data:`BANK_WORDS` is several ROMs, ``weights``, ``weights1``, ...), its word
    registered, then again in fabric (picked among the pieces), the multiplier's input
    registers, its output register, then the accumulator in fabric. Handshake:
    ``always_ready`` streams, no stall; ``o.valid`` pulses :attr:`latency` (6) cycles after
    the beat with ``last`` and ``o.payload`` holds the sum in that cycle only; rows may
    follow each other with no gap.

    With ``host`` the weight and bias memories are RAMs with a host port each
    (:func:`hdl.host.mem_host_signature`): ``host_w`` (word ``slot * K + c`` holds
    ``w[row][c]`` for ``c < I``, ``r[row][c - I]`` after, as a ``signed(coef_width)`` word;
    a bank cut into pieces is one address space here) and ``host_b`` (word ``slot``:
    ``b[row]``).
    """

    latency = 6

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
            }
        )
        members = {
            "i": In(stream.Signature(beat, always_ready=True)),
            "o": Out(stream.Signature(signed(acc_w), always_ready=True)),
        }
        self._host = bool(host)
        if self._host:
            members["host_w"] = Out(mem_host_signature(len(rows) * k, signed(coef_width(layer))))
            members["host_b"] = Out(mem_host_signature(len(rows), fmt_shape(layer.formats["b"])))
        super().__init__(members)

    @property
    def rows(self) -> tuple[int, ...]:
        return self._rows

    def _piece_hosts(self, m, depths, low: int, shape) -> list:
        """The host ports of the weight bank's pieces (None each without ``host``): the
        piece is the address above its ``low`` bits; a read registers every piece's word
        and picks the one addressed two cycles before (one more than a whole bank's read,
        within :data:`hdl.host.HOST_READ_LATENCY`)."""
        if not self._host:
            return [None] * len(depths)
        host = self.host_w
        if len(depths) == 1:
            return [host]
        ports = []
        piece = host.addr[low:]
        piece_r = Signal(piece.shape(), name="host_piece", reset_less=True)
        m.d.sync += piece_r.eq(piece)
        for k, depth in enumerate(depths):
            port = mem_host_signature(depth, shape).flip().create(path=(f"host_w{k}",))
            m.d.comb += [
                port.addr.eq(host.addr[:low]),
                port.wdata.eq(host.wdata),
                port.we.eq(host.we & (piece == k)),
            ]
            ports.append(port)
        words = []
        for k, port in enumerate(ports):  # a block RAM's output goes into a register first
            word = Signal(shape, name=f"host_word{k}", reset_less=True)
            m.d.sync += word.eq(port.rdata)
            words.append(word)
        m.d.comb += host.rdata.eq(pick(words, delay(m, piece_r, 1, name="host_piece")))
        return ports

    def elaborate(self, platform):
        qm = self._qm
        f = qm.formats
        m = Module()
        beat = self.i.payload

        def reg(shape, name):
            return Signal(shape, name=name, reset_less=True)

        coefs = []
        for r in self._rows:
            coefs.extend(int(v) for v in qm.w[r])
            coefs.extend(int(v) for v in qm.r[r])
        # a bank deeper than BANK_WORDS is cut into pieces of that depth, each read into its
        # own register before a multiplexer picks one: a block RAM's output never feeds logic
        w_shape = signed(coef_width(qm))
        pieces = [coefs[k : k + BANK_WORDS] for k in range(0, len(coefs), BANK_WORDS)]
        low = (BANK_WORDS - 1).bit_length() if len(pieces) > 1 else len(beat.addr)
        hosts = self._piece_hosts(m, [len(words) for words in pieces], low, w_shape)
        rd_ws = []
        for k, words in enumerate(pieces):
            rd = Rom(m, "weights" if k == 0 else f"weights{k}", w_shape, words, host=hosts[k])
            m.d.comb += rd.addr.eq(beat.addr[:low])
            rd_ws.append(rd)
        host_b = self.host_b if self._host else None
        rd_b = Rom(m, "bias", fmt_shape(f["b"]), [qm.b[r] for r in self._rows], host=host_b)
        m.d.comb += rd_b.addr.eq(beat.slot)

        # the beat's control bits travel beside the data: valid (reset), the rest (no reset)
        valid = [self.i.valid]
        ctl = [Cat(beat.first, beat.last, beat.is_h)]
        for k in range(1, 6):
            valid.append(delay(m, valid[-1], 1, name=f"v{k}"))
            ctl.append(delay(m, ctl[-1], 1, name=f"ctl{k}", reset_less=True))

        # stage 1: the bank words arrive; stage 2: registered (a block RAM's output is slow)
        w2s = [reg(w_shape, f"weight{k}" if k else "weight") for k in range(len(rd_ws))]
        b2 = reg(rd_b.data.shape(), "bias_word")
        m.d.sync += [w.eq(rd.data) for w, rd in zip(w2s, rd_ws)]
        m.d.sync += b2.eq(rd_b.data)
        # stage 3: the word in fabric (picked among the pieces): block RAMs and DSP blocks
        # sit in different rows, this register splits the way between them
        w3 = reg(w_shape, "weight_fabric")
        if len(w2s) > 1:
            piece = delay(m, beat.addr[low:], 2, name="piece", reset_less=True)
            m.d.sync += w3.eq(pick(w2s, piece))
        else:
            m.d.sync += w3.eq(w2s[0])
        x3 = delay(m, beat.operand, 3, name="operand", reset_less=True)

        # stage 4: the multiplier's input registers; stage 5: its output register
        wa = reg(w_shape, "mul_a")
        xb = reg(x3.shape(), "mul_b")
        prod = reg(signed(len(wa) + len(xb)), "product")
        m.d.sync += [wa.eq(w3), xb.eq(x3), prod.eq(wa * xb)]
        b5 = delay(m, b2, 3, name="bias", reset_less=True)

        # stage 6: accumulate, exactly, in fabric
        sx = self._acc_frac - f["w"].frac - f["x"].frac
        sh = self._acc_frac - f["r"].frac - f["h"].frac
        sb = self._acc_frac - f["b"].frac
        first, last, is_h = ctl[5][0], ctl[5][1], ctl[5][2]
        acc = reg(signed(self._acc_w), "acc")
        term = Mux(is_h, prod << sh, prod << sx)
        with m.If(valid[5]):
            m.d.sync += acc.eq(Mux(first, b5 << sb, acc) + term)
        m.d.sync += self.o.valid.eq(valid[5] & last)
        m.d.comb += self.o.payload.eq(acc)
        return m
