"""The compression stage end to end: CLI base + every run method on a small synthetic dataset,
strict records of every kind, and the report section built from them."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from hpc.analysis.aggregate import record_row
from hpc.cli import main
from hpc.records import read_records
from hpc.train.synthetic import write_synthetic_dataset

pytestmark = pytest.mark.slow  # trains and compresses a small network: ~20 s idle, minutes under load

TINY = Path(__file__).parent / "workflow" / "compression-tiny.yaml"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    threads = torch.get_num_threads()
    root = tmp_path_factory.mktemp("compress")
    data = write_synthetic_dataset(root / "slices.h5", n_per_class=20, classes=3, split_fractions=(0.6, 0.2))
    assert main(["compress", "base", "--experiment", str(TINY), "--data", str(data),
                 "--out-dir", str(root / "base")]) == 0
    for run in ("kmeans", "conv", "netadapt", "binary"):
        assert main(["compress", "run", "--experiment", str(TINY), "--run", run, "--data", str(data),
                     "--base-dir", str(root / "base"), "--out-dir", str(root / run)]) == 0
    torch.set_num_threads(threads)
    return root


def test_every_method_writes_records_of_its_kind(runs) -> None:
    kinds = {}
    for rec in read_records(sorted(runs.glob("*/records.jsonl"))):
        assert rec.status == "ok"
        kinds.setdefault(rec.kind, []).append(rec)
    assert set(kinds) == {"compression_base", "compression_kmeans", "compression_conv", "compression_netadapt",
                          "compression_netadapt_result", "compression_binary"}
    km = kinds["compression_kmeans"]
    assert {(r.params["bits"], r.params["mode"]) for r in km} == {(0, "full-precision"), (2, "none"), (2, "finetune"),
                                                                  (5, "none"), (5, "finetune")}
    for r in km:
        if r.params["bits"]:
            assert r.metrics["roundtrip_identical"] is True
            assert r.metrics["file_bytes"] < km[0].metrics["file_bytes"]  # smaller than the float32 state
            assert r.metrics["test_ci_low"] <= r.metrics["test_accuracy"] <= r.metrics["test_ci_high"]
    history = sorted(kinds["compression_netadapt"], key=lambda r: r.params["iteration"])
    assert history[-1].metrics["macs"] < history[0].metrics["macs"]
    final = kinds["compression_netadapt_result"][0]
    assert final.metrics["macs_after"] == history[-1].metrics["macs"]
    assert final.metrics["mac_reduction"] >= 0.2  # budget_ratio 0.8 in the tiny experiment
    assert all(r.params["resource"] == "macs" and r.metrics["predicted_latency_s"] > 0
               and r.metrics["network_latency_s"] > 0 for r in history)  # latency recorded whatever the budget
    assert final.metrics["latency_table_entries"] >= 8  # at least one entry per weighted layer
    table = json.loads((runs / "netadapt" / "latency-table.json").read_text())
    assert len(table["entries"]) == final.metrics["latency_table_entries"] and table["threads"] == 1
    import csv
    with open(runs / "netadapt" / "history.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["iteration"]) for r in rows] == [h.params["iteration"] for h in history]
    assert [int(r["macs"]) for r in rows] == [h.metrics["macs"] for h in history]
    assert [r["channels"] for r in rows] == [" ".join(map(str, h.params["channels"])) for h in history]
    assert [int(r["val_correct"]) for r in rows] == [h.metrics["val_correct"] for h in history]
    assert final.params["device"]["kind"] == "cpu"


def test_packed_file_can_be_inspected(runs, capsys) -> None:
    path = next((runs / "kmeans").glob("clustered-linear-2bit-none.npz"))
    assert main(["compress", "inspect", str(path)]) == 0
    assert "2 bits" in capsys.readouterr().out


def test_report_section_shows_every_part(runs) -> None:
    import pandas as pd

    from hpc.analysis import plots
    from hpc.analysis.section_compression import compression_section
    df = pd.DataFrame([record_row(r) for r in read_records(sorted(runs.glob("*/records.jsonl")))])
    sec = compression_section(df, plots.FigureSink(None))
    titles = [t for t, _, _ in sec.tables]
    assert any("accuracy vs bits" in t for t in titles)
    assert any("Table 7.3" in t for t in titles)
    assert any("NetAdapt history of the study" in t for t in titles)
    assert any("NetAdapt on the MRI AlexNet" in t and "resource macs" in t for t in titles)
    history = next(t for title, t, _ in sec.tables if "NetAdapt on the MRI AlexNet" in title)
    assert "predicted / measured" in [c.label for c in history.columns]
    assert any("Binarised" in t for t in titles)
    assert any("Clustered convolution" in t for t in titles)
    assert sec.figures and sec.empty_note is None


def test_unknown_run_is_a_clear_error(runs, capsys) -> None:
    assert main(["compress", "run", "--experiment", str(TINY), "--run", "nope", "--base-dir", str(runs / "base"),
                 "--out-dir", str(runs / "x")]) == 2
    assert "no run named 'nope'" in capsys.readouterr().err
