"""``hpc bench kernels``: records, bounds, skipped/failed points, experiments, the study backend."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hpc.cli import main
from hpc.config import ConfigError, load_experiment
from hpc.kernels import api, bench
from hpc.kernels.backend_numpy import pool_numpy
from hpc.kernels.backend_study import matmul_serial, pool_study
from hpc.kernels.geometry import pool_geometry
from hpc.kernels.registry import available_backends
from hpc.records import read_records

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENTS = sorted((ROOT / "experiments").glob("kernels-*.yaml"))


def _records(path: Path) -> list:
    return list(read_records([path]))


def test_bench_cli_writes_records_with_bounds(tmp_path: Path, capsys) -> None:
    out = tmp_path / "r" / "bench.jsonl"
    rc = main(["bench", "kernels", "--sizes", "16", "--ops", "maxpool2d", "avgpool2d",
               "--backends", "numpy", "study:serial", "--kernel", "2", "3", "--stride", "2",
               "--padding", "0", "1", "--repeats", "3", "--warmup", "1", "--output", str(out), "--quiet"])
    assert rc == 0
    recs = _records(out)
    assert len(recs) == 2 * 2 * 2  # ops x pools x backends
    ok = [r for r in recs if r.status == "ok"]
    assert {r.params["backend"] for r in ok} == {"numpy", "study:serial"}
    for r in ok:
        m, p = r.metrics, r.params
        geom = pool_geometry(16, 16, p["kernel"], p["stride"], p["padding"])
        assert m["bytes_moved"] == (16 * 16 + geom.out_h * geom.out_w) * 4
        assert m["bandwidth_gbs"] == pytest.approx(m["bytes_moved"] / m["median_s"] / 1e9)
        assert m["bound_gbs"] == pytest.approx(2 * 16 * 16 * 4 / m["bound_copy_median_s"] / 1e9)
        assert m["bound_fraction"] == pytest.approx(m["bandwidth_gbs"] / m["bound_gbs"])
        assert m["min_s"] <= m["median_s"] <= m["max_s"] and m["iqr_s"] >= 0
        assert m["max_abs_error"] == 0 or p["op"] == "avgpool2d"
        assert p["bound_kind"] == "np.copyto" and r.kind == "kernel" and r.provenance["host"]
    # the study backend has no average pooling: recorded as skipped, with the reason
    skipped = [r for r in recs if r.status == "skipped"]
    assert len(skipped) == 2 and all("does not implement avgpool2d" in r.error for r in skipped)
    table = capsys.readouterr().out
    assert "study:serial" in table and "GB/s" in table and "8 points: 6 ok, 2 skipped" in table


def test_unavailable_and_failing_points_are_recorded(tmp_path: Path) -> None:
    out = tmp_path / "points.jsonl"
    missing = [n for n, i in available_backends().items() if not i.available]
    # kernel 5 on a 3x3 image is invalid for every backend: a failed point, sweep continues
    rc = main(["bench", "kernels", "--sizes", "3", "8", "--kernel", "5", "--padding", "0",
               "--backends", "numpy", *missing, "--repeats", "1", "--warmup", "0",
               "--output", str(out), "--quiet"])
    assert rc == 0
    recs = _records(out)
    by = {(r.params["backend"], r.params["shape"][2]): r for r in recs}
    assert by[("numpy", 3)].status == "failed" and "kernel_size" in by[("numpy", 3)].error
    assert by[("numpy", 8)].status == "ok"
    for name in missing:
        rec = by[(name, 8)]
        assert rec.status == "skipped" and available_backends()[name].reason in rec.error


def test_matmul_point_has_blas_bound(tmp_path: Path) -> None:
    out = tmp_path / "mm.jsonl"
    assert main(["bench", "kernels", "--ops", "matmul", "--sizes", "24", "--dtype", "float64",
                 "float16", "--backends", "numpy", "study", "--repeats", "2", "--output", str(out),
                 "--quiet"]) == 0
    recs = {(r.params["backend"], r.params["dtype"]): r for r in _records(out)}
    ok = recs[("study", "float64")]
    assert ok.status == "ok" and ok.params["bound_kind"] == "numpy BLAS"
    assert ok.metrics["gflops"] == pytest.approx(2 * 24**3 / ok.metrics["median_s"] / 1e9)
    assert ok.metrics["bound_fraction"] == pytest.approx(ok.metrics["gflops"] / ok.metrics["bound_gflops"])
    assert recs[("numpy", "float16")].status == "failed" and "float16" in recs[("numpy", "float16")].error


def test_bench_cli_rejects_bad_arguments(tmp_path: Path, capsys) -> None:
    assert main(["bench", "kernels", "--backends", "nosuch", "--output", str(tmp_path / "x.jsonl")]) == 2
    assert "unknown backend 'nosuch'" in capsys.readouterr().err
    assert main(["bench", "kernels", "--kernel", "2", "3", "--stride", "1", "2", "3",
                 "--output", str(tmp_path / "x.jsonl")]) == 2
    assert main(["bench", "kernels", "--repeats", "0", "--output", str(tmp_path / "x.jsonl")]) == 2


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.name)
def test_experiment_files_validate_and_expand(path: Path) -> None:
    import argparse
    from hpc.kernels import cli
    spec = load_experiment(path)
    assert spec["kind"] == "kernels"
    args = argparse.Namespace(experiment=path, ops=None, backends=None, sizes=None, batch_shapes=None,
                              kernel=None, stride=None, padding=None, ceil_mode=False, dtypes=None,
                              repeats=None, warmup=None, no_check=False)
    points = list(cli.iter_points(cli.build_sweep(args)))
    assert points
    listed = set(spec["backends"])
    for pt in points:  # every group backend belongs to a workflow job (one per listed name)
        assert cli._base_name(pt["backend"]) in listed
    for name in listed:  # the workflow runs one job per listed backend: none may be empty
        args.backends = [name]
        mine = list(cli.iter_points(cli.build_sweep(args)))
        assert mine and all(cli._base_name(p["backend"]) == name for p in mine), name


def test_experiment_schema_rejects_unknown_keys(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: kernels\nname: x\ngroups:\n  - ops: [maxpool2d]\n    size: [4]\n")
    with pytest.raises(ConfigError, match="size"):
        load_experiment(bad)


def test_study_serial_equals_reference() -> None:
    rng = np.random.default_rng(4)
    for shape, k, s, p, ceil in [((1, 1, 8, 8), 2, 2, 0, False), ((2, 3, 9, 7), 3, 2, 1, True),
                                 ((1, 2, 6, 11), (2, 3), (1, 2), (1, 1), False)]:
        for dtype in ("float32", "float16", "int16", "uint8"):
            x = rng.integers(0, 10, shape).astype(dtype) if dtype[0] in "iu" \
                else rng.standard_normal(shape).astype(dtype)
            if dtype[0] == "f":
                x.flat[3], x.flat[10], x.flat[-1] = np.nan, np.inf, -np.inf
            geom = pool_geometry(shape[2], shape[3], k, s, p, ceil)
            got = pool_study(x, geom)
            assert got.dtype == x.dtype
            np.testing.assert_array_equal(got, pool_numpy(x, geom, "max"))
    x = rng.standard_normal((5, 6)).astype(np.float32)
    np.testing.assert_array_equal(api.maxpool2d(x[None], 2, backend="study"),
                                  pool_numpy(x[None, None], pool_geometry(5, 6, 2), "max")[0])
    a, b = rng.standard_normal((7, 5)), rng.standard_normal((5, 4))
    np.testing.assert_allclose(matmul_serial(a, b), a @ b, rtol=1e-12)


def test_summarize_and_parse_backend() -> None:
    s = bench.summarize([4.0, 1.0, 3.0, 2.0])
    assert s == {"median_s": 2.5, "iqr_s": pytest.approx(1.5), "q1_s": 1.75, "q3_s": 3.25,
                 "min_s": 1.0, "max_s": 4.0, "rel_iqr": pytest.approx(0.6), "spread_flag": True}
    assert bench.summarize([2.0])["iqr_s"] == 0
    assert bench.parse_backend("numba-cuda:regblock") == bench.BackendSpec("numba-cuda", "regblock")
    assert bench.parse_backend("torch:cuda").label == "torch:cuda"
    with pytest.raises(ValueError, match="unknown backend"):
        bench.parse_backend("cuda")
    with pytest.raises(ValueError, match="no variant"):
        bench.measure_matmul(bench.parse_backend("study:fast"), 4, "float64", 1, 0)
    line = json.dumps(bench.matmul_params(bench.parse_backend("numpy"), 8, "float32"))
    assert '"shape": [8, 8, 8]' in line


def test_run_order_is_a_seeded_permutation() -> None:
    from hpc.kernels import cli
    shuffled = cli.run_order(20, "shuffled", 0)
    assert sorted(shuffled) == list(range(20)) and shuffled != list(range(20))
    assert shuffled == cli.run_order(20, "shuffled", 0) != cli.run_order(20, "shuffled", 1)
    assert cli.run_order(5, "listed", 0) == [0, 1, 2, 3, 4]


def test_a_noisy_point_is_flagged_in_the_table() -> None:
    from hpc.kernels import cli
    from hpc.records import new_record
    params = {"op": "maxpool2d", "backend": "numba", "backend_name": "numba", "shape": [1, 1, 8, 8],
              "kernel": [2, 2], "stride": [2, 2], "padding": [0, 0], "dtype": "float32",
              "device": {"kind": "cpu", "name": "test CPU"}, "repeats": 5, "warmup": 1}
    base = {"repeats": 5, "warmup": 1, "median_s": 1e-3, "iqr_s": 5e-4, "min_s": 8e-4, "max_s": 2e-3,
            "bandwidth_gbs": 1.0, "bound_gbs": 2.0, "bound_fraction": 0.5, "bound_fraction_best": 0.6}
    noisy = cli.table_row(new_record("kernel", "x", params, {**base, "spread_flag": True}))
    steady = cli.table_row(new_record("kernel", "x", params, {**base, "spread_flag": False}))
    assert "NOISY" in noisy[-1] and steady[-1] == "ok"
    assert noisy[cli.HEADER.index("best fraction")] == "0.60"


def test_opencl_points_record_event_and_wall_time() -> None:
    from hpc.kernels.registry import backend_info
    if not backend_info("opencl").available:
        pytest.skip(f"OpenCL (PoCL) is not available here: {backend_info('opencl').reason}")
    params, m = bench.measure_pool(bench.parse_backend("opencl"), "maxpool2d", (1, 1, 64, 64), 2, 2, 0,
                                   "float32", 3, 1)
    assert m["median_s"] == m["event_median_s"]          # kernel-only, profiling events
    assert m["wall_median_s"] > m["event_median_s"]      # the whole host call contains it
    assert "wall_median_s" in params["timing"]
    _, cpu = bench.measure_pool(bench.parse_backend("numpy"), "maxpool2d", (1, 1, 64, 64), 2, 2, 0,
                                "float32", 3, 1)
    assert cpu["wall_median_s"] == cpu["median_s"] and "event_median_s" not in cpu


def test_torch_on_cuda_without_a_gpu_is_skipped_with_the_reason(tmp_path: Path) -> None:
    import torch
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present: the point runs")
    out = tmp_path / "tc.jsonl"
    assert main(["bench", "kernels", "--ops", "maxpool2d", "matmul", "--sizes", "8", "--backends", "torch-cuda",
                 "--repeats", "1", "--warmup", "0", "--output", str(out), "--quiet"]) == 0
    recs = _records(out)
    assert recs and all(r.status == "skipped" for r in recs)
    assert all("torch.cuda.is_available() is False" in r.error for r in recs)
