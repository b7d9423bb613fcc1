"""An exact integer GEMM for Numba kernels: int16 codes, int32 sums, x86's ``pmaddwd``.

``pmaddwd`` multiplies 16-bit integers in pairs and adds each pair into a 32-bit sum: 32
multiply-adds per AVX-512 instruction (16 with AVX2), where a float64 FMA does 8 (4). With
VNNI the add into the accumulator fuses too (``vpdpwssd``). The sums wrap silently past
32 bits, so a caller takes this path only where it has proved that no partial sum can
reach 2**31 (:func:`fits_int32`): then every sum is exact, whatever the order.

Layout: the left operand ``a`` is int16 [M, K] (K even; rows a multiple of the tile's,
:data:`TILES`), the right one is packed by :func:`pack_pairs` into int32 [K/2, J] (J a
multiple of the tile's columns): word ``[p, j]`` holds ``b[2p, j]`` in its low half
and ``b[2p + 1, j]`` in its high half, so one 32-bit load of ``a[r, 2p:2p + 2]``,
broadcast, meets a vector of such words in one ``pmaddwd``.

The instruction set is the compiling machine's (Numba compiles for the host and keys its
cache by CPU): :func:`pmadd_lanes` says which, 0 where there is none (not x86, or Numba
told to compile for another CPU), and callers then keep to their float path.
"""

from __future__ import annotations

import functools
import platform

import numba
import numpy as np
from llvmlite import binding, ir
from numba import errors, types
from numba.extending import intrinsic

#: per width in int32 lanes, the rows and columns of the output one call of the tile kernel
#: computes: accumulators enough to hide pmaddwd's latency on two ports, and (AVX2: 16
#: vector registers) no more than fit with the operands. Measured with AVX-512 on an Intel
#: Xeon: 8 x 32 about 1.5 times the multiply-adds per second of 2 x 32
TILES = {16: (8, 32), 8: (4, 16)}
#: LLVM's names of pmaddwd by vector width in int32 lanes
_PMADD = {16: "llvm.x86.avx512.pmaddw.d.512", 8: "llvm.x86.avx2.pmadd.wd"}


@functools.cache
def pmadd_lanes() -> int:
    """int32 lanes of the widest ``pmaddwd`` Numba's target has: 16, 8, or 0 (none)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return 0
    if numba.config.CPU_NAME not in (None, "host") or numba.config.CPU_FEATURES:
        return 0  # compiling for another CPU: its features are not the host's
    features = binding.get_host_cpu_features()
    if features.get("avx512bw"):
        return 16
    return 8 if features.get("avx2") else 0


def fits_int32(b: np.ndarray, a_max: np.ndarray) -> bool:
    """Whether every partial sum of ``a @ b`` stays below 2**31 in magnitude when
    ``|a[:, k]| <= a_max[k]``: the sum of the magnitudes of the terms bounds every partial
    sum, in any order."""
    b, a_max = np.abs(np.asarray(b, dtype=np.int64)), np.asarray(a_max, dtype=np.int64)
    if b.size and int(b.max()) * int(a_max.max()) * b.shape[0] >= 1 << 62:  # int64 would wrap
        b, a_max = b.astype(object), a_max.astype(object)
    return bool(np.all(a_max.dot(b) < (1 << 31)))


def pack_pairs(b: np.ndarray, cols: int) -> np.ndarray:
    """``b`` int [K, J] (K even, codes within int16) as int32 words of row pairs, [K/2, cols],
    zero beyond J."""
    k_len, j_len = b.shape
    b16 = np.zeros((k_len, cols), dtype=np.int16)
    b16[:, :j_len] = b
    pairs = np.ascontiguousarray(b16.reshape(k_len // 2, 2, cols).transpose(0, 2, 1))
    return pairs.reshape(k_len // 2, 2 * cols).view(np.int32)


@intrinsic(prefer_literal=True)
def pmadd_tile(typingctx, acc, a, b, r0, j0, lanes, rows, cols):
    """``acc[r0:r0 + rows, j0:j0 + cols] = a[r0:r0 + rows] @ b[:, j0:j0 + cols]`` (``b`` the
    pairs of :func:`pack_pairs`), int32 sums in vectors of ``lanes`` (16 or 8, see
    :func:`pmadd_lanes`). ``lanes``, ``rows`` and ``cols`` (a multiple of ``lanes``) are
    constants; the ``rows * cols / lanes`` accumulators stay in registers over all of K."""
    if not isinstance(lanes, types.IntegerLiteral) or lanes.literal_value not in _PMADD:
        raise errors.TypingError(f"lanes must be a constant 16 or 8, not {lanes}")
    for name, v in (("rows", rows), ("cols", cols)):
        if not isinstance(v, types.IntegerLiteral) or v.literal_value < 1:
            raise errors.TypingError(f"{name} must be a positive constant, not {v}")
    if cols.literal_value % lanes.literal_value:
        raise errors.TypingError(f"cols must be a multiple of lanes, not {cols}")
    sig = types.void(acc, a, b, r0, j0, lanes, rows, cols)
    lanes, tile_rows, tile_cols = lanes.literal_value, rows.literal_value, cols.literal_value

    def codegen(context, builder, signature, args):
        acc_v, a_v, b_v, r0_v, j0_v = args[:5]
        arrs = [
            context.make_array(t)(context, builder, v)
            for t, v in zip(signature.args[:3], (acc_v, a_v, b_v))
        ]
        acc_a, a_a, b_a = arrs
        i16, i32, i64 = ir.IntType(16), ir.IntType(32), ir.IntType(64)
        sums = ir.VectorType(i32, lanes)
        halves = ir.VectorType(i16, 2 * lanes)
        fn_type = ir.FunctionType(sums, [halves, halves])
        module = builder.module
        name = _PMADD[lanes]
        pmadd = module.globals.get(name) or ir.Function(module, fn_type, name)

        def const(v):
            return ir.Constant(i64, v)

        def row_stride(arr, itemsize):  # in elements: a slice keeps its parent's row stride
            return builder.sdiv(builder.extract_value(arr.strides, 0), const(itemsize))

        def element(arr, ty, index):
            ptr = builder.gep(arr.data, [index])
            return builder.bitcast(ptr, ty.as_pointer())

        acc_stride, a_stride = row_stride(acc_a, 4), row_stride(a_a, 2)
        b_stride = row_stride(b_a, 4)
        pairs = builder.extract_value(b_a.shape, 0)
        n_vec = tile_cols // lanes
        zero = ir.Constant(sums, [0] * lanes)
        splat = ir.Constant(ir.VectorType(i32, lanes), [0] * lanes)
        entry = builder.block
        loop = builder.append_basic_block("pmadd_loop")
        body = builder.append_basic_block("pmadd_body")
        done = builder.append_basic_block("pmadd_done")
        builder.branch(loop)

        builder.position_at_end(loop)
        p = builder.phi(i64)
        p.add_incoming(const(0), entry)
        accs = []
        for _ in range(tile_rows * n_vec):
            phi = builder.phi(sums)
            phi.add_incoming(zero, entry)
            accs.append(phi)
        builder.cbranch(builder.icmp_signed("<", p, pairs), body, done)

        builder.position_at_end(body)
        words = []
        for v in range(n_vec):
            col = builder.add(j0_v, const(v * lanes))
            ptr = element(b_a, halves, builder.add(builder.mul(p, b_stride), col))
            words.append(builder.load(ptr, align=4))
        updated = []
        for rr in range(tile_rows):
            row = builder.add(r0_v, const(rr))
            pos = builder.add(builder.mul(row, a_stride), builder.mul(p, const(2)))
            pair = builder.load(element(a_a, i32, pos), align=4)
            vec = builder.insert_element(ir.Constant(sums, ir.Undefined), pair, ir.Constant(i32, 0))
            vec = builder.bitcast(builder.shuffle_vector(vec, vec, splat), halves)
            for v in range(n_vec):
                prod = builder.call(pmadd, [words[v], vec])
                updated.append(builder.add(accs[rr * n_vec + v], prod))
        p_next = builder.add(p, const(1))
        tail = builder.block
        builder.branch(loop)
        p.add_incoming(p_next, tail)
        for phi, new in zip(accs, updated):
            phi.add_incoming(new, tail)

        builder.position_at_end(done)
        for rr in range(tile_rows):
            row = builder.add(r0_v, const(rr))
            for v in range(n_vec):
                col = builder.add(j0_v, const(v * lanes))
                ptr = element(acc_a, sums, builder.add(builder.mul(row, acc_stride), col))
                builder.store(accs[rr * n_vec + v], ptr, align=4)
        return context.get_dummy_value()

    return sig, codegen
