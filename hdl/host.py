"""Host ports of the weight memories (SPEC §5b): the signatures, the per-core bank decode,
and where each tensor of each core kind lives in its lanes' banks.

Three levels, each with one job:

- a memory's host port (:func:`mem_host_signature`): ``addr``, ``wdata``, ``we`` in,
  ``rdata`` out (one cycle after ``addr``); :class:`hdl.fixed.Rom` takes one as ``host=``;
- a core's host bus (:func:`host_bus_signature`): ``bank`` (which of the core's memories),
  ``addr``, ``wdata`` (the code, 32-bit two's complement), ``we`` in, ``rdata`` out (the
  selected bank's word extended to 32 bits by its shape: the code sign- or zero-extended);
  :func:`connect_banks` decodes it onto the memories' ports, once per core;
- where a code goes (:class:`Route`, :func:`lstm_routes`, :func:`dense_routes`): the
  layout of each core kind in one place, read by :class:`hdl.axil.WeightBus`.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Shape, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hdl.fixed import bits_for, pick

#: width of a code on the host bus
CODE_BITS = 32
#: cycles the AXI4-Lite slave waits from a core's host bus ``bank``/``addr`` to its ``rdata``:
#: :func:`connect_banks` registers the address (1), the memory's synchronous read (1), a
#: weight bank cut into pieces registers each piece (1), :func:`connect_banks` registers
#: every bank's word and then the picked one (2). The
#: address is held while the slave waits, so a word that arrives sooner stays put. The
#: registers keep block RAM outputs and the bank multiplexer off one path (150 MHz).
HOST_READ_LATENCY = 5


def mem_host_signature(depth: int, shape) -> wiring.Signature:
    """A memory's host port, from the memory's side: ``addr`` (``bits_for(depth - 1)``),
    ``wdata`` (the memory's shape), ``we``: in; ``rdata``: out, ``mem[addr]`` one cycle
    after ``addr``, read before a write of the same cycle."""
    shape = Shape.cast(shape)
    return wiring.Signature(
        {
            "addr": In(unsigned(bits_for(depth - 1))),
            "wdata": In(shape),
            "we": In(1),
            "rdata": Out(shape),
        }
    )


def host_bus_signature(banks: int, addr_bits: int) -> wiring.Signature:
    """A core's host bus, from the core's side: ``bank``, ``addr``, ``wdata`` (a code as a
    signed 32-bit value), ``we`` in; ``rdata`` (32 bits) out, valid
    :data:`HOST_READ_LATENCY` cycles after ``bank``/``addr`` settle."""
    return wiring.Signature(
        {
            "bank": In(unsigned(bits_for(banks - 1))),
            "addr": In(unsigned(addr_bits)),
            "wdata": In(signed(CODE_BITS)),
            "we": In(1),
            "rdata": Out(unsigned(CODE_BITS)),
        }
    )


def bus_addr_bits(depths) -> int:
    """Width of a host bus address that reaches every word of memories of ``depths``."""
    return max(bits_for(d - 1) for d in depths)


def connect_banks(m, bus, banks) -> None:
    """Drive memory host ports from a core's host bus; bank ``q`` is ``banks[q]``: a port,
    a list of ports (copies of one table: a write goes to all, a read comes from the
    first) or None (no memory there: reads 0). The address and code go to all, ``we`` to
    the selected bank only; ``rdata`` is the selected bank's word, extended by its shape
    (a code of a fixed format sign-extends), two registers after the memories' output; the
    address, code and write enables reach the memories through one register."""
    firsts = [None if b is None else (b[0] if isinstance(b, list | tuple) else b) for b in banks]
    # the multiplexer is as wide as the widest code (as a signed value), not 32 bits
    width = max(
        len(f.rdata) + (0 if f.rdata.shape().signed else 1) for f in firsts if f is not None
    )
    # the address, the code and each bank's write enable are registered before they fan
    # out to the memories: the slave's decode never shares a path with a block RAM's pins
    addr = Signal(bus.addr.shape(), name="host_addr", reset_less=True)
    wdata = Signal(signed(min(CODE_BITS, width)), name="host_wdata", reset_less=True)
    m.d.sync += [addr.eq(bus.addr), wdata.eq(bus.wdata)]
    words = []
    for q, bank in enumerate(banks):
        word = Signal(signed(width), name=f"host_rdata_{q}", reset_less=True)
        words.append(word)
        if bank is None:
            continue
        we = Signal(name=f"host_we_{q}")
        m.d.sync += we.eq(bus.we & (bus.bank == q))
        ports = bank if isinstance(bank, list | tuple) else [bank]
        for port in ports:
            m.d.comb += [port.addr.eq(addr), port.wdata.eq(wdata), port.we.eq(we)]
        m.d.sync += word.eq(ports[0].rdata)  # extends by the port's signedness
    picked = Signal(signed(width), name="host_rdata", reset_less=True)
    m.d.sync += picked.eq(pick(words, bus.bank))
    m.d.comb += bus.rdata.eq(picked)  # sign-extends


@dataclass(frozen=True)
class Route:
    """Where the word with index ``n = i * C + j`` of one tensor lives in a core's banks::

        row, col  = divmod(n, cols)          (a vector: cols = 1, so row = n, col = 0)
        rc        = 4 * (row % H) + row // H   if hidden else row
        k, lane   = divmod(rc, lanes)
        bank      = bank_base + lane
        word      = k * stride + col + offset

    ``rc`` is the core row (LSTM: unit-major, gate-minor; dense: the output row); lane
    ``rc % P`` owns it as its row ``k``. A tensor may take several routes, each from its
    ``start`` (a word index of the tensor) on, with ``n - start`` in the steps above. The
    peepholes ``p_i``, ``p_f``, ``p_o`` sit in three memories of H words indexed by unit:
    one route, :func:`unit_indexed_peephole_route`.
    """

    cols: int
    hidden: int  # H for an LSTM layer (rows i, f, g, o in blocks of H), 0 for dense
    lanes: int
    stride: int  # words per row in the bank: K for a weight bank, 1 for a bias bank
    offset: int  # the tensor's first column in the bank row (I for r)
    bank_base: int
    start: int = 0

    def locate(self, n: int) -> tuple[int, int]:
        """(bank, word) of word index ``n`` (the software twin of the decoder)."""
        row, col = divmod(n - self.start, self.cols)
        rc = 4 * (row % self.hidden) + row // self.hidden if self.hidden else row
        k, lane = divmod(rc, self.lanes)
        return self.bank_base + lane, k * self.stride + col + self.offset


def lstm_routes(layer, lanes: int) -> dict[str, list[Route]]:
    """The banks of :class:`hdl.core.LstmCore`: banks ``0 .. P-1`` are lane ``l``'s weight
    memory (word ``k*K + c``: ``w[row][c]`` for ``c < I``, ``r[row][c - I]`` after), banks
    ``P .. 2P-1`` its bias memory (word ``k``), for core row ``rc = k*P + l``, model row
    ``(rc % 4) * H + rc // 4``. With peepholes, banks ``2P``, ``2P+1``, ``2P+2`` are the
    cell update's ``p_i``, ``p_f``, ``p_o`` memories (word: the unit)."""
    i_size, h = layer.input_size, layer.hidden_size
    k = i_size + h
    routes = {
        "w": [Route(i_size, h, lanes, k, 0, 0)],
        "r": [Route(h, h, lanes, k, i_size, 0)],
        "b": [Route(1, h, lanes, 1, 0, lanes)],
    }
    if layer.peephole:
        routes["p"] = [unit_indexed_peephole_route(layer, 2 * lanes)]
    return routes


def unit_indexed_peephole_route(layer, bank_base: int) -> Route:
    """The route of ``p`` for a core that keeps ``p_i``, ``p_f``, ``p_o`` in three memories
    of H words indexed by unit, banks ``bank_base`` + 0, 1, 2: ``p[g*H + j]`` goes to bank
    ``bank_base + g``, word ``j`` (``rc = 4j + g`` split by 4 lanes)."""
    return Route(1, layer.hidden_size, 4, 1, 0, bank_base)


def dense_routes(layer, lanes: int) -> dict[str, list[Route]]:
    """The banks of :class:`hdl.dense.DenseCore`: lane ``l`` owns output rows ``g*P + l``;
    banks ``0 .. P-1`` are the weight memories (word ``g*K + j``), ``P .. 2P-1`` the bias
    memories (word ``g``)."""
    k = layer.input_size
    return {
        "w": [Route(k, 0, lanes, k, 0, 0)],
        "b": [Route(1, 0, lanes, 1, 0, lanes)],
    }


def core_routes(layer, lanes: int) -> dict[str, list[Route]]:
    """The routes of the core that runs ``layer``, per tensor (in order of ``start``)."""
    return lstm_routes(layer, lanes) if layer.kind == "lstm" else dense_routes(layer, lanes)


def locate(routes: list[Route], n: int) -> tuple[int, int]:
    """(bank, word) of word ``n`` of a tensor with ``routes``."""
    return [r for r in routes if r.start <= n][-1].locate(n)


def bank_depths(layer, lanes: int) -> list[int]:
    """Words of each bank of the core that runs ``layer``, in bank order (weights per lane,
    biases per lane; with peepholes, the cell update's ``p_i``, ``p_f``, ``p_o``)."""
    rows = (4 * layer.hidden_size if layer.kind == "lstm" else layer.output_size) // lanes
    k = layer.input_size + (layer.hidden_size if layer.kind == "lstm" else 0)
    depths = [rows * k] * lanes + [rows] * lanes
    if layer.kind == "lstm" and layer.peephole:
        depths += [layer.hidden_size] * 3
    return depths


def core_host_bus(layer, lanes: int, *, name: str = "") -> wiring.Signature:
    """The host bus of the core that runs ``layer`` on ``lanes`` lanes."""
    depths = bank_depths(layer, lanes)
    return host_bus_signature(len(depths), bus_addr_bits(depths))
