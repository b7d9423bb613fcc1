"""The AXI4-Lite slave of run-time weights (SPEC §5b): a bus address to a bank word of a
layer core, through one small sequential divider."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hdl.fixed import bits_for, pick
from hdl.host import CODE_BITS, HOST_READ_LATENCY, core_host_bus, core_routes
from model.weightmap import address_bits, region_bytes, weight_map

OKAY, SLVERR = 0, 2


def axil_members(addr_bits: int) -> dict:
    """The AXI4-Lite slave's ports (SPEC §5b names, ``s_axil_`` prefix), slave side."""
    return {
        "s_axil_awaddr": In(addr_bits),
        "s_axil_awvalid": In(1),
        "s_axil_awready": Out(1),
        "s_axil_wdata": In(32),
        "s_axil_wstrb": In(4),
        "s_axil_wvalid": In(1),
        "s_axil_wready": Out(1),
        "s_axil_bresp": Out(2),
        "s_axil_bvalid": Out(1),
        "s_axil_bready": In(1),
        "s_axil_araddr": In(addr_bits),
        "s_axil_arvalid": In(1),
        "s_axil_arready": Out(1),
        "s_axil_rdata": Out(32),
        "s_axil_rresp": Out(2),
        "s_axil_rvalid": Out(1),
        "s_axil_rready": In(1),
    }


class SeqDivmod(wiring.Component):
    """``quotient, remainder = divmod(dividend, divisor)`` of ``bits``-bit unsigned numbers
    by restoring division, one quotient bit per cycle: one subtractor, no multiplier.

    A cycle with ``start`` takes ``dividend`` and ``divisor`` (≥ 1; they need not stay);
    ``busy`` is high for the next ``bits`` cycles, and when it falls ``quotient`` and
    ``remainder`` hold the result until the next ``start``.
    """

    def __init__(self, bits: int):
        self._bits = bits
        super().__init__(
            {
                "start": In(1),
                "dividend": In(bits),
                "divisor": In(bits),
                "busy": Out(1),
                "quotient": Out(bits),
                "remainder": Out(bits),
            }
        )

    def elaborate(self, platform):
        m = Module()
        n = self._bits
        quo = Signal(n, name="quo")
        rem = Signal(n, name="rem")
        den = Signal(n, name="den")
        count = Signal(range(n + 1), name="count")
        trial = Signal(n + 1, name="trial")
        m.d.comb += [trial.eq(Cat(quo[-1], rem)), self.quotient.eq(quo), self.remainder.eq(rem)]
        fits = trial >= den
        with m.If(self.start):
            m.d.sync += [
                quo.eq(self.dividend),
                rem.eq(0),
                den.eq(self.divisor),
                count.eq(n),
                self.busy.eq(1),
            ]
        with m.Elif(self.busy):
            m.d.sync += [
                rem.eq(Mux(fits, trial - den, trial)),
                quo.eq(Cat(fits, quo[:-1])),
                count.eq(count - 1),
            ]
            with m.If(count == 1):
                m.d.sync += self.busy.eq(0)
        return m


class WeightBus(wiring.Component):
    """The AXI4-Lite slave of SPEC §5b in front of the layer cores' host buses.

    Ports: :func:`axil_members` (address width :func:`model.weightmap.address_bits` of the
    map), and ``layer<k>`` (k = 1, 2, ... over all layers, as in the weight map) driving
    each core's ``host`` bus (:func:`hdl.host.core_host_bus`).

    One access at a time: a write is taken when ``awvalid`` and ``wvalid`` are both high
    (``awready`` and ``wready`` rise together), else a read when ``arvalid`` is high. The
    address is checked against the map (:func:`model.weightmap.weight_map`: each tensor in
    a region aligned to its size, so one compare of the high bits finds it and the low bits
    are the word index); an address outside it, unaligned, or a write whose ``wstrb`` is
    not ``0xF`` answers ``SLVERR`` and touches nothing. Otherwise the word index goes
    through :meth:`hdl.host.Route.locate`'s steps on one :class:`SeqDivmod` (three
    divisions) and a shift-add multiply, then one cycle on the core's bus: a write stores
    the low ``W`` bits of ``wdata`` as a code, a read returns the bank word sign- or
    zero-extended (the format's code). Latency: about ``4 * bits + 8`` cycles from the
    address to ``bvalid``/``rvalid`` (``bits`` :attr:`work_bits`); nothing of the datapath
    waits for it.
    """

    def __init__(self, network, lanes: dict[str, int]):
        self._net = network
        self._lanes = dict(lanes)
        self._map = weight_map(network)
        self._addr_bits = address_bits(self._map)
        names = network.layer_names
        members = axil_members(self._addr_bits)
        self._buses = {}
        for k, (name, layer) in enumerate(zip(names, network.layers), start=1):
            sig = core_host_bus(layer, self._lanes[name], name=name)
            self._buses[k] = sig
            members[f"layer{k}"] = In(sig)
        # (map entry, route, format, end): one per route; a route serves the tensor's word
        # indices from its start to the next route's (end)
        self._routes = []
        for e in self._map:
            layer = network.layers[e["layer"] - 1]
            parts = core_routes(layer, self._lanes[names[e["layer"] - 1]])[e["tensor"]]
            ends = [r.start for r in parts[1:]] + [e["rows"] * e["cols"]]
            for route, end in zip(parts, ends):
                self._routes.append((e, route, layer.formats[e["tensor"]], end))
        big = [e["rows"] * e["cols"] for e in self._map]
        for e, route, _, _ in self._routes:
            layer = network.layers[e["layer"] - 1]
            big += [route.lanes, route.stride * e["rows"] * e["cols"] + route.offset]
            big += [4 * layer.hidden_size if layer.kind == "lstm" else layer.output_size]
        #: width of the divider and the word arithmetic: every index and word fits
        self.work_bits = bits_for(max(big))
        super().__init__(members)

    @property
    def addr_bits(self) -> int:
        return self._addr_bits

    def elaborate(self, platform):
        m = Module()
        nb = self.work_bits
        routes = self._routes
        n_t = len(routes)

        def const_pick(values, index, width=nb):
            return pick([Const(int(v), unsigned(width)) for v in values], index)

        addr = Signal(self._addr_bits, name="req_addr")
        wdata = Signal(32, name="req_wdata")
        strb_ok = Signal(name="req_strb_ok")
        write = Signal(name="req_write")
        err = Signal(name="req_err")
        tsel = Signal(range(max(2, n_t)), name="tensor")
        index = Signal(nb, name="word_index")
        row = Signal(nb, name="row")
        col = Signal(nb, name="col")
        rc = Signal(nb, name="core_row")
        k = Signal(nb, name="bank_row")
        stride = Signal(nb, name="stride")
        word = Signal(nb, name="word")
        count = Signal(range(nb + 1), name="step_count")
        bank_bits = max(sig.members["bank"].shape.width for sig in self._buses.values())
        bank = Signal(bank_bits, name="bank")
        layer_ix = Signal(range(max(2, len(self._buses))), name="layer_index")  # 0-based
        code = Signal(signed(CODE_BITS), name="code")
        rdata = Signal(32, name="rdata")

        m.submodules.divider = div = SeqDivmod(nb)

        # which tensor an address names: its region's high bits; the word index: the low ones
        hits, indices = [], []
        for e, route, _, end in routes:
            lo = region_bytes(e["rows"], e["cols"]).bit_length() - 1
            n = addr[2:lo] if lo > 2 else Const(0, 1)
            hit = (addr[lo:] == e["base"] >> lo) & (n < end)
            if route.start:
                hit &= n >= route.start
                n = (n - route.start)[: len(n)]
            hits.append(hit)
            indices.append(n)
        aligned = addr[:2] == 0
        found = Signal(name="found")
        m.d.comb += found.eq(aligned & Cat(*hits).any())

        # the code a write carries: the low W bits of wdata, sign-extended for fixed
        codes = []
        for _, _, fmt, _ in routes:
            c = Signal(signed(CODE_BITS), name=f"code_{len(codes)}")
            low = wdata[: fmt.width]
            m.d.comb += c.eq(low.as_signed() if fmt.signed else low)
            codes.append(c)

        cols = [r.cols for _, r, _, _ in routes]
        hidden = [r.hidden or 1 for _, r, _, _ in routes]
        is_lstm = Cat(*[Const(1 if r.hidden else 0, 1) for _, r, _, _ in routes])
        lanes = [r.lanes for _, r, _, _ in routes]

        words = []
        for bus in (getattr(self, f"layer{kk}") for kk in self._buses):
            m.d.comb += [
                bus.bank.eq(bank),
                bus.addr.eq(word),
                bus.wdata.eq(code),
            ]
            words.append(bus.rdata)

        axi = self
        # the controller's states, as plain compares of one register (Yosys writes an
        # FSM's case statements without a default, which lint flags as incomplete)
        IDLE = 0
        DECODE = 1
        ROW = 2
        ROW_WAIT = 3
        UNIT = 4
        UNIT_WAIT = 5
        LANE = 6
        LANE_WAIT = 7
        WORD = 8
        ACCESS = 9
        READ = 10
        RESPOND = 11
        state = Signal(range(RESPOND + 1), name="axil_state")
        with m.If(state == IDLE):
            both = axi.s_axil_awvalid & axi.s_axil_wvalid
            m.d.comb += [
                axi.s_axil_awready.eq(both),
                axi.s_axil_wready.eq(both),
                axi.s_axil_arready.eq(~both & axi.s_axil_arvalid),
            ]
            with m.If(both):
                m.d.sync += [
                    addr.eq(axi.s_axil_awaddr),
                    wdata.eq(axi.s_axil_wdata),
                    strb_ok.eq(axi.s_axil_wstrb == 0xF),
                    write.eq(1),
                ]
                m.d.sync += state.eq(DECODE)
            with m.Elif(axi.s_axil_arvalid):
                m.d.sync += [addr.eq(axi.s_axil_araddr), strb_ok.eq(1), write.eq(0)]
                m.d.sync += state.eq(DECODE)
        with m.If(state == DECODE):
            for t in range(n_t):
                with m.If(hits[t]):
                    m.d.sync += [tsel.eq(t), index.eq(indices[t])]
            m.d.sync += err.eq(~found | ~strb_ok)
            with m.If(found & strb_ok):
                m.d.sync += state.eq(ROW)
            with m.Else():
                m.d.sync += state.eq(RESPOND)

        def divide(at, dividend, divisors, wait):
            """In state ``at``: start the divider on ``dividend`` by the selected tensor's
            divisor, then wait in ``wait`` (whose block takes the result)."""
            with m.If(state == at):
                m.d.comb += [
                    div.start.eq(1),
                    div.dividend.eq(dividend),
                    div.divisor.eq(const_pick(divisors, tsel)),
                ]
                m.d.sync += state.eq(wait)

        # row, col = divmod(index, cols)
        divide(ROW, index, cols, ROW_WAIT)
        with m.If(state == ROW_WAIT):
            with m.If(~div.busy):
                m.d.sync += [row.eq(div.quotient), col.eq(div.remainder)]
                m.d.sync += state.eq(UNIT)
        # LSTM: gate, unit = divmod(row, H); rc = 4 * unit + gate
        divide(UNIT, row, hidden, UNIT_WAIT)
        with m.If(state == UNIT_WAIT):
            with m.If(~div.busy):
                core_row = Cat(div.quotient[:2], div.remainder)
                m.d.sync += rc.eq(Mux(is_lstm.bit_select(tsel, 1), core_row, row))
                m.d.sync += state.eq(LANE)
        # k, lane = divmod(rc, P)
        divide(LANE, rc, lanes, LANE_WAIT)
        with m.If(state == LANE_WAIT):
            with m.If(~div.busy):
                m.d.sync += [
                    k.eq(div.quotient),
                    bank.eq(
                        const_pick([r.bank_base for _, r, _, _ in routes], tsel) + div.remainder
                    ),
                    word.eq(col + const_pick([r.offset for _, r, _, _ in routes], tsel)),
                    stride.eq(const_pick([r.stride for _, r, _, _ in routes], tsel)),
                    layer_ix.eq(const_pick([e["layer"] - 1 for e, _, _, _ in routes], tsel)),
                    code.eq(pick(codes, tsel)),
                    count.eq(nb),
                ]
                m.d.sync += state.eq(WORD)
        # word += k * stride, shift and add
        with m.If(state == WORD):
            with m.If(k[0]):
                m.d.sync += word.eq(word + stride)
            m.d.sync += [k.eq(k >> 1), stride.eq(stride << 1), count.eq(count - 1)]
            with m.If(count == 1):
                m.d.sync += state.eq(ACCESS)
        with m.If(state == ACCESS):
            for kk in self._buses:
                bus = getattr(self, f"layer{kk}")
                m.d.comb += bus.we.eq(write & (layer_ix == kk - 1))
            m.d.sync += [state.eq(READ), count.eq(HOST_READ_LATENCY)]
        with m.If(state == READ):  # the bank's word arrives HOST_READ_LATENCY cycles later
            m.d.sync += count.eq(count - 1)
            with m.If(count == 1):
                m.d.sync += [rdata.eq(pick(words, layer_ix)), state.eq(RESPOND)]
        with m.If(state == RESPOND):
            resp = Mux(err, SLVERR, OKAY)
            with m.If(write):
                m.d.comb += [axi.s_axil_bvalid.eq(1), axi.s_axil_bresp.eq(resp)]
                with m.If(axi.s_axil_bready):
                    m.d.sync += state.eq(IDLE)
            with m.Else():
                m.d.comb += [
                    axi.s_axil_rvalid.eq(1),
                    axi.s_axil_rresp.eq(resp),
                    axi.s_axil_rdata.eq(Mux(err, 0, rdata)),
                ]
                with m.If(axi.s_axil_rready):
                    m.d.sync += state.eq(IDLE)
        return m
