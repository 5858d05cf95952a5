"""Inference backends: one interface for running a network on torch or on the OpenCL engine.

A backend takes a network once (``prepare``) and then either classifies batches
(``forward``: float32 NCHW in, float32 scores out; what ``hpc infer`` and distributed
inference use) or runs one batch of the batch sweep (``step``) and reports where its
time went (``StepTimes``): each layer type, the host<->device copies, allocating and
freeing the batch's buffers, and the final synchronisation. The sweep
(``hpc.inference.sweep``) and the CLIs know nothing else about a backend.

Backends here:

* ``torch`` (CPU) and ``torch-cuda``: the golden model. ``forward`` is the module's own
  forward; ``step`` runs it layer by layer: CPU components come from ``torch.profiler``
  (CPU activity), with one ``record_function`` range per layer and per runtime step; CUDA
  layer and copy times come from CUDA events around each of them (the GPU's own clock),
  allocation/free/synchronisation from the host clock.
* ``opencl[:STYLE]``: the suite's OpenCL engine (``hpc.inference.opencl.OpenCLEngine``),
  whose ``profile(x)`` gives OpenCL profiling-event seconds per kernel with its layer type.
  When pyopencl or an OpenCL device is missing, or the engine cannot take the network, the
  backend is unavailable with the reason (the sweep records its points as skipped).

To add a backend: subclass ``InferenceBackend`` and add a factory to ``BACKENDS``
(``register_backend``); ``hpc bench inference --list-backends`` shows what can run here.
"""
from __future__ import annotations

import abc
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch import nn

from hpc.schema.base import Device
from hpc.schema.inference import COMPONENTS

DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float16": torch.float16,
                                  "bfloat16": torch.bfloat16}

#: Prefix of the profiler ranges this module opens; the rest of the name is the component.
RANGE_PREFIX = "inference."


class BackendUnavailable(RuntimeError):
    """The backend cannot run on this machine; the message says why (becomes a skipped record)."""


@dataclass
class StepTimes:
    """One batch: seconds per component (None = the backend has no such step) and wall time."""

    components: dict[str, float | None]
    wall_s: float


@dataclass
class MemoryWindow:
    """Peak memory of a stretch of work above the level before it, and how it was measured."""

    before_bytes: int = 0
    peak_bytes: int | None = None
    method: str = ""

    @property
    def delta_bytes(self) -> int | None:
        return None if self.peak_bytes is None else max(0, self.peak_bytes - self.before_bytes)


class InferenceBackend(abc.ABC):
    """One network on one device: ``prepare`` once, then ``forward`` (scores) or ``step``
    (one timed batch of the sweep) as often as needed."""

    name: str = ""
    style: str | None = None
    #: what ``h2d``/``d2h`` measure on this backend (stored in each sweep record's params)
    copies: str = ""
    profiler: str = ""

    @abc.abstractmethod
    def device(self) -> Device:
        """The device the work runs on (raises BackendUnavailable when there is none)."""

    def check_available(self) -> None:
        """Raise BackendUnavailable with the reason when this backend cannot run here."""
        self.device()

    def check_host_memory(self, host_memory: str) -> None:
        """Raise BackendUnavailable when the host-memory variant cannot run here."""
        if host_memory not in ("pageable", "pinned"):
            raise ValueError(f"host_memory={host_memory!r}: expected 'pageable' or 'pinned'")

    @abc.abstractmethod
    def prepare(self, model: nn.Module, dtype: str = "float32") -> None:
        """Take the network (CPU, float32, eval mode) onto the device in ``dtype``."""

    @abc.abstractmethod
    def forward(self, x: np.ndarray) -> np.ndarray:
        """Float32 scores (N, classes) of a float32 NCHW batch, finished on the device."""

    @abc.abstractmethod
    def step(self, source: torch.Tensor, host_memory: str, profile: bool) -> StepTimes:
        """Run one batch: allocate its buffers, copy in, forward, copy out, sync, free.

        ``source`` is the batch as the producer hands it (CPU tensor of the right dtype);
        writing it into the backend's host buffer is the producer's work and not timed.
        With ``profile`` False only ``wall_s`` is meaningful (components may be empty).
        """

    def memory_budget_bytes(self) -> int:
        """The default budget a batch may use: see each backend."""
        return _mem_available_bytes() // 2

    def memory_window_start(self) -> MemoryWindow:
        return MemoryWindow(method="not measured")

    def memory_window_end(self, window: MemoryWindow) -> MemoryWindow:
        return window

    def is_out_of_memory(self, exc: BaseException) -> bool:
        text = str(exc).lower()
        return isinstance(exc, MemoryError) or any(
            m in text for m in ("out of memory", "not enough memory", "can't allocate memory"))


# --------------------------------------------------------------------------- helpers
def _mem_available_bytes() -> int:
    """MemAvailable of /proc/meminfo (what a new allocation can get without swapping)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))


def _proc_status_kib(field_name: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux >= 4.0, ``clear_refs`` 5)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def cpu_device() -> Device:
    from hpc.provenance import cpu_model
    return Device(kind="cpu", name=cpu_model() or "unknown CPU")


def components_from_profile(events: Iterable[Any]) -> dict[str, float]:
    """Seconds per component from torch.profiler events of this module's ranges.

    Ranges are named ``inference.<component>`` or ``inference.layer.<type>.<name>``;
    nested ranges never occur (each layer is one range), so plain sums are exact.
    """
    out: dict[str, float] = {}
    for e in events:
        name = getattr(e, "name", "")
        if not name.startswith(RANGE_PREFIX):
            continue
        rest = name[len(RANGE_PREFIX):]
        comp = rest.split(".")[1] if rest.startswith("layer.") else rest
        if comp not in COMPONENTS:
            continue
        out[comp] = out.get(comp, 0.0) + e.time_range.elapsed_us() * 1e-6
    return out


def layer_type(module: nn.Module) -> str:
    """The component a leaf layer's time is booked to: conv, fc, pool, activation or other."""
    if isinstance(module, nn.modules.conv._ConvNd):
        return "conv"
    if isinstance(module, nn.Linear):
        return "fc"
    if isinstance(module, (nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd,
                           nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd)):
        return "pool"
    if isinstance(module, (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.Sigmoid, nn.Tanh)):
        return "activation"
    return "other"


def layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The network as the ordered list of the layers its forward runs, so that the profiler
    can wrap each in its own range: ``features -> [avgpool] -> flatten -> classifier`` for
    both AlexNets, ``features -> classifier -> flatten`` for SqueezeNet (whose classifier is
    a 1x1 convolution and a global pool, flattened at the end)."""
    head = [(f"classifier.{i}", m) for i, m in enumerate(model.classifier)]
    seq: list[tuple[str, nn.Module]] = []
    for prefix in ("features", "avgpool"):
        part = getattr(model, prefix, None)
        if isinstance(part, nn.Sequential):
            seq += [(f"{prefix}.{i}", m) for i, m in enumerate(part)]
        elif isinstance(part, nn.Module):
            seq.append((prefix, part))
    flatten = ("flatten", nn.Flatten(1))
    if any(isinstance(m, nn.Linear) for _, m in head):
        return [*seq, flatten, *head]
    return [*seq, *head, flatten]


# --------------------------------------------------------------------------- torch
class TorchBackend(InferenceBackend):
    """The network in PyTorch on the CPU or one CUDA device: ``forward`` is the module's own
    forward (the golden model), ``step`` runs it layer by layer to time each layer."""

    def __init__(self, device_kind: str = "cpu", index: int = 0) -> None:
        if device_kind not in ("cpu", "cuda"):
            raise ValueError(f"device_kind={device_kind!r}: expected 'cpu' or 'cuda'")
        self.device_kind, self.index = device_kind, index
        self.name = "torch" if device_kind == "cpu" else "torch-cuda"
        if device_kind == "cpu":
            self.copies = ("none: the CPU is the device; the network reads the host buffer, so "
                           "there is no host<->device copy (h2d/d2h recorded as null)")
            self.profiler = "torch.profiler (CPU activity), record_function per layer and per step"
        else:
            self.copies = "cudaMemcpy host<->device of the input and the logits, timed by CUDA events"
            self.profiler = ("CUDA events around each layer and copy (GPU time); host clock for "
                             "alloc/free/sync")
        self._model: nn.Module | None = None
        self._layers: list[tuple[str, nn.Module, str]] = []
        self._dtype = torch.float32
        self._num_classes = 0

    # -- device -----------------------------------------------------------------
    def _torch_device(self) -> torch.device:
        return torch.device("cpu") if self.device_kind == "cpu" else torch.device("cuda", self.index)

    def device(self) -> Device:
        if self.device_kind == "cpu":
            return cpu_device()
        if not torch.cuda.is_available() or torch.cuda.device_count() <= self.index:
            raise BackendUnavailable(f"{self.name}: no CUDA device {self.index} "
                                     "(torch.cuda.is_available() is False)")
        props = torch.cuda.get_device_properties(self.index)
        return Device(kind="cuda", name=props.name, index=self.index, uuid=str(getattr(props, "uuid", "")) or None)

    def check_host_memory(self, host_memory: str) -> None:
        super().check_host_memory(host_memory)
        if host_memory == "pinned" and self.device_kind == "cpu":
            raise BackendUnavailable("pinned host memory: torch has no pinned allocator without a "
                                     "CUDA device, and a CPU backend makes no host->device copy")

    # -- network ----------------------------------------------------------------
    def prepare(self, model: nn.Module, dtype: str = "float32") -> None:
        if dtype not in DTYPES:
            raise ValueError(f"dtype={dtype!r}: expected one of {sorted(DTYPES)}")
        self._dtype = DTYPES[dtype]
        self._model = model.to(device=self._torch_device(), dtype=self._dtype).eval()
        self._layers = [(name, m, layer_type(m)) for name, m in layers(self._model)]
        self._num_classes = int(getattr(model, "num_classes", 0))

    def forward(self, x: np.ndarray) -> np.ndarray:
        assert self._model is not None, "prepare() the backend first"
        dev = self._torch_device()
        with torch.inference_mode():
            y = self._model(torch.from_numpy(np.ascontiguousarray(x)).to(device=dev, dtype=self._dtype))
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        return y.float().cpu().numpy()

    # -- one batch ----------------------------------------------------------------
    def step(self, source: torch.Tensor, host_memory: str, profile: bool) -> StepTimes:
        if self.device_kind == "cpu":
            return self._step_cpu(source, profile)
        return self._step_cuda(source, host_memory, profile)

    def _step_cpu(self, source: torch.Tensor, profile: bool) -> StepTimes:
        from torch.autograd.profiler import record_function
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as torch_profile

        def body() -> float:
            with torch.inference_mode():
                t0 = time.perf_counter()
                with record_function(RANGE_PREFIX + "alloc"):
                    host_in = torch.empty(source.shape, dtype=self._dtype)
                t1 = time.perf_counter()
                host_in.copy_(source)                         # the producer's work: not timed
                t2 = time.perf_counter()
                x = host_in
                for name, m, kind in self._layers:
                    with record_function(f"{RANGE_PREFIX}layer.{kind}.{name}"):
                        x = m(x)
                with record_function(RANGE_PREFIX + "free"):
                    del host_in, x
                t3 = time.perf_counter()
            return (t1 - t0) + (t3 - t2)

        if not profile:
            return StepTimes(components={}, wall_s=body())
        with torch_profile(activities=[ProfilerActivity.CPU], record_shapes=False,
                           profile_memory=False, with_stack=False) as prof:
            wall = body()
        comps: dict[str, float | None] = {c: 0.0 for c in COMPONENTS}
        comps.update(components_from_profile(prof.events()))
        comps["h2d"] = comps["d2h"] = comps["sync"] = None    # no device copy, nothing to wait for
        return StepTimes(components=comps, wall_s=wall)

    def _step_cuda(self, source: torch.Tensor, host_memory: str, profile: bool) -> StepTimes:
        dev = self._torch_device()
        pinned = host_memory == "pinned"
        torch.cuda.synchronize(dev)
        events: list[tuple[str, Any, Any]] = []

        def timed(comp: str, fn: Callable[[], Any]) -> Any:
            if not profile:
                return fn()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            out = fn()
            end.record()
            events.append((comp, start, end))
            return out

        with torch.inference_mode():
            t0 = time.perf_counter()
            host_in = torch.empty(source.shape, dtype=self._dtype, pin_memory=pinned)
            dev_in = torch.empty(source.shape, dtype=self._dtype, device=dev)
            host_out = torch.empty((source.shape[0], self._num_classes), dtype=self._dtype, pin_memory=pinned)
            t1 = time.perf_counter()
            host_in.copy_(source)                             # the producer's work: not timed
            t2 = time.perf_counter()
            timed("h2d", lambda: dev_in.copy_(host_in, non_blocking=pinned))
            x = dev_in
            for _, m, kind in self._layers:
                x = timed(kind, lambda m=m, x=x: m(x))
            timed("d2h", lambda: host_out.copy_(x, non_blocking=pinned))
            t3 = time.perf_counter()
            torch.cuda.synchronize(dev)
            t4 = time.perf_counter()
            del host_in, dev_in, host_out, x
            t5 = time.perf_counter()
        wall = (t1 - t0) + (t5 - t2)
        if not profile:
            return StepTimes(components={}, wall_s=wall)
        comps: dict[str, float | None] = {c: 0.0 for c in COMPONENTS}
        for comp, start, end in events:
            comps[comp] = (comps[comp] or 0.0) + start.elapsed_time(end) * 1e-3
        comps["alloc"], comps["sync"], comps["free"] = t1 - t0, t4 - t3, t5 - t4
        return StepTimes(components=comps, wall_s=wall)

    # -- memory ---------------------------------------------------------------------
    def memory_budget_bytes(self) -> int:
        if self.device_kind == "cpu":
            return _mem_available_bytes() // 2
        free, _total = torch.cuda.mem_get_info(self._torch_device())
        return int(free)

    def memory_window_start(self) -> MemoryWindow:
        if self.device_kind == "cuda":
            dev = self._torch_device()
            torch.cuda.synchronize(dev)
            torch.cuda.reset_peak_memory_stats(dev)
            return MemoryWindow(before_bytes=torch.cuda.memory_allocated(dev),
                                method="torch.cuda.max_memory_allocated - memory_allocated before")
        rss = _proc_status_kib("VmRSS")
        if rss is not None and _reset_peak_rss():
            return MemoryWindow(before_bytes=rss * 1024, method="VmHWM (reset per batch) - VmRSS before")
        import resource
        return MemoryWindow(before_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                            method="ru_maxrss delta (high-water mark of the process; 0 = below earlier peak)")

    def memory_window_end(self, window: MemoryWindow) -> MemoryWindow:
        if self.device_kind == "cuda":
            window.peak_bytes = torch.cuda.max_memory_allocated(self._torch_device())
        elif window.method.startswith("VmHWM"):
            hwm = _proc_status_kib("VmHWM")
            window.peak_bytes = None if hwm is None else hwm * 1024
        else:
            import resource
            window.peak_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return window

    def is_out_of_memory(self, exc: BaseException) -> bool:
        if self.device_kind == "cuda" and isinstance(exc, torch.cuda.OutOfMemoryError):
            return True
        return super().is_out_of_memory(exc)


# --------------------------------------------------------------------------- OpenCL engine
#: The engine's layer types -> our components, matched by prefix (conv3x3 -> conv,
#: avgpool_global -> pool); others (lrn) are booked to ``other``. The engine fuses ReLU
#: into the kernel before it, so ``activation`` stays 0 on this backend.
OPENCL_TYPE_PREFIXES: tuple[tuple[str, str], ...] = (
    ("conv", "conv"), ("linear", "fc"), ("maxpool", "pool"), ("avgpool", "pool"))


def opencl_components(profile: Iterable[tuple[str, str, str, float]]) -> dict[str, float]:
    """Seconds per component from ``OpenCLEngine.profile(x)``: one ``(layer, layer_type,
    kernel, seconds)`` row per kernel launch, seconds between its START and END events."""
    out: dict[str, float] = {}
    for _layer, kind, _kernel, seconds in profile:
        comp = next((c for prefix, c in OPENCL_TYPE_PREFIXES if kind.startswith(prefix)), "other")
        out[comp] = out.get(comp, 0.0) + float(seconds)
    return out


class OpenCLBackend(InferenceBackend):
    """The suite's OpenCL engine (one kernel style) on one OpenCL device.

    ``forward`` is the engine's forward; a profiled ``step`` books the engine's kernel
    profile by layer type. That profile holds kernels only (copies and buffers are internal
    to its forward), so the copies are measured beside it, on the engine's own context: a
    profiled ``clEnqueueCopy`` of the batch's input into a device buffer (h2d) and of a
    logits-sized buffer back (d2h), timed by OpenCL events, into buffers kept per batch
    shape as the engine keeps its own; alloc/free are creating and releasing a fresh pair
    of such buffers (host clock). The copies run outside the profiled forward, so
    ``unattributed_s`` (forward wall minus components) can be slightly negative.
    """

    profiler = "OpenCL profiling events (CL_PROFILING_COMMAND_START/END) per kernel and per copy"
    copies = ("clEnqueueCopy of the batch's input (h2d) and logits (d2h) on the engine's context, "
              "profiled beside the engine's forward (its kernel profile has no copies)")

    def __init__(self, style: str | None = None, device_index: int | None = None, two_queues: bool = False,
                 binary: str | Path | None = None) -> None:
        self.name, self.style = "opencl", style or "tiled"
        self.device_index, self.two_queues, self.binary = device_index, two_queues, binary
        self.engine: Any = None                 # the OpenCLEngine, once prepared
        self._copy_queue: Any = None
        self._copy_buffers: dict[tuple[int, int], tuple[Any, Any]] = {}
        self._num_classes = 0

    def device(self) -> Device:
        if self.engine is None:
            self.check_available()
            raise RuntimeError("opencl: the device is known only after prepare()")
        return self.engine.device

    def check_available(self) -> None:
        try:
            import pyopencl  # noqa: F401

            import hpc.inference.opencl  # noqa: F401
        except ImportError as exc:
            raise BackendUnavailable(f"opencl: the OpenCL engine (hpc.inference.opencl.OpenCLEngine) "
                                     f"cannot be used here: {exc}") from None

    def check_host_memory(self, host_memory: str) -> None:
        super().check_host_memory(host_memory)
        if host_memory == "pinned":
            raise BackendUnavailable("pinned host memory: the OpenCL engine takes host arrays as "
                                     "given (no pinned-buffer variant)")

    def prepare(self, model: nn.Module, dtype: str = "float32") -> None:
        """Build the engine; no device, a kernel build failure or a layer the engine has no
        kernel for raise BackendUnavailable with the engine's own message."""
        if dtype != "float32":
            raise BackendUnavailable(f"opencl: dtype {dtype} not supported (float32 only)")
        self.check_available()
        from hpc.inference.opencl import OpenCLEngine
        try:
            self.engine = OpenCLEngine(model, self.style, self.device_index, self.two_queues, self.binary)
        except (ValueError, RuntimeError) as exc:
            raise BackendUnavailable(str(exc)) from exc
        self._num_classes = int(getattr(model, "num_classes", 0))

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.engine.forward(x)

    def _copies(self, x: np.ndarray) -> dict[str, float | None]:
        """h2d/d2h (OpenCL events) and alloc/free (host clock) of the batch's two buffers."""
        rt = self.engine.runtime
        cl = rt.cl
        if self._copy_queue is None:
            self._copy_queue = rt.queue(profiling=True)
        out = np.empty((x.shape[0], max(self._num_classes, 1)), np.float32)
        # alloc/free: a fresh pair of buffers of the batch's sizes, created and released
        t0 = time.perf_counter()
        fresh = (rt.empty(x.nbytes), rt.empty(out.nbytes))
        alloc = time.perf_counter() - t0
        t1 = time.perf_counter()
        for b in fresh:
            b.release()
        free = time.perf_counter() - t1
        # copies: into/out of buffers kept per batch shape, as the engine keeps its own, so
        # first-touch page faults of a new buffer are not booked as copy time
        key = (x.nbytes, out.nbytes)
        if key not in self._copy_buffers:
            self._copy_buffers = {key: (rt.empty(x.nbytes), rt.empty(out.nbytes))}
            cl.enqueue_copy(self._copy_queue, self._copy_buffers[key][0], x).wait()   # first touch
        buf_in, buf_out = self._copy_buffers[key]
        ev_in = cl.enqueue_copy(self._copy_queue, buf_in, x)
        ev_out = cl.enqueue_copy(self._copy_queue, out, buf_out)
        ev_out.wait()
        seconds = [(e.profile.end - e.profile.start) * 1e-9 for e in (ev_in, ev_out)]
        return {"h2d": seconds[0], "d2h": seconds[1], "alloc": alloc, "free": free}

    def step(self, source: torch.Tensor, host_memory: str, profile: bool) -> StepTimes:
        x = source.numpy()
        if not profile:
            t0 = time.perf_counter()
            self.engine.forward(x)
            return StepTimes(components={}, wall_s=time.perf_counter() - t0)
        t0 = time.perf_counter()
        prof = self.engine.profile(x)
        wall = time.perf_counter() - t0
        comps: dict[str, float | None] = {c: 0.0 for c in COMPONENTS}
        comps["sync"] = None
        comps.update(opencl_components(prof))
        comps.update(self._copies(x))
        return StepTimes(components=comps, wall_s=wall)


# --------------------------------------------------------------------------- registry
BackendFactory = Callable[[str | None], InferenceBackend]
BACKENDS: dict[str, BackendFactory] = {}


def register_backend(name: str, factory: BackendFactory) -> None:
    """Make ``name[:style]`` available to the sweep; ``factory(style)`` builds the backend."""
    BACKENDS[name] = factory


def _torch_factory(kind: str) -> BackendFactory:
    def make(style: str | None) -> InferenceBackend:
        if style:
            raise ValueError(f"backend torch{'-cuda' if kind == 'cuda' else ''}:{style}: torch has no styles")
        return TorchBackend(kind)
    return make


register_backend("torch", _torch_factory("cpu"))
register_backend("torch-cuda", _torch_factory("cuda"))
register_backend("opencl", lambda style: OpenCLBackend(style))


def get_backend(spec: str) -> InferenceBackend:
    """``name[:style]`` -> a backend object; an unknown name is a ValueError naming it."""
    name, _, style = spec.partition(":")
    if name not in BACKENDS:
        raise ValueError(f"backend={spec!r}: unknown inference backend; expected one of {sorted(BACKENDS)}")
    return BACKENDS[name](style or None)
