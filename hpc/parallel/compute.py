"""Local pooling of one rank's block: run the kernel API so the rows equal the global ones."""
from __future__ import annotations

from typing import Any

import numpy as np

from hpc.kernels import api
from hpc.kernels.geometry import PoolGeometry

from .decomposition import LocalPlan


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
    ((P, plan.local_rows, W): lead filler rows then the halo), C-contiguous."""
    result = pool_planes(local, geom, op, backend, count_include_pad, divisor_override, plan.pad_h)
    rows = result[:, plan.skip: plan.skip + plan.out_rows, :]
    if rows.shape[1] != plan.out_rows:  # a bug in the plan, never the user's fault
        raise AssertionError(f"local pooling gave {result.shape[1]} rows, plan needs "
                             f"[{plan.skip}, {plan.skip + plan.out_rows})")
    return np.ascontiguousarray(rows)
