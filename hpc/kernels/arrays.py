"""Array kinds the kernels accept, and conversions between them.

The API promises "NumPy in, NumPy out; torch in, torch out; CuPy in, CuPy out". This module
is the only place that knows how to tell the kinds apart and move data between them. It never
imports torch, CuPy or numba.cuda unless an array of that kind is actually in hand (detection
looks at the type's module name), so ``import hpc.kernels`` stays cheap and works on machines
without those packages.

Kinds: ``"numpy"`` (``numpy.ndarray`` and subclasses), ``"torch"`` (``torch.Tensor``, CPU or
CUDA), ``"cupy"`` (``cupy.ndarray``), ``"numba"`` (numba.cuda device arrays).
"""
from __future__ import annotations

from typing import Any

import numpy as np

ARRAY_KINDS: tuple[str, ...] = ("numpy", "torch", "cupy", "numba")

# dtypes the pooling kernels accept (numpy names); avg pooling needs floating point.
FLOAT_DTYPES: tuple[str, ...] = ("float16", "float32", "float64")
INT_DTYPES: tuple[str, ...] = ("int8", "uint8", "int16", "int32", "int64")
POOL_DTYPES: tuple[str, ...] = FLOAT_DTYPES + INT_DTYPES
MATMUL_DTYPES: tuple[str, ...] = ("float32", "float64")


def array_kind(x: Any) -> str:
    """Which kind of array ``x`` is; ``TypeError`` for anything else (lists, scalars...)."""
    if isinstance(x, np.ndarray):
        return "numpy"
    module = type(x).__module__ or ""
    root = module.split(".", 1)[0]
    if root == "torch":
        import torch
        if isinstance(x, torch.Tensor):
            return "torch"
    elif root == "cupy" or root == "cupy_backends":
        import cupy
        if isinstance(x, cupy.ndarray):
            return "cupy"
    elif module.startswith("numba.cuda") or module.startswith("numba_cuda"):
        if hasattr(x, "copy_to_host"):  # the CUDA simulator's arrays lack the CAI
            return "numba"
    raise TypeError(f"x must be a NumPy array, torch tensor, CuPy array or numba.cuda device "
                    f"array, got {type(x).__module__}.{type(x).__qualname__}")


def is_on_gpu(x: Any) -> bool:
    """True when ``x``'s data lives in GPU memory."""
    kind = array_kind(x)
    if kind == "torch":
        return x.device.type == "cuda"
    return kind in ("cupy", "numba")


def dtype_name(x: Any) -> str:
    """NumPy-style dtype name of any supported array (``torch.float32`` -> ``"float32"``)."""
    kind = array_kind(x)
    if kind == "torch":
        return str(x.dtype).removeprefix("torch.")
    return np.dtype(x.dtype).name


def numpy_dtype(x: Any) -> np.dtype:
    """The NumPy dtype matching ``x``'s dtype; ``TypeError`` if NumPy has none (bfloat16)."""
    name = dtype_name(x)
    try:
        return np.dtype(name)
    except TypeError:
        raise TypeError(f"dtype {name} has no NumPy equivalent") from None


def to_numpy(x: Any) -> np.ndarray:
    """A host NumPy array with ``x``'s data (no copy for NumPy and CPU torch tensors)."""
    kind = array_kind(x)
    if kind == "numpy":
        return x
    if kind == "torch":
        t = x.detach()
        if t.device.type != "cpu":
            t = t.cpu()
        return t.numpy()
    if kind == "cupy":
        return x.get()
    return x.copy_to_host()


def to_torch(x: Any, device: Any = None) -> Any:
    """A torch tensor with ``x``'s data on ``device`` (default: where ``x`` already is;
    zero-copy between NumPy and CPU torch, and between CUDA kinds via DLPack/CAI)."""
    import torch
    kind = array_kind(x)
    if kind == "torch":
        t = x
    elif kind == "numpy":
        if not x.flags.writeable or any(st < 0 for st in x.strides):
            x = np.array(x, order="C")  # from_numpy refuses negative strides, warns on read-only
        t = torch.from_numpy(x)
    else:  # cupy or numba: both speak __cuda_array_interface__
        t = torch.as_tensor(x, device="cuda")
    return t if device is None else t.to(device)


def to_cupy(x: Any) -> Any:
    """A CuPy array with ``x``'s data (host data is copied to the current device)."""
    import cupy
    kind = array_kind(x)
    if kind == "cupy":
        return x
    if kind == "torch" and x.device.type == "cpu":
        return cupy.asarray(x.detach().numpy())
    if kind == "torch":
        return cupy.from_dlpack(x.detach())
    return cupy.asarray(x)  # numpy: host->device copy; numba: zero-copy via CAI


def to_numba_device(x: Any) -> Any:
    """A numba.cuda device array with ``x``'s data (zero-copy for CUDA-resident kinds)."""
    from numba import cuda
    kind = array_kind(x)
    if kind == "numba":
        return x
    if kind == "numpy" or (kind == "torch" and x.device.type == "cpu"):
        return cuda.to_device(np.ascontiguousarray(to_numpy(x)))
    return cuda.as_cuda_array(x.detach() if kind == "torch" else x)


def convert_like(result: Any, original: Any) -> Any:
    """``result`` as the same kind of array as ``original`` (and, for torch, on the same
    device): the API's "same kind out as in" promise in one call."""
    kind = array_kind(original)
    if kind == "numpy":
        return to_numpy(result)
    if kind == "torch":
        return to_torch(result, device=original.device)
    if kind == "cupy":
        return to_cupy(result)
    return to_numba_device(result)


def reshape(x: Any, shape: tuple[int, ...]) -> Any:
    """``x`` viewed (or, if it must, copied) with a new shape, for every kind.

    numba device arrays can only be reshaped when C-contiguous, which is what the API
    feeds them; the others reshape natively."""
    return x.reshape(shape)
