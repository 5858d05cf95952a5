"""Timing logic of ``hpc bench kernels``: one measured point -> (params, metrics).

What a point reports, and why:
- the median of ``repeats`` timed calls after ``warmup`` untimed ones (JIT compilation,
  caches, GPU clocks), with the spread as IQR, min and max, because one number hides
  noise;
- on GPUs the kernel time comes from CUDA events around the launch on device-resident
  data, and the host->device / device->host transfers are timed separately (``h2d_s``,
  ``d2h_s``): the issue's point is that the study's per-window round trips, not the
  arithmetic, cost the time;
- ``bytes_moved`` = input bytes + output bytes, ``bandwidth_gbs`` = bytes_moved / median;
- the *bound measured in the same run* on the same device: a plain copy of the input
  (``np.copyto`` on the CPU, a device-to-device copy on CUDA, ``enqueue_copy`` on OpenCL),
  whose bandwidth counts read + write (2 x input bytes); ``bound_fraction`` = bandwidth /
  bound. For matmul the bound is BLAS (NumPy) or cuBLAS (CuPy, else torch CUDA with TF32
  off) GFLOP/s of the same product.

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


def summarize(samples: list[float]) -> dict[str, float]:
    """Median and spread of timing samples (seconds)."""
    if not samples:
        raise ValueError("summarize: no samples")
    xs = sorted(samples)
    q1, _, q3 = statistics.quantiles(xs, n=4, method="inclusive") if len(xs) > 1 else (xs[0],) * 3
    return {"median_s": statistics.median(xs), "iqr_s": q3 - q1, "min_s": xs[0], "max_s": xs[-1]}


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


def wall_timer(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# --------------------------------------------------------------------------- device helpers
class _Device:
    """How to move data to a device, time work there and copy on it (the bound)."""

    name = "cpu"

    def to_device(self, x: np.ndarray) -> Any:
        return x

    def to_host(self, x: Any) -> np.ndarray:
        return np.asarray(x)

    def empty(self, shape: tuple[int, ...], dtype: np.dtype) -> Any:
        return np.empty(shape, dtype=dtype)

    def sync(self) -> None:
        pass

    def timer(self, fn: Callable[[], Any]) -> float:
        return wall_timer(fn)

    def copy(self, dst: Any, src: Any) -> None:
        np.copyto(dst, src)


class _NumbaCuda(_Device):
    name = "cuda"

    def __init__(self) -> None:
        from numba import cuda
        from hpc.kernels.cuda_common import simulator_enabled
        self.cuda = cuda
        self.sim = simulator_enabled()

    def to_device(self, x: np.ndarray) -> Any:
        return self.cuda.to_device(x)

    def to_host(self, x: Any) -> np.ndarray:
        return x.copy_to_host()

    def empty(self, shape: tuple[int, ...], dtype: np.dtype) -> Any:
        return self.cuda.device_array(shape, dtype=dtype)

    def sync(self) -> None:
        self.cuda.synchronize()

    def timer(self, fn: Callable[[], Any]) -> float:
        if self.sim:  # simulator events have no timing
            t0 = time.perf_counter()
            fn()
            self.sync()
            return time.perf_counter() - t0
        start, end = self.cuda.event(), self.cuda.event()
        start.record()
        fn()
        end.record()
        end.synchronize()
        return self.cuda.event_elapsed_time(start, end) / 1e3

    def copy(self, dst: Any, src: Any) -> None:
        dst.copy_to_device(src)


class _Cupy(_Device):
    name = "cuda"

    def __init__(self) -> None:
        import cupy
        self.cp = cupy

    def to_device(self, x: np.ndarray) -> Any:
        return self.cp.asarray(x)

    def to_host(self, x: Any) -> np.ndarray:
        return self.cp.asnumpy(x)

    def empty(self, shape: tuple[int, ...], dtype: np.dtype) -> Any:
        return self.cp.empty(shape, dtype=dtype)

    def sync(self) -> None:
        self.cp.cuda.Device().synchronize()

    def timer(self, fn: Callable[[], Any]) -> float:
        start, end = self.cp.cuda.Event(), self.cp.cuda.Event()
        start.record()
        fn()
        end.record()
        end.synchronize()
        return self.cp.cuda.get_elapsed_time(start, end) / 1e3

    def copy(self, dst: Any, src: Any) -> None:
        self.cp.copyto(dst, src)


class _TorchCuda(_Device):
    name = "cuda"

    def __init__(self) -> None:
        import torch
        if not torch.cuda.is_available():
            raise BackendUnavailableError("backend='torch:cuda' is not available here: no CUDA GPU "
                                          "(torch.cuda.is_available() is False)")
        self.torch = torch

    def to_device(self, x: np.ndarray) -> Any:
        return self.torch.from_numpy(x).to("cuda")

    def to_host(self, x: Any) -> np.ndarray:
        return x.cpu().numpy()

    def empty(self, shape: tuple[int, ...], dtype: np.dtype) -> Any:
        return self.torch.empty(shape, dtype=getattr(self.torch, np.dtype(dtype).name), device="cuda")

    def sync(self) -> None:
        self.torch.cuda.synchronize()

    def timer(self, fn: Callable[[], Any]) -> float:
        start = self.torch.cuda.Event(enable_timing=True)
        end = self.torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3

    def copy(self, dst: Any, src: Any) -> None:
        dst.copy_(src)


class _OpenCL(_Device):
    """The OpenCL backend takes host arrays and times its own transfers and kernel with
    profiling events (``module.last_timings``); the bound is an on-device ``enqueue_copy``
    of the same bytes, timed with profiling events on the backend's own queue."""

    name = "opencl"

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

    def timer(self, fn: Callable[[], Any]) -> float:
        t_wall = wall_timer(fn)
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


def _device_for(spec: BackendSpec, module: Any) -> _Device:
    if spec.device == "cuda":
        return _TorchCuda()
    if spec.name == "numba-cuda":
        return _NumbaCuda()
    if spec.name == "cupy":
        return _Cupy()
    return _Device()


def _record_device(spec: BackendSpec, module: Any) -> dict[str, Any]:
    """What will run this point, asked of the runtime that launches it (hpc.schema.Device)."""
    from hpc.kernels import device_record
    dev = device_record.for_backend(spec.name, spec.variant, on_cuda=spec.device == "cuda",
                                    gpu_variants=tuple(getattr(module, "GPU_VARIANTS", ())))
    return dev.model_dump()


def _resolve(spec: BackendSpec, op: str) -> tuple[Any, registry.BackendInfo]:
    """The backend module; BackendUnavailableError (-> a skipped record) when it cannot run."""
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


@functools.lru_cache(maxsize=16)
def _cpu_copy_bound(shape: tuple[int, ...], dtype: str, repeats: int, warmup: int) -> dict[str, float]:
    src = _cached_input(shape, dtype)
    dst = np.empty_like(src)
    return summarize(time_calls(lambda: np.copyto(dst, src), repeats, warmup))


def _device_copy_bound(dev: _Device, xd: Any, repeats: int, warmup: int) -> dict[str, float]:
    dst = dev.empty(tuple(xd.shape), np.dtype(str(xd.dtype).removeprefix("torch.")))
    return summarize(time_calls(lambda: dev.copy(dst, xd), repeats, warmup, dev.timer))


def _transfer_times(dev: _Device, x: np.ndarray) -> tuple[Any, float]:
    dev.sync()
    t0 = time.perf_counter()
    xd = dev.to_device(x)
    dev.sync()
    return xd, time.perf_counter() - t0


# --------------------------------------------------------------------------- pooling point
def measure_pool(spec: BackendSpec, op: str, shape: tuple[int, int, int, int], kernel: int | tuple[int, int],
                 stride: int | tuple[int, int] | None, padding: int | tuple[int, int], dtype: str,
                 repeats: int, warmup: int, ceil_mode: bool = False,
                 check: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """Time one pooling point. Raises BackendUnavailableError (skip) or anything (fail).

    ``check``: also compare the result with the NumPy reference (a benchmark must not
    report a fast wrong kernel); costs one reference evaluation.
    """
    if op not in POOL_OPS:
        raise ValueError(f"op={op!r}: expected one of {POOL_OPS}")
    pool_op = "max" if op == "maxpool2d" else "avg"
    geom = pool_geometry(shape[2], shape[3], kernel, stride, padding, ceil_mode)
    params = pool_params(spec, op, shape, geom, dtype)
    module, info = _resolve(spec, op)
    x = _cached_input(tuple(shape), dtype)
    itemsize = x.dtype.itemsize
    metrics: dict[str, Any] = {"repeats": repeats, "warmup": warmup,
                               "bytes_moved": pool_bytes(shape, geom, itemsize),
                               "h2d_s": None, "d2h_s": None}
    kw = _variant_kw(spec)
    dev = _device_for(spec, module)
    params["device"] = _record_device(spec, module)
    if isinstance(dev, (_NumbaCuda, _Cupy)):
        xd, metrics["h2d_s"] = _transfer_times(dev, x)
        out = dev.empty((shape[0], shape[1], geom.out_h, geom.out_w), x.dtype)

        def run() -> Any:
            module.pool2d_device(xd, out, geom, pool_op, True)
            return out
        samples = time_calls(run, repeats, warmup, dev.timer)
        bound = _device_copy_bound(dev, xd, repeats, warmup)
        result_dev = out
    elif isinstance(dev, _TorchCuda):
        xd, metrics["h2d_s"] = _transfer_times(dev, x)
        box: list[Any] = [None]

        def run() -> Any:
            box[0] = module.pool2d(xd, geom, pool_op, True)
            return box[0]
        samples = time_calls(run, repeats, warmup, dev.timer)
        bound = _device_copy_bound(dev, xd, repeats, warmup)
        result_dev = box[0]
    else:
        box = [None]

        def run() -> Any:
            box[0] = module.pool2d(x, geom, pool_op, True, **kw)
            return box[0]
        if info.device_kind == "opencl":
            ocl = _OpenCL(module)
            samples = time_calls(run, repeats, warmup, ocl.timer)
            if ocl.transfers:
                metrics["h2d_s"] = statistics.median(t[0] for t in ocl.transfers)
                metrics["d2h_s"] = statistics.median(t[1] for t in ocl.transfers)
            bound = summarize(ocl.copy_bound(x.nbytes, repeats, warmup))
            params["bound_kind"] = "opencl enqueue_copy"
            params["timing"] = "opencl profiling events (kernel only)"
        elif spec.name == "study" and spec.variant in getattr(module, "GPU_VARIANTS", ()):
            samples = time_calls(run, repeats, warmup)
            ndev = _NumbaCuda()
            bound = _device_copy_bound(ndev, ndev.to_device(x), repeats, warmup)
            params["bound_kind"] = "numba.cuda device copy"
        else:
            samples = time_calls(run, repeats, warmup)
            bound = _cpu_copy_bound(tuple(shape), dtype, repeats, warmup)
        result_dev = box[0]
    params.setdefault("bound_kind", "np.copyto" if dev.name == "cpu" else f"{spec.name} device copy")
    if dev.name == "cuda":
        dev.sync()
        t0 = time.perf_counter()
        result = dev.to_host(result_dev)
        metrics["d2h_s"] = time.perf_counter() - t0
    else:
        result = _host(result_dev)
    stats = summarize(samples)
    metrics.update(stats)
    metrics["bandwidth_gbs"] = metrics["bytes_moved"] / stats["median_s"] / GB
    metrics["bound_copy_median_s"] = bound["median_s"]
    metrics["bound_gbs"] = 2 * x.nbytes / bound["median_s"] / GB
    metrics["bound_fraction"] = metrics["bandwidth_gbs"] / metrics["bound_gbs"]
    if check:
        from hpc.kernels.backend_numpy import pool_numpy
        ref = pool_numpy(x, geom, pool_op, True)
        tol = 1e-3 if x.dtype == np.float16 else 1e-5
        metrics["max_abs_error"] = float(np.max(np.abs(result.astype(np.float64) - ref.astype(np.float64)))) \
            if ref.size else 0.0
        if not np.allclose(result, ref, rtol=tol, atol=tol, equal_nan=True):
            raise AssertionError(f"backend {spec.label}: result differs from the NumPy reference "
                                 f"(max abs error {metrics['max_abs_error']:.3g})")
    return params, metrics


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


def measure_matmul(spec: BackendSpec, n: int, dtype: str, repeats: int, warmup: int,
                   check: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """Time C = A @ B for n x n operands; bound = BLAS/cuBLAS GFLOP/s in the same run."""
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype={dtype!r}: matmul supports float32 and float64")
    params = matmul_params(spec, n, dtype)
    module, info = _resolve(spec, "matmul")
    a = make_input((n, n), dtype, seed=1)
    b = make_input((n, n), dtype, seed=2)
    flops = matmul_flops(n, n, n)
    metrics: dict[str, Any] = {"repeats": repeats, "warmup": warmup, "flops": flops,
                               "h2d_s": None, "d2h_s": None}
    kw = _variant_kw(spec)
    dev = _device_for(spec, module)
    params["device"] = _record_device(spec, module)
    bound_samples: list[float] | None = None
    if dev.name == "cuda":
        ad, t_a = _transfer_times(dev, a)
        bd, t_b = _transfer_times(dev, b)
        metrics["h2d_s"] = t_a + t_b
        cd = dev.empty((n, n), a.dtype)
        if isinstance(dev, _TorchCuda):
            import torch
            torch.backends.cuda.matmul.allow_tf32 = False

            def run() -> Any:
                torch.matmul(ad, bd, out=cd)
        else:
            def run() -> Any:
                module.matmul_device(ad, bd, cd, spec.variant or module.DEFAULT_VARIANT)
        samples = time_calls(run, repeats, warmup, dev.timer)
        bound_samples, params["bound_kind"] = _cublas_bound(a, b, repeats, warmup)
        dev.sync()
        t0 = time.perf_counter()
        result = dev.to_host(cd)
        metrics["d2h_s"] = time.perf_counter() - t0
    else:
        box: list[Any] = [None]

        def run() -> Any:
            box[0] = module.matmul(a, b, **kw)
        if info.device_kind == "opencl":
            ocl = _OpenCL(module)
            samples = time_calls(run, repeats, warmup, ocl.timer)
            if ocl.transfers:
                metrics["h2d_s"] = statistics.median(t[0] for t in ocl.transfers)
                metrics["d2h_s"] = statistics.median(t[1] for t in ocl.transfers)
            params["timing"] = "opencl profiling events (kernel only)"
        else:
            samples = time_calls(run, repeats, warmup)
        result = _host(box[0])
        if spec.name == "study" and spec.variant in getattr(module, "GPU_VARIANTS", ()):
            bound_samples, params["bound_kind"] = _cublas_bound(a, b, repeats, warmup)
        else:
            bound_samples = time_calls(lambda: np.matmul(a, b), repeats, warmup)
            params["bound_kind"] = "numpy BLAS"
    stats = summarize(samples)
    metrics.update(stats)
    metrics["gflops"] = flops / stats["median_s"] / GB
    if bound_samples:
        bound = summarize(bound_samples)
        metrics["bound_median_s"] = bound["median_s"]
        metrics["bound_gflops"] = flops / bound["median_s"] / GB
        metrics["bound_fraction"] = metrics["gflops"] / metrics["bound_gflops"]
    else:
        metrics["bound_median_s"] = metrics["bound_gflops"] = metrics["bound_fraction"] = None
    if check:
        ref = a.astype(np.float64) @ b.astype(np.float64)
        err = float(np.max(np.abs(result - ref)))
        metrics["max_abs_error"] = err
        tol = (1e-3 if dtype == "float32" else 1e-9) * n
        if err > tol:
            raise AssertionError(f"backend {spec.label}: matmul differs from float64 reference by {err:.3g}")
    return params, metrics


def _cublas_bound(a: np.ndarray, b: np.ndarray, repeats: int, warmup: int) -> tuple[list[float] | None, str]:
    """cuBLAS GEMM time via CuPy, else torch CUDA (TF32 off); (None, reason) if neither."""
    if registry.backend_info("cupy").available:
        dev = _Cupy()
        ad, bd = dev.to_device(a), dev.to_device(b)
        cd = dev.empty(a.shape, a.dtype)
        return time_calls(lambda: dev.cp.matmul(ad, bd, out=cd), repeats, warmup, dev.timer), "cuBLAS (cupy)"
    try:
        tdev = _TorchCuda()
    except (BackendUnavailableError, ImportError):
        return None, "none: no cuBLAS front end (cupy or torch CUDA) here"
    tdev.torch.backends.cuda.matmul.allow_tf32 = False
    ad, bd = tdev.to_device(a), tdev.to_device(b)
    cd = tdev.empty(a.shape, a.dtype)
    return (time_calls(lambda: tdev.torch.matmul(ad, bd, out=cd), repeats, warmup, tdev.timer),
            "cuBLAS (torch, TF32 off)")
