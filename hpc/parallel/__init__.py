"""Distributed pooling and matmul over mpi4py ranks, and the scaling driver (``hpc scale``).

The public functions are imported lazily, so ``hpc.parallel.decomposition`` (pure, no MPI)
can be used without initialising MPI.
"""
from __future__ import annotations

from typing import Any

__all__ = ["distributed_maxpool2d", "distributed_avgpool2d", "distributed_matmul"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import api
        return getattr(api, name)
    raise AttributeError(f"module 'hpc.parallel' has no attribute {name!r}")
