"""Local pooling of one rank's block: run the kernel API so the rows equal the global ones.

GPU ranks (backends ``numba-cuda``, ``cupy``) move their block to the device with
``to_device`` and the result back with ``to_host``, which the distributed algorithms time as
their own phases (``h2d``, ``d2h``), so the ``compute`` phase of a GPU rank is kernel time
on device-resident data, comparable with its device copy bound (``hpc.parallel.bandwidth``).
For host backends both are the identity (the phases then cost two barriers each).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from hpc.kernels import api
from hpc.kernels.geometry import PoolGeometry

from .decomposition import LocalPlan


GPU_BACKENDS = ("numba-cuda", "cupy")


def to_device(x: np.ndarray, backend: str) -> Any:
    """``x`` on the device of a GPU backend (synchronised, so the phase holds the copy)."""
    if backend not in GPU_BACKENDS:
        return x
    if backend == "cupy":
        import cupy
        xd = cupy.asarray(x)
        cupy.cuda.Device().synchronize()
        return xd
    from numba import cuda
    xd = cuda.to_device(np.ascontiguousarray(x))
    cuda.synchronize()
    return xd


def to_host(y: Any) -> np.ndarray:
    """A C-contiguous NumPy copy of a device result (synchronised); host arrays as they are."""
    if isinstance(y, np.ndarray):
        return np.ascontiguousarray(y)
    if hasattr(y, "copy_to_host"):  # numba device array (possibly a strided view)
        from numba import cuda
        if not y.is_c_contiguous():
            y = _numba_contiguous(y)
        host = y.copy_to_host()
        cuda.synchronize()
        return np.ascontiguousarray(host)
    import cupy
    return cupy.asnumpy(cupy.ascontiguousarray(y))


def _numba_contiguous(y: Any) -> Any:
    """A contiguous device copy of a strided numba view (3-D row slices of the result)."""
    from numba import cuda
    out = cuda.device_array(y.shape, dtype=y.dtype)
    for p in range(y.shape[0]):  # each plane's row range is contiguous
        out[p].copy_to_device(y[p])
    return out


def pool_planes(x: np.ndarray, geom: PoolGeometry, op: str, backend: str,
                count_include_pad: bool = True, divisor_override: int | None = None,
                pad_h: int | None = None) -> np.ndarray:
    """Pool a (P, H, W) stack of planes with the global kernel/stride/column padding and
    row padding ``pad_h`` (default: the global one)."""
    padding = (geom.padding[0] if pad_h is None else pad_h, geom.padding[1])
    kwargs: dict[str, Any] = dict(kernel_size=geom.kernel, stride=geom.stride, padding=padding,
                                  ceil_mode=geom.ceil_mode, backend=backend)
    if op == "max":
        return api.maxpool2d(x, **kwargs)
    return api.avgpool2d(x, count_include_pad=count_include_pad,
                         divisor_override=divisor_override, **kwargs)


def pool_row_block(local: np.ndarray, geom: PoolGeometry, plan: LocalPlan, op: str, backend: str,
                   count_include_pad: bool = True, divisor_override: int | None = None) -> np.ndarray:
    """Output rows ``[plan.out_start, plan.out_stop)`` of every plane from ``local``
    ((P, plan.local_rows, W): lead filler rows then the halo); C-contiguous for host
    arrays, a device view for device arrays (``to_host`` makes it contiguous)."""
    result = pool_planes(local, geom, op, backend, count_include_pad, divisor_override, plan.pad_h)
    rows = result[:, plan.skip: plan.skip + plan.out_rows, :]
    if rows.shape[1] != plan.out_rows:  # a bug in the plan, never the user's fault
        raise AssertionError(f"local pooling gave {result.shape[1]} rows, plan needs "
                             f"[{plan.skip}, {plan.skip + plan.out_rows})")
    return rows if not isinstance(rows, np.ndarray) else np.ascontiguousarray(rows)
