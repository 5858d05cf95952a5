"""Compression records: strict kinds, and v2 records that already carry a Device upgrade as they are."""
from __future__ import annotations

import pytest

from hpc.records import SchemaVersionError, new_record, upgrade
from hpc.schema import RecordSchemaError


def _conv_params(**extra):
    params = {"experiment": "e", "run": "conv", "device": {"kind": "cpu", "name": "test cpu"}, "layer": "conv3",
              "cin": 256, "h": 13, "cout": 384, "kernel": 3, "stride": 1, "padding": 1, "spatial_divisor": 1,
              "bits": 5, "threads": 1, "impl": "vanilla-cl", "clustered": True}
    params.update(extra)
    return params


METRICS = {"median_s": 0.1, "min_s": 0.09, "repeats": 3, "flops": 299040768, "gflops": 3.0, "gemm_gflops": 100.0,
           "fraction_of_gemm": 0.03, "speedup_vs_vanilla_cl": 1.0, "max_abs_error": 1e-6}


def test_conv_record_is_strict() -> None:
    rec = new_record("compression_conv", "conv3", _conv_params(), METRICS)
    assert rec.params["device"]["kind"] == "cpu"
    with pytest.raises(RecordSchemaError, match="compression_conv"):
        new_record("compression_conv", "conv3", _conv_params(typo=1), METRICS)


def test_failed_job_record_of_the_workflow_wrapper_validates() -> None:
    rec = new_record("compression", "e kmeans", {"experiment": "e", "run": "kmeans", "method": "kmeans",
                                                  "command": "python -m hpc compress run"}, {},
                     status="failed", error="exit status 1")
    assert rec.status == "failed"


def test_v2_record_with_a_device_object_upgrades_and_a_text_label_does_not() -> None:
    rec = new_record("compression_conv", "conv3", _conv_params(), METRICS)
    data = {**rec.__dict__, "schema_version": 2}
    assert upgrade(data)["schema_version"] == 3
    with pytest.raises(SchemaVersionError):
        upgrade({**data, "params": {**data["params"], "device": "cpu"}})
