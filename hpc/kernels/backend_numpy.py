"""The reference backend: vectorised NumPy, written to be obviously correct, not fast.

Every other backend is tested against this one, and this one is tested against
``torch.nn.functional`` (tests/test_kernels_reference.py), so torch's semantics propagate.

Pooling = pad explicitly, then reduce over ``sliding_window_view`` windows:
- max: pad with -inf (the dtype's minimum for integers), ``np.max`` propagates NaN;
- avg: pad with 0, sum in float64, divide by torch's divisor: the window clipped to the
  *padded* input (``count_include_pad=True``) or to the real input (``False``), or
  ``divisor_override``; round once to the input dtype.
The right/bottom edge gets extra padding when ``ceil_mode`` adds a window that runs past the
padded input (torch clips such a window; -inf / 0 padding there changes nothing, and the
divisor below ignores it).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import arrays
from .geometry import PoolGeometry

NAME = "numpy"
DEVICE_KIND = "cpu"
OPS = frozenset({"maxpool2d", "avgpool2d", "matmul"})


def probe() -> tuple[bool, str, str]:
    return True, "", f"CPU (NumPy {np.__version__})"


def _lowest(dtype: np.dtype) -> Any:
    return -np.inf if dtype.kind == "f" else np.iinfo(dtype).min


def _windows(a: np.ndarray, geom: PoolGeometry, fill: Any) -> np.ndarray:
    """(N, C, out_h, out_w, kh, kw) view of every pooling window of padded ``a``."""
    n, c, h, w = a.shape
    (kh, kw), (sh, sw), (ph, pw) = geom.kernel, geom.stride, geom.padding
    need_h = (geom.out_h - 1) * sh + kh  # extent of the padded rows the windows touch
    need_w = (geom.out_w - 1) * sw + kw
    hp, wp = max(h + 2 * ph, need_h), max(w + 2 * pw, need_w)
    padded = np.full((n, c, hp, wp), fill, dtype=a.dtype)
    padded[:, :, ph:ph + h, pw:pw + w] = a
    win = sliding_window_view(padded, (kh, kw), axis=(2, 3))
    return win[:, :, ::sh, ::sw][:, :, :geom.out_h, :geom.out_w]


def avg_divisor(geom: PoolGeometry, count_include_pad: bool,
                divisor_override: int | None = None) -> np.ndarray:
    """(out_h, out_w) float64 divisors exactly as torch's avg_pool2d computes them."""
    if divisor_override is not None:
        return np.full((geom.out_h, geom.out_w), float(divisor_override))

    def axis(size: int, k: int, s: int, p: int, n_out: int) -> np.ndarray:
        start = np.arange(n_out) * s - p
        end = np.minimum(start + k, size + p)  # clipped to the padded input
        if count_include_pad:
            return end - start
        return np.minimum(end, size) - np.maximum(start, 0)  # real input elements only

    rows = axis(geom.in_h, geom.kernel[0], geom.stride[0], geom.padding[0], geom.out_h)
    cols = axis(geom.in_w, geom.kernel[1], geom.stride[1], geom.padding[1], geom.out_w)
    return np.outer(rows, cols).astype(np.float64)


def pool_numpy(a: np.ndarray, geom: PoolGeometry, op: str, count_include_pad: bool = True,
               divisor_override: int | None = None) -> np.ndarray:
    """Reference pooling of a 4-D NumPy array (pure function, returns a new array)."""
    if op == "max":
        return _windows(a, geom, _lowest(a.dtype)).max(axis=(-2, -1))
    if op == "avg":
        with np.errstate(invalid="ignore", over="ignore"):  # inf - inf = NaN, as in torch
            sums = _windows(a, geom, 0).sum(axis=(-2, -1), dtype=np.float64)
            return (sums / avg_divisor(geom, count_include_pad, divisor_override)).astype(a.dtype)
    raise ValueError(f"op must be 'max' or 'avg', got {op!r}")


def pool2d(x: Any, geom: PoolGeometry, op: str, count_include_pad: bool,
           divisor_override: int | None = None) -> np.ndarray:
    return pool_numpy(arrays.to_numpy(x), geom, op, count_include_pad, divisor_override)


def empty_result(x: Any, shape: tuple[int, ...]) -> np.ndarray:
    """An empty NumPy result of ``x``'s dtype (for N == 0 or C == 0 batches)."""
    return np.empty(shape, dtype=arrays.numpy_dtype(x))


def matmul(a: Any, b: Any) -> np.ndarray:
    return np.matmul(arrays.to_numpy(a), arrays.to_numpy(b))
