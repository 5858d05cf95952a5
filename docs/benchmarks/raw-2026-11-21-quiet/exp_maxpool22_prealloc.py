"""2x2/2 max pool variants on one big float32 image: current backend vs deinterleaved vs prealloc."""
import time, sys
import numpy as np, numba
from numba import njit, prange
from hpc.kernels import maxpool2d
from hpc.kernels.backend_numba import _max_pool, task_split
from hpc.kernels.geometry import pool_geometry

@njit(inline="always")
def _mx(m, v):
    return v if (v > m) | (v != v) else m

@njit(parallel=True, cache=False)
def pool22_deint(x, out, rows_per_task):
    h, w = x.shape
    oh_n, ow_n = out.shape
    nblk = (oh_n + rows_per_task - 1) // rows_per_task
    for t in prange(nblk):
        buf = np.empty(w, dtype=x.dtype)
        ev = np.empty(w // 2 + 1, dtype=x.dtype)
        od = np.empty(w // 2 + 1, dtype=x.dtype)
        for oh in range(t * rows_per_task, min(oh_n, (t + 1) * rows_per_task)):
            a = x[2 * oh]; b = x[2 * oh + 1]
            for c in range(w):
                buf[c] = _mx(a[c], b[c])
            for i in range(ow_n):
                ev[i] = buf[2 * i]
                od[i] = buf[2 * i + 1]
            o = out[oh]
            for i in range(ow_n):
                o[i] = _mx(ev[i], od[i])

def bench(f, n=7):
    f(); ts = []
    for _ in range(n):
        t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
    return np.median(ts)

for N in (8192, 16384):
    x = np.random.default_rng(0).standard_normal((N, N), dtype=np.float32)
    g = pool_geometry(N, N, 2, 2)
    out = np.empty((1, N // 2, N // 2), np.float32)
    x3 = x.reshape(1, N, N)
    rpt, ppt = task_split(1, N // 2, numba.get_num_threads())
    t_api = bench(lambda: maxpool2d(x, 2, 2, backend="numba"))
    t_pre = bench(lambda: _max_pool(x3, out, 2, 2, 2, 2, 0, 0, rpt, ppt))
    out2 = np.empty((N // 2, N // 2), np.float32)
    t_dei = bench(lambda: pool22_deint(x, out2, rpt))
    assert np.array_equal(out2, out[0])
    src = np.empty(x.size + out.size, np.float32); dst = np.empty_like(src)
    t_cp = bench(lambda: np.copyto(dst, src))
    t_alloc = bench(lambda: np.empty((N // 2, N // 2), np.float32).fill(0))
    print(f"N={N}: api {t_api*1e3:.1f} ms ({t_cp/t_api:.2f} of copy) | prealloc out {t_pre*1e3:.1f} ms ({t_cp/t_pre:.2f}) | "
          f"deinterleaved prealloc {t_dei*1e3:.1f} ms ({t_cp/t_dei:.2f}) | copy {t_cp*1e3:.1f} ms | alloc+fill out {t_alloc*1e3:.1f} ms")
