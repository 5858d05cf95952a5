"""numba CPU backend: parallel, cache-friendly pooling at memory bandwidth, blocked matmul.

Pooling is row-streaming: for each output row, the ``kh`` input rows it covers are reduced
element-wise into a one-row buffer (a running max / sum: unit-stride loops the compiler
vectorises, each input row read once per output row straight from memory), then a horizontal
pass reduces ``kw`` neighbours of the buffer into the output row. The buffer stays in L1,
so the input is streamed about once (``kh/sh`` times for overlapping windows, but the
overlap rows are still in cache).

Parallelism: the work is split into (plane, block of output rows) tasks and spread with
``prange``. A single large image (one plane) is therefore parallel over output rows, and a
large NCHW batch over planes, with one task per plane when there are enough planes.

NaN: fastmath stays off and the max is written ``m if (m >= v or m != m) else v``, so a
window containing NaN gives NaN (torch's behaviour); for integers the NaN test folds away.
float16 has no fast CPU arithmetic in numba: it is converted to float32 and back (exact for
max; avg accumulates in float32 and rounds once to float16 at the end). Average pooling
accumulates in the work dtype (float32 for float32/float16, float64 for float64).
int8/uint8/int16 are widened to int32 and narrowed back (exact), to keep the number of
compiled specialisations (and the first-run compile time) down; only float32/float64/
int32/int64 run at full speed without a conversion pass.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import arrays
from .geometry import PoolGeometry

NAME = "numba"
DEVICE_KIND = "cpu"
OPS = frozenset({"maxpool2d", "avgpool2d", "matmul"})

try:  # the module must import even when numba is missing (registry contract)
    import numba
    from numba import njit, prange
    _IMPORT_ERROR = ""
except Exception as exc:  # pragma: no cover - numba is a hard dependency of the suite
    numba = None
    _IMPORT_ERROR = f"numba not importable: {exc}"


def probe() -> tuple[bool, str, str]:
    if numba is None:
        return False, _IMPORT_ERROR, ""
    from ..provenance import provenance  # lazy: provenance is cheap but not needed at import
    cpu = provenance().get("cpu") or "CPU"
    return True, "", f"{cpu} ({numba.get_num_threads()} threads, numba {numba.__version__})"


if numba is not None:

    @njit(inline="always")
    def _nanmax(m, v):  # pragma: no cover - jitted
        # NaN-propagating max, branch-free so loops vectorise: take v if it is larger or NaN;
        # a NaN m stays (v > NaN is false) unless v is NaN too. Integers: v != v folds away.
        return v if (v > m) | (v != v) else m

    @njit(inline="always")
    def _hmax_edge(buf, o, ow, sw, pw, kw, w):  # pragma: no cover - jitted
        c0 = ow * sw - pw
        c1 = min(c0 + kw, w)
        c0 = max(c0, 0)
        m = buf[c0]
        for c in range(c0 + 1, c1):
            m = _nanmax(m, buf[c])
        o[ow] = m

    @njit(inline="always")
    def _hmax_row(buf, o, kw, sw, pw, w, ev, od):  # pragma: no cover - jitted
        """o[ow] = max(buf[ow*sw-pw : ow*sw-pw+kw]) (clipped). Interior outputs (window fully
        inside the row) take a branch-free path, specialised for the common 2/2 and 3/2."""
        ow_n = o.shape[0]
        lo = min((pw + sw - 1) // sw, ow_n)       # first ow whose window starts at c >= 0
        hi = max(lo, min(ow_n, (w - kw + pw) // sw + 1)) if w + pw >= kw else lo
        for ow in range(lo):
            _hmax_edge(buf, o, ow, sw, pw, kw, w)
        # Slices make every index below provably non-negative, so numba emits no negative-
        # index wraparound selects and LLVM vectorises the stride-2 loads (about 10x faster).
        b = buf[lo * sw - pw:]
        oo = o[lo:hi]
        n = hi - lo
        if sw == 2 and kw == 2:
            for i in range(n):
                oo[i] = _nanmax(b[2 * i], b[2 * i + 1])
        elif sw == 2 and kw == 3:
            # A 3-tap stride-2 loop does not vectorise (LLVM will not gather the lone third
            # tap); deinterleaving into even/odd halves (pair loads, which it does
            # vectorise) and then reducing with unit stride is ~2.5x faster.
            for i in range(n):
                ev[i] = b[2 * i]
                od[i] = b[2 * i + 1]
            if n > 0:
                ev[n] = b[2 * n]
            for i in range(n):
                oo[i] = _nanmax(_nanmax(ev[i], od[i]), ev[i + 1])
        else:
            for i in range(n):
                m = b[i * sw]
                for c in range(1, kw):
                    m = _nanmax(m, b[i * sw + c])
                oo[i] = m
        for ow in range(hi, ow_n):
            _hmax_edge(buf, o, ow, sw, pw, kw, w)

    @njit(inline="always")
    def _havg_edge(buf, o, ow, sw, pw, kw, w, dh, div_w):  # pragma: no cover - jitted
        c0 = ow * sw - pw
        c1 = min(c0 + kw, w)
        c0 = max(c0, 0)
        s = 0.0
        for c in range(c0, c1):
            s += buf[c]
        o[ow] = s / (dh * div_w[ow])

    @njit(inline="always")
    def _havg_row(buf, o, kw, sw, pw, w, dh, div_w):  # pragma: no cover - jitted
        """o[ow] = sum(buf[window]) / (dh * div_w[ow]); like _hmax_row, interior outputs take a
        fixed-width path (2/2 and 3/2 specialised) so the loop vectorises."""
        ow_n = o.shape[0]
        lo = min((pw + sw - 1) // sw, ow_n)
        hi = max(lo, min(ow_n, (w - kw + pw) // sw + 1)) if w + pw >= kw else lo
        for ow in range(lo):
            _havg_edge(buf, o, ow, sw, pw, kw, w, dh, div_w)
        b = buf[lo * sw - pw:]
        oo = o[lo:hi]
        dw = div_w[lo:hi]
        n = hi - lo
        if sw == 2 and kw == 2:
            for i in range(n):
                oo[i] = (b[2 * i] + b[2 * i + 1]) / (dh * dw[i])
        elif sw == 2 and kw == 3:
            for i in range(n):
                oo[i] = (b[2 * i] + b[2 * i + 1] + b[2 * i + 2]) / (dh * dw[i])
        else:
            for i in range(n):
                s = 0.0
                for c in range(kw):
                    s += b[i * sw + c]
                oo[i] = s / (dh * dw[i])
        for ow in range(hi, ow_n):
            _havg_edge(buf, o, ow, sw, pw, kw, w, dh, div_w)

    @njit(inline="always")
    def _fused_max_s2(xp, r0, nrows, o, kw, w, ev, od):  # pragma: no cover - jitted
        """One output row of max pooling with horizontal stride 2, no column padding and a
        2- or 3-row window: the vertical max is computed on column *pairs* and written
        straight into even/odd halves (``ev``/``od``), so the row buffer and the separate
        deinterleaving pass disappear (fewer L1 loads/stores per output; the pair loads
        vectorise like the 2/2 horizontal pass)."""
        a = xp[r0]
        b = xp[r0 + 1]
        half = w // 2
        ow_n = o.shape[0]
        if kw == 2 and nrows == 2:  # 2x2/2: straight from the two rows, no scratch at all
            n = min(ow_n, half)
            for i in range(n):
                o[i] = _nanmax(_nanmax(a[2 * i], a[2 * i + 1]), _nanmax(b[2 * i], b[2 * i + 1]))
            if n < ow_n:  # ceil_mode, odd width: the last window holds one column
                o[n] = _nanmax(a[w - 1], b[w - 1])
            return
        if nrows == 3:
            d = xp[r0 + 2]
            for i in range(half):
                ev[i] = _nanmax(_nanmax(a[2 * i], b[2 * i]), d[2 * i])
                od[i] = _nanmax(_nanmax(a[2 * i + 1], b[2 * i + 1]), d[2 * i + 1])
            if w % 2 == 1:
                ev[half] = _nanmax(_nanmax(a[w - 1], b[w - 1]), d[w - 1])
        else:
            for i in range(half):
                ev[i] = _nanmax(a[2 * i], b[2 * i])
                od[i] = _nanmax(a[2 * i + 1], b[2 * i + 1])
            if w % 2 == 1:
                ev[half] = _nanmax(a[w - 1], b[w - 1])
        full = min(ow_n, (w - kw) // 2 + 1) if w >= kw else 0
        if kw == 2:
            for i in range(full):
                o[i] = _nanmax(ev[i], od[i])
        else:
            for i in range(full):
                o[i] = _nanmax(_nanmax(ev[i], od[i]), ev[i + 1])
        for ow in range(full, ow_n):  # ceil_mode: a last window cut by the right edge
            c0 = 2 * ow
            m = ev[ow]
            for c in range(c0 + 1, min(c0 + kw, w)):
                m = _nanmax(m, ev[c // 2] if c % 2 == 0 else od[c // 2])
            o[ow] = m

    @njit(inline="always")
    def _fused_avg_s2(xp, r0, nrows, o, kw, w, ev, od, dh, div_w):  # pragma: no cover - jitted
        """Average-pooling counterpart of ``_fused_max_s2`` (sums; same summation order as
        the row-buffer path: rows first, then columns left to right)."""
        a = xp[r0]
        b = xp[r0 + 1]
        half = w // 2
        ow_n = o.shape[0]
        if kw == 2 and nrows == 2:
            n = min(ow_n, half)
            for i in range(n):
                o[i] = ((a[2 * i] + b[2 * i]) + (a[2 * i + 1] + b[2 * i + 1])) / (dh * div_w[i])
            if n < ow_n:
                o[n] = (a[w - 1] + b[w - 1]) / (dh * div_w[n])
            return
        if nrows == 3:
            d = xp[r0 + 2]
            for i in range(half):
                ev[i] = a[2 * i] + b[2 * i] + d[2 * i]
                od[i] = a[2 * i + 1] + b[2 * i + 1] + d[2 * i + 1]
            if w % 2 == 1:
                ev[half] = a[w - 1] + b[w - 1] + d[w - 1]
        else:
            for i in range(half):
                ev[i] = a[2 * i] + b[2 * i]
                od[i] = a[2 * i + 1] + b[2 * i + 1]
            if w % 2 == 1:
                ev[half] = a[w - 1] + b[w - 1]
        full = min(ow_n, (w - kw) // 2 + 1) if w >= kw else 0
        if kw == 2:
            for i in range(full):
                o[i] = (ev[i] + od[i]) / (dh * div_w[i])
        else:
            for i in range(full):
                o[i] = (ev[i] + od[i] + ev[i + 1]) / (dh * div_w[i])
        for ow in range(full, ow_n):
            c0 = 2 * ow
            s = ev[ow]
            for c in range(c0 + 1, min(c0 + kw, w)):
                s += ev[c // 2] if c % 2 == 0 else od[c // 2]
            o[ow] = s / (dh * div_w[ow])

    @njit(parallel=True, cache=True)
    def _max_pool(x, out, kh, kw, sh, sw, ph, pw, rows_per_task, planes_per_task):  # pragma: no cover
        planes, h, w = x.shape
        oh_n = out.shape[1]
        nblk = (oh_n + rows_per_task - 1) // rows_per_task
        ngrp = (planes + planes_per_task - 1) // planes_per_task
        for task in prange(ngrp * nblk):
            g = task // nblk
            o0 = (task % nblk) * rows_per_task
            o1 = min(oh_n, o0 + rows_per_task)
            buf = np.empty(w, dtype=x.dtype)  # per task: scratch rows, L1-resident
            ev = np.empty(w // 2 + 2, dtype=x.dtype)  # scratch for the 3/2 horizontal pass
            od = np.empty(w // 2 + 2, dtype=x.dtype)
            fused = sw == 2 and pw == 0 and (kw == 2 or kw == 3) and kh <= 3
            for p in range(g * planes_per_task, min(planes, (g + 1) * planes_per_task)):
                xp = x[p]
                for oh in range(o0, o1):
                    r0 = oh * sh - ph
                    r1 = min(r0 + kh, h)
                    r0 = max(r0, 0)
                    if fused and (r1 - r0 == 2 or r1 - r0 == 3):
                        _fused_max_s2(xp, r0, r1 - r0, out[p, oh], kw, w, ev, od)
                        continue
                    # vertical pass: running max of the window's rows, unit stride (vectorised)
                    if r1 - r0 >= 3:  # one fused pass over three rows (3x3 windows)
                        a = xp[r0]
                        b = xp[r0 + 1]
                        d = xp[r0 + 2]
                        for c in range(w):
                            buf[c] = _nanmax(_nanmax(a[c], b[c]), d[c])
                        for r in range(r0 + 3, r1):
                            a = xp[r]
                            for c in range(w):
                                buf[c] = _nanmax(buf[c], a[c])
                        _hmax_row(buf, out[p, oh], kw, sw, pw, w, ev, od)
                    elif r1 - r0 == 2:
                        a = xp[r0]
                        b = xp[r0 + 1]
                        for c in range(w):
                            buf[c] = _nanmax(a[c], b[c])
                        for r in range(r0 + 2, r1):
                            a = xp[r]
                            for c in range(w):
                                buf[c] = _nanmax(buf[c], a[c])
                        _hmax_row(buf, out[p, oh], kw, sw, pw, w, ev, od)
                    else:  # one row in the window: pool it directly
                        _hmax_row(xp[r0], out[p, oh], kw, sw, pw, w, ev, od)

    @njit(parallel=True, cache=True)
    def _avg_pool(x, out, kh, kw, sh, sw, ph, pw, div_h, div_w, rows_per_task,
                  planes_per_task):  # pragma: no cover
        # The row buffer has the dtype of ``out`` (float32 for float32/float16 input, float64
        # for float64): a float64 buffer for float32 data halved the vector width and cost
        # a conversion per element (0.5 of the copy bound before, see kernels-cpu.md); a
        # window of at most kh*kw float32 terms loses < kh*kw/2 ulp, within the reference
        # tolerance, and torch's CPU kernel accumulates float32 in float32 too.
        planes, h, w = x.shape
        oh_n = out.shape[1]
        nblk = (oh_n + rows_per_task - 1) // rows_per_task
        ngrp = (planes + planes_per_task - 1) // planes_per_task
        for task in prange(ngrp * nblk):
            g = task // nblk
            o0 = (task % nblk) * rows_per_task
            o1 = min(oh_n, o0 + rows_per_task)
            buf = np.empty(w, dtype=out.dtype)
            ev = np.empty(w // 2 + 2, dtype=out.dtype)
            od = np.empty(w // 2 + 2, dtype=out.dtype)
            fused = sw == 2 and pw == 0 and (kw == 2 or kw == 3) and kh <= 3
            for p in range(g * planes_per_task, min(planes, (g + 1) * planes_per_task)):
                xp = x[p]
                for oh in range(o0, o1):
                    r0 = oh * sh - ph
                    r1 = min(r0 + kh, h)
                    r0 = max(r0, 0)
                    if fused and (r1 - r0 == 2 or r1 - r0 == 3):
                        _fused_avg_s2(xp, r0, r1 - r0, out[p, oh], kw, w, ev, od, div_h[oh], div_w)
                        continue
                    a = xp[r0]  # row views: unit-stride loops without index wraparound
                    if r1 - r0 >= 3:  # fused vertical pass over three rows (3x3 windows)
                        b = xp[r0 + 1]
                        d = xp[r0 + 2]
                        for c in range(w):
                            buf[c] = a[c] + b[c] + d[c]
                        r_next = r0 + 3
                    elif r1 - r0 == 2:
                        b = xp[r0 + 1]
                        for c in range(w):
                            buf[c] = a[c] + b[c]
                        r_next = r0 + 2
                    else:
                        for c in range(w):
                            buf[c] = a[c]
                        r_next = r0 + 1
                    for r in range(r_next, r1):
                        a = xp[r]
                        for c in range(w):
                            buf[c] += a[c]
                    _havg_row(buf, out[p, oh], kw, sw, pw, w, div_h[oh], div_w)

    @njit(parallel=True, cache=True)
    def _matmul(a, b, c, bm, bk, bn):  # pragma: no cover - jitted
        m, k = a.shape
        n = b.shape[1]
        for bi in prange((m + bm - 1) // bm):
            i0 = bi * bm
            i1 = min(m, i0 + bm)
            for j0 in range(0, n, bn):
                j1 = min(n, j0 + bn)
                for k0 in range(0, k, bk):
                    k1 = min(k, k0 + bk)
                    for i in range(i0, i1):
                        ci = c[i, j0:j1]  # slices: indices from 0, no wraparound checks,
                        for kk in range(k0, k1):  # so the j loop vectorises (FMA-free:
                            aik = a[i, kk]        # fastmath off, results match NumPy closely)
                            brow = b[kk, j0:j1]
                            for j in range(j1 - j0):
                                ci[j] += aik * brow[j]


# Kernels are compiled per dtype (parallel=True compiles are slow, ~10 s each): narrow
# integer types are widened to int32 (exact, order-preserving) so only float32, float64,
# int32 and int64 versions exist; float16 has no fast CPU arithmetic in numba -> float32.
_WORK_DTYPE: dict[str, np.dtype] = {
    "float16": np.dtype(np.float32), "int8": np.dtype(np.int32),
    "uint8": np.dtype(np.int32), "int16": np.dtype(np.int32),
}


def task_split(planes: int, out_h: int, threads: int) -> tuple[int, int]:
    """(output rows per task, planes per task): about 4 tasks per thread (load balance).
    Few planes (one big image): split each plane into row blocks. Many planes (NCHW
    batches): whole planes, several per task so per-task set-up (scratch rows) is amortised."""
    tasks = 4 * threads
    if planes >= tasks:
        return max(1, out_h), math.ceil(planes / tasks)
    blocks_per_plane = math.ceil(tasks / max(planes, 1))
    return max(1, math.ceil(out_h / blocks_per_plane)), 1


def _axis_divisor(size: int, k: int, s: int, p: int, n_out: int, include_pad: bool) -> np.ndarray:
    start = np.arange(n_out) * s - p
    end = np.minimum(start + k, size + p)
    if include_pad:
        return (end - start).astype(np.float64)
    return (np.minimum(end, size) - np.maximum(start, 0)).astype(np.float64)


def pool2d(x: Any, geom: PoolGeometry, op: str, count_include_pad: bool,
           divisor_override: int | None = None, out: np.ndarray | None = None) -> np.ndarray:
    """Pool an (N, C, H, W) array. ``out``: an optional C-contiguous (N, C, out_h, out_w)
    array of the input's dtype to write into (returned). Why offer it: each call otherwise
    allocates its output, and first-touching fresh pages is part of the measured cost
    (a 64 MiB output at 8192^2 2x2/2; see docs/benchmarks/kernels-cpu.md)."""
    a = arrays.to_numpy(x)
    n, c, h, w = a.shape
    out_shape = (n * c, geom.out_h, geom.out_w)
    work_dtype = _WORK_DTYPE.get(a.dtype.name, a.dtype)
    planes = np.ascontiguousarray(a.reshape(n * c, h, w), dtype=work_dtype)
    direct = out is not None and work_dtype == a.dtype
    if out is not None:
        _check_out(out, (n, c, geom.out_h, geom.out_w), a.dtype)
    res = out.reshape(out_shape) if direct else np.empty(out_shape, dtype=work_dtype)
    (kh, kw), (sh, sw), (ph, pw) = geom.kernel, geom.stride, geom.padding
    rpt, ppt = task_split(n * c, geom.out_h, numba.get_num_threads())
    if op == "max":
        _max_pool(planes, res, kh, kw, sh, sw, ph, pw, rpt, ppt)
    else:
        if divisor_override is not None:
            div_h = np.full(geom.out_h, float(divisor_override), dtype=work_dtype)
            div_w = np.ones(geom.out_w, dtype=work_dtype)
        else:
            div_h = _axis_divisor(h, kh, sh, ph, geom.out_h, count_include_pad).astype(work_dtype)
            div_w = _axis_divisor(w, kw, sw, pw, geom.out_w, count_include_pad).astype(work_dtype)
        _avg_pool(planes, res, kh, kw, sh, sw, ph, pw, div_h, div_w, rpt, ppt)
    result = res.reshape(n, c, geom.out_h, geom.out_w)
    if out is not None:
        if not direct:
            np.copyto(out, result, casting="unsafe")
        return out
    return result.astype(a.dtype, copy=False)


def _check_out(out: Any, shape: tuple[int, ...], dtype: np.dtype) -> None:
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a NumPy array for backend='numba', got {type(out).__name__}")
    if tuple(out.shape) != shape or out.dtype != dtype or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous {dtype} array of shape {shape}, got "
                         f"{'a non-contiguous ' if not out.flags.c_contiguous else ''}"
                         f"{out.dtype} array of shape {tuple(out.shape)}")


def matmul(a: Any, b: Any) -> np.ndarray:
    a_np = np.ascontiguousarray(arrays.to_numpy(a))
    b_np = np.ascontiguousarray(arrays.to_numpy(b))
    c = np.zeros((a_np.shape[0], b_np.shape[1]), dtype=a_np.dtype)
    _matmul(a_np, b_np, c, 64, 128, 1024)
    return c
