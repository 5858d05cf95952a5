"""Hand-written records for the analysis tests (every producer's kind, some failed/skipped).

Numbers are chosen so derived values are known exactly: the strong-scaling totals follow
Amdahl's law with f = 0.8 (t(n) = 10 * (0.2 + 0.8/n)), so the fit must return 0.8; the
kernel bound fraction is 40 / 50 = 80%.
"""
from __future__ import annotations

from pathlib import Path

from hpc.records import Record, new_record, write_records

AMDAHL_F = 0.8


def _t(n: int) -> float:
    return 10.0 * ((1 - AMDAHL_F) + AMDAHL_F / n)


def kernel_records() -> list[Record]:
    recs = []
    for side in (1024, 2048, 4096):
        elems = side * side
        for backend, variant, device, t in (("numpy", "", "Intel Xeon", 4e-9 * elems),
                                            ("numba", "", "Intel Xeon", 1e-9 * elems),
                                            ("numba-cuda", "", "NVIDIA H100", 1e-11 * elems)):
            bw = 2 * 4 * elems * 1.25 / t / 1e9
            recs.append(new_record("kernel", f"maxpool2d {backend} {side}", {
                "op": "maxpool2d", "backend": backend, "variant": variant, "device": device,
                "dtype": "float32", "shape": [side, side], "kernel_size": 2, "stride": 2, "padding": 0},
                {"median_s": t, "iqr_s": t * 0.05, "min_s": t * 0.97, "transfer_s": 0.0,
                 "bytes_moved": 4 * elems * 1.25, "bandwidth_gbs": bw,
                 "bound_gbs": bw / 0.8 if backend == "numba" else bw / 0.4}))
    # the study's method at 1024^2 on our machine
    recs.append(new_record("kernel", "maxpool2d study serial 1024", {
        "op": "maxpool2d", "backend": "study", "variant": "serial", "device": "Intel Xeon",
        "dtype": "float32", "shape": [1024, 1024], "kernel_size": 2, "stride": 2, "padding": 0},
        {"median_s": 2.5, "iqr_s": 0.1}))
    # a bound fraction computed by the report (no bound_fraction metric): 40 / 50 = 80%
    recs.append(new_record("kernel", "avgpool2d numba 8192", {
        "op": "avgpool2d", "backend": "numba", "device": "Intel Xeon", "dtype": "float32",
        "shape": [8192, 8192], "kernel_size": 3, "stride": 2, "padding": 1},
        {"median_s": 0.01, "bandwidth_gbs": 40.0, "bound_gbs": 50.0}))
    recs.append(new_record("kernel", "matmul numpy 2048", {
        "op": "matmul", "backend": "numpy", "variant": "blas", "device": "Intel Xeon",
        "dtype": "float32", "shape": [2048, 2048]},
        {"median_s": 0.2, "gflops": 85.9, "bound_gflops": 85.9, "gflops_fraction": 1.0}))
    recs.append(new_record("kernel", "matmul numba 2048", {
        "op": "matmul", "backend": "numba", "variant": "tiled", "device": "Intel Xeon",
        "dtype": "float32", "shape": [2048, 2048]},
        {"median_s": 0.8, "gflops": 21.5, "bound_gflops": 85.9}))
    recs.append(new_record("kernel", "maxpool2d cupy 4096", {
        "op": "maxpool2d", "backend": "cupy", "device": "cuda", "dtype": "float32",
        "shape": [4096, 4096], "kernel_size": 2, "stride": 2, "padding": 0}, {},
        status="skipped", error="cupy: no CUDA GPU on this machine"))
    recs.append(new_record("kernel", "maxpool2d opencl 16384", {
        "op": "maxpool2d", "backend": "opencl", "variant": "single-task", "device": "pocl",
        "dtype": "float32", "shape": [16384, 16384], "kernel_size": 3, "stride": 2, "padding": 0}, {},
        status="failed", error="MemoryError: CL_MEM_OBJECT_ALLOCATION_FAILURE at 16384x16384"))
    return recs


def scaling_records() -> list[Record]:
    recs = []
    for n in (1, 2, 4):
        tot = _t(n)
        recs.append(new_record("scaling", f"strong maxpool scatter {n}", extra_provenance={
            "slurm_job_id": "4242", "slurm_job_nodelist": "node1"}, params={
            "mode": "strong", "op": "maxpool2d", "path": "scatter", "ranks": n,
            "shape": [4096, 4096], "devices": ["cpu"] * n, "dtype": "float32",
            "kernel_size": 2, "stride": 2, "hosts": ["node1"] * n},
            metrics={"t_distribute_s": 0.1 * tot, "t_compute_s": 0.8 * tot, "t_gather_s": 0.1 * tot,
             "t_total_s": tot, "imbalance": 1.0 + 0.01 * n, "copy_bound_gbs": 20.0,
             "per_rank": [{"rank": r, "host": "node1", "device": "cpu", "rows": 4096 // n,
                           "t_compute_s": 0.8 * tot} for r in range(n)]}))
    for n in (1, 2):
        recs.append(new_record("scaling", f"weak maxpool parallel-io {n}", {
            "mode": "weak", "op": "maxpool2d", "path": "parallel-io", "ranks": n,
            "shape": [2048 * n, 2048], "size_per_rank": [2048, 2048], "devices": ["cpu"] * n,
            "dtype": "float32", "kernel_size": 2, "stride": 2},
            {"t_distribute_s": 0.02, "t_compute_s": 0.05, "t_gather_s": 0.03,
             "t_total_s": 0.10 * (1 + 0.05 * (n - 1))}))
    recs.append(new_record("scaling", "strong maxpool scatter 8", {
        "mode": "strong", "op": "maxpool2d", "path": "scatter", "ranks": 8,
        "shape": [4096, 4096], "devices": ["cpu"] * 8}, {},
        status="failed", error="rank 3 on node1: MPI_ERR_TRUNCATE"))
    return recs


def training_records() -> list[Record]:
    recs = []
    for ep in range(1, 6):
        recs.append(new_record("training_epoch", f"cpu epoch {ep}", {"device": "cpu", "epoch": ep, "run": "cpu"},
                               {"train_loss": 1.1 / ep, "train_acc": 0.5 + 0.09 * ep, "val_loss": 1.2 / ep,
                                "val_acc": 0.45 + 0.09 * ep, "epoch_s": 2.0, "images_per_s": 120.0}))
    recs.append(new_record("training", "cpu final", {"device": "cpu", "epochs": 5, "run": "cpu",
                                                     "class_names": ["anat", "func", "meta"]},
                           {"test_acc": 0.9123, "test_loss": 0.31, "wall_s": 10.5,
                            "precision": [0.9, 0.95, 0.88], "recall": [0.92, 0.9, 0.91],
                            "confusion_matrix": [[30, 2, 1], [1, 31, 1], [2, 1, 30]]}))
    recs.append(new_record("training", "gpu final", {"device": "cuda", "epochs": 5, "run": "gpu"}, {},
                           status="skipped", error="--device cuda: no CUDA GPU on this machine"))
    for n, ips in ((1, 100.0), (2, 180.0)):
        recs.append(new_record("ddp", f"ddp {n}", {"device": "cpu", "ranks": n}, {"images_per_s": ips}))
    return recs


def dataset_records() -> list[Record]:
    return [new_record("dataset", "default slices", {"image_size": 32, "slice_axis": "axial"},
                       {"n_slices": 372, "converted": 4, "rejected": 0, "wall_s": 1.8, "bytes": 1234567})]


def write_all(directory: Path) -> list[Path]:
    """Write one JSONL file per producer under ``directory``; return the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    files = []
    for name, recs in (("kernels", kernel_records()), ("scaling", scaling_records()),
                       ("training", training_records()), ("dataset", dataset_records())):
        files.append(write_records(directory / f"{name}.jsonl", recs))
    return files
