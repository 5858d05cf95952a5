"""One batch-size sweep: a model on a backend, every batch size, one record per point.

For each (dtype, host memory) the sweep builds the network, measures the cold start once
(the first forward at batch 1 of a freshly prepared network, reported on its own as the
study did after removing it), then for each batch size, smallest first:

1. checks the memory estimate against the budget: a batch above it is recorded as
   ``skipped`` ("out of memory at N", with the cap) and the sweep goes on;
2. runs ``warmup`` untimed batches, ``repeats`` timed ones (wall clock, no profiler: the
   total per batch) and ``profiled_runs`` profiled ones (where the time goes), watching
   peak memory; a real out-of-memory error also becomes a ``skipped`` record;
3. appends an ``inference_batch`` record.

At the end an ``inference_sweep`` record carries the cold start, the fits
``time = a + b * batch`` of every component and of the total, the peak throughput and the
smallest batch reaching 90 % of it.
"""
from __future__ import annotations

import gc
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from hpc.inference import fits
from hpc.inference.backends import DTYPES, BackendUnavailable, StepTimes, get_backend, layers
from hpc.inference.networks import build, model_spec
from hpc.records import Record, new_record
from hpc.schema.inference import COMPONENTS

DEFAULT_BATCH_SIZES: tuple[int, ...] = tuple(2 ** i for i in range(11))   # 1 .. 1024
THROUGHPUT_FRACTION = 0.9
#: Safety factor on the per-image memory estimate (library workspaces, allocator slack).
MEMORY_SAFETY = 2.0


@dataclass
class SweepSettings:
    """Everything one sweep needs besides model and backend (experiment YAML or CLI)."""

    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES
    dtype: str = "float32"
    host_memory: str = "pageable"
    repeats: int = 3
    warmup: int = 1
    profiled_runs: int = 1
    seed: int = 0
    threads: int | None = None
    memory_budget_bytes: int | None = None
    weights: str | None = None
    experiment: str | None = None
    fraction: float = THROUGHPUT_FRACTION
    extra_params: dict = field(default_factory=dict)


def validate_batch_sizes(batch_sizes: Sequence[int]) -> list[int]:
    """Sorted unique batch sizes; 0, negatives and non-integers are errors naming the value."""
    if not batch_sizes:
        raise ValueError("batch_sizes: empty; give at least one batch size >= 1")
    out = []
    for b in batch_sizes:
        if isinstance(b, bool) or not isinstance(b, (int, np.integer)) or int(b) < 1:
            raise ValueError(f"batch_sizes: {b!r} is not a batch size (must be an integer >= 1)")
        out.append(int(b))
    return sorted(set(out))


def per_image_bytes(model: torch.nn.Module, input_shape: Sequence[int], itemsize: int,
                    device_copy: bool) -> int:
    """Memory one more image needs during a forward: its input (twice with a device copy)
    plus the two largest consecutive layer outputs (a layer's input and output are alive
    together), from one batch-1 pass through the real layers."""
    x = torch.zeros((1, *input_shape))
    sizes = [x.numel()]
    with torch.inference_mode():
        for _, m in layers(model):
            x = m(x)
            sizes.append(x.numel())
    live = max(a + b for a, b in zip(sizes, sizes[1:]))
    inputs = sizes[0] * (2 if device_copy else 1)
    return int((inputs + live + sizes[-1]) * itemsize)


def memory_cap(batch_sizes: Sequence[int], per_image: int, fixed: int, budget: int) -> int | None:
    """The largest batch size whose estimate ``fixed + safety * per_image * batch`` fits."""
    fitting = [b for b in batch_sizes if fixed + MEMORY_SAFETY * per_image * b <= budget]
    return max(fitting) if fitting else None


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def _iqr(values: Sequence[float]) -> float:
    if len(values) < 2:
        return 0.0
    q1, q3 = np.percentile(values, [25, 75])
    return float(q3 - q1)


def _median_components(steps: Sequence[StepTimes]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for c in COMPONENTS:
        vals = [s.components.get(c) for s in steps]
        out[c] = None if any(v is None for v in vals) else _median([float(v) for v in vals])  # type: ignore[arg-type]
    return out


def run_sweep(model_name: str, backend_spec: str, settings: SweepSettings,
              emit: Callable[[Record], None] | None = None,
              log: Callable[[str], None] = lambda s: None) -> list[Record]:
    """Run one sweep; every record is passed to ``emit`` as soon as it exists and returned.

    Errors in the *request* (unknown model, bad batch size, wrong weights, unknown backend)
    raise before anything runs; a backend or variant that cannot run here yields one
    skipped ``inference_sweep`` record with the reason.
    """
    records: list[Record] = []

    def put(rec: Record) -> None:
        records.append(rec)
        if emit is not None:
            emit(rec)

    spec = model_spec(model_name)
    batch_sizes = validate_batch_sizes(settings.batch_sizes)
    if settings.dtype not in DTYPES:
        raise ValueError(f"dtype={settings.dtype!r}: expected one of {sorted(DTYPES)}")
    if settings.repeats < 1 or settings.profiled_runs < 1 or settings.warmup < 0:
        raise ValueError(f"repeats={settings.repeats}, profiled_runs={settings.profiled_runs}, "
                         f"warmup={settings.warmup}: repeats and profiled_runs must be >= 1, warmup >= 0")
    backend = get_backend(backend_spec)
    model, weights_label = build(model_name, seed=settings.seed, weights=settings.weights)
    # what runs: the spec's image size, the channels and classes the weights have
    input_shape = (int(model.in_channels), *spec.input_shape[1:])
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)

    base = {"experiment": settings.experiment, "model": model_name, "input_shape": list(input_shape),
            "num_classes": int(model.num_classes), "weights": weights_label, "backend": backend.name,
            "style": backend.style, "dtype": settings.dtype, "host_memory": settings.host_memory,
            "threads": torch.get_num_threads() if backend.name == "torch" else settings.threads,
            "repeats": settings.repeats, "warmup": settings.warmup,
            "profiler": backend.profiler, "copies": backend.copies, **settings.extra_params}
    label = f"{model_name} {backend_spec} {settings.dtype} {settings.host_memory}"

    def skipped_sweep(reason: str, device: dict | None = None) -> list[Record]:
        dev = device or {"kind": "cpu" if backend.name != "torch-cuda" else "cuda",
                         "name": "not available"}
        put(new_record("inference_sweep", label, {**base, "device": dev}, {}, status="skipped",
                       error=reason))
        log(f"{label}: skipped: {reason}")
        return records

    itemsize = torch.empty((), dtype=DTYPES[settings.dtype]).element_size()
    # estimated on the CPU copy before prepare() may move the network to its device
    per_image = per_image_bytes(model, input_shape, itemsize, device_copy=backend.name != "torch")
    weight_bytes = sum(p.numel() for p in model.parameters()) * itemsize
    try:
        backend.check_available()
        backend.check_host_memory(settings.host_memory)
        t0 = time.perf_counter()
        backend.prepare(model, settings.dtype)
        prepare_s = time.perf_counter() - t0
        device = backend.device().model_dump(mode="json")
    except BackendUnavailable as exc:
        return skipped_sweep(str(exc))
    base["device"] = device

    gen = torch.Generator().manual_seed(settings.seed)
    dtype = DTYPES[settings.dtype]

    def source(batch: int) -> torch.Tensor:
        return torch.randn((batch, *input_shape), generator=gen).to(dtype)

    # cold start: the first forward of the freshly prepared network, then warm batch 1
    one = source(1)
    cold_s = backend.step(one, settings.host_memory, profile=False).wall_s
    warm1 = [backend.step(one, settings.host_memory, profile=False).wall_s for _ in range(max(3, settings.repeats))]
    log(f"{label}: prepare {prepare_s:.3f} s, cold start {cold_s * 1e3:.2f} ms, warm batch 1 "
        f"{_median(warm1) * 1e3:.2f} ms")

    budget = int(settings.memory_budget_bytes) if settings.memory_budget_bytes else backend.memory_budget_bytes()
    cap = memory_cap(batch_sizes, per_image, weight_bytes, budget)
    base.update(memory_budget_bytes=budget, memory_cap_batch=cap)

    ok_rows: list[tuple[int, dict[str, float | None], float]] = []
    skipped: list[int] = []
    oom_at: int | None = None
    for batch in batch_sizes:
        params = {**base, "batch": batch}
        name = f"{label} batch={batch}"
        estimate = weight_bytes + MEMORY_SAFETY * per_image * batch
        if oom_at is not None or (cap is None or batch > cap):
            why = (f"out of memory at {oom_at} (a smaller batch already failed)" if oom_at is not None else
                   f"out of memory at {batch}: estimate {estimate / 2**30:.2f} GiB > budget "
                   f"{budget / 2**30:.2f} GiB (cap: batch {cap})")
            skipped.append(batch)
            put(new_record("inference_batch", name, params, {}, status="skipped", error=why))
            log(f"{name}: skipped: {why}")
            continue
        x = source(batch)
        try:
            for _ in range(settings.warmup):
                backend.step(x, settings.host_memory, profile=False)
            window = backend.memory_window_start()
            walls = [backend.step(x, settings.host_memory, profile=False).wall_s for _ in range(settings.repeats)]
            steps = [backend.step(x, settings.host_memory, profile=True) for _ in range(settings.profiled_runs)]
            window = backend.memory_window_end(window)
        except Exception as exc:  # noqa: BLE001 - only memory errors are results; others re-raise
            if not backend.is_out_of_memory(exc):
                raise
            oom_at = batch
            skipped.append(batch)
            why = f"out of memory at {batch}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]} (cap: batch {cap})"
            put(new_record("inference_batch", name, params, {}, status="skipped", error=why))
            log(f"{name}: skipped: {why}")
            del x
            gc.collect()
            continue
        comps = _median_components(steps)
        comp_sum = float(sum(v for v in comps.values() if v is not None))
        profiled_total = _median([s.wall_s for s in steps])
        total = _median(walls)
        metrics = {f"{c}_s": comps[c] for c in COMPONENTS}
        metrics.update(components_sum_s=comp_sum, profiled_total_s=profiled_total,
                       unattributed_s=profiled_total - comp_sum, total_s=total, total_iqr_s=_iqr(walls),
                       per_image_s=total / batch, images_per_s=batch / total,
                       peak_memory_bytes=window.delta_bytes, peak_memory_method=window.method,
                       runs=len(walls), profiled_runs=len(steps))
        put(new_record("inference_batch", name, params, metrics))
        ok_rows.append((batch, comps, total))
        log(f"{name}: {total * 1e3:.2f} ms/batch, {batch / total:.1f} images/s, "
            + ", ".join(f"{c} {v * 1e3:.2f}" for c, v in comps.items() if v) + " ms")
        del x
        gc.collect()

    put(new_record("inference_sweep", label, base, summarise(ok_rows, skipped, cold_s, _median(warm1),
                                                             settings.fraction)))
    return records


def summarise(rows: Sequence[tuple[int, dict[str, float | None], float]], skipped: Sequence[int],
              cold_s: float | None, warm1_s: float | None, fraction: float = THROUGHPUT_FRACTION) -> dict:
    """The sweep record's metrics from the ok points: fits, peak throughput, the 90 % batch."""
    batches = [b for b, _, _ in rows]
    out: dict = {"cold_start_s": cold_s, "warm_batch1_s": warm1_s, "batches_ok": batches,
                 "batches_skipped": list(skipped), "fits": {}}
    if len(set(batches)) >= 2:
        for c in COMPONENTS:
            vals = [comps.get(c) for _, comps, _ in rows]
            if any(v is None for v in vals):
                continue
            out["fits"][c] = fits.fit_linear(batches, vals).as_dict()  # type: ignore[arg-type]
        out["fits"]["total"] = fits.fit_linear(batches, [t for _, _, t in rows]).as_dict()
    if rows:
        knee, peak, peak_batch = fits.batch_reaching_fraction_of_peak(
            batches, [b / t for b, _, t in rows], fraction)
        out.update(batch_90pct_peak=knee, peak_images_per_s=peak, peak_batch=peak_batch)
    return out


__all__ = ["DEFAULT_BATCH_SIZES", "SweepSettings", "memory_cap", "per_image_bytes", "run_sweep",
           "summarise", "validate_batch_sizes"]
