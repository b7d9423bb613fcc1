"""Fixed-point helpers shared by the components: shapes of formats, the one rounding circuit.

:func:`round_into` is the hardware twin of :func:`model.formats.quantize` (SPEC §1): an exact
value with ``src_frac`` fractional bits becomes a code of a format by its Q rule, then its
O rule. Every narrowing in ``hdl/`` goes through it, or through :func:`round_stages`, the
same circuit with a register after each rule (for 150 MHz and more).
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar

from amaranth.hdl import (
    Array,
    Cat,
    ClockSignal,
    Const,
    Instance,
    Mux,
    Shape,
    Signal,
    signed,
    unsigned,
)
from amaranth.lib import data, stream
from amaranth.lib.memory import Memory

from model.formats import Format


def fmt_shape(fmt: Format) -> Shape:
    """The Amaranth shape that holds every code of ``fmt``."""
    return signed(fmt.width) if fmt.signed else unsigned(fmt.width)


def signed_width(fmt: Format) -> int:
    """Width of a signed shape that holds every code of ``fmt``."""
    return fmt.width if fmt.signed else fmt.width + 1


def vector_stream(size: int, fmt: Format) -> stream.Signature:
    """The stream between layers: one vector of ``size`` codes of ``fmt`` per beat (element k
    in bits ``[k*W +: W]`` of ``data``, as SPEC §5 packs it) and ``last`` (a sequence's last
    beat, AXI4-Stream's ``tlast``)."""
    return stream.Signature(data.StructLayout({"data": unsigned(size * fmt.width), "last": 1}))


def bits_for(n: int) -> int:
    """Width of an unsigned counter that counts from 0 to ``n`` inclusive."""
    return max(1, int(n).bit_length())


def const_bits(value: int) -> int:
    """Width of a signed shape that holds the integer ``value``."""
    return max(1, int(value).bit_length() + 1) if value >= 0 else (-int(value) - 1).bit_length() + 1


def as_signed(m, value, width: int, *, name: str) -> Signal:
    """``value`` (any signedness) as a signed signal of ``width`` bits (value must fit)."""
    sig = Signal(signed(width), name=name)
    m.d.comb += sig.eq(value)
    return sig


def round_into(m, value, src_frac: int, fmt: Format, *, name: str = "rounded") -> Signal:
    """Comb logic: the exact ``value * 2**-src_frac`` to a code of ``fmt`` (SPEC §1).

    ``value`` is an Amaranth value of any width and signedness; it is taken exactly. The
    returned signal has :func:`fmt_shape` of ``fmt``. Ties and TRN_ZERO look at the sign of
    ``value``; the carry of a rounding can itself overflow, as in the model.
    """
    return _overflow(m, _quantize(m, value, src_frac, fmt, name), fmt, name)


#: cycles from :func:`round_stages`' value to its code
ROUND_LATENCY = 3


def round_stages(m, value, src_frac: int, fmt: Format, *, name: str = "rounded"):
    """:func:`round_into` in register stages: ``(code, ROUND_LATENCY)``.

    Stage 1 registers the quantized value (floor plus the Q rule's increment: one carry
    chain), stage 2 the O rule's two range compares (a carry chain each) beside the low
    ``W`` bits, stage 3 the select. ``code`` holds the code of ``value`` as it was
    :data:`ROUND_LATENCY` cycles earlier; the registers carry no reset (data).
    """
    quant = _quantize(m, value, src_frac, fmt, name)
    quant_r = Signal(quant.shape(), name=f"{name}_qr", reset_less=True)
    m.d.sync += quant_r.eq(quant)
    low, high, wrapped, lo, hi = _range(quant_r, fmt)
    low_r = Signal(name=f"{name}_low", reset_less=True)
    high_r = Signal(name=f"{name}_high", reset_less=True)
    wrapped_r = Signal(wrapped.shape(), name=f"{name}_wrapped", reset_less=True)
    m.d.sync += [low_r.eq(low), high_r.eq(high), wrapped_r.eq(wrapped)]
    out_r = Signal(fmt_shape(fmt), name=f"{name}_r", reset_less=True)
    m.d.sync += out_r.eq(_select(fmt, low_r, high_r, wrapped_r, lo, hi))
    return out_r, ROUND_LATENCY


def _quantize(m, value, src_frac: int, fmt: Format, name: str) -> Signal:
    """The Q rule: ``value`` at ``fmt``'s fractional position, not yet range-checked."""
    shape = value.shape()
    width = shape.width + (0 if shape.signed else 1)
    shift = src_frac - fmt.frac
    # room for the sign and for shifts wider than the value (|v| < half an LSB, or a tie)
    ext_w = max(width, shift + 2)
    v = as_signed(m, value, ext_w, name=f"{name}_src")
    neg = v[-1]
    if shift > 0:
        q = v >> shift  # floor
        half = v[shift - 1]
        rest = v[: shift - 1].any() if shift > 1 else Const(0, 1)
        inexact = half | rest
        above = half & rest
        tie = half & ~rest
        inc = {
            "TRN": Const(0, 1),
            "TRN_ZERO": neg & inexact,
            "RND": half,
            "RND_ZERO": above | (tie & neg),
            "RND_MIN_INF": above,
            "RND_INF": above | (tie & ~neg),
            "RND_CONV": above | (tie & q[0]),
        }[fmt.q]
        qw = ext_w - shift + 1
        quant = Signal(signed(qw), name=f"{name}_q")
        m.d.comb += quant.eq(q + inc)
    elif shift == 0:
        quant = v
    else:
        quant = Signal(signed(ext_w - shift), name=f"{name}_q")
        m.d.comb += quant.eq(v << -shift)

    if len(quant) < fmt.width + 1:  # wrapping reads W bits of the sign-extended code
        quant = as_signed(m, quant, fmt.width + 1, name=f"{name}_qx")
    return quant


def _range(quant, fmt: Format):
    """``(low, high, wrapped, lo, hi)``: whether the signed ``quant`` lies below or above
    ``fmt``'s range (after SAT_SYM's symmetric bound), its low ``W`` bits, the bounds."""
    lo, hi = fmt.code_min, fmt.code_max
    if fmt.o == "SAT_SYM" and fmt.signed and fmt.width >= 2:
        lo = -hi
    qlen = len(quant)
    # only compare when the quantized range can leave the format (keeps the netlist small)
    can_low = lo > -(1 << (qlen - 1))
    can_high = hi < (1 << (qlen - 1)) - 1
    low = (quant < lo) if can_low else Const(0, 1)
    high = (quant > hi) if can_high else Const(0, 1)
    wrapped = quant[: fmt.width]
    if fmt.signed:
        wrapped = wrapped.as_signed()
    return low, high, wrapped, lo, hi


def _select(fmt: Format, low, high, wrapped, lo: int, hi: int):
    """The O rule's result from :func:`_range`'s flags and bits."""
    if fmt.o == "WRAP":
        return wrapped
    if fmt.o == "SAT_ZERO":
        return Mux(low | high, 0, wrapped)
    return Mux(low, lo, Mux(high, hi, wrapped))  # SAT, SAT_SYM


def _overflow(m, quant, fmt: Format, name: str) -> Signal:
    """The O rule: the quantized value ``quant`` (signed) as a code of ``fmt``."""
    out = Signal(fmt_shape(fmt), name=name)
    m.d.comb += out.eq(_select(fmt, *_range(quant, fmt)))
    return out


def delay(m, value, cycles: int, *, name: str, reset_less: bool = False):
    """``value`` delayed by ``cycles`` registers in the sync domain (0: the value itself);
    ``reset_less`` for data (control bits such as valid keep their reset)."""
    cur = value
    for k in range(cycles):
        reg = Signal(value.shape(), name=f"{name}_d{k + 1}", reset_less=reset_less)
        m.d.sync += reg.eq(cur)
        cur = reg
    return cur


def concat(values) -> object:
    """Cat of ``values``, element 0 in the low bits (the SPEC §5 packing)."""
    return Cat(*values)


def pick(values, index):
    """``values[index]`` as a mux, padded to every code of ``index`` (a complete case
    statement in the Verilog: out-of-range indices give the last value)."""
    values = list(values)
    values += [values[-1]] * ((1 << len(index)) - len(values))
    return Array(values)[index]


class RomExport:
    """The ROMs built while :func:`rom_instances` is active, for the Verilog export.

    Each entry of :attr:`roms` is ``(instance, width, words)``: the ``Instance`` of
    :attr:`module` that stands for the ROM and the codes it must hold. hdl/generate.py
    names each instance's ``INIT_FILE`` after its place in the hierarchy and writes the
    words as a ``$readmemh`` file.
    """

    def __init__(self, module: str, ram_module: str | None = None):
        self.module = module
        self.ram_module = ram_module or f"{module.removesuffix('_rom')}_ram"
        self.roms: list[tuple[Instance, int, list[int]]] = []
        #: True once a :class:`Rom` with a host port elaborated to :attr:`ram_module`
        self.rams_used = False


_EXPORT: ContextVar[RomExport | None] = ContextVar("lstmfx_rom_export", default=None)


@contextmanager
def rom_instances(module: str, ram_module: str | None = None):
    """While active, every :class:`Rom` of more than one word elaborates to an ``Instance``
    of the Verilog module ``module`` (parameters ``WIDTH``, ``DEPTH``, ``ABITS``,
    ``INIT_FILE``; ports ``clk``, ``addr``, ``data``) instead of an Amaranth memory with
    its contents; one with a host port to ``ram_module`` (default ``module`` with ``_rom``
    replaced by ``_ram``; the same, plus ports ``host_addr``, ``host_wdata``, ``host_we``,
    ``host_rdata``). Yields the :class:`RomExport` that records them.

    Why: Amaranth turns every bit of a memory's ``init`` into a netlist constant and Yosys
    writes every word as one ``initial`` line; at I=128, H=256 that is most of the
    generation time and 400k lines that vendor tools parse for minutes. Outside this
    context (Amaranth's simulator) ROMs keep their contents in the netlist.
    """
    export = RomExport(module, ram_module)
    token = _EXPORT.set(export)
    try:
        yield export
    finally:
        _EXPORT.reset(token)


class Rom:
    """A table read synchronously: ``data`` holds ``init[addr]`` one cycle after ``addr``.
    One word needs no memory (and no zero-width address): ``data`` is a constant.
    Inside :func:`rom_instances` the table is an ``Instance`` whose words the Verilog
    export writes to a ``$readmemh`` file.

    With ``host`` (an interface of :func:`hdl.host.mem_host_signature`: ``addr``,
    ``wdata``, ``we`` in, ``rdata`` out) the table is a RAM initialised to ``init`` with a
    second port for a host: a write of ``wdata`` to ``addr`` when ``we``, and ``rdata`` =
    the word at ``addr`` one cycle later, never touching the datapath's port. ``rst`` does
    not change the words. One word is then a register (no reset) rather than a constant;
    inside :func:`rom_instances` a RAM is an ``Instance`` of the export's ``ram_module``.
    """

    def __init__(self, m, name: str, shape, init, *, host=None):
        init = [int(v) for v in init]
        shape = Shape.cast(shape)
        if len(init) == 1:
            self.addr = Signal(1, name=f"{name}_addr")
            if host is None:
                self.data = Const(init[0], shape)
                return
            self.data = Signal(shape, init=init[0], reset_less=True, name=f"{name}_word")
            with m.If(host.we):
                m.d.sync += self.data.eq(host.wdata)
            m.d.sync += host.rdata.eq(self.data)
            return
        export = _EXPORT.get()
        if export is None:
            m.submodules[name] = mem = Memory(shape=shape, depth=len(init), init=init)
            port = mem.read_port()
            self.addr, self.data = port.addr, port.data
            if host is not None:
                host_read, host_write = mem.read_port(), mem.write_port()
                m.d.comb += [
                    host_read.addr.eq(host.addr),
                    host_write.addr.eq(host.addr),
                    host_write.data.eq(host.wdata),
                    host_write.en.eq(host.we),
                    host.rdata.eq(host_read.data),
                ]
            return
        self.addr = Signal(bits_for(len(init) - 1), name=f"{name}_addr")
        self.data = Signal(shape, name=f"{name}_data")
        ports = {"i_clk": ClockSignal(), "i_addr": self.addr, "o_data": self.data}
        if host is not None:
            ports.update(
                i_host_addr=host.addr,
                i_host_wdata=host.wdata,
                i_host_we=host.we,
                o_host_rdata=host.rdata,
            )
            export.rams_used = True
        inst = Instance(
            export.module if host is None else export.ram_module,
            p_WIDTH=shape.width,
            p_DEPTH=len(init),
            p_ABITS=len(self.addr),
            p_INIT_FILE="",
            **ports,
        )
        m.submodules[name] = inst
        export.roms.append((inst, shape.width, init))


#: cycles from :func:`product`'s operands to their product
MUL_LATENCY = 2


def product(m, a, b, *, name: str) -> Signal:
    """``a * b`` in the shape of a DSP block: ``a`` and ``b`` go into input registers, their
    product into an output register, so the product of the operands of cycle ``t`` is on
    the returned signal at ``t + MUL_LATENCY``. No reset (data registers): vendor tools and
    ``lstmfx synth`` (hdl/synth.py's register packing) put both registers inside the DSP.
    """
    a_r = Signal(a.shape(), name=f"{name}_a", reset_less=True)
    b_r = Signal(b.shape(), name=f"{name}_b", reset_less=True)
    p = Signal(signed(len(a) + len(b) + 1), name=name, reset_less=True)
    m.d.sync += [a_r.eq(a), b_r.eq(b), p.eq(a_r * b_r)]
    return p
