"""Pooling and matmul kernels on every backend (NumPy reference, numba CPU, numba.cuda,
CuPy, torch, OpenCL, and the study's original method) behind one API.

``maxpool2d``/``avgpool2d`` follow torch.nn.functional semantics; ``matmul`` is a 2-D
product; ``available_backends()`` says which backends run here and, if not, why.
"""
from .api import avgpool2d, matmul, maxpool2d
from .registry import BackendUnavailableError, available_backends

__all__ = ["maxpool2d", "avgpool2d", "matmul", "available_backends", "BackendUnavailableError"]
