"""Timing logic of ``hpc bench kernels``: one measured point -> (params, metrics).

What a point reports, and why:
- host backends (CPU, OpenCL host calls, the study's round trips): wall-clock time after a
  warm-up that runs until timings settle, the kernel and its copy bound timed in
  interleaved random-order rounds (``hpc.kernels.sampling``: why each step);
- CUDA backends (numba-cuda, CuPy, torch CUDA): CUDA events around loops of back-to-back
  launches with the L2 flushed between samples and inputs rotated past L2, launch overhead
  on its own (``hpc.kernels.gpu_timing``); host<->device transfers are timed separately
  (``h2d_s``, ``d2h_s``);
- the spread: min, quartiles, median, max, ``rel_iqr`` and ``spread_flag`` (too noisy);
- ``bytes_moved`` = input + output bytes, ``bandwidth_gbs`` = bytes_moved / median;
- the *bound measured in the same run* on the same device: a copy of the input
  (``np.copyto`` on the CPU; on CUDA the faster of a device memcpy and a copy kernel,
  both reported; ``enqueue_copy`` on OpenCL), counted as read + write (2 x input bytes);
  ``bound_fraction`` = bandwidth / bound (medians), ``bound_fraction_best`` the same from
  the minima (the least load-sensitive figure on a shared machine). For matmul the bound
  is BLAS (NumPy) or cuBLAS (CuPy, else torch CUDA) GFLOP/s with TF32 off (recorded in
  ``params["tf32"]``), and the result must be within the float32-accumulation tolerance
  (``hpc.kernels.tolerance``).
- OpenCL: ``median_s`` is the kernel-only profiling-event time, ``wall_median_s`` the host
  wall time of the whole call; every backend has ``wall_median_s``, the like-for-like column.

Backends are named ``name[:variant]`` (``numba-cuda:regblock``, ``study:serial``);
``torch:cuda`` runs the torch backend on CUDA tensors. Nothing here prints; the CLI does.
"""
from __future__ import annotations

import functools
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from hpc.kernels import registry
from hpc.kernels.geometry import PoolGeometry, pool_geometry
from hpc.kernels.registry import BackendUnavailableError
from hpc.kernels.sampling import WarmupPolicy, interleaved, summarize, wall_timer, warm_up

POOL_OPS = ("maxpool2d", "avgpool2d")
OPS = POOL_OPS + ("matmul",)
GB = 1e9


# --------------------------------------------------------------------------- pure helpers
@dataclass(frozen=True)
class BackendSpec:
    """A benchmark target: registry backend, optional kernel variant, device choice."""

    name: str
    variant: str | None = None
    device: str = "default"  # "cuda" for torch:cuda

    @property
    def label(self) -> str:
        if self.device == "cuda":
            return f"{self.name}:cuda"
        return self.name + (f":{self.variant}" if self.variant else "")


def parse_backend(text: str) -> BackendSpec:
    """``"numba-cuda:regblock"`` -> BackendSpec; ValueError naming the bad part."""
    name, _, variant = text.strip().partition(":")
    if name not in registry.BACKEND_NAMES:
        raise ValueError(f"backend {text!r}: unknown backend {name!r}; choose from "
                         f"{', '.join(registry.BACKEND_NAMES)}")
    if name == "torch" and variant == "cuda":
        return BackendSpec(name, None, "cuda")
    if variant == "":
        return BackendSpec(name)
    return BackendSpec(name, variant)


def pool_bytes(shape: tuple[int, int, int, int], geom: PoolGeometry, itemsize: int) -> int:
    """Bytes a pooling kernel must move at least: read the input once, write the output once."""
    n, c, h, w = shape
    return (n * c * h * w + n * c * geom.out_h * geom.out_w) * itemsize


def matmul_flops(m: int, k: int, n: int) -> int:
    return 2 * m * k * n


def make_input(shape: tuple[int, ...], dtype: str, seed: int = 0) -> np.ndarray:
    """Deterministic test data: uniform [0, 1) floats, or integers 0-9 like the study's images."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind in "iu":
        return rng.integers(0, 10, size=shape, dtype=dt)
    if dt == np.float16:
        return rng.random(shape, dtype=np.float32).astype(np.float16)
    return rng.random(shape, dtype=dt)


@functools.lru_cache(maxsize=2)
def _cached_input(shape: tuple[int, ...], dtype: str) -> np.ndarray:
    return make_input(shape, dtype)


def time_calls(fn: Callable[[], Any], repeats: int, warmup: int,
               timer: Callable[[Callable[[], Any]], float] | None = None) -> list[float]:
    """Run ``fn`` warmup times untimed, then ``repeats`` times timed; seconds per call."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    timer = timer or wall_timer
    for _ in range(warmup):
        fn()
    return [timer(fn) for _ in range(repeats)]


# --------------------------------------------------------------------------- host (CPU) timing
def host_policy(warmup: int) -> WarmupPolicy:
    """The warm-up policy of a host point: at least ``warmup`` calls and 0.2 s, until the
    last three timings agree within 15 % (see hpc.kernels.sampling)."""
    return WarmupPolicy(min_calls=warmup)


def time_host_pair(kernel: Callable[[], Any], copy: Callable[[], Any], repeats: int, warmup: int,
                   kernel_timer: Callable[[Callable[[], Any]], float] = wall_timer,
                   seed: int = 0) -> tuple[list[float], list[float], dict[str, Any]]:
    """Warm the kernel and its copy bound up until settled, then time them interleaved."""
    policy = host_policy(warmup)
    info = warm_up(kernel, policy, kernel_timer)
    warm_up(copy, policy)
    s = interleaved({"kernel": kernel, "copy": copy}, repeats,
                    {"kernel": kernel_timer, "copy": wall_timer}, seed=seed)
    return s["kernel"], s["copy"], info


class _OpenCL:
    """The OpenCL backend takes host arrays and times its own transfers and kernel with
    profiling events (``module.last_timings``). Both clocks are kept: ``event`` (kernel
    only) and ``wall`` (the whole host call, transfers and allocation included, what the
    CPU backends' ``median_s`` is) so tables can compare like with like. The bound is an
    on-device ``enqueue_copy`` of the same bytes, timed with profiling events."""

    def __init__(self, module: Any) -> None:
        import pyopencl as cl
        self.cl = cl
        self.module = module
        ctx_fn = getattr(module, "_context", None)
        if callable(ctx_fn):
            _, self.ctx, self.queue = ctx_fn()
        else:
            self.ctx = cl.create_some_context(interactive=False)
            self.queue = cl.CommandQueue(
                self.ctx, properties=cl.command_queue_properties.PROFILING_ENABLE)
        self.transfers: list[tuple[float, float]] = []
        self.wall: list[float] = []

    def timer(self, fn: Callable[[], Any]) -> float:
        t_wall = wall_timer(fn)
        self.wall.append(t_wall)
        t = getattr(self.module, "last_timings", None) or {}
        if "kernel_s" not in t:
            return t_wall
        self.transfers.append((t.get("h2d_s", 0.0), t.get("d2h_s", 0.0)))
        return float(t["kernel_s"])

    def copy_bound(self, nbytes: int, repeats: int, warmup: int) -> list[float]:
        cl = self.cl
        src = cl.Buffer(self.ctx, cl.mem_flags.READ_WRITE, nbytes)
        dst = cl.Buffer(self.ctx, cl.mem_flags.READ_WRITE, nbytes)
        cl.enqueue_fill_buffer(self.queue, src, np.uint8(1), 0, nbytes).wait()
        samples: list[float] = []

        def once() -> None:
            evt = cl.enqueue_copy(self.queue, dst, src, byte_count=nbytes)
            evt.wait()
            try:
                samples.append((evt.profile.end - evt.profile.start) * 1e-9)
            except Exception:  # queue without profiling: fall back to the wall clock
                samples.append(float("nan"))

        wall = time_calls(once, repeats, warmup)
        timed = samples[warmup:]
        return wall if any(v != v for v in timed) else timed


def _record_device(spec: BackendSpec, module: Any) -> dict[str, Any]:
    """What will run this point, asked of the runtime that launches it (hpc.schema.Device)."""
    from hpc.kernels import device_record
    dev = device_record.for_backend(spec.name, spec.variant, on_cuda=spec.device == "cuda",
                                    gpu_variants=tuple(getattr(module, "GPU_VARIANTS", ())))
    return dev.model_dump()


def _resolve(spec: BackendSpec, op: str) -> tuple[Any, registry.BackendInfo]:
    """The backend module; BackendUnavailableError (-> a skipped record) when it cannot run."""
    if spec.device == "cuda":
        import torch
        if not torch.cuda.is_available():  # checked first: the device record asks torch.cuda too
            raise BackendUnavailableError(f"backend={spec.label!r} is not available here: no CUDA GPU "
                                          f"(torch {torch.__version__}, torch.cuda.is_available() is False)")
    info = registry.backend_info(spec.name)
    if info.available and op not in info.ops:
        raise BackendUnavailableError(f"backend={spec.label!r} does not implement {op} "
                                      f"(it implements {', '.join(sorted(info.ops))})")
    module = registry.get_backend(spec.name, op)
    if spec.variant is not None:
        probe_variant = getattr(module, "probe_variant", None)
        family = "MATMUL_VARIANTS" if op == "matmul" else "POOL_VARIANTS"
        variants = getattr(module, family, None)
        if variants is None:
            variants = getattr(module, "VARIANTS", {}) or {}
        if spec.variant not in variants and spec.variant in (getattr(module, "VARIANTS", None) or {}):
            raise BackendUnavailableError(f"backend {spec.label!r}: variant {spec.variant!r} "
                                          f"does not apply to {op}")
        if spec.variant not in variants:
            raise ValueError(f"backend {spec.label!r}: {op} has no variant {spec.variant!r}; "
                             f"choose from {', '.join(variants) or 'none'}")
        if probe_variant is not None:
            ok, reason = probe_variant(spec.variant)
            if not ok:
                raise BackendUnavailableError(f"backend={spec.label!r} is not available here: {reason}")
    return module, info


def _variant_kw(spec: BackendSpec) -> dict[str, str]:
    return {"variant": spec.variant} if spec.variant is not None else {}


# --------------------------------------------------------------------------- CUDA timing
class _Cuda:
    """Data placement and launch building for one CUDA front end of the benchmark."""

    def __init__(self, spec: BackendSpec) -> None:
        from hpc.kernels import gpu_timing
        if spec.device == "cuda":
            import torch
            if not torch.cuda.is_available():
                raise BackendUnavailableError("backend='torch:cuda' is not available here: no CUDA "
                                              "GPU (torch.cuda.is_available() is False)")
            self.kind = "torch"
        elif spec.name == "cupy":
            self.kind = "cupy"
        else:
            self.kind = "numba"
        self.rt = gpu_timing.runtime_for(self.kind)

    def to_device(self, x: np.ndarray) -> Any:
        if self.kind == "torch":
            import torch
            return torch.from_numpy(np.ascontiguousarray(x)).to("cuda")
        if self.kind == "cupy":
            return self.rt.cp.asarray(x)
        return self.rt.cuda.to_device(np.ascontiguousarray(x))

    def empty(self, shape: tuple[int, ...], dtype: Any) -> Any:
        if self.kind == "torch":
            import torch
            return torch.empty(shape, dtype=getattr(torch, np.dtype(dtype).name), device="cuda")
        if self.kind == "cupy":
            return self.rt.cp.empty(shape, dtype=dtype)
        return self.rt.cuda.device_array(shape, dtype=dtype)

    def clone(self, xd: Any) -> Any:
        if self.kind == "torch":
            return xd.clone()
        if self.kind == "cupy":
            return xd.copy()
        out = self.rt.cuda.device_array(xd.shape, dtype=xd.dtype)
        out.copy_to_device(xd)
        return out

    def to_host(self, xd: Any) -> np.ndarray:
        if self.kind == "torch":
            return xd.cpu().numpy()
        if self.kind == "cupy":
            return self.rt.cp.asnumpy(xd)
        return xd.copy_to_host()

    def timed_transfer(self, fn: Callable[[], Any]) -> tuple[Any, float]:
        self.rt.sync()
        t0 = time.perf_counter()
        result = fn()
        self.rt.sync()
        return result, time.perf_counter() - t0

    def rotated_inputs(self, xd: Any, bytes_per_launch: int) -> list[Any]:
        """``xd`` and enough device copies that a launch loop reads from HBM, not L2."""
        from hpc.kernels import gpu_timing
        if self.rt.host_timed:
            return [xd]
        count = gpu_timing.rotation_count(bytes_per_launch, self.rt.l2_bytes())
        return [xd] + [self.clone(xd) for _ in range(count - 1)]


_LAUNCH_OVERHEAD_S: dict[str, float] = {}


def _cuda_metrics(timing: dict[str, Any], rt: Any) -> dict[str, Any]:
    """How a CUDA point was timed, plus the front end's launch overhead (measured once per
    process and front end: one tiny launch + synchronize, host clock)."""
    keep = ("launches_per_sample", "rotation_buffers", "l2_flush_bytes", "l2_bytes")
    out = {k: timing[k] for k in keep}
    if rt.host_timed:
        out["launch_overhead_s"] = None
    else:
        if rt.name not in _LAUNCH_OVERHEAD_S:
            _LAUNCH_OVERHEAD_S[rt.name] = rt.launch_overhead_s()
        out["launch_overhead_s"] = _LAUNCH_OVERHEAD_S[rt.name]
    return out


def _pool_launch(spec: BackendSpec, module: Any, cu: _Cuda, xd: Any, out: Any, geom: PoolGeometry,
                 pool_op: str) -> Callable[[], Any]:
    if cu.kind == "torch":
        return lambda: module.pool2d(xd, geom, pool_op, True)  # torch allocates via its cache
    return module.pool_launcher(xd, out, geom, pool_op, True)


def _measure_pool_cuda(spec: BackendSpec, module: Any, x: np.ndarray, geom: PoolGeometry, pool_op: str,
                       repeats: int, warmup: int, params: dict[str, Any],
                       metrics: dict[str, Any]) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    from hpc.kernels import gpu_timing
    cu = _Cuda(spec)
    xd, metrics["h2d_s"] = cu.timed_transfer(lambda: cu.to_device(x))
    out_shape = (x.shape[0], x.shape[1], geom.out_h, geom.out_w)
    out = cu.empty(out_shape, x.dtype)
    inputs = cu.rotated_inputs(xd, metrics["bytes_moved"])
    launches = [_pool_launch(spec, module, cu, xi, out, geom, pool_op) for xi in inputs]
    timing = gpu_timing.time_launches(cu.rt, launches, repeats, warmup)
    bound = gpu_timing.measure_copy_bound(cu.rt, inputs, cu.empty(tuple(x.shape), x.dtype), x.nbytes,
                                          repeats, warmup)
    metrics.update(_cuda_metrics(timing, cu.rt))
    params["timing"] = timing["timing"]
    result_dev = module.pool2d(xd, geom, pool_op, True) if cu.kind == "torch" else out
    if cu.kind == "torch":
        cu.rt.sync()
    result, metrics["d2h_s"] = cu.timed_transfer(lambda: cu.to_host(result_dev))
    return result, timing, bound


# --------------------------------------------------------------------------- pooling point
def measure_pool(spec: BackendSpec, op: str, shape: tuple[int, int, int, int], kernel: int | tuple[int, int],
                 stride: int | tuple[int, int] | None, padding: int | tuple[int, int], dtype: str,
                 repeats: int, warmup: int, ceil_mode: bool = False,
                 check: bool = False, out_buffer: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """Time one pooling point. Raises BackendUnavailableError (skip) or anything (fail).

    ``check``: also compare the result with the NumPy reference (a benchmark must not
    report a fast wrong kernel); costs one reference evaluation. ``out_buffer``: host
    backends with an ``out=`` parameter (numba) write into one pre-allocated output instead
    of allocating per call (recorded as ``params["out_buffer"]``); the default measures
    the default API call.
    """
    if op not in POOL_OPS:
        raise ValueError(f"op={op!r}: expected one of {POOL_OPS}")
    pool_op = "max" if op == "maxpool2d" else "avg"
    geom = pool_geometry(shape[2], shape[3], kernel, stride, padding, ceil_mode)
    params = pool_params(spec, op, shape, geom, dtype)
    module, info = _resolve(spec, op)
    x = _cached_input(tuple(shape), dtype)
    metrics: dict[str, Any] = {"repeats": repeats, "warmup": warmup,
                               "bytes_moved": pool_bytes(shape, geom, x.dtype.itemsize),
                               "h2d_s": None, "d2h_s": None}
    kw = _variant_kw(spec)
    params["device"] = _record_device(spec, module)
    if spec.device == "cuda" or spec.name in ("numba-cuda", "cupy"):
        result, timing, bound = _measure_pool_cuda(spec, module, x, geom, pool_op, repeats, warmup,
                                                   params, metrics)
        samples_stats = {k: v for k, v in timing.items() if k in _STAT_KEYS}
        metrics.update(samples_stats)
        metrics.update({k: v for k, v in bound.items() if k != "bound_kind"})
        params["bound_kind"] = bound["bound_kind"]
    else:
        if out_buffer:
            import inspect
            if "out" not in inspect.signature(module.pool2d).parameters:
                raise BackendUnavailableError(f"backend={spec.label!r} has no out= parameter")
            kw = {**kw, "out": np.empty((shape[0], shape[1], geom.out_h, geom.out_w), dtype=x.dtype)}
        params["out_buffer"] = bool(out_buffer)
        result = _measure_pool_host(spec, module, info, x, geom, pool_op, kw, repeats, warmup,
                                    params, metrics)
    metrics["bandwidth_gbs"] = metrics["bytes_moved"] / metrics["median_s"] / GB
    metrics["bound_fraction"] = metrics["bandwidth_gbs"] / metrics["bound_gbs"]
    if metrics.get("bound_min_s"):
        metrics["bound_fraction_best"] = (metrics["bytes_moved"] / metrics["min_s"]) / (
            2 * x.nbytes / metrics["bound_min_s"])
    if check:
        ref = _pool_reference(tuple(shape), dtype, geom, pool_op)
        tol = 1e-3 if x.dtype == np.float16 else 1e-5
        metrics["max_abs_error"] = float(np.max(np.abs(result.astype(np.float64) - ref.astype(np.float64)))) \
            if ref.size else 0.0
        if not np.allclose(result, ref, rtol=tol, atol=tol, equal_nan=True):
            raise AssertionError(f"backend {spec.label}: result differs from the NumPy reference "
                                 f"(max abs error {metrics['max_abs_error']:.3g})")
    return params, metrics


@functools.lru_cache(maxsize=1)
def _pool_reference(shape: tuple[int, ...], dtype: str, geom: PoolGeometry, pool_op: str) -> np.ndarray:
    """The NumPy reference of a point, computed once for all backends of that point."""
    from hpc.kernels.backend_numpy import pool_numpy
    return pool_numpy(_cached_input(shape, dtype), geom, pool_op, True)


_STAT_KEYS = ("median_s", "iqr_s", "q1_s", "q3_s", "min_s", "max_s", "rel_iqr", "spread_flag")


def _time_opencl(ocl: _OpenCL, run: Callable[[], Any], repeats: int, warmup: int,
                 params: dict[str, Any], metrics: dict[str, Any]) -> list[float]:
    """Time an OpenCL call by its profiling events (returned, the point's samples); the host
    wall clock and the transfers go into ``metrics`` beside them."""
    samples = time_calls(run, repeats, warmup, ocl.timer)
    metrics["wall_median_s"] = statistics.median(ocl.wall[warmup:])
    metrics["event_median_s"] = statistics.median(samples)
    if ocl.transfers:
        metrics["h2d_s"] = statistics.median(t[0] for t in ocl.transfers)
        metrics["d2h_s"] = statistics.median(t[1] for t in ocl.transfers)
    params["timing"] = "opencl profiling events (kernel only); wall_median_s: host wall clock"
    return samples


def _measure_pool_host(spec: BackendSpec, module: Any, info: registry.BackendInfo, x: np.ndarray,
                       geom: PoolGeometry, pool_op: str, kw: dict[str, str], repeats: int, warmup: int,
                       params: dict[str, Any], metrics: dict[str, Any]) -> np.ndarray:
    """CPU backends, OpenCL and the study's host-driven GPU round trips: wall-clock timing
    (OpenCL: profiling events as ``median_s`` and the wall clock as ``wall_median_s``)."""
    box: list[Any] = [None]

    def run() -> Any:
        box[0] = module.pool2d(x, geom, pool_op, True, **kw)
        return box[0]
    if info.device_kind == "opencl":
        ocl = _OpenCL(module)
        samples = _time_opencl(ocl, run, repeats, warmup, params, metrics)
        bound = summarize(ocl.copy_bound(x.nbytes, repeats, warmup))
        params["bound_kind"] = "opencl enqueue_copy"
    elif spec.name == "study" and spec.variant in getattr(module, "GPU_VARIANTS", ()):
        from hpc.kernels import gpu_timing
        samples = time_calls(run, repeats, warmup)  # one call is seconds at 1024^2: no settling
        cu = _Cuda(BackendSpec("numba-cuda"))
        xd = cu.to_device(x)
        b = gpu_timing.measure_copy_bound(cu.rt, cu.rotated_inputs(xd, 2 * x.nbytes),
                                          cu.empty(tuple(x.shape), x.dtype), x.nbytes, repeats, warmup)
        bound = {"median_s": b["bound_copy_median_s"], "min_s": None}
        params["bound_kind"] = f"numba.cuda {b['bound_kind']}"
        params["timing"] = "host wall clock of the whole round trip (per-window copies included)"
    else:
        dst = np.empty_like(x)
        samples, copies, info_w = time_host_pair(run, lambda: np.copyto(dst, x), repeats, warmup)
        metrics.update(info_w)
        bound = summarize(copies)
        params["bound_kind"] = "np.copyto"
        params["timing"] = "host wall clock, warm-up until settled, interleaved with the copy"
    stats = summarize(samples)
    metrics.update(stats)
    metrics.setdefault("wall_median_s", stats["median_s"])
    metrics["bound_copy_median_s"] = bound["median_s"]
    metrics["bound_min_s"] = bound.get("min_s")
    metrics["bound_gbs"] = 2 * x.nbytes / bound["median_s"] / GB
    return _host(box[0])


def _host(x: Any) -> np.ndarray:
    from hpc.kernels import arrays
    return arrays.to_numpy(x)


def pool_params(spec: BackendSpec, op: str, shape: tuple[int, ...], geom: PoolGeometry,
                dtype: str) -> dict[str, Any]:
    return {"op": op, "backend": spec.label, "backend_name": spec.name, "variant": spec.variant,
            "shape": list(shape), "out_shape": [shape[0], shape[1], geom.out_h, geom.out_w],
            "kernel": list(geom.kernel), "stride": list(geom.stride), "padding": list(geom.padding),
            "ceil_mode": geom.ceil_mode, "dtype": dtype, "device": None}


# --------------------------------------------------------------------------- matmul point
def matmul_params(spec: BackendSpec, n: int, dtype: str) -> dict[str, Any]:
    return {"op": "matmul", "backend": spec.label, "backend_name": spec.name,
            "variant": spec.variant, "shape": [n, n, n], "dtype": dtype, "device": None}


def make_matmul_input(n: int, dtype: str, seed: int) -> np.ndarray:
    """Uniform in [-1, 1): zero-mean data, on which a TF32-precision result is 20-500x
    further from float64 than a float32 one (see hpc.kernels.tolerance)."""
    rng = np.random.default_rng(seed)
    return (rng.random((n, n), dtype=np.dtype(dtype)) * 2 - 1).astype(dtype, copy=False)


def disable_tf32() -> dict[str, Any]:
    """Switch TF32 off for torch's cuBLAS/cuDNN calls; what is set, for the record. CuPy
    uses TF32 only when CUPY_TF32=1 is in the environment, which is refused here."""
    import os
    if os.environ.get("CUPY_TF32", "0") not in ("", "0"):
        raise RuntimeError("CUPY_TF32 is set: the float32 matmul bound would use TF32; unset it")
    state: dict[str, Any] = {"cupy_tf32": False}
    try:
        import torch
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.set_float32_matmul_precision("highest")
        state["torch_allow_tf32"] = bool(torch.backends.cuda.matmul.allow_tf32)
    except ImportError:
        pass
    return state


def measure_matmul(spec: BackendSpec, n: int, dtype: str, repeats: int, warmup: int,
                   check: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """Time C = A @ B for n x n operands; bound = BLAS/cuBLAS GFLOP/s in the same run."""
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype={dtype!r}: matmul supports float32 and float64")
    params = matmul_params(spec, n, dtype)
    module, info = _resolve(spec, "matmul")
    a = make_matmul_input(n, dtype, seed=1)
    b = make_matmul_input(n, dtype, seed=2)
    flops = matmul_flops(n, n, n)
    metrics: dict[str, Any] = {"repeats": repeats, "warmup": warmup, "flops": flops,
                               "h2d_s": None, "d2h_s": None}
    kw = _variant_kw(spec)
    params["device"] = _record_device(spec, module)
    bound_samples: list[float] | None = None
    if spec.device == "cuda" or spec.name in ("numba-cuda", "cupy"):
        from hpc.kernels import gpu_timing
        params["tf32"] = disable_tf32()
        cu = _Cuda(spec)
        (ad, bd), metrics["h2d_s"] = cu.timed_transfer(lambda: (cu.to_device(a), cu.to_device(b)))
        cd = cu.empty((n, n), a.dtype)
        if cu.kind == "torch":
            import torch
            launch = lambda: torch.matmul(ad, bd, out=cd)  # noqa: E731
        elif cu.kind == "numba":
            launch = module.matmul_launcher(ad, bd, cd, spec.variant or module.DEFAULT_VARIANT)
        else:
            variant = spec.variant or module.DEFAULT_VARIANT
            launch = lambda: module.matmul_device(ad, bd, cd, variant)  # noqa: E731
        timing = gpu_timing.time_launches(cu.rt, [launch], repeats, warmup)
        metrics.update({k: v for k, v in timing.items() if k in _STAT_KEYS})
        metrics.update(_cuda_metrics(timing, cu.rt))
        params["timing"] = timing["timing"]
        bound_timing, params["bound_kind"] = _cublas_bound(a, b, repeats, warmup)
        bound_samples = [bound_timing["median_s"]] if bound_timing else None
        result, metrics["d2h_s"] = cu.timed_transfer(lambda: cu.to_host(cd))
    else:
        box: list[Any] = [None]

        def run() -> Any:
            box[0] = module.matmul(a, b, **kw)
        if info.device_kind == "opencl":
            samples = _time_opencl(_OpenCL(module), run, repeats, warmup, params, metrics)
            bound_samples = time_calls(lambda: np.matmul(a, b), repeats, warmup)
            params["bound_kind"] = "numpy BLAS"
        elif spec.name == "study" and spec.variant in getattr(module, "GPU_VARIANTS", ()):
            samples = time_calls(run, repeats, warmup)
            params["tf32"] = disable_tf32()
            bound_timing, params["bound_kind"] = _cublas_bound(a, b, repeats, warmup)
            bound_samples = [bound_timing["median_s"]] if bound_timing else None
        else:
            samples, bound_samples, info_w = time_host_pair(run, lambda: np.matmul(a, b), repeats, warmup)
            metrics.update(info_w)
            params["bound_kind"] = "numpy BLAS"
        metrics.update(summarize(samples))
        metrics.setdefault("wall_median_s", metrics["median_s"])
        result = _host(box[0])
    metrics["gflops"] = flops / metrics["median_s"] / GB
    if bound_samples:
        bound = summarize(bound_samples)
        metrics["bound_median_s"] = bound["median_s"]
        metrics["bound_gflops"] = flops / bound["median_s"] / GB
        metrics["bound_fraction"] = metrics["gflops"] / metrics["bound_gflops"]
    else:
        metrics["bound_median_s"] = metrics["bound_gflops"] = metrics["bound_fraction"] = None
    if check:
        from hpc.kernels import tolerance
        rows = tolerance.check_rows(n)
        ratio = tolerance.matmul_error_ratio(result, a, b, rows)
        metrics["error_ratio"] = ratio
        metrics["max_abs_error"] = float(np.max(np.abs(result[rows] - a[rows].astype(np.float64) @ b)))
        if ratio > tolerance.MATMUL_TOL_FACTOR:
            raise AssertionError(
                f"backend {spec.label}: matmul error is {ratio:.3g}x the float{8 * a.itemsize}-accumulation "
                f"tolerance (sqrt(k) eps |A||B|; a TF32-precision result fails it)")
    return params, metrics


def _cublas_bound(a: np.ndarray, b: np.ndarray, repeats: int,
                  warmup: int) -> tuple[dict[str, Any] | None, str]:
    """cuBLAS GEMM time (CUDA events, TF32 off) via CuPy, else torch CUDA; (None, reason)."""
    from hpc.kernels import gpu_timing
    disable_tf32()
    if registry.backend_info("cupy").available:
        cu = _Cuda(BackendSpec("cupy"))
        ad, bd = cu.to_device(a), cu.to_device(b)
        cd = cu.empty(a.shape, a.dtype)
        return (gpu_timing.time_launches(cu.rt, [lambda: cu.rt.cp.matmul(ad, bd, out=cd)], repeats, warmup),
                "cuBLAS (cupy, TF32 off)")
    try:
        cu = _Cuda(BackendSpec("torch", None, "cuda"))
    except (BackendUnavailableError, ImportError):
        return None, "none: no cuBLAS front end (cupy or torch CUDA) here"
    import torch
    ad, bd = cu.to_device(a), cu.to_device(b)
    cd = cu.empty(a.shape, a.dtype)
    return (gpu_timing.time_launches(cu.rt, [lambda: torch.matmul(ad, bd, out=cd)], repeats, warmup),
            "cuBLAS (torch, TF32 off)")
