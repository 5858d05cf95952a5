"""hpc.analysis.aggregate and tables: records -> tidy table -> CSV/Parquet, derived tables."""
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
from hpc.records import append_record, new_record, write_records


@pytest.fixture(scope="module")
def record_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("records")
    fx.write_all(d)
    return d


def _n_fixture_records() -> int:
    return (len(fx.kernel_records()) + len(fx.scaling_records()) + len(fx.training_records())
            + len(fx.dataset_records()))


def test_load_frame_has_tidy_columns(record_dir):
    df = aggregate.load_frame([record_dir])
    assert len(df) == _n_fixture_records()
    assert list(df.columns[:5]) == ["kind", "name", "status", "error", "source"]
    for c in ("params.op", "params.ranks", "metrics.median_s", "metrics.t_total_s",
              "provenance.host", "provenance.git_commit", "provenance.versions.numpy"):
        assert c in df.columns, c
    # params, then metrics, then provenance
    sections = [c.split(".")[0] for c in df.columns[5:]]
    assert sections == sorted(sections, key=["params", "metrics", "provenance"].index)
    assert set(df["source"]) == {str(record_dir / f"{n}.jsonl") for n in ("kernels", "scaling", "training", "dataset")}
    row = df[df["name"] == "avgpool2d numba 8192"].iloc[0]
    assert row["params.shape"] == [8192, 8192]
    assert row["metrics.bandwidth_gbs"] == 40.0


def test_failed_and_skipped_records_are_kept(record_dir):
    df = aggregate.load_frame([record_dir])
    bad = df[df["status"] != "ok"]
    assert sorted(bad["status"]) == ["failed", "failed", "skipped", "skipped"]
    assert bad["error"].str.contains("MPI_ERR_TRUNCATE").any()


def test_csv_and_parquet_round_trip(record_dir, tmp_path):
    df = aggregate.load_frame([record_dir])
    csv, pq = tmp_path / "out" / "all.csv", tmp_path / "out" / "all.parquet"
    aggregate.write_tables(df, csv=csv, parquet=pq)
    for path in (csv, pq):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    back_pq = pd.read_parquet(pq)
    back_csv = pd.read_csv(csv)
    assert len(back_pq) == len(back_csv) == len(df)
    assert list(back_pq.columns) == list(df.columns)
    # numbers stay numbers; lists become JSON text that parses back
    assert pd.api.types.is_float_dtype(back_pq["metrics.median_s"])
    i = df.index[df["name"] == "avgpool2d numba 8192"][0]
    assert json.loads(back_pq.loc[i, "params.shape"]) == [8192, 8192]
    assert json.loads(back_csv.loc[i, "params.shape"]) == [8192, 8192]
    assert back_pq.loc[i, "metrics.bound_gbs"] == 50.0
    # no temp files left behind
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["all.csv", "all.parquet"]


def test_mixed_type_param_column_exports(tmp_path):
    # one producer writes shape as a list, another as a string: Parquet needs one type
    f = tmp_path / "r.jsonl"
    write_records(f, [new_record("kernel", "a", {"shape": [4, 4]}, {"median_s": 1.0}),
                      new_record("kernel", "b", {"shape": "4x4"}, {"median_s": 2}),
                      new_record("kernel", "c", {"shape": 16, "flag": True}, {"median_s": None})])
    df = aggregate.load_frame([f])
    aggregate.write_tables(df, parquet=tmp_path / "t.parquet")
    back = pd.read_parquet(tmp_path / "t.parquet")
    assert list(back["params.shape"]) == ["[4, 4]", "4x4", "16"]
    assert back["metrics.median_s"].tolist()[:2] == [1.0, 2.0] and np.isnan(back["metrics.median_s"][2])


def test_duplicates_and_directory_plus_file_are_read_once(record_dir, tmp_path):
    rec = fx.kernel_records()[0]
    write_records(tmp_path / "a.jsonl", [rec])
    write_records(tmp_path / "sub" / "b.jsonl", [rec])  # the same record copied
    df = aggregate.load_frame([tmp_path, tmp_path / "a.jsonl"])
    assert len(df) == 1
    assert aggregate.find_record_files([tmp_path, tmp_path / "a.jsonl"]) == [
        tmp_path / "a.jsonl", tmp_path / "sub" / "b.jsonl"]


def test_appended_sweep_points_are_all_read(tmp_path):
    f = tmp_path / "sweep.jsonl"
    for n in (1, 2, 3):
        append_record(f, new_record("scaling", f"p{n}", {"ranks": n}, {"t_total_s": 1.0 / n}))
    assert aggregate.load_frame([f])["params.ranks"].tolist() == [1, 2, 3]


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


# ----------------------------------------------------------------------------- derived tables
def test_kernel_table_bound_fractions(record_dir):
    kt = tables.kernel_table(aggregate.load_frame([record_dir]))
    assert set(kt["op"]) == {"maxpool2d", "avgpool2d", "matmul"}
    avg = kt[kt["op"] == "avgpool2d"].iloc[0]
    assert avg["bound_fraction"] == pytest.approx(0.8)       # computed: 40 / 50
    assert avg["window"] == "k3 s2 p1"
    assert avg["elements"] == 8192 * 8192
    tiled = kt[(kt["op"] == "matmul") & (kt["backend"] == "numba")].iloc[0]
    assert tiled["gflops_fraction"] == pytest.approx(21.5 / 85.9)
    numba = kt[(kt["backend"] == "numba") & (kt["op"] == "maxpool2d")]
    assert numba["bound_fraction"].tolist() == pytest.approx([0.8] * 3)
    assert (kt.loc[kt["backend"] == "numba-cuda", "device_class"] == "gpu").all()


def test_kernel_table_reads_the_bench_producer_layout(tmp_path):
    """The field names hpc.kernels.bench writes: kernel/stride/padding lists, backend label
    with variant, matmul shape [m, n, k] and its BLAS ratio in bound_fraction, h2d/d2h."""
    recs = [
        new_record("kernel", "pool", {"op": "maxpool2d", "backend": "numba-cuda", "backend_name": "numba-cuda",
                                      "variant": None, "shape": [1, 1, 1024, 1024], "kernel": [3, 3],
                                      "stride": [2, 2], "padding": [1, 1], "dtype": "float32",
                                      "device": "NVIDIA H100 80GB HBM3"},
                   {"median_s": 1e-4, "h2d_s": 2e-4, "d2h_s": 1e-4, "bandwidth_gbs": 100.0,
                    "bound_gbs": 125.0, "bound_fraction": 0.8}),
        new_record("kernel", "mm", {"op": "matmul", "backend": "numba-cuda:regblock", "backend_name": "numba-cuda",
                                    "variant": "regblock", "shape": [2048, 2048, 2048], "dtype": "float32",
                                    "device": "NVIDIA H100 80GB HBM3"},
                   {"median_s": 1e-3, "gflops": 30000.0, "bound_gflops": 50000.0, "bound_fraction": 0.6}),
    ]
    write_records(tmp_path / "k.jsonl", recs)
    kt = tables.kernel_table(aggregate.load_frame([tmp_path]))
    pool = kt[kt["op"] == "maxpool2d"].iloc[0]
    assert pool["window"] == "k3 s2 p1"
    assert pool["transfer_s"] == pytest.approx(3e-4)
    assert pool["elements"] == 1024 * 1024
    assert pool["device_class"] == "gpu"
    mm = kt[kt["op"] == "matmul"].iloc[0]
    assert (mm["backend"], mm["variant"]) == ("numba-cuda", "regblock")
    assert mm["gflops_fraction"] == pytest.approx(0.6)
    assert np.isnan(mm["bound_fraction"])        # not a bandwidth fraction
    assert mm["elements"] == 2048 * 2048         # per operand, as the study's 2048x2048


def test_scaling_table_and_fits(record_dir):
    df = aggregate.load_frame([record_dir])
    st = tables.scaling_table(df)
    strong = st[st["mode"] == "strong"].sort_values("ranks")
    assert strong["ranks"].tolist() == [1, 2, 4]
    # t(n) = 10 (0.2 + 0.8 / n): S(2) = 10/6, S(4) = 2.5
    assert strong["speedup"].tolist() == pytest.approx([1.0, 10 / 6, 2.5])
    assert strong["efficiency"].tolist() == pytest.approx([1.0, 10 / 12, 0.625])
    # Karp-Flatt of Amdahl-conforming data is the serial fraction 0.2
    assert strong["karp_flatt"].iloc[1:].tolist() == pytest.approx([0.2, 0.2])
    weak = st[st["mode"] == "weak"].sort_values("ranks")
    assert weak["problem"].iloc[0] == "per rank 2048x2048"   # weak runs grouped per rank size
    assert weak["efficiency"].tolist() == pytest.approx([1.0, 1 / 1.05])
    assert weak["scaled_speedup"].tolist() == pytest.approx([1.0, 2 / 1.05])
    fits = {f.law: f for f in tables.law_fits(st)}
    assert fits["Amdahl"].parallel_fraction == pytest.approx(fx.AMDAHL_F, abs=1e-6)
    assert fits["Gustafson"].parallel_fraction == pytest.approx(2 / 1.05 - 1)
    pr = tables.per_rank_table(df)
    strong_pr = pr[pr["mode"] == "strong"]             # from metrics.per_rank dicts
    assert len(strong_pr) == 1 + 2 + 4 and set(strong_pr["host"]) == {"node1"}
    assert strong_pr["rows"].tolist() == [4096, 2048, 2048, 1024, 1024, 1024, 1024]
    weak_pr = pr[pr["mode"] == "weak"]                 # from the params.devices list alone
    assert len(weak_pr) == 1 + 2 and set(weak_pr["device"]) == {"cpu"}


def test_scaling_without_one_rank_baseline_is_relative_and_not_fitted(tmp_path):
    write_records(tmp_path / "s.jsonl", [
        new_record("scaling", f"n{n}", {"mode": "strong", "op": "maxpool2d", "path": "scatter",
                                        "ranks": n, "shape": [64, 64]}, {"t_total_s": 8.0 / n})
        for n in (2, 4, 8)])
    st = tables.scaling_table(aggregate.load_frame([tmp_path]))
    assert st["baseline_ranks"].unique().tolist() == [2]
    assert st["efficiency"].tolist() == pytest.approx([1.0, 1.0, 1.0])
    assert st["karp_flatt"].isna().all()
    assert tables.law_fits(st) == []


def test_training_tables_read_the_trainer_layout(tmp_path):
    """hpc.train writes *_accuracy names, precision/recall as {class: value}, world_size."""
    recs = [new_record("training_epoch", f"cpu epoch {e}", {"device": "cpu", "epoch": e},
                       {"train_loss": 1.0 / e, "train_accuracy": 0.5 + 0.1 * e, "val_accuracy": 0.4 + 0.1 * e,
                        "epoch_s": 1.0, "images_per_s": 245.0}) for e in (1, 2)]
    recs.append(new_record("training", "cpu", {"device": "cpu", "epochs": 2, "class_names": ["a", "b"]},
                           {"test_accuracy": 0.95, "wall_s": 3.0, "epochs_completed": 2,
                            "precision": {"a": 1.0, "b": 0.9}, "recall": {"a": 0.9, "b": 1.0},
                            "confusion_matrix": [[9, 1], [0, 10]], "best_val_accuracy": 0.6}))
    recs.append(new_record("ddp", "ddp 2", {"device": "cpu", "world_size": 2},
                           {"images_per_s": 400.0, "scaling_efficiency": 0.8}))
    write_records(tmp_path / "t.jsonl", recs)
    df = aggregate.load_frame([tmp_path])
    et = tables.epoch_table(df)
    assert et["run"].unique().tolist() == ["cpu"]
    assert et["train_acc"].tolist() == pytest.approx([0.6, 0.7])
    tt = tables.training_table(df)
    assert tt.loc[0, "test_acc"] == 0.95 and tt.loc[0, "epochs"] == 2 and tt.loc[0, "best_val_acc"] == 0.6
    pc = tables.per_class_table(df)
    assert pc[["class", "precision", "recall"]].values.tolist() == [["a", 1.0, 0.9], ["b", 0.9, 1.0]]
    [(run, names, mat)] = tables.confusion_matrices(df)
    assert names == ["a", "b"] and mat.tolist() == [[9, 1], [0, 10]]
    dd = tables.ddp_table(df)
    assert dd.loc[0, "ranks"] == 2 and dd.loc[0, "efficiency"] == 0.8


def test_failures_table_lists_parameters_and_reasons(record_dir):
    ft = tables.failures(aggregate.load_frame([record_dir]))
    assert len(ft) == 4
    row = ft[ft["name"] == "strong maxpool scatter 8"].iloc[0]
    assert row["status"] == "failed" and "MPI_ERR_TRUNCATE" in row["error"]
    assert "ranks=8" in row["point"] and "devices=cpu\u00d78" in row["point"]


def test_missing_kinds_give_empty_tables():
    empty = aggregate.records_to_frame([])
    for func in (tables.kernel_table, tables.scaling_table, tables.epoch_table, tables.training_table,
                 tables.ddp_table, tables.failures, tables.dataset_table, tables.provenance_table):
        assert func(empty).empty, func.__name__
    assert tables.law_fits(tables.scaling_table(empty)) == []


def test_long_errors_are_shortened_for_the_table(tmp_path):
    tb = "Traceback (most recent call last):\n" + "  frame\n" * 200 + "ValueError: boom"
    write_records(tmp_path / "r.jsonl", [new_record("kernel", "x", {"op": "matmul"}, {}, status="failed",
                                                    error=tb)])
    df = aggregate.load_frame([tmp_path])
    cell = tables.failures(df).loc[0, "error"]
    assert cell.startswith("Traceback (most recent call last): frame frame")
    assert len(cell) < 460 and cell.endswith("(full text in the record file)")
    assert df.loc[0, "error"] == tb                     # the table keeps the full text


def test_ddp_without_one_rank_baseline_claims_no_efficiency(tmp_path):
    write_records(tmp_path / "d.jsonl", [new_record("ddp", "ddp 2", {"device": "cpu", "world_size": 2},
                                                    {"images_per_s": 26.1, "scaling_efficiency": None})])
    dd = tables.ddp_table(aggregate.load_frame([tmp_path]))
    assert dd.loc[0, "images_per_s"] == 26.1
    assert np.isnan(dd.loc[0, "speedup"]) and np.isnan(dd.loc[0, "efficiency"])
