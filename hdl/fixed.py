"""Fixed-point helpers shared by the components: shapes of formats, the one rounding circuit.

:func:`round_into` is the hardware twin of :func:`model.formats.quantize` (SPEC §1): an exact
value with ``src_frac`` fractional bits becomes a code of a format by its Q rule, then its
O rule. Every narrowing in ``hdl/`` goes through it.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Mux, Shape, Signal, signed, unsigned
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
    out = Signal(fmt_shape(fmt), name=name)
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
    if fmt.o == "WRAP":
        m.d.comb += out.eq(wrapped)
    elif fmt.o == "SAT_ZERO":
        m.d.comb += out.eq(Mux(low | high, 0, wrapped))
    else:  # SAT, SAT_SYM
        m.d.comb += out.eq(Mux(low, lo, Mux(high, hi, wrapped)))
    return out


def delay(m, value, cycles: int, *, name: str):
    """``value`` delayed by ``cycles`` registers in the sync domain (0: the value itself)."""
    cur = value
    for k in range(cycles):
        reg = Signal(value.shape(), name=f"{name}_d{k + 1}")
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


class Rom:
    """A constant table read synchronously: ``data`` holds ``init[addr]`` one cycle after
    ``addr``. One word needs no memory (and no zero-width address): ``data`` is a constant."""

    def __init__(self, m, name: str, shape, init):
        init = [int(v) for v in init]
        if len(init) == 1:
            self.addr = Signal(1, name=f"{name}_addr")
            self.data = Const(init[0], shape)
            return
        m.submodules[name] = mem = Memory(shape=shape, depth=len(init), init=init)
        port = mem.read_port()
        self.addr, self.data = port.addr, port.data
