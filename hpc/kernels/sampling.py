"""How a benchmark point is sampled on the host: warm up until settled, interleave the
kernel with its bound, summarise with the spread, flag wide spreads.

Why each step (measured on the 2-vCPU VM, see docs/benchmarks/kernels-cpu.md):
- *Warm-up until settled*, not a fixed count: the first calls of a point pay JIT
  compilation, numba's thread-pool start-up and the first touch of fresh pages (on this
  VM a page the hypervisor has reclaimed costs ~1-3 ms per MiB on first touch, 30-100x
  the write itself), and how many calls that takes depends on the process's history.
  Calls are repeated until at least ``min_calls`` and ``min_time_s`` have passed and the
  last ``window`` timings agree within ``settle_rtol`` (or ``max_time_s`` runs out, which
  the record says: ``warmup_settled`` False).
- *Interleaved bound*: the kernel and the copy (its bound) are timed in alternating,
  randomly ordered pairs in the same rounds, so a load change on a shared machine hits
  both and their ratio stays meaningful.
- *Spread*: min, quartiles, median, max; ``rel_iqr`` = IQR / median; ``spread_flag`` is
  True when ``rel_iqr`` exceeds ``SPREAD_FLAG_REL_IQR``: such a point's median is not to
  be trusted, and the table marks it.
"""
from __future__ import annotations

import random
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable

SPREAD_FLAG_REL_IQR = 0.25
"""IQR / median above which a point is flagged as too noisy (``spread_flag``)."""

Timer = Callable[[Callable[[], Any]], float]


def wall_timer(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def summarize(samples: list[float]) -> dict[str, Any]:
    """Median and spread of timing samples (seconds), with the noise flag."""
    if not samples:
        raise ValueError("summarize: no samples")
    xs = sorted(samples)
    if len(xs) > 1:
        q1, _, q3 = statistics.quantiles(xs, n=4, method="inclusive")
    else:
        q1 = q3 = xs[0]
    median = statistics.median(xs)
    rel = (q3 - q1) / median if median > 0 else 0.0
    return {"median_s": median, "iqr_s": q3 - q1, "q1_s": q1, "q3_s": q3, "min_s": xs[0],
            "max_s": xs[-1], "rel_iqr": rel, "spread_flag": rel > SPREAD_FLAG_REL_IQR}


def settled(timings: list[float], window: int, rtol: float) -> bool:
    """True when the last ``window`` timings lie within ``rtol`` of their minimum."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if len(timings) < window:
        return False
    last = timings[-window:]
    lo = min(last)
    return lo > 0 and (max(last) - lo) / lo <= rtol


@dataclass(frozen=True)
class WarmupPolicy:
    """When a point counts as warm: at least ``min_calls`` calls (and ``window`` calls, the
    settling test needs them) and ``min_time_s``, and the last ``window`` timings within
    ``settle_rtol``; or ``max_time_s`` is spent. ``min_calls=0``: no warm-up call at all
    (beyond ``min_time_s``)."""

    min_calls: int = 2
    min_time_s: float = 0.2
    max_time_s: float = 10.0
    window: int = 3
    settle_rtol: float = 0.15

    def __post_init__(self) -> None:
        if self.min_calls < 0:
            raise ValueError(f"warm-up min_calls must be >= 0, got {self.min_calls}")
        if not 0 <= self.min_time_s <= self.max_time_s:
            raise ValueError(f"warm-up times must satisfy 0 <= min_time_s <= max_time_s, got "
                             f"{self.min_time_s} and {self.max_time_s}")


def warm_up(fn: Callable[[], Any], policy: WarmupPolicy, timer: Timer = wall_timer) -> dict[str, Any]:
    """Call ``fn`` until warm (see WarmupPolicy); what happened, for the record."""
    timings: list[float] = []
    t_start = time.perf_counter()
    need = max(policy.min_calls, policy.window) if policy.min_calls > 0 else 0
    while True:
        elapsed = time.perf_counter() - t_start
        enough = (len(timings) >= need and elapsed >= policy.min_time_s
                  and (need == 0 or settled(timings, policy.window, policy.settle_rtol)))
        if enough or (elapsed >= policy.max_time_s and len(timings) >= policy.min_calls):
            break
        timings.append(timer(fn))
    return {"warmup_calls": len(timings), "warmup_s": time.perf_counter() - t_start,
            "warmup_settled": bool(enough), "warmup_first_s": timings[0] if timings else None}


def interleaved(fns: dict[str, Callable[[], Any]], repeats: int, timers: dict[str, Timer] | None = None,
                seed: int = 0) -> dict[str, list[float]]:
    """Time every function once per round, in a random order each round, ``repeats`` rounds."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    timers = timers or {}
    rng = random.Random(seed)
    names = list(fns)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(repeats):
        rng.shuffle(names)
        for name in names:
            samples[name].append(timers.get(name, wall_timer)(fns[name]))
    return samples
