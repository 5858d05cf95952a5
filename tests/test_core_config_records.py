"""The shared plumbing every stage relies on: config validation, record schema, atomic output."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hpc.atomic import OutputNotWritableError, atomic_path, atomic_write_text
from hpc.config import ConfigError, load_config, load_experiment
from hpc.records import Record, append_record, new_record, read_records, write_records

REPO = Path(__file__).resolve().parent.parent


def test_default_config_validates_and_fills_defaults() -> None:
    config = load_config(REPO / "config" / "config.yaml")
    assert config["results_dir"] == "results"
    assert config["experiments"], "the default config runs at least one experiment"
    assert "output" in config["dataset"]


def test_unknown_top_level_key_is_rejected_naming_file_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "config.yaml"
    bad.write_text("results_dir: r\nreslts: oops\n")
    with pytest.raises(ConfigError, match=r"config\.yaml.*reslts"):
        load_config(bad)


def test_missing_config_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope.yaml: config file not found"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize("path", sorted((REPO / "experiments").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_experiment_validates(path: Path) -> None:
    spec = load_experiment(path)
    assert spec["kind"] in ("kernels", "scaling", "training", "compression", "inference")


def test_experiment_of_another_kind_is_refused_naming_the_file() -> None:
    path = REPO / "experiments" / "training-laptop.yaml"
    with pytest.raises(ConfigError, match=r"training-laptop\.yaml: kind is 'training', expected 'scaling'"):
        load_experiment(path, kind="scaling")


def test_records_round_trip_with_nonfinite_metrics_as_null(tmp_path: Path) -> None:
    rec = new_record("dataset", "x", {"input": "sample", "output": "s.h5", "slice_axis": "axial",
                                      "image_size": 32, "normalization": "zscore", "resample": True,
                                      "classes": ("a", "b")},
                     {"elapsed_s": float("nan"), "file_size_bytes": 1, "n_slices": 2, "n_converted": 1,
                      "n_rejected": 0})
    path = write_records(tmp_path / "r.jsonl", [rec])
    append_record(path, new_record("kernel", "y", {}, {}, status="failed", error="boom"))
    got = list(read_records([path]))
    assert [r.name for r in got] == ["x", "y"]
    assert got[0].params["classes"] == ["a", "b"] and got[0].metrics["elapsed_s"] is None
    assert got[1].status == "failed" and got[1].error == "boom"
    assert got[0].provenance["host"]


def test_record_rejects_unknown_kind_and_status() -> None:
    with pytest.raises(ValueError, match="record kind 'nope': expected one of"):
        new_record("nope", "x", {}, {})
    with pytest.raises(ValueError, match="kind"):
        Record(kind="", name="x", params={}, metrics={})
    with pytest.raises(ValueError, match="status"):
        Record(kind="kernel", name="x", params={}, metrics={}, status="meh")


def test_malformed_record_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text(Record(kind="kernel", name="x", params={}, metrics={}).to_json() + "\n"
                    + json.dumps({"kind": "kernel"}) + "\n")
    with pytest.raises(ValueError, match=r"r\.jsonl:2"):
        list(read_records([path]))


def test_atomic_path_leaves_old_file_and_no_temp_on_error(tmp_path: Path) -> None:
    final = tmp_path / "out.txt"
    atomic_write_text(final, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(final) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert final.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
    assert oct(os.stat(final).st_mode & 0o777) == oct(0o666 & ~_umask())


def test_atomic_path_into_a_file_parent_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(OutputNotWritableError, match="afile"):
        atomic_write_text(tmp_path / "afile" / "out.txt", "x")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
