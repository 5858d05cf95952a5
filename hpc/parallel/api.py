"""Public API of ``hpc.parallel``: the kernels of ``hpc.kernels`` across MPI ranks.

Every function is collective: call it on every rank of ``comm``. With ``path="scatter"`` the
input is an array on rank 0 (other ranks pass ``None``) and the result comes back on rank 0
(``None`` elsewhere). With ``path="parallel-io"`` inputs are HDF5 dataset specs
(``"file.h5:/name"``) that every rank passes, ``out`` names the output dataset, and every
rank gets the output spec back. Each rank may pass a different ``backend`` (heterogeneous
runs); ``weights`` (same list on every rank, e.g. from ``calibration.calibrate``) makes
faster ranks take more rows. Results equal the single-process kernel exactly.
"""
from __future__ import annotations

from typing import Any, Sequence

from mpi4py import MPI

from . import matmul as _mm
from . import pooling as _pool
from .timing import PhaseTimer

IntOrPair = int | tuple[int, int]


def _check_path(path: str) -> None:
    if path not in _pool.PATHS:
        raise ValueError(f"path={path!r}: choose from {', '.join(_pool.PATHS)}")


def _distributed_pool(x: Any, op: str, kernel_size: IntOrPair, stride: IntOrPair | None,
                      padding: IntOrPair, ceil_mode: bool, count_include_pad: bool,
                      divisor_override: int | None, comm: Any, path: str, backend: str,
                      out: Any, weights: Sequence[float] | None, timer: PhaseTimer | None) -> Any:
    _check_path(path)
    comm = MPI.COMM_WORLD if comm is None else comm
    if path == "scatter":
        return _pool.pool_scatter(comm, x, op, kernel_size, stride, padding, ceil_mode,
                                  count_include_pad, divisor_override, backend, weights, timer)
    return _pool.pool_parallel_io(comm, x, out, op, kernel_size, stride, padding, ceil_mode,
                                  count_include_pad, divisor_override, backend, weights, timer)


def distributed_maxpool2d(x: Any, kernel_size: IntOrPair, stride: IntOrPair | None = None,
                          padding: IntOrPair = 0, ceil_mode: bool = False, comm: Any = None,
                          path: str = "scatter", backend: str = "auto", *, out: Any = None,
                          weights: Sequence[float] | None = None,
                          timer: PhaseTimer | None = None) -> Any:
    """Max pooling (torch semantics) of (H, W), (C, H, W) or (N, C, H, W) across ranks.

    ``comm`` defaults to ``MPI.COMM_WORLD``. Single planes are split by output rows (each
    rank reads its halo rows); batches over N, else N*C planes, else rows.
    """
    return _distributed_pool(x, "max", kernel_size, stride, padding, ceil_mode, True, None,
                             comm, path, backend, out, weights, timer)


def distributed_avgpool2d(x: Any, kernel_size: IntOrPair, stride: IntOrPair | None = None,
                          padding: IntOrPair = 0, ceil_mode: bool = False,
                          count_include_pad: bool = True, divisor_override: int | None = None,
                          comm: Any = None, path: str = "scatter", backend: str = "auto", *,
                          out: Any = None, weights: Sequence[float] | None = None,
                          timer: PhaseTimer | None = None) -> Any:
    """Average pooling (torch semantics, float input) across ranks; see distributed_maxpool2d."""
    return _distributed_pool(x, "avg", kernel_size, stride, padding, ceil_mode, count_include_pad,
                             divisor_override, comm, path, backend, out, weights, timer)


def distributed_matmul(a: Any, b: Any, comm: Any = None, path: str = "scatter",
                       backend: str = "auto", *, algorithm: str = "summa",
                       grid: tuple[int, int] | None = None, out: Any = None,
                       timer: PhaseTimer | None = None) -> Any:
    """``a @ b`` across ranks: ``algorithm="rows"`` (1-D row blocks, B broadcast) or
    ``"summa"`` (2-D grid, default the most square factorisation of the rank count)."""
    _check_path(path)
    if algorithm not in _mm.ALGORITHMS:
        raise ValueError(f"algorithm={algorithm!r}: choose from {', '.join(_mm.ALGORITHMS)}")
    comm = MPI.COMM_WORLD if comm is None else comm
    backend = "numpy" if backend == "auto" else backend
    if path == "scatter":
        return _mm.matmul_scatter(comm, a, b, algorithm, backend, grid, timer)
    return _mm.matmul_parallel_io(comm, a, b, out, algorithm, backend, grid, timer)
