"""How close a float32 matmul must be to the float64 product, and why that closeness.

A float32 kernel that accumulates in float32 differs from the exact product by rounding
errors of size ~ eps32 per term; summed over ``k`` terms they grow like ``sqrt(k)``
(random signs) relative to ``|A| @ |B|``. TF32 (what cuBLAS and torch use when
allowed) rounds the *inputs* to a 10-bit mantissa, an error of ~2^-11 per product,
about 8000x eps32: a TF32 result is 20-500x further from the float64 product than a
float32 one. The check is therefore normwise per element:

    |C - C64| <= MATMUL_TOL_FACTOR * sqrt(k) * eps(dtype) * (|A| @ |B|)

Measured ratio (error / (sqrt(k) eps |A|@|B|)), inputs uniform in [-1, 1) (what the
benchmark uses, ``hpc.kernels.bench.make_matmul_input``), 3 rows checked:

    k                    256     2048    8192
    float32 sequential   0.066   0.031   0.021
    float32 NumPy BLAS   0.058   0.0074  0.0020
    TF32 inputs          34.5    5.6     1.46

so ``MATMUL_TOL_FACTOR = 1`` passes float32 kernels with a >= 14x margin and fails a
TF32-precision result up to k = 8192. (With all-positive inputs the float32 sequential
ratio is ~0.5 and TF32's 1.7 at k = 8192: still separated, with less margin.) The
worst-case bound ``k * eps`` would be too loose to tell the two apart.
"""
from __future__ import annotations

import math

import numpy as np

MATMUL_TOL_FACTOR = 1.0
CHECK_ROWS = 64
"""Rows of C checked against float64 when n is large (the float64 reference of every row
of an 8192^2 product costs minutes on a host)."""


def round_to_tf32(x: np.ndarray) -> np.ndarray:
    """``x`` (float32) rounded to TF32's 10-bit mantissa, round-to-nearest-even: what a
    tensor core sees of its inputs."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    lsb = (bits >> 13) & 1
    rounded = ((bits + 0xFFF + lsb) >> 13) << 13
    return rounded.astype(np.uint32).view(np.float32)


def matmul_error_ratio(result: np.ndarray, a: np.ndarray, b: np.ndarray,
                       rows: np.ndarray | None = None) -> float:
    """max |C - C64| / (sqrt(k) * eps * |A| @ |B|) over the checked rows (all by default):
    <= MATMUL_TOL_FACTOR passes. ``eps`` is that of ``a``'s dtype."""
    if rows is None:
        rows = np.arange(a.shape[0])
    a64 = a[rows].astype(np.float64)
    b64 = b.astype(np.float64)
    ref = a64 @ b64
    scale = np.abs(a64) @ np.abs(b64)
    k = a.shape[1]
    eps = float(np.finfo(a.dtype).eps)
    denom = math.sqrt(k) * eps * np.maximum(scale, np.finfo(np.float64).tiny)
    err = np.abs(np.asarray(result, dtype=np.float64)[rows] - ref)
    return float(np.max(err / denom)) if err.size else 0.0


def check_rows(n_rows: int, seed: int = 0) -> np.ndarray:
    """Every row for small results, else CHECK_ROWS random rows (always the first and last)."""
    if n_rows <= 2 * CHECK_ROWS:
        return np.arange(n_rows)
    rng = np.random.default_rng(seed)
    picked = rng.choice(np.arange(1, n_rows - 1), size=CHECK_ROWS - 2, replace=False)
    return np.sort(np.concatenate([[0, n_rows - 1], picked]))
