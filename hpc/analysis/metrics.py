"""Scaling and roofline arithmetic as pure functions (numbers in, numbers out).

Kept free of pandas and I/O so each formula can be unit-tested against values worked out
by hand, and so the report, the notebooks and the tests all use one definition of
"efficiency" or "parallel fraction" instead of three slightly different ones.

Conventions
-----------
* ``n`` / ``ranks``: number of processing elements (MPI ranks, DDP ranks).
* Strong scaling: fixed total problem; ``speedup = t1 / tn``, ``efficiency = speedup / n``.
* Weak scaling: fixed problem *per rank*; ideal time stays constant, so
  ``efficiency = t1 / tn`` and the scaled speed-up is ``n * t1 / tn``.
* Amdahl: ``S(n) = 1 / ((1 - f) + f / n)`` with parallel fraction ``f``.
* Gustafson: ``S(n) = (1 - f) + f * n`` (scaled speed-up) with parallel fraction ``f``.
* Karp-Flatt: experimentally determined serial fraction
  ``e = (1/S - 1/n) / (1 - 1/n)`` for ``n > 1``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np


def _positive(value: float, name: str) -> float:
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}={value!r}: must be a finite positive number")
    return value


def _ranks(n: float, name: str = "n") -> float:
    n = float(n)
    if not math.isfinite(n) or n < 1:
        raise ValueError(f"{name}={n!r}: number of ranks must be >= 1")
    return n


def _fraction(f: float, name: str = "parallel_fraction") -> float:
    f = float(f)
    if not math.isfinite(f) or f < 0 or f > 1:
        raise ValueError(f"{name}={f!r}: must lie in [0, 1]")
    return f


def speedup(t_base: float, t_n: float) -> float:
    """Strong-scaling speed-up ``t_base / t_n`` (also CPU-vs-GPU: t_cpu / t_gpu)."""
    return _positive(t_base, "t_base") / _positive(t_n, "t_n")


def strong_efficiency(t1: float, tn: float, n: float, n_base: float = 1) -> float:
    """Parallel efficiency for a fixed total problem: ``(t1 * n_base) / (tn * n)``.

    ``n_base`` lets a sweep whose smallest run used more than one rank be normalised to it
    (efficiency 1 at ``n_base``), which is what a report can honestly say without a
    1-rank run.
    """
    return (_positive(t1, "t1") * _ranks(n_base, "n_base")) / (_positive(tn, "tn") * _ranks(n))


def weak_efficiency(t1: float, tn: float) -> float:
    """Parallel efficiency for a fixed problem per rank: ideal ``tn == t1``, so ``t1 / tn``."""
    return _positive(t1, "t1") / _positive(tn, "tn")


def weak_scaled_speedup(t1: float, tn: float, n: float) -> float:
    """Gustafson's scaled speed-up measured from a weak-scaling run: ``n * t1 / tn``."""
    return _ranks(n) * weak_efficiency(t1, tn)


def karp_flatt(speedup_n: float, n: float) -> float:
    """Karp-Flatt experimentally determined serial fraction ``(1/S - 1/n) / (1 - 1/n)``.

    Undefined for ``n == 1`` (no parallelism to measure), hence ValueError there.
    A serial fraction that grows with ``n`` points at overhead (communication, imbalance)
    rather than inherently serial code.
    """
    n = _ranks(n)
    if n == 1:
        raise ValueError("n=1: Karp-Flatt serial fraction needs more than one rank")
    s = _positive(speedup_n, "speedup")
    return (1.0 / s - 1.0 / n) / (1.0 - 1.0 / n)


def amdahl_speedup(parallel_fraction: float, n: float) -> float:
    """Amdahl's law ``1 / ((1 - f) + f / n)``.

    The study's f = 0.6121 gives S(2) = 1 / (0.3879 + 0.30605) = 1.441.
    """
    f = _fraction(parallel_fraction)
    n = _ranks(n)
    return 1.0 / ((1.0 - f) + f / n)


def amdahl_limit(parallel_fraction: float) -> float:
    """Upper bound on speed-up for infinitely many ranks: ``1 / (1 - f)`` (inf for f = 1)."""
    f = _fraction(parallel_fraction)
    return math.inf if f == 1 else 1.0 / (1.0 - f)


def gustafson_speedup(parallel_fraction: float, n: float) -> float:
    """Gustafson's scaled speed-up ``(1 - f) + f * n``."""
    f = _fraction(parallel_fraction)
    return (1.0 - f) + f * _ranks(n)


@dataclass(frozen=True)
class FractionFit:
    """A least-squares fit of a parallel fraction to measured speed-ups.

    ``rmse`` is in speed-up units over all points used; ``points`` counts them.
    """

    parallel_fraction: float
    rmse: float
    points: int

    @property
    def serial_fraction(self) -> float:
        return 1.0 - self.parallel_fraction


def _fit_inputs(ranks: Sequence[float], speedups: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    n = np.asarray(ranks, dtype=float)
    s = np.asarray(speedups, dtype=float)
    if n.shape != s.shape or n.ndim != 1:
        raise ValueError(f"ranks and speedups must be 1-D and equally long (got {n.shape} and {s.shape})")
    if n.size == 0:
        raise ValueError("ranks: no points to fit")
    if not np.all(np.isfinite(n)) or np.any(n < 1):
        raise ValueError(f"ranks={n.tolist()}: every rank count must be >= 1")
    if not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise ValueError(f"speedups={s.tolist()}: every speed-up must be finite and positive")
    if not np.any(n > 1):
        raise ValueError("ranks: need at least one point with more than one rank to fit a fraction")
    return n, s


def fit_amdahl(ranks: Sequence[float], speedups: Sequence[float]) -> FractionFit:
    """Least-squares parallel fraction ``f`` of Amdahl's law to strong-scaling speed-ups.

    Minimises ``sum (S_i - 1/((1-f) + f/n_i))^2`` over ``f`` in [0, 1] (residuals in
    speed-up units, the quantity that was measured). The objective is smooth and
    one-dimensional, so a bounded scalar minimisation finds the optimum; superlinear
    data clamps at f = 1 and sub-unity speed-ups clamp at f = 0.
    """
    from scipy.optimize import minimize_scalar

    n, s = _fit_inputs(ranks, speedups)

    def sse(f: float) -> float:
        return float(np.sum((s - 1.0 / ((1.0 - f) + f / n)) ** 2))

    res = minimize_scalar(sse, bounds=(0.0, 1.0), method="bounded",
                          options={"xatol": 1e-12})
    f = float(res.x)
    # The bounded method never evaluates the bounds exactly; check them explicitly.
    for edge in (0.0, 1.0):
        if sse(edge) < sse(f):
            f = edge
    return FractionFit(parallel_fraction=f, rmse=math.sqrt(sse(f) / n.size), points=int(n.size))


def fit_gustafson(ranks: Sequence[float], scaled_speedups: Sequence[float]) -> FractionFit:
    """Least-squares parallel fraction of Gustafson's law to weak-scaling scaled speed-ups.

    ``S - 1 = f (n - 1)`` is linear in ``f``: closed form ``f = sum(x y) / sum(x^2)`` with
    ``x = n - 1``, ``y = S - 1``, clamped to [0, 1].
    """
    n, s = _fit_inputs(ranks, scaled_speedups)
    x, y = n - 1.0, s - 1.0
    f = float(np.clip(np.dot(x, y) / np.dot(x, x), 0.0, 1.0))
    pred = (1.0 - f) + f * n
    return FractionFit(parallel_fraction=f, rmse=float(np.sqrt(np.mean((s - pred) ** 2))),
                       points=int(n.size))


def bound_fraction(achieved: float, bound: float) -> float:
    """Achieved / bound, e.g. GB/s over the same-run copy bandwidth, or GFLOP/s over BLAS."""
    if float(bound) <= 0 or not math.isfinite(float(bound)):
        raise ValueError(f"bound={bound!r}: must be a finite positive number")
    achieved = float(achieved)
    if achieved < 0 or not math.isfinite(achieved):
        raise ValueError(f"achieved={achieved!r}: must be finite and non-negative")
    return achieved / float(bound)


def bandwidth_fraction(bandwidth_gbs: float, copy_bound_gbs: float) -> float:
    """Kernel bandwidth as a fraction of a plain copy of the same bytes in the same run."""
    return bound_fraction(bandwidth_gbs, copy_bound_gbs)


def gflops_fraction(gflops: float, blas_gflops: float) -> float:
    """Matmul GFLOP/s as a fraction of BLAS/cuBLAS measured in the same run."""
    return bound_fraction(gflops, blas_gflops)


def bandwidth_gbs(bytes_moved: float, seconds: float) -> float:
    """Bytes over seconds in GB/s (1 GB = 1e9 bytes, as STREAM and vendors quote it)."""
    return float(bytes_moved) / _positive(seconds, "seconds") / 1e9


def matmul_gflops(m: int, n: int, k: int, seconds: float) -> float:
    """GFLOP/s of an (m x k) @ (k x n) product counting 2*m*n*k floating-point operations."""
    return 2.0 * m * n * k / _positive(seconds, "seconds") / 1e9


def cpu_gpu_speedup(t_cpu: float, t_gpu: float) -> float:
    """How many times faster the GPU run was: ``t_cpu / t_gpu`` (same work on both)."""
    return speedup(t_cpu, t_gpu)


def load_imbalance(per_rank_times: Sequence[float]) -> float:
    """max / mean of per-rank times: 1.0 is perfectly balanced."""
    t = np.asarray(per_rank_times, dtype=float)
    if t.size == 0:
        raise ValueError("per_rank_times: empty")
    if not np.all(np.isfinite(t)) or np.any(t < 0):
        raise ValueError(f"per_rank_times={t.tolist()}: must be finite and non-negative")
    mean = float(t.mean())
    if mean == 0:
        raise ValueError("per_rank_times: all zero, imbalance undefined")
    return float(t.max()) / mean
