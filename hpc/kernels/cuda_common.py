"""Small CUDA helpers shared by the numba-cuda, CuPy and study backends.

Why a module of its own: the three CUDA backends must agree on (a) how "is there a GPU?"
is answered, including numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``, which must
be set before ``numba.cuda`` is first imported), and (b) how a caller's array (NumPy,
numba device array, CuPy, torch CUDA) is viewed on the device without a copy and how a
result of the *same kind* is allocated, so "CuPy in, CuPy out" holds everywhere.
Nothing here imports numba/cupy/torch at module import time.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np


def simulator_enabled() -> bool:
    """True when numba.cuda runs (or will run) on its CPU simulator in this process."""
    try:
        from numba.cuda import config  # numba-cuda keeps its own config module
        return bool(config.ENABLE_CUDASIM)
    except Exception:  # pragma: no cover - very old numba
        return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def numba_cuda_probe() -> tuple[bool, str, str]:
    """(available, reason, device name) for numba.cuda; never raises.

    Under the simulator numba.cuda.is_available() is True; we report the device as
    the simulator so no benchmark figure can be mistaken for a GPU measurement.
    """
    try:
        from numba import cuda
    except Exception as exc:  # numba-cuda missing or broken
        return False, f"numba.cuda import failed: {exc}", ""
    try:
        if simulator_enabled():
            return True, "", "numba CUDA simulator (NUMBA_ENABLE_CUDASIM=1)"
        if not cuda.is_available():
            return False, "no CUDA GPU (numba.cuda.is_available() is False: no driver/device)", ""
        name = cuda.get_current_device().name
        return True, "", name.decode() if isinstance(name, bytes) else str(name)
    except Exception as exc:
        return False, f"no CUDA GPU ({type(exc).__name__}: {exc})", ""


def select_device(index: int) -> None:
    """Make GPU ``index`` current for numba.cuda (and CuPy/torch when present).

    The MPI layer maps node-local rank -> index; this only switches the device.
    Raises ValueError naming ``index`` when it is out of range.
    """
    from numba import cuda
    if simulator_enabled():
        if index != 0:
            raise ValueError(f"index={index}: the CUDA simulator has only device 0")
        return
    count = len(cuda.gpus)
    if not 0 <= index < count:
        raise ValueError(f"index={index}: this node has {count} CUDA device(s)")
    cuda.select_device(index)
    try:  # keep the other frameworks on the same GPU
        import cupy
        cupy.cuda.Device(index).use()
    except Exception:
        pass
    try:
        import torch
        if torch.cuda.is_available():
            torch.cuda.set_device(index)
    except Exception:
        pass


def array_kind(x: Any) -> str:
    """"numpy", "torch", "cupy" or "numba" (numba device array / other CUDA array)."""
    if isinstance(x, np.ndarray):
        return "numpy"
    mod = type(x).__module__.split(".")[0]
    if mod == "torch":
        return "torch" if x.is_cuda else "torch-cpu"
    if mod == "cupy":
        return "cupy"
    return "numba"


def to_numba_device(x: Any) -> tuple[Any, str]:
    """View (or, for host arrays, copy) ``x`` as a numba device array; returns (array, kind).

    Host arrays (NumPy, torch CPU) are copied in; CUDA arrays are wrapped zero-copy via
    ``__cuda_array_interface__``.
    """
    from numba import cuda
    kind = array_kind(x)
    if kind == "numpy":
        return cuda.to_device(np.ascontiguousarray(x)), kind
    if kind == "torch-cpu":
        return cuda.to_device(np.ascontiguousarray(x.detach().numpy())), kind
    if kind == "numba" and hasattr(x, "copy_to_host"):
        return x, kind  # already a numba device array (real or simulator)
    if kind == "torch":
        x = x.detach()  # a tensor that requires grad refuses __cuda_array_interface__
    return cuda.as_cuda_array(x), kind


def empty_like_kind(kind: str, like: Any, shape: tuple[int, ...], dtype: np.dtype) -> tuple[Any, Any]:
    """Allocate a device result of ``kind``; returns (result object, numba view of it)."""
    from numba import cuda
    if kind == "cupy":
        import cupy
        with cupy.cuda.Device(like.device.id):
            out = cupy.empty(shape, dtype=dtype)
        return out, cuda.as_cuda_array(out)
    if kind == "torch":
        import torch
        tdtype = getattr(torch, np.dtype(dtype).name)
        out = torch.empty(shape, dtype=tdtype, device=like.device)
        return out, cuda.as_cuda_array(out)
    out = cuda.device_array(shape, dtype=dtype)
    return out, out


def finish(kind: str, out: Any, view: Any) -> Any:
    """Return the result in the caller's array kind (copy back only for host inputs)."""
    if kind == "numpy":
        return view.copy_to_host()
    if kind == "torch-cpu":
        import torch
        return torch.from_numpy(view.copy_to_host())
    return out


def launch_blocks(needed: int, per_sm: int = 32) -> int:
    """Cap a 1-D block count for grid-stride kernels: enough to fill every SM, not more.

    The simulator runs blocks one after another in Python, so there we keep it tiny.
    """
    if simulator_enabled():
        return max(1, min(needed, 2))
    from numba import cuda
    try:
        sms = cuda.get_current_device().MULTIPROCESSOR_COUNT
    except Exception:
        sms = 80
    return max(1, min(needed, sms * per_sm))
