"""Bad parameters raise specific errors that name the parameter, once, in the API - and
wherever torch defines the case, torch rejects it too (so we are not stricter or laxer)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hpc.kernels import BackendUnavailableError, avgpool2d, matmul, maxpool2d
from hpc.kernels.registry import available_backends

X = np.zeros((1, 1, 6, 6), dtype=np.float32)


@pytest.mark.parametrize("kwargs,match", [
    (dict(kernel_size=2, stride=0), "stride"),
    (dict(kernel_size=0), "kernel_size"),
    (dict(kernel_size=2, padding=2), "padding"),
    (dict(kernel_size=3, padding=2), "padding"),
    (dict(kernel_size=(3, 2), padding=(1, 2)), "padding"),
    (dict(kernel_size=2, padding=-1), "padding"),
    (dict(kernel_size=7), "kernel_size"),
    (dict(kernel_size=(1, 9), padding=(0, 1)), "kernel_size"),
])
@pytest.mark.parametrize("fn,tfn", [(maxpool2d, F.max_pool2d), (avgpool2d, F.avg_pool2d)])
def test_bad_geometry_like_torch(kwargs, match, fn, tfn) -> None:
    with pytest.raises(ValueError, match=match):
        fn(X, **kwargs)
    with pytest.raises((RuntimeError, ValueError)):
        tfn(torch.from_numpy(X), **kwargs)


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(kernel_size=2.0), TypeError, "kernel_size"),
    (dict(kernel_size=(2, 2, 2)), TypeError, "kernel_size"),
    (dict(kernel_size=2, stride="1"), TypeError, "stride"),
    (dict(kernel_size=True), TypeError, "kernel_size"),
])
def test_bad_parameter_types(kwargs, exc, match) -> None:
    with pytest.raises(exc, match=match):
        maxpool2d(X, **kwargs)


@pytest.mark.parametrize("shape", [(6,), (1, 1, 1, 6, 6), ()])
def test_wrong_ndim(shape) -> None:
    with pytest.raises(ValueError, match="x must be 2-D"):
        maxpool2d(np.zeros(shape, np.float32), 2)


def test_empty_spatial_dims() -> None:
    with pytest.raises(ValueError, match="non-empty spatial"):
        maxpool2d(np.zeros((3, 0, 5), np.float32), 2)


@pytest.mark.parametrize("dtype", [np.complex64, np.bool_, np.uint16, np.float128 if hasattr(np, "float128") else np.object_])
def test_unsupported_dtype(dtype) -> None:
    with pytest.raises(TypeError, match="dtype"):
        maxpool2d(np.zeros((4, 4), dtype=dtype), 2)


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16", "int32", "int64"])
def test_integer_avg_pooling_is_refused(dtype) -> None:
    with pytest.raises(TypeError, match="convert to a float dtype"):
        avgpool2d(np.zeros((4, 4), dtype=dtype), 2)


def test_torch_bfloat16_is_refused() -> None:
    with pytest.raises(TypeError, match="bfloat16"):
        maxpool2d(torch.zeros(4, 4, dtype=torch.bfloat16), 2)


def test_not_an_array() -> None:
    with pytest.raises(TypeError, match="x must be a NumPy array"):
        maxpool2d([[1.0, 2.0], [3.0, 4.0]], 2)


def test_divisor_override_zero_like_torch() -> None:
    with pytest.raises(ValueError, match="divisor_override"):
        avgpool2d(X, 2, divisor_override=0)
    with pytest.raises(RuntimeError, match="divisor"):
        F.avg_pool2d(torch.from_numpy(X), 2, divisor_override=0)


def test_unknown_backend() -> None:
    with pytest.raises(ValueError, match="backend='nope' is not a known backend"):
        maxpool2d(X, 2, backend="nope")


def test_unavailable_backend_says_why() -> None:
    missing = [n for n, i in available_backends().items() if not i.available]
    if not missing:
        pytest.skip("every backend is available on this machine")
    name = missing[0]
    with pytest.raises(BackendUnavailableError, match=f"backend='{name}' is not available here: .+"):
        maxpool2d(X, 2, backend=name)


def test_backend_without_the_op() -> None:
    with pytest.raises(ValueError, match="does not implement avgpool2d"):
        avgpool2d(X, 2, backend="study")


def test_unknown_variant() -> None:
    with pytest.raises(ValueError, match="variant='ndrange'"):
        maxpool2d(X, 2, backend="numba", variant="ndrange")


def test_unknown_opencl_variant() -> None:
    from hpc.kernels.registry import backend_info
    info = backend_info("opencl")
    if not info.available:
        pytest.skip(f"OpenCL (PoCL) is not available here: {info.reason}")
    with pytest.raises(ValueError, match="variant='fast' is not a variant of backend='opencl'"):
        maxpool2d(X, 2, backend="opencl", variant="fast")


@pytest.mark.parametrize("a,b,exc,match", [
    (np.zeros((2, 3)), np.zeros((4, 2)), ValueError, "cannot be multiplied"),
    (np.zeros((2, 3, 1)), np.zeros((3, 2)), ValueError, "a must be 2-D"),
    (np.zeros((2, 3)), np.zeros(3), ValueError, "b must be 2-D"),
    (np.zeros((2, 3), np.float32), np.zeros((3, 2)), TypeError, "same dtype"),
    (np.zeros((2, 3), np.int32), np.zeros((3, 2), np.int32), TypeError, "dtype int32"),
    (np.zeros((2, 3)), torch.zeros(3, 2, dtype=torch.float64), TypeError, "same kind"),
    (np.zeros((0, 3)), np.zeros((3, 2)), ValueError, "non-empty"),
])
def test_matmul_errors(a, b, exc, match) -> None:
    with pytest.raises(exc, match=match):
        matmul(a, b)
