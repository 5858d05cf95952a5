"""Public kernel API: ``maxpool2d``, ``avgpool2d``, ``matmul`` on any backend.

Semantics are those of ``torch.nn.functional.max_pool2d`` / ``avg_pool2d`` (dilation 1):
implicit padding counts as -inf for max and as 0 for avg, a window containing NaN gives NaN,
``ceil_mode`` may add a last partial window (never one starting in the right padding),
``count_include_pad`` and ``divisor_override`` choose the avg divisor exactly like torch.

Arguments are validated once here (so every backend sees the same, already-checked input
and every backend raises the same errors); the array is reshaped to 4-D (N, C, H, W), the
backend runs, and the result comes back reshaped and as the same kind of array as the input.

Decisions where torch is silent or inconsistent:
- Input ranks: (H, W) is accepted too (treated as one plane); torch wants 3-D or 4-D.
- Integer max pooling is supported for int8/uint8/int16/int32/int64 (torch CPU does too).
- Integer *average* pooling raises ``TypeError``: torch implements it for no integer dtype
  except int64 on CPU (with truncating division), so there is no consistent behaviour to
  copy; convert first, e.g. ``avgpool2d(x.astype(np.float32), 2)``.
- float16 average pooling accumulates in float32 or wider and rounds once at the end.
- Empty batches (N == 0 or C == 0) give an empty result, like torch; H == 0 or W == 0 is a
  ``ValueError``.
"""
from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from . import arrays
from .geometry import PoolGeometry, pool_geometry
from .registry import BackendUnavailableError, backend_info, get_backend

IntOrPair = int | tuple[int, int]

# backend="auto": preference per input array kind; the first available one that
# implements the op wins. Keeps data where it is (no implicit host<->device copies).
AUTO_PREFERENCE: dict[str, dict[str, tuple[str, ...]]] = {
    "pool": {
        "numpy": ("numba", "numpy"),
        "torch": ("torch",),
        "cupy": ("cupy", "numba-cuda", "torch"),
        "numba": ("numba-cuda", "cupy"),
    },
    "matmul": {
        "numpy": ("numpy", "numba"),
        "torch": ("torch",),
        "cupy": ("cupy", "numba-cuda", "torch"),
        "numba": ("numba-cuda", "cupy"),
    },
}


def auto_backend(x: Any, op: str) -> str:
    """Name of the best available backend for ``op`` on arrays of ``x``'s kind."""
    kind = arrays.array_kind(x)
    family = "matmul" if op == "matmul" else "pool"
    if kind == "torch" and x.device.type == "cuda":
        candidates: tuple[str, ...] = ("torch",)
    else:
        candidates = AUTO_PREFERENCE[family][kind]
    reasons = []
    for name in candidates:
        info = backend_info(name)
        if info.available and op in info.ops:
            return name
        reasons.append(f"{name}: {info.reason or 'does not implement ' + op}")
    raise BackendUnavailableError(f"backend='auto' found no available backend for {op} on "
                                  f"{kind} arrays ({'; '.join(reasons)})")


def _check_pool_input(x: Any, op_name: str, floating_only: bool) -> tuple[int, ...]:
    arrays.array_kind(x)  # TypeError for lists, scalars, unknown array types
    shape = tuple(int(d) for d in x.shape)
    if len(shape) not in (2, 3, 4):
        raise ValueError(f"{op_name}: x must be 2-D (H, W), 3-D (C, H, W) or 4-D (N, C, H, W), "
                         f"got a {len(shape)}-D array of shape {shape}")
    if shape[-1] == 0 or shape[-2] == 0:
        raise ValueError(f"{op_name}: x must have non-empty spatial dimensions (H, W), got shape {shape}")
    dtype = arrays.dtype_name(x)
    allowed = arrays.FLOAT_DTYPES if floating_only else arrays.POOL_DTYPES
    if dtype not in allowed:
        hint = ""
        if floating_only and dtype in arrays.INT_DTYPES:
            hint = (" (average pooling of integers is not defined consistently by torch; "
                    "convert to a float dtype first)")
        raise TypeError(f"{op_name}: x has dtype {dtype}; supported dtypes are "
                        f"{', '.join(allowed)}{hint}")
    return shape


def _resolve(backend: str, x: Any, op: str) -> tuple[str, Any]:
    if not isinstance(backend, str):
        raise TypeError(f"backend must be a backend name or 'auto', got {backend!r}")
    name = auto_backend(x, op) if backend == "auto" else backend
    return name, get_backend(name, op)


def _variant_kwargs(module: Any, name: str, variant: str | None, family: str) -> dict[str, str]:
    """Validate ``variant`` against the backend's ``POOL_VARIANTS``/``MATMUL_VARIANTS``
    (when a backend has variants for one family only) or its ``VARIANTS``."""
    if variant is None:
        return {}
    variants = getattr(module, f"{family.upper()}_VARIANTS", None)
    if variants is None:
        variants = getattr(module, "VARIANTS", None) or {}
    if variant not in variants:
        choices = ", ".join(variants) if variants else "none (it has a single kernel)"
        raise ValueError(f"variant={variant!r} is not a variant of backend={name!r}; choose from {choices}")
    return {"variant": variant}


def _accepts(func: Any, keyword: str) -> bool:
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False
    return keyword in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _plain_ints(value: Any) -> Any:
    """NumPy integer scalars -> int (shapes computed with NumPy are a common source), so
    ``geometry`` sees plain ints; anything else is left for it to validate."""
    if isinstance(value, (list, tuple)):
        return tuple(_plain_ints(v) for v in value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _pool(x: Any, op: str, kernel_size: IntOrPair, stride: IntOrPair | None, padding: IntOrPair,
          ceil_mode: bool, count_include_pad: bool, divisor_override: int | None,
          backend: str, variant: str | None, out: Any = None) -> Any:
    op_name = f"{op}pool2d"
    shape = _check_pool_input(x, op_name, floating_only=(op == "avg"))
    geom: PoolGeometry = pool_geometry(shape[-2], shape[-1], _plain_ints(kernel_size),
                                         _plain_ints(stride), _plain_ints(padding), bool(ceil_mode))
    kwargs: dict[str, Any] = {}
    if divisor_override is not None:
        if isinstance(divisor_override, bool) or not isinstance(divisor_override, int):
            raise TypeError(f"divisor_override must be an int or None, got {divisor_override!r}")
        if divisor_override == 0:
            raise ValueError("divisor_override must be non-zero (torch: 'divisor must be not zero')")
        kwargs["divisor_override"] = int(divisor_override)
    lead = shape[:-2]
    n, c = (1, 1) if not lead else (1, lead[0]) if len(lead) == 1 else lead
    out_shape = lead + (geom.out_h, geom.out_w)
    name, module = _resolve(backend, x, op_name)
    kwargs.update(_variant_kwargs(module, name, variant, "pool"))
    if "divisor_override" in kwargs and not _accepts(module.pool2d, "divisor_override"):
        raise ValueError(f"backend={name!r} does not support divisor_override")
    if out is not None:
        if not _accepts(module.pool2d, "out"):
            raise ValueError(f"backend={name!r} does not support out= (backends that do: numba)")
        if tuple(int(d) for d in out.shape) != out_shape:
            raise ValueError(f"{op_name}: out has shape {tuple(out.shape)}, expected {out_shape}")
        if isinstance(out, np.ndarray) and not out.flags.c_contiguous:
            raise ValueError(f"{op_name}: out must be C-contiguous (a reshaped copy would not "
                             f"receive the result)")
        kwargs["out"] = arrays.reshape(out, (n, c, geom.out_h, geom.out_w))
    if n * c == 0:  # empty batch: nothing to compute, answer with the right shape and kind
        from . import backend_numpy
        empty = backend_numpy.empty_result(x, out_shape)
        return arrays.convert_like(empty, x)
    x4 = arrays.reshape(x, (n, c, shape[-2], shape[-1]))
    result = module.pool2d(x4, geom, op, bool(count_include_pad), **kwargs)
    if out is not None:
        return out
    return arrays.convert_like(arrays.reshape(result, out_shape), x)


def maxpool2d(x: Any, kernel_size: IntOrPair, stride: IntOrPair | None = None,
              padding: IntOrPair = 0, ceil_mode: bool = False, backend: str = "auto",
              *, variant: str | None = None, out: Any = None) -> Any:
    """2-D max pooling with ``torch.nn.functional.max_pool2d`` semantics.

    ``x``: (H, W), (C, H, W) or (N, C, H, W) NumPy/torch/CuPy/numba.cuda array of a float or
    integer dtype. ``stride`` defaults to ``kernel_size``. ``backend``: a registry name or
    ``"auto"`` (best available for the input's array kind). ``variant``: a kernel variant of
    the chosen backend (see its ``VARIANTS``). Returns the same kind of array as ``x``.
    ``out``: a C-contiguous array of the result's shape and ``x``'s dtype to write into and
    return (backends with an ``out`` parameter only: numba), so repeated calls need not
    allocate and first-touch a fresh output each time.
    """
    return _pool(x, "max", kernel_size, stride, padding, ceil_mode, True, None, backend, variant, out)


def avgpool2d(x: Any, kernel_size: IntOrPair, stride: IntOrPair | None = None,
              padding: IntOrPair = 0, ceil_mode: bool = False, count_include_pad: bool = True,
              divisor_override: int | None = None, backend: str = "auto",
              *, variant: str | None = None, out: Any = None) -> Any:
    """2-D average pooling with ``torch.nn.functional.avg_pool2d`` semantics.

    Floating-point input only (see the module docstring for why integers are refused).
    ``count_include_pad``: whether implicit zero padding counts in the divisor;
    ``divisor_override``: a fixed non-zero divisor for every window. ``out``: as for
    ``maxpool2d``.
    """
    return _pool(x, "avg", kernel_size, stride, padding, ceil_mode, count_include_pad,
                 divisor_override, backend, variant, out)


def matmul(a: Any, b: Any, backend: str = "auto", variant: str | None = None) -> Any:
    """``a @ b`` for 2-D float32/float64 arrays of the same kind and dtype.

    Returns the same kind of array as ``a``. ``variant`` picks one of the backend's matmul
    kernels (e.g. numba-cuda "naive", "shared", "regblock").
    """
    kind_a, kind_b = arrays.array_kind(a), arrays.array_kind(b)
    if kind_a != kind_b:
        raise TypeError(f"matmul: a and b must be the same kind of array, got {kind_a} and {kind_b}")
    for label, m in (("a", a), ("b", b)):
        if len(m.shape) != 2:
            raise ValueError(f"matmul: {label} must be 2-D, got shape {tuple(m.shape)}")
        if 0 in tuple(m.shape):
            raise ValueError(f"matmul: {label} must be non-empty, got shape {tuple(m.shape)}")
        dtype = arrays.dtype_name(m)
        if dtype not in arrays.MATMUL_DTYPES:
            raise TypeError(f"matmul: {label} has dtype {dtype}; supported dtypes are "
                            f"{', '.join(arrays.MATMUL_DTYPES)}")
    if arrays.dtype_name(a) != arrays.dtype_name(b):
        raise TypeError(f"matmul: a and b must have the same dtype, got "
                        f"{arrays.dtype_name(a)} and {arrays.dtype_name(b)}")
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"matmul: a and b shapes cannot be multiplied "
                         f"({a.shape[0]}x{a.shape[1]} and {b.shape[0]}x{b.shape[1]})")
    name, module = _resolve(backend, a, "matmul")
    result = module.matmul(a, b, **_variant_kwargs(module, name, variant, "matmul"))
    return arrays.convert_like(result, a)
