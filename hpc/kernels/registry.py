"""Backend registry: which kernel backends exist, which can run here, and why not.

A backend is a module ``hpc.kernels.backend_<name>`` (``-`` in a name becomes ``_``)
that defines, and must import without raising even when its package or device is absent
(import heavy packages inside functions or behind try/except):

    NAME: str               # registry name, e.g. "numba-cuda"
    DEVICE_KIND: str        # "cpu" | "cuda" | "opencl"
    OPS: frozenset[str]     # subset of {"maxpool2d", "avgpool2d", "matmul"}
    def probe() -> tuple[bool, str, str]:
        '''(available, reason_if_not, device_name); never raises.'''
    def pool2d(x, geom: PoolGeometry, op: str, count_include_pad: bool):
        '''x: 4-D (N, C, H, W) array, any kind hpc.kernels.arrays understands (NumPy,
        CuPy, torch, numba device array); op: "max" | "avg". Returns a 4-D result of
        shape (N, C, geom.out_h, geom.out_w) with x's dtype (avg of integers: see api).'''
    def matmul(a, b):
        '''2-D float32/float64 product.'''

Optional: ``VARIANTS: dict[str, str]`` (e.g. matmul kernels "naive", "shared", "regblock")
selected with a ``variant=`` keyword on pool2d/matmul; ``DEFAULT_VARIANT``.

``hpc.kernels.api`` validates arguments once, then calls the backend; backends trust
their inputs.
"""
from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from types import ModuleType

# Order matters for backend="auto": the first available backend that supports the op
# *and* the input's array kind wins (see api.auto_backend).
BACKEND_NAMES: tuple[str, ...] = (
    "numpy", "numba", "torch", "opencl", "numba-cuda", "cupy", "study",
)


class BackendUnavailableError(RuntimeError):
    """The requested backend cannot run here; the message says why (no GPU, no package...)."""


@dataclass(frozen=True)
class BackendInfo:
    name: str
    device_kind: str
    ops: frozenset[str]
    available: bool
    reason: str
    device_name: str


def module_name(name: str) -> str:
    return "hpc.kernels.backend_" + name.replace("-", "_")


def _load(name: str) -> ModuleType:
    if name not in BACKEND_NAMES:
        raise ValueError(f"backend={name!r} is not a known backend; choose from {', '.join(BACKEND_NAMES)}")
    return importlib.import_module(module_name(name))


@functools.lru_cache(maxsize=None)
def backend_info(name: str) -> BackendInfo:
    """Probe one backend (cached: probing may create a CUDA context or OpenCL queue)."""
    try:
        module = _load(name)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("hpc.kernels.backend_"):
            return BackendInfo(name, "?", frozenset(), False, "not implemented in this build", "")
        return BackendInfo(name, "?", frozenset(), False, f"import failed: {exc}", "")
    try:
        ok, reason, device = module.probe()
    except Exception as exc:  # a probe must never take the registry down
        ok, reason, device = False, f"probe raised {type(exc).__name__}: {exc}", ""
    return BackendInfo(module.NAME, module.DEVICE_KIND, frozenset(module.OPS), bool(ok),
                       "" if ok else reason, device)


def available_backends(op: str | None = None) -> dict[str, BackendInfo]:
    """Every known backend with whether it can run here and, if not, why."""
    infos = {n: backend_info(n) for n in BACKEND_NAMES}
    if op is not None:
        infos = {n: i for n, i in infos.items() if op in i.ops or not i.available}
    return infos


def get_backend(name: str, op: str) -> ModuleType:
    """The backend module, or BackendUnavailableError naming the reason."""
    info = backend_info(name)
    if not info.available:
        raise BackendUnavailableError(f"backend={name!r} is not available here: {info.reason}")
    if op not in info.ops:
        raise ValueError(f"backend={name!r} does not implement {op}; it implements {sorted(info.ops)}")
    return _load(name)
