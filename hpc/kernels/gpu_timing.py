"""GPU kernel timing the way GPU benchmarking tools do it, for numba-cuda, CuPy and torch.

One *sample* = CUDA events around a loop of ``launches`` back-to-back launches (enough
for >= ``TARGET_SAMPLE_S`` of GPU time, so event resolution (~0.5 us) and per-launch gaps
do not dominate), divided by ``launches``. Before every sample the L2 cache is flushed
by writing a buffer of ``2 x L2`` bytes, and inside the loop the launches cycle through
enough copies of the input that the set is >= 2 x L2 (``rotation_count``), so a 1024^2
image is read from HBM like a 16384^2 one instead of from a warm L2 (H100/H200: 50 MiB
L2 holds a 4096^2 float32 image). Launch overhead (one small launch + synchronize,
timed on the host) is reported on its own (``launch_overhead_s``), never mixed in.

Why a hand-written loop for the samples: ``cupyx.profiler.benchmark`` and
``torch.utils.benchmark`` time each call on its own and do not flush L2;
``triton.testing.do_bench`` flushes L2 (a 256 MB write, the model for ``flush``) but also
times single launches, and triton is not a dependency of the suite. The launch overhead
*is* what those helpers measure well, so it comes from ``cupyx.profiler.benchmark``
(``cpu_times``) for CuPy and ``torch.utils.benchmark.Timer`` for torch.

Bytes: a copy moves ``copy_bytes(n) = 2 n`` (read + write), a kernel its input + output
bytes; the device copy bound is the faster of a ``cudaMemcpy``-style device-to-device copy
and a copy kernel, both timed like the kernels (``measure_copy_bound``).

The pure functions (sizes, counts, bytes) are tested on the CPU; the rest needs a GPU or
runs, with host timing and no flush, on numba's CUDA simulator.
"""
from __future__ import annotations

import math
import statistics
import time
from typing import Any, Callable

from hpc.kernels.sampling import summarize

TARGET_SAMPLE_S = 1e-3
MAX_LAUNCHES = 10_000
L2_FLUSH_FACTOR = 2
DEFAULT_L2_BYTES = 128 << 20
"""Assumed L2 size when the runtime does not report it (larger than any current GPU's)."""
MAX_ROTATION_BUFFERS = 64


# --------------------------------------------------------------------------- pure helpers
def l2_flush_nbytes(l2_bytes: int | None) -> int:
    """Bytes to write between samples so nothing of the previous sample stays in L2."""
    if l2_bytes is None or l2_bytes <= 0:
        l2_bytes = DEFAULT_L2_BYTES
    return L2_FLUSH_FACTOR * int(l2_bytes)


def rotation_count(bytes_per_launch: int, l2_bytes: int | None,
                   max_buffers: int = MAX_ROTATION_BUFFERS) -> int:
    """How many input copies a launch loop cycles through so that their total is >= 2 x L2
    (every launch then reads from HBM); 1 when one input is already that large."""
    if bytes_per_launch <= 0:
        raise ValueError(f"bytes_per_launch must be > 0, got {bytes_per_launch}")
    need = math.ceil(l2_flush_nbytes(l2_bytes) / bytes_per_launch)
    return max(1, min(max_buffers, need))


def launches_per_sample(one_launch_s: float, target_s: float = TARGET_SAMPLE_S,
                        cap: int = MAX_LAUNCHES) -> int:
    """Back-to-back launches per sample so a sample lasts >= ``target_s`` (at most ``cap``)."""
    if one_launch_s <= 0:
        return cap
    return max(1, min(cap, math.ceil(target_s / one_launch_s - 1e-9)))


def copy_bytes(nbytes: int) -> int:
    """Bytes a copy of ``nbytes`` moves: read once + written once."""
    return 2 * int(nbytes)


def bandwidth_gbs(nbytes: int, seconds: float) -> float:
    return nbytes / seconds / 1e9


# --------------------------------------------------------------------------- runtimes
class CudaRuntime:
    """What the timing loop needs from a CUDA front end (numba, CuPy or torch)."""

    name = "cuda"
    host_timed = False  # True on numba's simulator: no events, no L2

    def sync(self) -> None:
        raise NotImplementedError

    def event_pair(self) -> tuple[Callable[[], None], Callable[[], None], Callable[[], float]]:
        """(record start, record end, seconds between them after sync)."""
        raise NotImplementedError

    def l2_bytes(self) -> int | None:
        return None

    def alloc_bytes(self, nbytes: int) -> Any:
        raise NotImplementedError

    def fill(self, buf: Any) -> None:
        """Write every byte of ``buf`` (the L2 flush)."""
        raise NotImplementedError

    def memcpy(self, dst: Any, src: Any) -> None:
        """cudaMemcpy-style device-to-device copy."""
        raise NotImplementedError

    def copy_kernel(self, dst: Any, src: Any) -> None:
        """An elementwise copy *kernel* (not the copy engine)."""
        raise NotImplementedError

    def launch_overhead_s(self) -> float:
        """Host time of one tiny launch + synchronize (median)."""
        tiny = self.alloc_bytes(4)
        samples = []
        for _ in range(50):
            t0 = time.perf_counter()
            self.fill(tiny)
            self.sync()
            samples.append(time.perf_counter() - t0)
        return statistics.median(samples[10:])


class NumbaRuntime(CudaRuntime):
    name = "numba"

    def __init__(self) -> None:
        from numba import cuda

        from hpc.kernels.cuda_common import simulator_enabled
        self.cuda = cuda
        self.host_timed = simulator_enabled()

    def sync(self) -> None:
        self.cuda.synchronize()

    def event_pair(self):
        start, end = self.cuda.event(), self.cuda.event()

        def elapsed() -> float:
            end.synchronize()
            return self.cuda.event_elapsed_time(start, end) / 1e3
        return start.record, end.record, elapsed

    def l2_bytes(self) -> int | None:
        if self.host_timed:
            return None
        try:
            return int(self.cuda.get_current_device().L2_CACHE_SIZE)
        except Exception:
            return None

    def alloc_bytes(self, nbytes: int) -> Any:
        import numpy as np
        return self.cuda.device_array(max(1, nbytes // 4), dtype=np.float32)

    def fill(self, buf: Any) -> None:
        from hpc.kernels import cuda_kernels
        cuda_kernels.fill(buf, 0.0)

    def memcpy(self, dst: Any, src: Any) -> None:
        dst.copy_to_device(src)

    def copy_kernel(self, dst: Any, src: Any) -> None:
        from hpc.kernels import cuda_kernels
        cuda_kernels.copy(dst, src)


class CupyRuntime(CudaRuntime):
    name = "cupy"

    def __init__(self) -> None:
        import cupy
        self.cp = cupy

    def sync(self) -> None:
        self.cp.cuda.Device().synchronize()

    def event_pair(self):
        start, end = self.cp.cuda.Event(), self.cp.cuda.Event()

        def elapsed() -> float:
            end.synchronize()
            return self.cp.cuda.get_elapsed_time(start, end) / 1e3
        return start.record, end.record, elapsed

    def l2_bytes(self) -> int | None:
        try:
            return int(self.cp.cuda.Device().attributes["L2CacheSize"])
        except Exception:
            return None

    def alloc_bytes(self, nbytes: int) -> Any:
        return self.cp.empty(max(1, nbytes // 4), dtype=self.cp.float32)

    def fill(self, buf: Any) -> None:
        buf.fill(0)

    def memcpy(self, dst: Any, src: Any) -> None:
        self.cp.cuda.runtime.memcpyAsync(dst.data.ptr, src.data.ptr, src.nbytes,
                                         self.cp.cuda.runtime.memcpyDeviceToDevice,
                                         self.cp.cuda.get_current_stream().ptr)

    def copy_kernel(self, dst: Any, src: Any) -> None:
        self.cp.copyto(dst, src)  # an elementwise kernel, not the copy engine

    def launch_overhead_s(self) -> float:
        from cupyx.profiler import benchmark  # the well-kept helper for host-side cost
        tiny = self.cp.empty(1, dtype=self.cp.float32)
        res = benchmark(tiny.fill, (0,), n_repeat=200, n_warmup=20)
        return float(statistics.median(res.cpu_times))


class TorchRuntime(CudaRuntime):
    name = "torch"

    def __init__(self) -> None:
        import torch
        self.torch = torch

    def sync(self) -> None:
        self.torch.cuda.synchronize()

    def event_pair(self):
        start = self.torch.cuda.Event(enable_timing=True)
        end = self.torch.cuda.Event(enable_timing=True)

        def elapsed() -> float:
            end.synchronize()
            return start.elapsed_time(end) / 1e3
        return start.record, end.record, elapsed

    def l2_bytes(self) -> int | None:
        try:
            return int(self.torch.cuda.get_device_properties(self.torch.cuda.current_device()).L2_cache_size)
        except Exception:
            return None

    def alloc_bytes(self, nbytes: int) -> Any:
        return self.torch.empty(max(1, nbytes // 4), dtype=self.torch.float32, device="cuda")

    def fill(self, buf: Any) -> None:
        buf.zero_()

    def memcpy(self, dst: Any, src: Any) -> None:
        dst.copy_(src)  # same-dtype contiguous device tensors: cudaMemcpyAsync D2D

    def copy_kernel(self, dst: Any, src: Any) -> None:
        self.torch.add(src, 0, out=dst)  # an elementwise kernel reading src, writing dst

    def launch_overhead_s(self) -> float:
        from torch.utils import benchmark  # the well-kept helper for host-side cost
        tiny = self.torch.empty(1, device="cuda")
        timer = benchmark.Timer(stmt="t.zero_(); torch.cuda.synchronize()",
                                globals={"t": tiny, "torch": self.torch})
        return float(timer.blocked_autorange(min_run_time=0.2).median)


def runtime_for(name: str) -> CudaRuntime:
    return {"numba": NumbaRuntime, "cupy": CupyRuntime, "torch": TorchRuntime}[name]()


# --------------------------------------------------------------------------- the loop
def time_launches(rt: CudaRuntime, launches: list[Callable[[], Any]], repeats: int, warmup: int,
                  target_sample_s: float = TARGET_SAMPLE_S) -> dict[str, Any]:
    """Time a kernel given as one launch function per rotated input buffer.

    Returns ``summarize`` of per-launch seconds plus how it was measured
    (``launches_per_sample``, ``rotation_buffers``, ``l2_flush_bytes``, ``l2_bytes``).
    """
    if not launches:
        raise ValueError("time_launches: no launch functions")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    rot = len(launches)
    for i in range(max(warmup, 1)):
        launches[i % rot]()
    rt.sync()
    l2 = rt.l2_bytes()
    meta: dict[str, Any] = {"rotation_buffers": rot, "l2_bytes": l2}
    if rt.host_timed:  # simulator: host clock, one launch per sample, no flush
        samples = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            launches[0]()
            rt.sync()
            samples.append(time.perf_counter() - t0)
        return {**summarize(samples), **meta, "launches_per_sample": 1, "l2_flush_bytes": 0,
                "timing": "host clock (CUDA simulator: no events)"}
    flush_buf = rt.alloc_bytes(l2_flush_nbytes(l2))
    start, end, elapsed = rt.event_pair()
    rt.fill(flush_buf)
    start()
    launches[0]()
    end()
    n = launches_per_sample(elapsed(), target_sample_s)
    samples = []
    for _ in range(repeats):
        rt.fill(flush_buf)
        start()
        for j in range(n):
            launches[j % rot]()
        end()
        samples.append(elapsed() / n)
    return {**summarize(samples), **meta, "launches_per_sample": n,
            "l2_flush_bytes": l2_flush_nbytes(l2),
            "timing": f"CUDA events around {n} back-to-back launches, L2 flushed between samples"}


def measure_copy_bound(rt: CudaRuntime, srcs: list[Any], dst: Any, nbytes: int, repeats: int,
                       warmup: int) -> dict[str, Any]:
    """Device copy bound for ``nbytes`` per copy: memcpy-style and copy kernel, both timed
    with ``time_launches`` (same rotation); the faster is the bound."""
    memcpy = time_launches(rt, [lambda s=s: rt.memcpy(dst, s) for s in srcs], repeats, warmup)
    kernel = time_launches(rt, [lambda s=s: rt.copy_kernel(dst, s) for s in srcs], repeats, warmup)
    moved = copy_bytes(nbytes)
    out = {"bound_memcpy_median_s": memcpy["median_s"], "bound_copy_kernel_median_s": kernel["median_s"],
           "bound_memcpy_gbs": bandwidth_gbs(moved, memcpy["median_s"]),
           "bound_copy_kernel_gbs": bandwidth_gbs(moved, kernel["median_s"])}
    best = min(memcpy["median_s"], kernel["median_s"])
    out["bound_copy_median_s"] = best
    out["bound_gbs"] = bandwidth_gbs(moved, best)
    out["bound_kind"] = "device memcpy" if memcpy["median_s"] <= kernel["median_s"] else "device copy kernel"
    return out
