"""Pure functions on a sweep's numbers: ``time = a + b * batch`` fits and the throughput knee.

Why ``numpy.polynomial.Polynomial.fit``: a degree-1 least-squares fit is all we need, and
NumPy's is well kept and already a dependency. The fit is *relative* (weights ``1/t``):
batch sizes span three decades, and an ordinary fit would be decided by the largest
batches alone, leaving the fixed cost ``a`` (what batch 1 pays) as noise; weighting each
point by ``1/t`` minimises relative residuals, so small and large batches count alike.
``r2`` is the ordinary coefficient of determination of the fitted line.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
from numpy.polynomial import Polynomial


@dataclass(frozen=True)
class LinearFit:
    """``time_s = fixed_s + per_image_s * batch`` over ``n_points`` batch sizes."""

    fixed_s: float
    per_image_s: float
    r2: float | None
    n_points: int
    batch_min: int
    batch_max: int

    def predict(self, batch: float) -> float:
        return self.fixed_s + self.per_image_s * batch

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def fit_linear(batches: Sequence[float], times_s: Sequence[float]) -> LinearFit:
    """Fit ``a + b * batch``; needs two distinct batch sizes; NaN/None points are dropped."""
    pairs = [(float(b), float(t)) for b, t in zip(batches, times_s)
             if b is not None and t is not None and math.isfinite(float(t))]
    if len({b for b, _ in pairs}) < 2:
        raise ValueError(f"fit_linear: need at least 2 distinct batch sizes with times, got {len(pairs)} point(s)")
    x = np.array([b for b, _ in pairs])
    y = np.array([t for _, t in pairs])
    weights = 1.0 / y if np.all(y > 0) else None
    coef = Polynomial.fit(x, y, deg=1, w=weights).convert().coef
    a, b = float(coef[0]), float(coef[1]) if len(coef) > 1 else 0.0
    residual = float(np.sum((y - (a + b * x)) ** 2))
    spread = float(np.sum((y - y.mean()) ** 2))
    r2 = None if spread == 0.0 else 1.0 - residual / spread
    return LinearFit(fixed_s=float(a), per_image_s=float(b), r2=r2, n_points=len(pairs),
                     batch_min=int(x.min()), batch_max=int(x.max()))


def batch_reaching_fraction_of_peak(batches: Sequence[int], images_per_s: Sequence[float],
                                    fraction: float = 0.9) -> tuple[int, float, int]:
    """(smallest batch with images/s >= fraction * peak, peak images/s, batch of the peak)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction={fraction}: must be in (0, 1]")
    pairs = sorted((int(b), float(r)) for b, r in zip(batches, images_per_s) if r is not None and r > 0)
    if not pairs:
        raise ValueError("batch_reaching_fraction_of_peak: no batch with a positive throughput")
    peak_batch, peak = max(pairs, key=lambda p: p[1])
    knee = next(b for b, r in pairs if r >= fraction * peak)
    return knee, peak, peak_batch
