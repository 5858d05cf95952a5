"""The record schema (hpc.schema): strict fields per kind, versions, the device each producer records."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import analysis_fixtures as fx
from hpc.records import SchemaVersionError, new_record, read_records, upgrade
from hpc.schema import KINDS, SCHEMA_VERSION, RecordSchemaError, json_schema, not_run_params


def test_every_kind_is_strict():
    assert {"dataset", "kernel", "scaling", "training", "training_epoch", "ddp"} <= set(KINDS)
    good = fx.recorded("dataset")[0]
    with pytest.raises(RecordSchemaError, match=r"(?s)dataset record does not match schema v3.*slices"):
        new_record("dataset", "x", good.params, {**good.metrics, "slices": 3})
    with pytest.raises(RecordSchemaError, match="n_slices"):
        new_record("dataset", "x", good.params, {k: v for k, v in good.metrics.items() if k != "n_slices"})
    kernel = next(r for r in fx.recorded("kernels") if r.status == "ok")
    with pytest.raises(RecordSchemaError, match="device"):        # a text label is not a Device
        new_record("kernel", "x", {**kernel.params, "device": "CPU (NumPy 2.4)"}, kernel.metrics)


def test_a_point_that_did_not_run_records_its_request():
    rec = new_record("training", "gpu", {"device": "cuda", "run": "gpu", "experiment": "e", "command": "c"}, {},
                     status="skipped", error="no GPU")
    assert rec.params == {"device": "cuda", "run": "gpu", "experiment": "e", "command": "c"}
    with pytest.raises(RecordSchemaError, match="colour"):
        new_record("kernel", "x", {"colour": "red"}, {}, status="failed", error="boom")
    assert "command" in not_run_params("scaling").model_fields


def test_optional_fields_the_producer_did_not_write_stay_absent():
    rec = fx.recorded("kernels")[0]
    again = new_record("kernel", rec.name, rec.params, rec.metrics)
    assert set(again.params) == set(rec.params) and set(again.metrics) == set(rec.metrics)
    assert "timing" not in again.params


def test_training_schema_has_the_honest_evaluation_fields():
    final = next(r for r in fx.training_records() if r.kind == "training")
    assert (final.metrics["test_correct"], final.metrics["test_count"]) == (34, 37)
    fields = KINDS["training"].metrics.model_fields
    for name in ("test_accuracy_ci95", "subject_test_accuracy", "subject_test_correct", "subject_test_count"):
        assert name in fields
    assert "split" in KINDS["training"].params.model_fields


def test_json_schema_export_names_units():
    js = json_schema()
    assert "median_s" in js["kernel"]["metrics"]["properties"]
    assert "same-run" in json.dumps(js["kernel"]["metrics"])


def _old(version: int | None, status: str, kind: str = "kernel") -> dict:
    rec = json.loads(next(r for r in fx.recorded("kernels") if r.status == status).to_json())
    rec["kind"] = kind
    if version is None:
        rec.pop("schema_version")
    else:
        rec["schema_version"] = version
    return rec


def test_older_points_without_a_device_convert():
    for version in (None, 2):
        assert upgrade(_old(version, "skipped"))["schema_version"] == SCHEMA_VERSION
    ds = json.loads(fx.recorded("dataset")[0].to_json())
    ds["schema_version"] = 2
    assert upgrade(ds)["schema_version"] == SCHEMA_VERSION


def test_older_measurements_name_the_version_needed(tmp_path):
    path = tmp_path / "old.jsonl"
    path.write_text(json.dumps(_old(2, "ok")) + "\n")
    with pytest.raises(SchemaVersionError, match=r"(?s)old.jsonl:1: kernel record .* has schema v2; "
                                                 r"this hpc-mri reads v3 .*re-run the point"):
        list(read_records([path]))
    newer = _old(SCHEMA_VERSION + 1, "ok")
    with pytest.raises(SchemaVersionError, match="newer than this hpc-mri, which reads v3"):
        upgrade(newer)


def test_report_cli_says_which_version_it_needs(tmp_path, capsys):
    from hpc.cli import main
    (tmp_path / "old.jsonl").write_text(json.dumps(_old(1, "ok")) + "\n")
    assert main(["report", "build", "--records", str(tmp_path), "--output", str(tmp_path / "r.html")]) == 2
    assert "has schema v1; this hpc-mri reads v3" in capsys.readouterr().err


# ------------------------------------------------------------------ the device producers record
def test_recorded_devices_come_from_the_runtime():
    kernels = [r for r in fx.recorded("kernels") if r.status == "ok"]
    by_backend = {r.params["backend"]: r.params["device"] for r in kernels}
    for cpu in ("numpy", "numba", "torch", "study"):
        assert by_backend[cpu]["kind"] == "cpu", cpu      # torch on the CPU is a CPU run
    assert by_backend["opencl"]["kind"] == "opencl" and by_backend["opencl"]["opencl_type"] == "cpu"
    assert by_backend["opencl"]["emulated"] is True
    sim = fx.recorded("kernels-cudasim")[0].params["device"]
    assert (sim["kind"], sim["emulated"]) == ("cuda", True)
    skipped = [r for r in fx.recorded("kernels") if r.status == "skipped"]
    assert {r.params["device"] for r in skipped} == {None}       # nothing ran
    for r in fx.recorded("scaling"):
        assert r.params["device"]["kind"] == "cpu" and len(r.params["rank_devices"]) == r.params["ranks"]
    for r in fx.recorded("training"):
        if r.status == "ok":
            assert r.params["device"]["kind"] == "cpu"


def test_study_and_torch_probes_do_not_say_gpu_for_cpu_runs():
    from hpc.kernels.backend_study import probe as study_probe
    from hpc.kernels.backend_torch import probe as torch_probe
    assert "GPU" not in study_probe()[2] and "CUDA" not in torch_probe()[2]


@pytest.mark.slow
def test_cuda_simulator_kernel_point_records_an_emulated_cuda_device(tmp_path):
    out = tmp_path / "k.jsonl"
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    subprocess.run([sys.executable, "-m", "hpc", "bench", "kernels", "--ops", "maxpool2d", "--backends",
                    "numba-cuda", "numpy", "--sizes", "8", "--kernel", "2", "--repeats", "1", "--warmup", "0",
                    "--output", str(out), "--quiet"], check=True, env=env, capture_output=True, timeout=300)
    devs = {r.params["backend"]: r.params["device"] for r in read_records([out])}
    assert devs["numba-cuda"]["kind"] == "cuda" and devs["numba-cuda"]["emulated"] is True
    assert devs["numpy"]["kind"] == "cpu"


def test_records_dir_readme_lists_every_file():
    readme = (fx.RECORDED / "README.md").read_text()
    for f in Path(fx.RECORDED).glob("*.jsonl"):
        assert f.stem.split("-")[0] in readme
