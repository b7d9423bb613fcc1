"""model/intgemm.py: the pmaddwd tile kernel against int64 matmul, at every width the CPU has."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from model.intgemm import TILES, fits_int32, pack_pairs, pmadd_lanes, pmadd_tile

LANES = {16: "avx512bw", 8: "avx2"}


def _gemm(lanes, rows, cols):
    @njit
    def gemm(a, b, out):
        for j0 in range(0, out.shape[1], cols):
            for r0 in range(0, a.shape[0], rows):
                pmadd_tile(out, a, b, r0, j0, lanes, rows, cols)

    return gemm


@pytest.mark.parametrize(
    ("lanes", "rows", "cols"), [(lanes, *TILES[lanes]) for lanes in sorted(LANES)] + [(16, 1, 16)]
)
def test_pmadd_tile_is_exact_up_to_its_bound(lanes, rows, cols):
    if pmadd_lanes() < lanes:
        pytest.skip(f"this CPU has no {LANES[lanes]}")
    rng = np.random.default_rng(lanes)
    m, k_len, j_len = 2 * rows, 10, 2 * cols + 5
    a = rng.integers(-(2**15), 2**15, (m, k_len)).astype(np.int16)
    a[0] = -(2**15)  # the corner pmaddwd itself cannot hold in one pair: (-2**15)**2 * 2
    b = rng.integers(-(2**15), 2**15, (k_len, j_len))
    b[:, 0] = 2**31 // (k_len * 2**15) - 1  # column 0 just below the bound of fits_int32
    b[:, 1] = -(2**31 // (k_len * 2**15) - 1)
    b[:, 2:] >>= 6  # the rest well inside it
    a_max = np.full(k_len, 2**15)
    assert fits_int32(b, a_max)
    padded = -(-j_len // cols) * cols
    out = np.zeros((m, padded), dtype=np.int32)
    _gemm(lanes, rows, cols)(a, pack_pairs(b, padded), out)
    np.testing.assert_array_equal(out[:, :j_len], a.astype(np.int64) @ b)
    np.testing.assert_array_equal(out[:, j_len:], 0)


def test_fits_int32_is_the_sum_of_magnitudes():
    b = np.array([[3, -1], [-2, 0]])
    assert fits_int32(b, np.array([2**28, 2**28]))  # column 0: 5 * 2**28 < 2**31
    assert not fits_int32(b, np.array([2**29, 2**29]))  # 5 * 2**29 >= 2**31
    assert fits_int32(np.array([[2**15], [2**15 - 1]]), np.array([2**15, 2**15]))
    assert not fits_int32(np.array([[2**15], [2**15]]), np.array([2**15, 2**15]))
