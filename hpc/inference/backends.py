"""Inference backends: one small interface, so that every engine is swept the same way.

A backend runs one network on one device and, for one batch, reports where the batch's
time went (``StepTimes``): each layer type, the host<->device copies, allocating and
freeing the batch's buffers, and the final synchronisation. The sweep
(``hpc.inference.sweep``) knows nothing else about a backend.

Backends here:

* ``torch`` (CPU) and ``torch-cuda``: the network layer by layer. CPU components come from
  ``torch.profiler`` (CPU activity), with one ``record_function`` range per layer and per
  runtime step; CUDA layer and copy times come from CUDA events around each of them (the
  GPU's own clock), allocation/free/synchronisation from the host clock.
* ``opencl[:STYLE]``: the suite's OpenCL inference engine (``OpenCLEngine``, issue 13),
  whose ``profile(x)`` returns OpenCL profiling-event seconds per kernel with its layer
  type. Registered lazily: when the engine is not installed the backend reports itself
  unavailable with the reason, and its points are recorded as skipped.

To add a backend: subclass ``InferenceBackend`` and add a factory to ``BACKENDS``
(``register_backend``); ``hpc bench inference --list-backends`` shows what can run here.
"""
from __future__ import annotations

import abc
import importlib
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import torch
from torch import nn

from hpc.inference.models import layer_type, layers
from hpc.schema.base import Device
from hpc.schema.inference import COMPONENTS

DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float16": torch.float16,
                                  "bfloat16": torch.bfloat16}

#: Prefix of the profiler ranges this module opens; the rest of the name is the component.
RANGE_PREFIX = "inference."


class BackendUnavailable(RuntimeError):
    """The backend cannot run on this machine; the message says why (becomes a skipped record)."""


class OutOfMemory(RuntimeError):
    """A batch did not fit into the device's (or the host's) memory."""


@dataclass
class StepTimes:
    """One batch: seconds per component (None = the backend has no such step) and wall time."""

    components: dict[str, float | None]
    wall_s: float

    def components_sum(self) -> float:
        return float(sum(v for v in self.components.values() if v is not None))


@dataclass
class MemoryWindow:
    """Peak memory of a stretch of work above the level before it, and how it was measured."""

    before_bytes: int = 0
    peak_bytes: int | None = None
    method: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def delta_bytes(self) -> int | None:
        return None if self.peak_bytes is None else max(0, self.peak_bytes - self.before_bytes)


class InferenceBackend(abc.ABC):
    """What the sweep needs from an engine. ``prepare`` once, then ``step`` per batch."""

    name: str = ""
    style: str | None = None
    #: what ``h2d``/``d2h`` measure on this backend (stored in each record's params)
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
    def prepare(self, model: nn.Module, dtype: str) -> None:
        """Take the network (CPU, float32, eval mode) onto the device in ``dtype``."""

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
        return isinstance(exc, (MemoryError, OutOfMemory)) or any(
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


# --------------------------------------------------------------------------- torch
class TorchBackend(InferenceBackend):
    """The network layer by layer in PyTorch, on the CPU or one CUDA device."""

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
    def prepare(self, model: nn.Module, dtype: str) -> None:
        if dtype not in DTYPES:
            raise ValueError(f"dtype={dtype!r}: expected one of {sorted(DTYPES)}")
        self._dtype = DTYPES[dtype]
        dev = self._torch_device()
        model = model.to(device=dev, dtype=self._dtype).eval()
        self._layers = [(name, m, layer_type(m)) for name, m in layers(model)]
        self._num_classes = int(getattr(model, "num_classes", 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            for _, m, _ in self._layers:
                x = m(x)
        return x

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
#: Where the OpenCL inference engine (issue 13) is looked up: module path, class name.
#: The engine's contract: ``OpenCLEngine(model, style, device_index, two_queues, binary)``
#: with ``.forward(x)``, ``.profile(x)`` (per-kernel OpenCL event seconds with layer types)
#: and ``.device`` (a hpc.schema.base.Device).
OPENCL_ENGINE_LOCATIONS: tuple[tuple[str, str], ...] = (
    ("hpc.inference.opencl", "OpenCLEngine"),
    ("hpc.inference.opencl_engine", "OpenCLEngine"),
    ("hpc.opencl.engine", "OpenCLEngine"),
)

def find_opencl_engine() -> type:
    """The OpenCLEngine class, or BackendUnavailable saying where it was looked for."""
    tried = []
    for module_name, attr in OPENCL_ENGINE_LOCATIONS:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            tried.append(f"{module_name} ({exc})")
            continue
        if hasattr(module, attr):
            return getattr(module, attr)
        tried.append(f"{module_name} (no {attr})")
    raise BackendUnavailable("opencl: the OpenCL inference engine is not installed in this "
                             "checkout; looked for OpenCLEngine in " + "; ".join(tried))


#: OpenCL profile layer types -> our components; matched by prefix (conv3x3 -> conv,
#: avgpool_global -> pool). Types not listed are booked to ``other``.
OPENCL_TYPE_PREFIXES: tuple[tuple[str, str], ...] = (
    ("conv", "conv"), ("linear", "fc"), ("fc", "fc"), ("dense", "fc"), ("maxpool", "pool"),
    ("avgpool", "pool"), ("pool", "pool"), ("relu", "activation"), ("activation", "activation"),
    ("h2d", "h2d"), ("write", "h2d"), ("d2h", "d2h"), ("read", "d2h"), ("alloc", "alloc"),
    ("free", "free"), ("sync", "sync"), ("finish", "sync"),
)


def opencl_component(layer_type: str) -> str:
    t = layer_type.lower()
    return next((comp for prefix, comp in OPENCL_TYPE_PREFIXES if t.startswith(prefix)), "other")


def opencl_components(profile: Any) -> dict[str, float]:
    """Seconds per component from ``OpenCLEngine.profile(x)``.

    The engine returns ``[(layer, layer_type, kernel, seconds), ...]``, one entry per kernel
    launch with its OpenCL START..END event time; a mapping ``layer_type -> seconds`` or
    entries with ``layer_type``/``seconds`` attributes are accepted too.
    """
    if isinstance(profile, Mapping):
        items = [(str(k), float(v)) for k, v in profile.items()]
    else:
        items = []
        for e in profile:
            if isinstance(e, (tuple, list)) and len(e) >= 2:
                items.append((str(e[1] if len(e) >= 3 else e[0]), float(e[-1])))
            elif isinstance(e, Mapping):
                items.append((str(e["layer_type"]), float(e["seconds"])))
            else:
                items.append((str(getattr(e, "layer_type")), float(getattr(e, "seconds"))))
    out: dict[str, float] = {}
    for kind, seconds in items:
        comp = opencl_component(kind)
        out[comp] = out.get(comp, 0.0) + seconds
    return out


class OpenCLBackend(InferenceBackend):
    """The suite's OpenCL engine (one style): forward for wall time, profile for components.

    The engine's profile holds its kernels only (copies and buffers are internal to its
    forward), so the copies are measured beside it, on the engine's own context: a
    profiled ``clEnqueueCopy`` of the batch's input into a device buffer (h2d) and of a
    logits-sized buffer back (d2h), timed by OpenCL events, into buffers kept per batch
    shape as the engine keeps its own; alloc/free are creating and releasing a fresh pair
    of such buffers (host clock). The copies run outside the profiled forward, so
    ``unattributed_s`` (forward wall minus components) can be slightly negative. Without
    the engine's ``runtime`` these stay null.
    """

    profiler = "OpenCL profiling events (CL_PROFILING_COMMAND_START/END) per kernel and per copy"
    copies = ("clEnqueueCopy of the batch's input (h2d) and logits (d2h) on the engine's context, "
              "profiled beside the engine's forward (its kernel profile has no copies)")

    def __init__(self, style: str | None = None, device_index: int | None = None, two_queues: bool = False,
                 binary: str | None = None) -> None:
        self.name, self.style = "opencl", style or "tiled"
        self.device_index, self.two_queues, self.binary = device_index, two_queues, binary
        self._engine: Any = None
        self._copy_queue: Any = None
        self._copy_buffers: dict[tuple[int, int], tuple[Any, Any]] = {}
        self._num_classes = 0

    def device(self) -> Device:
        if self._engine is None:
            find_opencl_engine()
            raise RuntimeError("opencl: the device is known only after prepare()")
        return self._engine.device

    def check_available(self) -> None:
        find_opencl_engine()

    def check_host_memory(self, host_memory: str) -> None:
        super().check_host_memory(host_memory)
        if host_memory == "pinned":
            raise BackendUnavailable("pinned host memory: the OpenCL engine takes host arrays as "
                                     "given (no pinned-buffer variant)")

    def prepare(self, model: nn.Module, dtype: str) -> None:
        if dtype != "float32":
            raise BackendUnavailable(f"opencl: dtype {dtype} not supported (float32 only)")
        engine_cls = find_opencl_engine()
        try:
            self._engine = engine_cls(model, self.style, self.device_index, self.two_queues, self.binary)
        except (ValueError, RuntimeError, ImportError) as exc:   # no OpenCL device, unsupported layer
            raise BackendUnavailable(f"opencl:{self.style}: {type(exc).__name__}: {exc}") from exc
        self._num_classes = int(getattr(model, "num_classes", 0))

    def _copies(self, x: Any) -> dict[str, float | None]:
        """h2d/d2h (OpenCL events) and alloc/free (host clock) of the batch's two buffers."""
        rt = getattr(self._engine, "runtime", None)
        if rt is None or not all(hasattr(rt, a) for a in ("cl", "queue", "empty")):
            return {"h2d": None, "d2h": None}
        import numpy as np
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
            self._engine.forward(x)
            return StepTimes(components={}, wall_s=time.perf_counter() - t0)
        t0 = time.perf_counter()
        prof = self._engine.profile(x)
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
