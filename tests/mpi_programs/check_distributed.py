"""Run under ``mpiexec -n P``: distributed kernels vs the single-process kernels, exactly.

Usage: check_distributed.py WORKDIR GROUP[,GROUP...]   (groups: pool, batch, hetero, matmul, cuda)

Every check runs on every rank; rank 0 compares with the single-process result and the
program exits 1 (on every rank) when anything differs, printing each mismatch.
"""
from __future__ import annotations

import sys
import traceback
from pathlib import Path

import h5py
import numpy as np
from mpi4py import MPI

import hpc.parallel as hp
from hpc.kernels import api
from hpc.parallel import calibration
from hpc.parallel.decomposition import DecompositionError

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
workdir = Path(sys.argv[1])
groups = sys.argv[2].split(",")
failures: list[str] = []
checks = 0


def fail(msg: str) -> None:
    failures.append(msg)
    print(f"MISMATCH (P={size}): {msg}", file=sys.stderr, flush=True)


def reference(x, op, kw, backend="numba"):
    f = api.maxpool2d if op == "max" else api.avgpool2d
    return f(x, backend=backend, **kw)


def out_rows(shape, kw):
    from hpc.kernels.geometry import pool_geometry
    return pool_geometry(shape[-2], shape[-1], kw["kernel_size"], kw.get("stride"), kw.get("padding", 0),
                         kw.get("ceil_mode", False)).out_h


def check_pool(label, x, op, kw, backend="numba", weights=None, paths=("scatter", "parallel-io"),
               ref_backend=None):
    """One case on both data paths; a case the rank count cannot split must fail the same
    way on every rank (DecompositionError), never hang."""
    global checks
    func = hp.distributed_maxpool2d if op == "max" else hp.distributed_avgpool2d
    ref = reference(x, op, kw, ref_backend or backend) if rank == 0 else None
    h5_in = workdir / "in.h5"
    if "parallel-io" in paths and rank == 0:
        with h5py.File(h5_in, "w") as fh:
            fh["images"] = x
    comm.Barrier()
    for path in paths:
        checks += 1
        try:
            if path == "scatter":
                got = func(x if rank == 0 else None, comm=comm, path="scatter", backend=backend,
                           weights=weights, **kw)
            else:
                spec = func(f"{h5_in}:/images", comm=comm, path="parallel-io", backend=backend,
                            out=f"{workdir}/out.h5:/pooled", weights=weights, **kw)
                got = None
                if rank == 0:
                    with h5py.File(spec.rsplit(":", 1)[0], "r") as fh:
                        got = fh["pooled"][...]
        except DecompositionError as exc:
            needs_rows = x.ndim == 2 or np.prod(x.shape[:-2]) < size
            if not (needs_rows and out_rows(x.shape, kw) < size):
                fail(f"{label} {op} {path}: unexpected {exc}")
            elif "more ranks than" not in str(exc):
                fail(f"{label} {op} {path}: unclear error {exc}")
            comm.Barrier()   # a fast rank must not rewrite the input while a slow one still reads it
            continue
        if rank == 0:
            if got is None or got.shape != ref.shape or got.dtype != ref.dtype:
                fail(f"{label} {op} {path}: shape/dtype {None if got is None else (got.shape, got.dtype)} "
                     f"!= {(ref.shape, ref.dtype)}")
            elif not np.array_equal(got, ref, equal_nan=True):
                bad = np.argwhere(~((got == ref) | (np.isnan(got) & np.isnan(ref))))
                fail(f"{label} {op} {path}: {len(bad)} elements differ, first at {bad[0].tolist()}")
        comm.Barrier()


rng = np.random.default_rng(1234)
IMAGES = [  # (label, shape, kwargs)
    ("even 2x2/2", (64, 48), dict(kernel_size=2)),
    ("odd 3/2 p1 ceil", (37, 23), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ("k>s 5/1 p2", (41, 17), dict(kernel_size=5, stride=1, padding=2)),
    ("k>s 3/2 p1", (29, 30), dict(kernel_size=3, stride=2, padding=1)),
    ("k<s 2/3 ceil", (31, 16), dict(kernel_size=2, stride=3, ceil_mode=True)),
    ("rect k(3,2) s(2,1) p(1,0)", (33, 31), dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0))),
    ("4/2 p2 ceil", (26, 12), dict(kernel_size=4, stride=2, padding=2, ceil_mode=True)),
    ("few rows 3/3 ceil", (7, 6), dict(kernel_size=3, stride=3, ceil_mode=True)),
]
BATCHES = [
    ("3-D planes", (3, 12, 10), dict(kernel_size=2)),
    ("3-D one plane", (1, 40, 10), dict(kernel_size=4, stride=1, padding=2, ceil_mode=True)),
    ("NCHW n-split", (9, 2, 7, 7), dict(kernel_size=2)),
    ("NCHW nc-split", (2, 3, 17, 11), dict(kernel_size=3, stride=1, padding=1)),
    ("NCHW rows", (1, 2, 19, 8), dict(kernel_size=5, stride=2, padding=2, ceil_mode=True)),
    ("NCHW single plane", (1, 1, 29, 13), dict(kernel_size=3, stride=2)),
]


def group_pool():
    for label, shape, kw in IMAGES:
        x = rng.standard_normal(shape).astype(np.float32)
        check_pool(label, x, "max", kw)
        check_pool(label, x, "avg", kw)
        check_pool(label + " no-pad-count", x, "avg", dict(kw, count_include_pad=False), paths=("scatter",))
    x = rng.standard_normal((45, 21))
    check_pool("float64 weighted", x, "avg", dict(kernel_size=3, stride=2, padding=1),
               weights=[1.0 + 3 * r for r in range(size)])
    check_pool("float64 weighted max", x, "max", dict(kernel_size=3, stride=1, padding=1, ceil_mode=True),
               weights=[float(size - r) for r in range(size)])
    xi = rng.integers(-1000, 1000, (35, 19)).astype(np.int16)
    check_pool("int16", xi, "max", dict(kernel_size=3, stride=2, padding=1), paths=("scatter",))
    xh = rng.standard_normal((30, 18)).astype(np.float16)
    xh[5, 3] = np.nan
    check_pool("float16 with NaN", xh, "max", dict(kernel_size=2), paths=("scatter",))
    check_pool("divisor_override", x.astype(np.float32), "avg",
               dict(kernel_size=3, stride=2, padding=1, divisor_override=7), paths=("scatter",))


def group_batch():
    for label, shape, kw in BATCHES:
        x = rng.standard_normal(shape).astype(np.float32)
        check_pool(label, x, "max", kw)
        check_pool(label, x, "avg", kw)
    x = rng.standard_normal((2, 3, 23, 9)).astype(np.float32)
    check_pool("batch weighted", x, "max", dict(kernel_size=3, stride=2), weights=[r + 1.0 for r in range(size)])


def group_hetero():
    """Different backends per rank ("devices"): max pooling is exact on every backend.
    Weights come from a real calibration of each rank's backend."""
    from hpc.kernels.registry import backend_info
    pool = [b for b in ("numba", "opencl", "numpy", "torch") if backend_info(b).available]
    mine = pool[rank % len(pool)]
    for label, shape, kw in IMAGES[:4]:
        x = rng.standard_normal(shape).astype(np.float32)
        check_pool(f"hetero {label}", x, "max", kw, backend=mine, ref_backend="numpy")
    x = rng.standard_normal((257, 64)).astype(np.float32)
    kw = dict(kernel_size=3, stride=2, padding=1)
    weights = calibration.calibrate(comm, "max", mine, 64, 3, 2, 1, np.dtype(np.float32), rows=64, repeats=2)
    if len(weights) != size or min(weights) <= 0:
        fail(f"calibration gave {weights}")
    check_pool("hetero calibrated weights", x, "max", kw, backend=mine, weights=weights, ref_backend="numpy")


def group_cuda():
    """Odd ranks on numba-cuda (run under NUMBA_ENABLE_CUDASIM=1 in CI: the CUDA simulator),
    even ranks on numba CPU: the heterogeneous CPU+GPU layout, small shapes."""
    mine = "numba-cuda" if rank % 2 else "numba"
    for label, shape, kw in (IMAGES[1], IMAGES[3]):
        x = rng.standard_normal((shape[0] // 2 + 3, shape[1] // 2 + 1)).astype(np.float32)
        check_pool(f"cuda {label}", x, "max", kw, backend=mine, ref_backend="numpy", paths=("scatter",))


def group_matmul():
    global checks
    cases = [((37, 29), (29, 13)), ((16, 16), (16, 16)), ((8, 5), (5, 9)), ((61, 7), (7, 33))]
    grids = [None] + ([(2, 2)] if size == 4 else []) + ([(size, 1)] if size > 1 else [])
    for sa, sb in cases:
        # integer-valued float64: every partial sum is exact, so any summation order
        # (row blocks, SUMMA panels) must equal BLAS bit for bit
        a = rng.integers(-8, 9, sa).astype(np.float64)
        b = rng.integers(-8, 9, sb).astype(np.float64)
        af, bf = rng.standard_normal(sa).astype(np.float32), rng.standard_normal(sb).astype(np.float32)
        for alg in ("rows", "summa"):
            for grid in (grids if alg == "summa" else [None]):
                for exact, (x, y) in ((True, (a, b)), (False, (af, bf))):
                    checks += 1
                    try:
                        got = hp.distributed_matmul(x if rank == 0 else None, y if rank == 0 else None,
                                                    comm=comm, algorithm=alg, grid=grid)
                    except DecompositionError as exc:
                        if min(sa[0], sb[1], sa[1]) >= size:
                            fail(f"matmul {sa}@{sb} {alg} {grid}: unexpected {exc}")
                        continue
                    if rank == 0:
                        ref = x @ y
                        ok = np.array_equal(got, ref) if exact else np.allclose(got, ref, rtol=1e-5, atol=1e-5)
                        if not ok:
                            fail(f"matmul {sa}@{sb} {alg} grid={grid} exact={exact}: max err "
                                 f"{np.max(np.abs(got - ref))}")
        # parallel-io path
        if rank == 0:
            with h5py.File(workdir / "ab.h5", "w") as fh:
                fh["a"], fh["b"] = a, b
        comm.Barrier()
        for alg in ("rows", "summa"):
            checks += 1
            try:
                spec = hp.distributed_matmul(f"{workdir}/ab.h5:/a", f"{workdir}/ab.h5:/b", comm=comm,
                                             path="parallel-io", algorithm=alg, out=f"{workdir}/c.h5:/c")
            except DecompositionError:
                comm.Barrier()
                continue
            if rank == 0:
                with h5py.File(workdir / "c.h5", "r") as fh:
                    if not np.array_equal(fh["c"][...], a @ b):
                        fail(f"matmul parallel-io {sa}@{sb} {alg}")
            comm.Barrier()


try:
    for g in groups:
        {"pool": group_pool, "batch": group_batch, "hetero": group_hetero, "matmul": group_matmul,
         "cuda": group_cuda}[g]()
except Exception:
    traceback.print_exc()
    sys.stderr.flush()
    comm.Abort(3)

total = comm.bcast(len(failures), root=0)
if rank == 0:
    print(f"P={size} groups={groups}: {checks} checks, {total} failures", flush=True)
sys.exit(1 if total else 0)
