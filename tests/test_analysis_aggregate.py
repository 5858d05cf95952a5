"""hpc.analysis.aggregate and tables: recorded producer output -> tidy table -> derived tables."""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import analysis_fixtures as fx
from hpc.analysis import aggregate, tables
from hpc.cli import main
from hpc.records import Record, append_record, write_records


@pytest.fixture(scope="module")
def record_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("records")
    fx.write_all(d)
    return d


@pytest.fixture(scope="module")
def frame(record_dir) -> pd.DataFrame:
    return aggregate.load_frame([record_dir])


def _n_fixture_records() -> int:
    return (len(fx.kernel_records()) + len(fx.scaling_records()) + len(fx.training_records())
            + len(fx.dataset_records()))


def test_load_frame_has_tidy_columns(record_dir, frame):
    assert len(frame) == _n_fixture_records()
    assert list(frame.columns[:5]) == ["kind", "name", "status", "error", "source"]
    for c in ("params.op", "params.ranks", "params.device.kind", "metrics.median_s", "metrics.total_s",
              "provenance.host", "provenance.git_commit", "provenance.versions.numpy"):
        assert c in frame.columns, c
    sections = [c.split(".")[0] for c in frame.columns[5:]]
    assert sections == sorted(sections, key=["params", "metrics", "provenance"].index)
    assert set(frame["source"]) == {str(record_dir / f"{n}.jsonl") for n in ("kernels", "scaling", "training", "dataset")}
    row = frame[frame["name"] == "maxpool2d numba 1x1x32x32 k2s2p0 float32"].iloc[0]
    assert row["params.shape"] == [1, 1, 32, 32]
    assert row["metrics.bandwidth_gbs"] == 40.0


def test_failed_and_skipped_records_are_kept(frame):
    bad = frame[frame["status"] != "ok"]
    assert sorted(bad["status"].unique()) == ["failed", "skipped"]
    assert (bad["status"] == "skipped").sum() == 9      # 8 GPU kernel points, the GPU training run
    assert bad["error"].str.contains("exit status 2").any()


def test_a_record_that_does_not_match_its_schema_is_listed_not_dropped(tmp_path):
    good = fx.recorded("dataset")[0]
    renamed = Record(kind="dataset", name="renamed field", params=good.params,
                     metrics={**{k: v for k, v in good.metrics.items() if k != "n_slices"}, "slices": 3})
    unknown = Record(kind="inference_latency", name="a kind this version does not know", params={}, metrics={})
    write_records(tmp_path / "r.jsonl", [good, renamed, unknown])
    df = aggregate.load_frame([tmp_path])
    assert df["status"].tolist() == ["ok", "invalid", "invalid"]
    assert "n_slices" in df.loc[1, "error"] and "slices" in df.loc[1, "error"]
    assert "record kind 'inference_latency'" in df.loc[2, "error"]
    ft = tables.failures(df)
    assert ft["status"].tolist() == ["invalid", "invalid"]
    counts = tables.status_counts(df).set_index("kind")
    assert counts.loc["dataset", "invalid"] == 1 and counts.loc["inference_latency", "invalid"] == 1


def test_csv_and_parquet_round_trip(frame, tmp_path):
    csv, pq = tmp_path / "out" / "all.csv", tmp_path / "out" / "all.parquet"
    aggregate.write_tables(frame, csv=csv, parquet=pq)
    for path in (csv, pq):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    back_pq, back_csv = pd.read_parquet(pq), pd.read_csv(csv)
    assert len(back_pq) == len(back_csv) == len(frame)
    assert list(back_pq.columns) == list(frame.columns)
    assert pd.api.types.is_float_dtype(back_pq["metrics.median_s"])
    i = frame.index[frame["name"] == "maxpool2d numba 1x1x32x32 k2s2p0 float32"][0]
    assert json.loads(back_pq.loc[i, "params.shape"]) == [1, 1, 32, 32]
    assert json.loads(back_csv.loc[i, "params.kernel"]) == [2, 2]
    assert back_pq.loc[i, "metrics.bound_gbs"] == 50.0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["all.csv", "all.parquet"]


def test_duplicates_and_directory_plus_file_are_read_once(tmp_path):
    rec = fx.kernel_records()[0]
    write_records(tmp_path / "a.jsonl", [rec])
    write_records(tmp_path / "sub" / "b.jsonl", [rec])
    assert len(aggregate.load_frame([tmp_path, tmp_path / "a.jsonl"])) == 1
    assert aggregate.find_record_files([tmp_path, tmp_path / "a.jsonl"]) == [
        tmp_path / "a.jsonl", tmp_path / "sub" / "b.jsonl"]


def test_appended_sweep_points_are_all_read(tmp_path):
    f = tmp_path / "sweep.jsonl"
    for r in fx.scaling_records()[:3]:
        append_record(f, r)
    assert aggregate.load_frame([f])["params.ranks"].tolist() == [1, 2, 4]


def test_missing_path_and_bad_line_name_the_file(tmp_path):
    with pytest.raises(aggregate.RecordsNotFoundError, match="nope.jsonl"):
        aggregate.load_frame([tmp_path / "nope.jsonl"])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"kind": "kernel"\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:1"):
        aggregate.load_frame([bad])


def test_empty_input_gives_empty_table(tmp_path):
    df = aggregate.load_frame([tmp_path])
    assert df.empty and list(df.columns) == list(aggregate.BASE_COLUMNS)
    aggregate.write_tables(df, csv=tmp_path / "e.csv", parquet=tmp_path / "e.parquet")
    assert pd.read_parquet(tmp_path / "e.parquet").empty


def test_cli_aggregate(record_dir, tmp_path, capsys):
    csv, pq = tmp_path / "all.csv", tmp_path / "all.parquet"
    assert main(["report", "aggregate", "--records", str(record_dir), "--csv", str(csv),
                 "--parquet", str(pq)]) == 0
    assert f"{_n_fixture_records()} records" in capsys.readouterr().out
    assert len(pd.read_csv(csv)) == _n_fixture_records()
    assert main(["report", "aggregate", "--records", str(tmp_path / "missing"), "--csv", str(csv)]) == 2
    assert "missing: no such record file" in capsys.readouterr().err
    assert main(["report", "aggregate", "--records", str(record_dir)]) == 2
    assert "--csv and/or --parquet" in capsys.readouterr().err


# ----------------------------------------------------------------------------- kernels
def test_kernel_table_known_point(frame):
    kt = tables.kernel_table(frame)
    row = kt[(kt["backend"] == "numba") & (kt["op"] == "maxpool2d") & (kt["shape"] == "1x1x32x32")].iloc[0]
    assert row["bound_fraction"] == 0.8 and row["bandwidth_gbs"] == 40.0 and row["bound_gbs"] == 50.0
    assert row["window"] == "k2 s2" and row["elements"] == 1024 and row["device_class"] == "cpu"
    mm = kt[(kt["op"] == "matmul") & (kt["backend"] == "numpy") & (kt["shape"] == "32x32x32")].iloc[0]
    raw = frame[(frame["params.backend"] == "numpy") & (frame["params.op"] == "matmul")
                & frame["params.shape"].map(lambda s: s == [32, 32, 32])].iloc[0]
    assert mm["gflops_fraction"] == raw["metrics.bound_fraction"]    # BLAS ratio, not a bandwidth one
    assert np.isnan(mm["bound_fraction"]) and mm["elements"] == 32 * 32 and mm["window"] == ""


def test_every_backend_kind_lands_in_its_device_class(frame):
    kt = tables.kernel_table(frame)
    pool32 = kt[(kt["op"] == "maxpool2d") & (kt["shape"] == "1x1x32x32")]
    got = {(b, v, c) for b, v, c in zip(pool32["backend"], pool32["variant"], pool32["device_class"])}
    assert got == {("numpy", "", "cpu"), ("numba", "", "cpu"), ("torch", "", "cpu"), ("opencl", "", "cpu"),
                   ("study", "", "cpu"), ("numba-cuda", "", "gpu"), ("torch", "cuda", "gpu"),
                   ("opencl", "", "gpu")}
    cuda = pool32[pool32["backend"] == "numba-cuda"].iloc[0]
    assert cuda["device"] == "NVIDIA H100 80GB HBM3" and cuda["transfer_s"] == pytest.approx(4e-6)
    # the recorded numba.cuda simulator run is neither CPU nor GPU
    sim = tables.kernel_table(aggregate.records_to_frame([(r, None) for r in fx.recorded("kernels-cudasim")]))
    assert set(sim["device_class"]) == {"simulator"}


def test_cpu_gpu_table_uses_the_device_field(frame):
    cg = tables.kernel_cpu_gpu(tables.kernel_table(frame))
    [row] = cg[(cg["op"] == "maxpool2d") & (cg["shape"] == "1x1x32x32")].to_dict("records")
    assert (row["cpu_backend"], row["cpu_median_s"]) == ("numba", 2e-6)
    assert (row["gpu_backend"], row["gpu_median_s"]) == ("numba-cuda", 1e-6)
    assert row["gpu_speedup"] == 2.0


def test_study_method_is_compared_on_its_own_device_class(frame):
    kt = tables.kernel_table(frame)
    ss = tables.study_speedups(kt)
    row = ss[(ss["op"] == "maxpool2d") & (ss["shape"] == "1x1x32x32")].iloc[0]
    study = kt[(kt["backend"] == "study") & (kt["op"] == "maxpool2d") & (kt["shape"] == "1x1x32x32")].iloc[0]
    assert row["device_class"] == "cpu" and row["fastest_backend"] == "numba"
    assert row["speedup"] == pytest.approx(study["median_s"] / 2e-6)


# ----------------------------------------------------------------------------- scaling
def test_scaling_table_and_fits(frame):
    st = tables.scaling_table(frame)
    strong = st[st["mode"] == "strong"].sort_values("ranks")
    assert strong["ranks"].tolist() == [1, 2, 4]
    assert strong["speedup"].tolist() == pytest.approx([1.0, 10 / 6, 2.5])
    assert strong["efficiency"].tolist() == pytest.approx([1.0, 10 / 12, 0.625])
    assert strong["karp_flatt"].iloc[1:].tolist() == pytest.approx([0.2, 0.2])
    assert strong["imbalance"].tolist() == pytest.approx([1.01, 1.02, 1.04])
    # phases: read + distribute, compute, gather + write add up to the total
    t4 = strong.iloc[2]
    assert [t4["t_distribute_s"], t4["t_compute_s"], t4["t_gather_s"], t4["t_total_s"]] == pytest.approx(
        [0.4, 3.2, 0.4, 4.0])
    weak = st[st["mode"] == "weak"].sort_values("ranks")
    assert weak["problem"].tolist() == ["per rank 128x128"] * 2
    assert weak["efficiency"].tolist() == pytest.approx([1.0, 1 / 1.05])
    assert weak["scaled_speedup"].tolist() == pytest.approx([1.0, 2 / 1.05])
    fits = {f.law: f for f in tables.law_fits(st)}
    assert fits["Amdahl"].parallel_fraction == pytest.approx(fx.AMDAHL_F, abs=1e-6)
    assert fits["Amdahl"].rmse == pytest.approx(0.0, abs=1e-6) and fits["Amdahl"].points == 3
    assert fits["Gustafson"].parallel_fraction == pytest.approx(2 / 1.05 - 1)


def test_per_rank_table(frame):
    pr = tables.per_rank_table(frame)
    strong = pr[pr["mode"] == "strong"]
    assert len(strong) == 1 + 2 + 4 and set(strong["device"]) == {"cpu"}
    assert strong["rows"].tolist() == [128, 64, 64, 32, 32, 32, 32]      # pooled output rows per rank
    assert strong[strong["ranks"] == 4]["compute_s"].tolist() == pytest.approx([3.2] * 4)
    assert len(pr[pr["mode"] == "weak"]) == 1 + 2


def test_scaling_without_one_rank_baseline_is_relative_and_not_fitted():
    recs = [fx.variant(r, params={"ranks": n}, metrics={"total_s": 8.0 / n})
            for r, n in zip(fx.scaling_records()[:3], (2, 4, 8))]
    st = tables.scaling_table(aggregate.records_to_frame([(r, None) for r in recs]))
    assert st["baseline_ranks"].unique().tolist() == [2]
    assert st["efficiency"].tolist() == pytest.approx([1.0, 1.0, 1.0])
    assert st["karp_flatt"].isna().all()
    assert tables.law_fits(st) == []


# ----------------------------------------------------------------------------- training
def test_training_tables(frame):
    et = tables.epoch_table(frame)
    cpu = et[et["run"] == "cpu"].iloc[0]
    assert (cpu["epoch"], cpu["train_acc"], cpu["val_acc"], cpu["epoch_s"]) == (1, 0.5, 0.55, 2.0)
    assert cpu["device_class"] == "cpu"
    tt = tables.training_table(frame).set_index("run")
    assert tt.loc["cpu", "test_acc"] == pytest.approx(34 / 37)
    assert (tt.loc["cpu", "test_correct"], tt.loc["cpu", "test_count"]) == (34, 37)
    assert tt.loc["cpu", "test_ci95"] == "78.7%\u201397.2%"
    assert tt.loc["cpu", "epochs"] == 1 and tt.loc["cpu", "wall_s"] == 10.5
    pc = tables.per_class_table(frame)
    names = fx.recorded("training")[1].params["class_names"]
    assert pc[pc["run"] == "cpu"]["class"].tolist() == names
    [(run, cls, mat)] = [m for m in tables.confusion_matrices(frame) if m[0] == "cpu"]
    assert cls == names and mat.sum() == 37


def test_training_cpu_vs_gpu_from_the_device_field(frame):
    et = tables.epoch_table(frame)
    assert et.set_index("run").loc["gpu", "device"] == "gpu (NVIDIA H100 80GB HBM3)"
    [row] = tables.training_cpu_gpu(et).to_dict("records")
    assert (row["cpu_s"], row["gpu_s"], row["gpu_speedup"]) == (2.0, 0.5, 4.0)
    pc = tables.per_class_table(frame).set_index(["run", "class"])
    recorded = next(r for r in fx.recorded("training") if r.kind == "training" and r.name == "cpu")
    assert pc.loc[("cpu", "functional"), "precision"] == recorded.metrics["precision"]["functional"]


def test_plots_put_gpu_points_on_their_own_lines(frame):
    import matplotlib.pyplot as plt
    from hpc.analysis import plots
    fig = plots.plot_time_vs_size(tables.kernel_table(frame), "maxpool2d", batches=False)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    plt.close(fig)
    for want in ("numba-cuda [gpu] k2 s2", "torch cuda [gpu] k2 s2", "opencl [gpu] k2 s2", "torch k2 s2",
                 "opencl k2 s2", "004 n49_total (Intel Xeon (CPU; model not stated)), published"):
        assert want in labels, (want, labels)


def test_ddp_table_speedup_and_efficiency(frame):
    dd = tables.ddp_table(frame)
    assert dd["ranks"].tolist() == [1, 2]
    assert dd["speedup"].tolist() == pytest.approx([1.0, 1.8])
    assert dd["efficiency"].tolist() == pytest.approx([1.0, 0.9])


def test_ddp_without_one_rank_baseline_claims_no_efficiency():
    ddp2 = next(r for r in fx.recorded("training") if r.kind == "ddp")
    dd = tables.ddp_table(aggregate.records_to_frame([(ddp2, None)]))
    assert dd.loc[0, "images_per_s"] == ddp2.metrics["images_per_s"]
    assert np.isnan(dd.loc[0, "speedup"]) and np.isnan(dd.loc[0, "efficiency"])


def test_failures_table_lists_parameters_and_reasons(frame):
    ft = tables.failures(frame)
    assert len(ft) == 10
    row = ft[ft["name"] == "kernels-broken numpi"].iloc[0]
    assert row["status"] == "failed" and "exit status 2" in row["error"] and "backend=numpi" in row["point"]
    gpu = ft[(ft["kind"] == "training")].iloc[0]
    assert gpu["status"] == "skipped" and "device=cuda" in gpu["point"]


def test_missing_kinds_give_empty_tables():
    empty = aggregate.records_to_frame([])
    for func in (tables.kernel_table, tables.scaling_table, tables.epoch_table, tables.training_table,
                 tables.ddp_table, tables.failures, tables.dataset_table, tables.provenance_table):
        assert func(empty).empty, func.__name__
    assert tables.law_fits(tables.scaling_table(empty)) == []


def test_long_errors_are_shortened_for_the_table(tmp_path):
    tb = "Traceback (most recent call last):\n" + "  frame\n" * 200 + "ValueError: boom"
    broken = fx.recorded("kernels-broken")[0]
    write_records(tmp_path / "r.jsonl", [Record(kind="kernel", name="x", params=broken.params, metrics={},
                                                status="failed", error=tb)])
    df = aggregate.load_frame([tmp_path])
    cell = tables.failures(df).loc[0, "error"]
    assert cell.startswith("Traceback (most recent call last): frame frame")
    assert len(cell) < 460 and cell.endswith("(full text in the record file)")
    assert df.loc[0, "error"] == tb
