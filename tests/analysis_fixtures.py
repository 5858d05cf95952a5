"""Records for the analysis tests, recorded from the real producers.

``tests/data/records/*.jsonl`` were written by the producers themselves (see
``tests/data/records/README.md`` for the commands): every field name, type and nesting is
what the code writes. They are validated against the schema on load. The known-number
variants below change only *values* (timings, accuracies, the device a point ran on)
and are validated again, so a renamed or retyped field breaks these fixtures and the
tests built on them.

Known numbers: strong-scaling totals follow Amdahl's law with f = 0.8
(t(n) = 10 (0.2 + 0.8/n)), so the fit must return 0.8; the numba 32x32 max-pool point
runs at 40 GB/s against a 50 GB/s copy bound (80 %); weak scaling 0.100 s -> 0.105 s.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from hpc.records import Record, check_record, read_records, write_records
from hpc.schema import Device, validate_fields

RECORDED = Path(__file__).resolve().parent / "data" / "records"
AMDAHL_F = 0.8
H100 = Device(kind="cuda", name="NVIDIA H100 80GB HBM3", index=0).model_dump()
OPENCL_GPU = Device(kind="opencl", name="gfx90a", opencl_type="gpu", opencl_platform="AMD Accelerated Parallel Processing").model_dump()


def recorded(name: str) -> list[Record]:
    """The records of one recorded file, each checked against its schema."""
    recs = list(read_records([RECORDED / f"{name}.jsonl"]))
    for r in recs:
        problem = check_record(r)
        assert problem is None, f"{name}.jsonl {r.name}: {problem}"
    return recs


def variant(rec: Record, name: str | None = None, params: dict[str, Any] | None = None,
            metrics: dict[str, Any] | None = None) -> Record:
    """A copy of a recorded record with some values replaced, re-validated: replacing a
    field the schema does not have raises (so do misspellings)."""
    p = {**copy.deepcopy(rec.params), **(params or {})}
    m = {**copy.deepcopy(rec.metrics), **(metrics or {})}
    p, m = validate_fields(rec.kind, p, m, rec.status)
    return Record(kind=rec.kind, name=name or rec.name, params=p, metrics=m, status=rec.status,
                  error=rec.error, provenance=copy.deepcopy(rec.provenance))


def _pick(recs: list[Record], **match: Any) -> Record:
    hits = [r for r in recs if all(r.params.get(k) == v for k, v in match.items()) and r.status == "ok"]
    assert hits, match
    return hits[0]


def kernel_records() -> list[Record]:
    """Every recorded kernel point, the numba 32x32 max-pool at known bandwidth, and
    hand-made GPU points (CUDA, torch:cuda, OpenCL on a GPU) built from recorded CPU ones."""
    recs = recorded("kernels") + recorded("kernels-broken")
    numba = _pick(recs, backend="numba", op="maxpool2d", shape=[1, 1, 32, 32])
    known = variant(numba, metrics={"bandwidth_gbs": 40.0, "bound_gbs": 50.0, "bound_fraction": 0.8,
                                    "median_s": 2e-6})
    recs = [known if r is numba else r for r in recs]
    torch = _pick(recs, backend="torch", op="maxpool2d", shape=[1, 1, 32, 32])
    opencl = _pick(recs, backend="opencl", op="maxpool2d", shape=[1, 1, 32, 32])
    sim = _pick(recorded("kernels-cudasim"), backend="numba-cuda", op="maxpool2d")
    recs += [
        variant(sim, "maxpool2d numba-cuda 1x1x32x32 (H100, hand-made)",
                params={"device": H100, "shape": [1, 1, 32, 32], "out_shape": [1, 1, 16, 16]},
                metrics={"median_s": 1e-6, "h2d_s": 3e-6, "d2h_s": 1e-6}),
        variant(torch, "maxpool2d torch:cuda 1x1x32x32 (H100, hand-made)",
                params={"device": H100, "backend": "torch:cuda"}, metrics={"median_s": 4e-6}),
        variant(opencl, "maxpool2d opencl 1x1x32x32 (GPU, hand-made)",
                params={"device": OPENCL_GPU}, metrics={"median_s": 5e-6}),
    ]
    return recs


def scaling_records() -> list[Record]:
    """Strong scaling at 1, 2, 4 ranks following Amdahl f = 0.8; weak at 1, 2 ranks."""
    rec = recorded("scaling")
    strong1 = _pick(rec, mode="strong", ranks=1)
    weak = {r.params["ranks"]: r for r in rec if r.params["mode"] == "weak"}
    out = []
    for n in (1, 2, 4):
        tot = 10.0 * ((1 - AMDAHL_F) + AMDAHL_F / n)
        per_rank = {k: [strong1.params[k][0]] * n for k in
                    ("rank_devices", "devices", "backends", "device_names", "emulated", "hosts")}
        out.append(variant(strong1, f"maxpool2d scatter strong 256x256 P={n}", params={
            "ranks": n, "rows_per_rank": [128 // n] * n, **per_rank},
            metrics={"read_s": 0.05 * tot, "distribute_s": 0.05 * tot, "compute_s": 0.8 * tot,
                     "gather_s": 0.05 * tot, "write_s": 0.05 * tot, "total_s": tot,
                     "total_s_repeats": [tot], "compute_s_repeats": [0.8 * tot], "compute_s_min": 0.8 * tot,
                     "rank_compute_s": [0.8 * tot] * n, "load_imbalance": 1.0 + 0.01 * n}))
    for n, tot in ((1, 0.100), (2, 0.105)):
        out.append(variant(weak[n], metrics={"total_s": tot, "compute_s": 0.05}))
    return out


def training_records() -> list[Record]:
    """The recorded CPU run (test accuracy 34/37 = 91.89 %, with the k/n evaluation fields),
    its epoch and a hand-made GPU epoch 4x faster, the recorded 2-rank DDP run at 180 images/s next to a 1-rank one at 100,
    and the skipped GPU run."""
    rec = recorded("training")
    cpu_final = next(r for r in rec if r.kind == "training" and r.name == "cpu")
    cpu_epoch = next(r for r in rec if r.kind == "training_epoch" and r.name.startswith("cpu "))
    ddp2 = next(r for r in rec if r.kind == "ddp")
    skipped = [r for r in rec if r.status != "ok"]
    return [
        variant(cpu_epoch, metrics={"epoch_s": 2.0, "train_accuracy": 0.5, "val_accuracy": 0.55}),
        variant(cpu_epoch, "gpu epoch 1", params={"device": H100},      # hand-made: no GPU here
                metrics={"epoch_s": 0.5, "train_accuracy": 0.6, "val_accuracy": 0.65}),
        variant(cpu_final, metrics={"test_accuracy": 34 / 37, "test_correct": 34, "test_count": 37,
                                    "test_accuracy_ci95": [0.7870, 0.9720], "wall_s": 10.5}),
        variant(ddp2, "ddp1 ddp 1 ranks", params={"world_size": 1}, metrics={"images_per_s": 100.0}),
        variant(ddp2, metrics={"images_per_s": 180.0}),
        *skipped,
    ]


def dataset_records() -> list[Record]:
    return recorded("dataset")


def write_all(directory: Path) -> list[Path]:
    """Write one JSONL file per producer under ``directory``; return the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    return [write_records(directory / f"{name}.jsonl", recs) for name, recs in (
        ("kernels", kernel_records()), ("scaling", scaling_records()),
        ("training", training_records()), ("dataset", dataset_records()))]
