"""torch backend: ``F.max_pool2d`` / ``F.avg_pool2d`` / ``torch.matmul``, the baseline a
user would reach for. Runs where the data is: CUDA tensors on their GPU, everything host-side
(NumPy, CPU tensors) on the CPU; CuPy / numba.cuda arrays go to torch CUDA zero-copy.

Integer max pooling: torch CPU implements it for every integer dtype; torch CUDA implements
max_pool2d for floating types only, so on CUDA integer inputs are pooled through a float64
round trip. That is exact for int8/uint8/int16/int32 (|x| < 2**53); int64 values beyond
2**53 in magnitude would be rounded, so int64 on CUDA is refused with a TypeError rather
than silently wrong. Average pooling of integers never reaches a backend (see api).
"""
from __future__ import annotations

from typing import Any

from . import arrays
from .geometry import PoolGeometry

NAME = "torch"
DEVICE_KIND = "cpu"  # and "cuda" when the input is on a GPU
OPS = frozenset({"maxpool2d", "avgpool2d", "matmul"})

_EXACT_IN_FLOAT64 = ("torch.int8", "torch.uint8", "torch.int16", "torch.int32")


def probe() -> tuple[bool, str, str]:
    try:
        import torch
    except Exception as exc:  # ImportError, or a broken install
        return False, f"torch not importable: {exc}", ""
    # the torch backend runs on the tensors' device; a CPU run is a CPU run (torch:cuda is
    # benchmarked as its own target and records its CUDA device itself)
    return True, "", f"CPU ({torch.get_num_threads()} threads, torch {torch.__version__})"


def _as_tensor(x: Any) -> Any:
    return arrays.to_torch(x)


def pool2d(x: Any, geom: PoolGeometry, op: str, count_include_pad: bool,
           divisor_override: int | None = None) -> Any:
    import torch
    import torch.nn.functional as F
    t = _as_tensor(x)
    if op == "max":
        if t.is_cuda and not t.is_floating_point():
            if str(t.dtype) not in _EXACT_IN_FLOAT64:
                raise TypeError(f"backend='torch': max pooling of {t.dtype} on CUDA would go "
                                f"through float64 and lose precision beyond 2**53")
            out = F.max_pool2d(t.to(torch.float64), geom.kernel, geom.stride, geom.padding,
                               ceil_mode=geom.ceil_mode)
            return out.to(t.dtype)
        return F.max_pool2d(t, geom.kernel, geom.stride, geom.padding, ceil_mode=geom.ceil_mode)
    return F.avg_pool2d(t, geom.kernel, geom.stride, geom.padding, ceil_mode=geom.ceil_mode,
                        count_include_pad=count_include_pad, divisor_override=divisor_override)


def matmul(a: Any, b: Any) -> Any:
    import torch
    return torch.matmul(_as_tensor(a), _as_tensor(b))
