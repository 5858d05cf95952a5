"""Single layers on NumPy arrays: each kernel of each style callable on its own.

Used by the golden tests (every kernel against torch) and handy for experiments; the
engine enqueues the same launches on device buffers without the round trips.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .geometry import (ConvGeom, PoolGeom, conv_launch, device_weights, global_avgpool_launch,
                       linear_launch, lrn_launch, pool_launch)
from .runtime import Runtime, shared_runtime


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (int(v), int(v)) if np.isscalar(v) else (int(v[0]), int(v[1]))  # type: ignore[index]


def _run(rt: Runtime, style: str, spec: Any, inputs: list[np.ndarray], out: np.ndarray) -> np.ndarray:
    q = rt.queue()
    bufs = [rt.to_device(a) for a in inputs]
    out_buf = rt.to_device(out)
    rt.enqueue(q, style, spec, (*bufs, out_buf))
    rt.cl.enqueue_copy(q, out, out_buf)
    q.finish()
    return out


def conv2d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, stride: Any = 1,
           padding: Any = 0, relu: bool = False, style: str = "ndrange", out: np.ndarray | None = None,
           channel_offset: int = 0, runtime: Runtime | None = None) -> np.ndarray:
    """torch.nn.functional.conv2d (+ ReLU). With ``out`` (n, ctot, ho, wo) the result goes to
    channels [channel_offset, channel_offset + cout) of it and the other channels are kept."""
    rt = runtime or shared_runtime()
    n, cin, h, w = x.shape
    cout, wcin, kh, kw = weight.shape
    if wcin != cin:
        raise ValueError(f"weight {weight.shape} expects {wcin} input channels, input has {cin}")
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    ctot = out.shape[1] if out is not None else cout
    g = ConvGeom(n, cin, h, w, cout, kh, kw, sh, sw, ph, pw, ctot=ctot, coff=channel_offset)
    g.check()
    if out is None:
        out = np.zeros((n, ctot, g.ho, g.wo), np.float32)
    elif out.shape != (n, ctot, g.ho, g.wo) or out.dtype != np.float32:
        raise ValueError(f"out {out.shape} {out.dtype}: expected ({n}, {ctot}, {g.ho}, {g.wo}) float32")
    wd, bd = device_weights(style, weight, bias)
    return _run(rt, style, conv_launch(style, g, relu), [x, wd, bd], np.ascontiguousarray(out))


def linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, relu: bool = False,
           style: str = "ndrange", runtime: Runtime | None = None) -> np.ndarray:
    """torch.nn.functional.linear (+ ReLU) on (n, in_features)."""
    rt = runtime or shared_runtime()
    n, fin = x.shape
    fout = weight.shape[0]
    if weight.shape != (fout, fin):
        raise ValueError(f"weight {weight.shape}: expected ({fout}, {fin})")
    wd, bd = device_weights(style, weight, bias)
    return _run(rt, style, linear_launch(style, n, fin, fout, relu), [x, wd, bd],
                np.zeros((n, fout), np.float32))


def pool2d(x: np.ndarray, op: str, kernel_size: Any, stride: Any = None, padding: Any = 0,
           ceil_mode: bool = False, relu: bool = False, style: str = "ndrange",
           runtime: Runtime | None = None) -> np.ndarray:
    """max_pool2d / avg_pool2d (count_include_pad=True) on (n, c, h, w); ``op`` is
    ``maxpool2d`` or ``avgpool2d``."""
    if op not in ("maxpool2d", "avgpool2d"):
        raise ValueError(f"op={op!r}: expected maxpool2d or avgpool2d")
    rt = runtime or shared_runtime()
    n, c, h, w = x.shape
    (kh, kw) = _pair(kernel_size)
    (sh, sw) = _pair(kernel_size if stride is None else stride)
    (ph, pw) = _pair(padding)
    g = PoolGeom(n * c, h, w, kh, kw, sh, sw, ph, pw, ceil_mode)
    g.check()
    return _run(rt, style, pool_launch(style, op, g, relu), [x],
                np.zeros((n, c, g.ho, g.wo), np.float32))


def global_avgpool(x: np.ndarray, relu: bool = False, style: str = "ndrange",
                   runtime: Runtime | None = None) -> np.ndarray:
    """Mean over each (h, w) plane: (n, c, h, w) -> (n, c, 1, 1)."""
    rt = runtime or shared_runtime()
    n, c, h, w = x.shape
    return _run(rt, style, global_avgpool_launch(style, n * c, h * w, relu), [x],
                np.zeros((n, c, 1, 1), np.float32))


def local_response_norm(x: np.ndarray, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0,
                        relu: bool = False, style: str = "ndrange", runtime: Runtime | None = None) -> np.ndarray:
    """torch.nn.functional.local_response_norm on (n, c, h, w)."""
    rt = runtime or shared_runtime()
    n, c, h, w = x.shape
    if size < 1:
        raise ValueError(f"size={size}: must be >= 1")
    return _run(rt, style, lrn_launch(style, n, c, h, w, size, alpha, beta, k, relu), [x],
                np.zeros_like(x, dtype=np.float32))
