"""Why the first point of a fresh process is slow: a measurement, ``python -m hpc.kernels.first_touch``.

It times, in this (fresh) process, writing ``--mib`` MiB into (a) a buffer never touched
before, (b) the same buffer again, (c) a new buffer allocated right after freeing one,
(d) a new buffer after freeing one and waiting ``--wait`` s; then ``--calls`` calls of numba
max pooling 2x2/2 on an ``--size``^2 float32 image through the API (fresh output each
call), each with its minor page faults and the kernel's THP counters (/proc/vmstat), and
the same kernel writing into one pre-allocated output (``out=``).

On the 2-vCPU firecracker VM of this project, (a) costs 30-100x (b): the guest's free pages
are handed back to the hypervisor (virtio-balloon free page reporting,
``page_reporting.page_reporting_order=11`` on the kernel command line), so first touching
them faults in the host too; (c) reuses just-freed, still-backed pages and is cheap. The
numbers, and what the benchmark does about it, are in docs/benchmarks/kernels-cpu.md.
"""
from __future__ import annotations

import argparse
import resource
import time

import numpy as np


def _vmstat(keys: tuple[str, ...] = ("thp_fault_alloc", "thp_fault_fallback")) -> dict[str, int]:
    out = {}
    try:
        with open("/proc/vmstat") as fh:
            for line in fh:
                k, v = line.split()
                if k in keys:
                    out[k] = int(v)
    except OSError:
        pass
    return out


def _minflt() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def touch_ms(nbytes: int, buf: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Write every byte of ``buf`` (a new one if None); (buffer, milliseconds)."""
    t0 = time.perf_counter()
    if buf is None:
        buf = np.empty(nbytes // 4, dtype=np.float32)
    buf.fill(1.0)
    return buf, (time.perf_counter() - t0) * 1e3


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mib", type=int, default=256)
    p.add_argument("--wait", type=float, default=3.0)
    p.add_argument("--size", type=int, default=8192)
    p.add_argument("--calls", type=int, default=8)
    a = p.parse_args(argv)
    nbytes = a.mib << 20
    print(f"loadavg {open('/proc/loadavg').read().split()[:3]}")
    buf, ms = touch_ms(nbytes)
    print(f"(a) first touch of {a.mib} MiB in a fresh process: {ms:.0f} ms")
    _, ms = touch_ms(nbytes, buf)
    print(f"(b) writing the same {a.mib} MiB again:            {ms:.0f} ms")
    del buf
    buf, ms = touch_ms(nbytes)
    print(f"(c) new buffer right after freeing one:            {ms:.0f} ms")
    del buf
    time.sleep(a.wait)
    buf, ms = touch_ms(nbytes)
    print(f"(d) new buffer after freeing one and {a.wait:.0f} s idle:  {ms:.0f} ms")
    del buf

    from hpc.kernels import api
    x = np.random.default_rng(0).random((a.size, a.size), dtype=np.float32)
    out = np.empty((a.size // 2, a.size // 2), dtype=np.float32)
    for label, kw in (("API call, fresh output", {}), ("out= pre-allocated", {"out": out})):
        for i in range(a.calls):
            f0, v0 = _minflt(), _vmstat()
            t0 = time.perf_counter()
            api.maxpool2d(x, 2, 2, backend="numba", **kw)
            ms = (time.perf_counter() - t0) * 1e3
            v1 = _vmstat()
            thp = {k: v1[k] - v0[k] for k in v0}
            print(f"{label:24s} call {i}: {ms:7.1f} ms, minor faults {_minflt() - f0:6d}, {thp}")
    print(f"loadavg {open('/proc/loadavg').read().split()[:3]}")


if __name__ == "__main__":
    main()
