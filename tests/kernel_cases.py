"""Shared property-test harness for hpc.kernels backends.

Every backend is compared with the NumPy reference (``hpc.kernels.backend_numpy``) through
the public API, on hypothesis-drawn cases: odd sizes, overlapping (k > s) and tiling (k = s)
windows, rectangular kernels/strides, padding up to k//2, ceil_mode, 2-/3-/4-D inputs,
float16/32/64 and integer dtypes, NaN and +-inf. The reference itself is pinned to
torch.nn.functional in test_kernels_reference.py.

Used by test_kernels_backends.py (every backend available in this process) and importable by
other test files (e.g. the numba-cuda tests run under the CUDA simulator in a subprocess):

    from kernel_cases import pool_cases, check_pool, pool_backend_variants
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st

from hpc.kernels import api, arrays
from hpc.kernels.backend_numpy import pool_numpy
from hpc.kernels.geometry import pool_geometry
from hpc.kernels.registry import available_backends, get_backend

FLOAT_DTYPES = arrays.FLOAT_DTYPES
INT_DTYPES = arrays.INT_DTYPES
ALL_DTYPES = arrays.POOL_DTYPES


@dataclass(frozen=True)
class PoolCase:
    """One pooling problem: the input and torch-style parameters."""

    x: np.ndarray
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    ceil_mode: bool
    count_include_pad: bool = True
    divisor_override: int | None = None

    def kwargs(self, op: str) -> dict[str, Any]:
        kw: dict[str, Any] = dict(kernel_size=self.kernel, stride=self.stride,
                                  padding=self.padding, ceil_mode=self.ceil_mode)
        if op == "avg":
            kw.update(count_include_pad=self.count_include_pad, divisor_override=self.divisor_override)
        return kw

    def __repr__(self) -> str:  # hypothesis prints this on failure; the values matter
        return (f"PoolCase(shape={self.x.shape}, dtype={self.x.dtype}, kernel={self.kernel}, "
                f"stride={self.stride}, padding={self.padding}, ceil_mode={self.ceil_mode}, "
                f"count_include_pad={self.count_include_pad}, "
                f"divisor_override={self.divisor_override},\n x={self.x.tolist()!r})")


def _values(rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype,
            specials: bool) -> np.ndarray:
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        # full range including the extremes (max pooling must not clip or overflow)
        lo, hi = int(info.min), int(info.max)
        x = rng.integers(lo, hi, size=shape, dtype=dtype, endpoint=True)
        if x.size and rng.random() < 0.5:
            x.flat[rng.integers(0, x.size)] = info.min
        return x
    # quarter-integers in [-64, 64]: exactly representable in float16, so averages of
    # the reference and the backends differ only by the final rounding
    x = (rng.integers(-256, 257, size=shape) / 4.0).astype(dtype)
    if specials and x.size:
        for value in (np.nan, np.inf, -np.inf):
            if rng.random() < 0.35:
                x.flat[rng.integers(0, x.size, size=int(rng.integers(1, 3)))] = value
    return x


@st.composite
def pool_cases(draw: st.DrawFn, dtypes: tuple[str, ...] = ALL_DTYPES, max_extra: int = 12,
               max_planes: int = 3, specials: bool = True, ndims: tuple[int, ...] = (2, 3, 4)) -> PoolCase:
    """A valid pooling case (torch would accept it)."""
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    shape_kind = draw(st.sampled_from(["k=s", "k>s", "free"]))
    if shape_kind == "k=s":
        sh, sw = kh, kw
    elif shape_kind == "k>s":
        sh, sw = draw(st.integers(1, max(1, kh - 1))), draw(st.integers(1, max(1, kw - 1)))
    else:
        sh, sw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    ceil_mode = draw(st.booleans())
    h = draw(st.integers(max(1, kh - 2 * ph), max(1, kh - 2 * ph) + max_extra))
    w = draw(st.integers(max(1, kw - 2 * pw), max(1, kw - 2 * pw) + max_extra))
    ndim = draw(st.sampled_from(ndims))
    lead = tuple(draw(st.integers(1, max_planes)) for _ in range(ndim - 2))
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    seed = draw(st.integers(0, 2**32 - 1))
    x = _values(np.random.default_rng(seed), lead + (h, w), dtype, specials)
    if draw(st.booleans()) and ndim >= 2:  # a non-contiguous view: the API must cope
        big = np.empty(lead + (h, 2 * w), dtype=dtype)
        big[..., ::2] = x
        x = big[..., ::2]
    cip = draw(st.booleans())
    divisor = draw(st.sampled_from([None, None, None, 1, 3, -2]))
    return PoolCase(x, (kh, kw), (sh, sw), (ph, pw), ceil_mode, cip, divisor)


def reference(case: PoolCase, op: str) -> np.ndarray:
    """The NumPy reference result for ``case`` (bypasses the API: independent of it)."""
    x = case.x
    h, w = x.shape[-2:]
    geom = pool_geometry(h, w, case.kernel, case.stride, case.padding, case.ceil_mode)
    x4 = x.reshape((-1, 1, h, w))
    out = pool_numpy(x4, geom, op, case.count_include_pad,
                     case.divisor_override if op == "avg" else None)
    return out.reshape(x.shape[:-2] + (geom.out_h, geom.out_w))


def assert_pool_close(got: Any, want: np.ndarray, op: str, context: str = "") -> None:
    """Max: bit-exact (NaN where the reference has NaN). Avg: same NaN/inf pattern, values
    within a few ulps of the output dtype, scaled by the magnitudes involved."""
    got_np = arrays.to_numpy(got)
    assert got_np.dtype == want.dtype, f"{context}: dtype {got_np.dtype} != reference {want.dtype}"
    assert got_np.shape == want.shape, f"{context}: shape {got_np.shape} != reference {want.shape}"
    if op == "max" or want.dtype.kind in "iu":
        assert np.array_equal(got_np, want, equal_nan=want.dtype.kind == "f"), \
            f"{context}: max pooling differs from the reference\n got={got_np}\nwant={want}"
        return
    g, r = got_np.astype(np.float64), want.astype(np.float64)
    assert np.array_equal(np.isnan(g), np.isnan(r)), f"{context}: NaN pattern differs\n got={g}\nwant={r}"
    finite = np.isfinite(r)
    assert np.array_equal(g[~finite & ~np.isnan(r)], r[~finite & ~np.isnan(r)]), f"{context}: inf differs"
    eps = float(np.finfo(want.dtype).eps)
    tol = 4 * eps * (1.0 + np.abs(r[finite]))
    err = np.abs(g[finite] - r[finite])
    assert np.all(err <= tol), f"{context}: avg pooling off by {err.max()} (tol {tol.max()})\n got={g}\nwant={r}"


def pool_backend_variants(op: str) -> list[tuple[str, str | None]]:
    """(backend, variant) pairs that can run ``op`` in this process; variant None = default.

    A backend's pooling variants are its ``POOL_VARIANTS`` (all tested); backends that only
    declare ``VARIANTS`` are tested with their default variant."""
    pairs: list[tuple[str, str | None]] = []
    for name, info in available_backends().items():
        if not info.available or op not in info.ops:
            continue
        module = get_backend(name, op)
        variants = getattr(module, "POOL_VARIANTS", None) if op != "matmul" else getattr(module, "MATMUL_VARIANTS", None)
        pairs += [(name, v) for v in variants] if variants else [(name, None)]
    return pairs


def check_pool(case: PoolCase, op: str, backend: str, variant: str | None = None) -> None:
    """Run ``case`` through the public API on ``backend`` and compare with the reference."""
    fn = api.maxpool2d if op == "max" else api.avgpool2d
    if op == "avg" and case.x.dtype.kind in "iu":
        return  # refused by the API (tested in test_kernels_errors.py)
    module = get_backend(backend, f"{op}pool2d")
    kwargs = case.kwargs(op)
    if kwargs.get("divisor_override") is not None and not api._accepts(module.pool2d, "divisor_override"):
        kwargs["divisor_override"] = None
        case = PoolCase(case.x, case.kernel, case.stride, case.padding, case.ceil_mode,
                        case.count_include_pad, None)
    got = fn(case.x, **kwargs, backend=backend, variant=variant)
    assert isinstance(got, np.ndarray), f"{backend}: NumPy in must give NumPy out, got {type(got)}"
    assert_pool_close(got, reference(case, op), op, f"backend={backend} variant={variant}")
