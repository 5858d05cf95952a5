"""OpenCL backend (pyopencl): the FPGA study's two kernel styles, plus a tiled matmul.

Variants (``variant=`` on pooling): ``"ndrange"`` - one work-item per output element, the
GPU-style data-parallel kernel; ``"single-task"`` - one work-item running pipelined nested
loops, the style an FPGA high-level-synthesis compiler turns into a deep pipeline
(``max_global_work_dim(0)`` under the Intel FPGA compiler). Kernel sources live in
``hpc/kernels/opencl/*.cl`` and are templated per dtype with ``#define`` lines prepended
here (float16 is read/written with vload_half/vstore_half and computed in float, so it needs
no cl_khr_fp16; float64 needs cl_khr_fp64).

Device choice: an accelerator (CL_DEVICE_TYPE_ACCELERATOR, e.g. an FPGA board) if there is
one, else a GPU, else the CPU; ``HPC_OPENCL_DEVICE="<platform substring>:<device substring>"``
overrides. On a CPU device (PoCL here) the device name says "emulated".

ICD loading: the pyopencl wheel ships its own ICD loader, which reads the vendor files in
/etc/OpenCL/vendors (Debian's pocl-opencl-icd installs pocl.icd there); if vendors live
elsewhere, point ``OCL_ICD_VENDORS`` at that directory before the first import. The probe's
reason says so when no platform is found.
"""
from __future__ import annotations

import os
import threading
from importlib import resources
from typing import Any

import numpy as np

from . import arrays
from .geometry import PoolGeometry

NAME = "opencl"
DEVICE_KIND = "opencl"
OPS = frozenset({"maxpool2d", "avgpool2d", "matmul"})
POOL_VARIANTS: dict[str, str] = {
    "ndrange": "one work-item per output element (data-parallel, GPU style)",
    "single-task": "one work-item, pipelined nested loops (FPGA single-task style)",
}
MATMUL_VARIANTS: dict[str, str] = {"tiled": "16x16 local-memory tiles"}
VARIANTS: dict[str, str] = {**POOL_VARIANTS, **MATMUL_VARIANTS}
DEFAULT_VARIANT = "ndrange"
MATMUL_TILE = 16

# per NumPy dtype: (T, CT, ACC, LOWEST, is_float)
_TYPES: dict[str, tuple[str, str, str, str, bool]] = {
    "float16": ("half", "float", "float", "-INFINITY", True),
    "float32": ("float", "float", "float", "-INFINITY", True),
    "float64": ("double", "double", "double", "-INFINITY", True),
    "int8": ("char", "char", "double", "CHAR_MIN", False),
    "uint8": ("uchar", "uchar", "double", "0", False),
    "int16": ("short", "short", "double", "SHRT_MIN", False),
    "int32": ("int", "int", "double", "INT_MIN", False),
    "int64": ("long", "long", "double", "LONG_MIN", False),
}

_lock = threading.RLock()
_state: dict[str, Any] = {}


def _pick_device(cl: Any) -> Any:
    platforms = cl.get_platforms()
    want = os.environ.get("HPC_OPENCL_DEVICE", "")
    devices = [d for p in platforms for d in p.get_devices()]
    if want:
        plat_sub, _, dev_sub = want.partition(":")
        for d in devices:
            if plat_sub.lower() in d.platform.name.lower() and dev_sub.lower() in d.name.lower():
                return d
        raise RuntimeError(f"HPC_OPENCL_DEVICE={want!r} matches no device among "
                           f"{[(d.platform.name, d.name) for d in devices]}")
    for kind in (cl.device_type.ACCELERATOR, cl.device_type.GPU, cl.device_type.CPU):
        for d in devices:
            if d.type & kind:
                return d
    if devices:
        return devices[0]
    raise RuntimeError("no OpenCL device")


def _context() -> tuple[Any, Any, Any]:
    """(pyopencl module, context, queue), created once per process."""
    with _lock:
        if "ctx" not in _state:
            import pyopencl as cl
            device = _pick_device(cl)
            ctx = cl.Context([device])
            queue = cl.CommandQueue(ctx, properties=cl.command_queue_properties.PROFILING_ENABLE)
            _state.update(cl=cl, device=device, ctx=ctx, queue=queue, programs={}, kernels={})
        return _state["cl"], _state["ctx"], _state["queue"]


def device_name() -> str:
    cl, _, _ = _context()
    d = _state["device"]
    name = f"{d.name.strip()} [{d.platform.name.strip()}]"
    if d.type & cl.device_type.CPU:
        name += " (emulated on CPU)"
    return name


def probe() -> tuple[bool, str, str]:
    try:
        import pyopencl as cl
    except Exception as exc:
        return False, f"pyopencl not importable: {exc}", ""
    try:
        if not cl.get_platforms():
            raise RuntimeError("empty platform list")
    except Exception as exc:
        return False, (f"no OpenCL platform ({exc}); install an ICD such as Debian's "
                       f"pocl-opencl-icd (vendor files in /etc/OpenCL/vendors, or set "
                       f"OCL_ICD_VENDORS)"), ""
    try:
        _context()
        return True, "", device_name()
    except Exception as exc:
        return False, f"no usable OpenCL device: {exc}", ""


def _program(file: str, dtype: str) -> Any:
    """Build (once per process) ``file`` templated for ``dtype``."""
    cl, ctx, _ = _context()
    key = (file, dtype)
    programs = _state["programs"]
    if key not in programs:
        t, ct, acc, lowest, is_float = _TYPES[dtype]
        needs_fp64 = "double" in (t, ct, acc)
        if needs_fp64 and "cl_khr_fp64" not in _state["device"].extensions:
            if t == "double":
                raise TypeError(f"backend='opencl': device {device_name()} lacks cl_khr_fp64, "
                                f"so float64 is not supported there")
            acc = "float"
        head = []
        if needs_fp64 and acc == "double" or t == "double":
            head.append("#pragma OPENCL EXTENSION cl_khr_fp64 : enable")
        head += [f"#define T {t}", f"#define CT {ct}", f"#define ACC {acc}", f"#define LOWEST {lowest}"]
        if t == "half":
            head += ["#define LOAD(p, i) vload_half((i), (p))",
                     "#define STORE(p, i, v) vstore_half_rte((v), (i), (p))"]
        else:
            head += ["#define LOAD(p, i) ((p)[i])", "#define STORE(p, i, v) ((p)[i] = (v))"]
        head.append("#define IS_NAN(v) isnan(v)" if is_float else "#define IS_NAN(v) 0")
        head.append(f"#define TS {MATMUL_TILE}")
        source = resources.files("hpc.kernels").joinpath("opencl", file).read_text()
        programs[key] = cl.Program(ctx, "\n".join(head) + "\n" + source).build()
    return programs[key]


def _kernel(file: str, dtype: str, name: str) -> Any:
    """A cached kernel object (pyopencl warns, rightly, that each attribute lookup on a
    program builds a new one)."""
    key = (file, dtype, name)
    kernels = _state["kernels"]
    if key not in kernels:
        cl = _state["cl"]
        kernels[key] = cl.Kernel(_program(file, dtype), name)
    return kernels[key]


# Device-side timings of the most recent pool2d/matmul call in this process, from OpenCL
# profiling events (seconds): "h2d_s", "kernel_s", "d2h_s". For the benchmark, which
# reports transfer time separately from kernel time.
last_timings: dict[str, float] = {}


def _record(h2d: list[Any], kernel_evt: Any, d2h: Any) -> None:
    def span(evts: list[Any]) -> float:
        return sum((e.profile.end - e.profile.start) for e in evts) * 1e-9
    last_timings.clear()
    last_timings.update(h2d_s=span(h2d), kernel_s=span([kernel_evt]), d2h_s=span([d2h]))


def pool2d(x: Any, geom: PoolGeometry, op: str, count_include_pad: bool,
           divisor_override: int | None = None, variant: str = DEFAULT_VARIANT) -> np.ndarray:
    cl, ctx, queue = _context()
    a = np.ascontiguousarray(arrays.to_numpy(x))
    n, c, h, w = a.shape
    planes = n * c
    out = np.empty((n, c, geom.out_h, geom.out_w), dtype=a.dtype)
    mf = cl.mem_flags
    x_buf = cl.Buffer(ctx, mf.READ_ONLY, a.nbytes)
    h2d = cl.enqueue_copy(queue, x_buf, a)
    o_buf = cl.Buffer(ctx, mf.WRITE_ONLY, out.nbytes)
    (kh, kw), (sh, sw), (ph, pw) = geom.kernel, geom.stride, geom.padding
    i32 = np.int32
    dims = [i32(h), i32(w), i32(geom.out_h), i32(geom.out_w),
            i32(kh), i32(kw), i32(sh), i32(sw), i32(ph), i32(pw)]
    extra = [i32(bool(count_include_pad)), i32(divisor_override or 0)] if op == "avg" else []
    with _lock:  # a kernel object's arguments are shared state
        if variant == "single-task":
            kernel = _kernel("pool.cl", a.dtype.name, f"{op}_pool_single")
            evt = kernel(queue, (1,), (1,), x_buf, o_buf, i32(planes), *dims, *extra)
        else:
            kernel = _kernel("pool.cl", a.dtype.name, f"{op}_pool_ndrange")
            evt = kernel(queue, (geom.out_w, geom.out_h, planes), None, x_buf, o_buf, *dims, *extra)
    d2h = cl.enqueue_copy(queue, out, o_buf)
    _record([h2d], evt, d2h)
    return out


def matmul(a: Any, b: Any, variant: str = "tiled") -> np.ndarray:
    cl, ctx, queue = _context()
    a_np = np.ascontiguousarray(arrays.to_numpy(a))
    b_np = np.ascontiguousarray(arrays.to_numpy(b))
    m, k = a_np.shape
    n = b_np.shape[1]
    c = np.empty((m, n), dtype=a_np.dtype)
    mf = cl.mem_flags
    a_buf = cl.Buffer(ctx, mf.READ_ONLY, a_np.nbytes)
    b_buf = cl.Buffer(ctx, mf.READ_ONLY, b_np.nbytes)
    h2d = [cl.enqueue_copy(queue, a_buf, a_np), cl.enqueue_copy(queue, b_buf, b_np)]
    c_buf = cl.Buffer(ctx, mf.WRITE_ONLY, c.nbytes)
    ts = MATMUL_TILE
    gsize = (-(-n // ts) * ts, -(-m // ts) * ts)
    with _lock:
        kernel = _kernel("matmul.cl", a_np.dtype.name, "matmul_tiled")
        evt = kernel(queue, gsize, (ts, ts), a_buf, b_buf, c_buf, np.int32(m), np.int32(n), np.int32(k))
    d2h = cl.enqueue_copy(queue, c, c_buf)
    _record(h2d, evt, d2h)
    return c
