"""The report's accuracy statements (hpc.analysis.section_accuracy): counts, Wilson
intervals, split and per-subject accuracy, and the study's figure put in context."""
from __future__ import annotations

import pandas as pd

from hpc.analysis import section_accuracy as A
from hpc.analysis.aggregate import record_row
from hpc.records import Record


def _frame(*records) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    return pd.DataFrame([record_row(r) for r in records])


def _training(name: str, split: str, k: int, n: int, ks: int | None = None, ns: int | None = None):  # type: ignore[no-untyped-def]
    metrics = {"test_accuracy": k / n, "test_correct": k, "test_count": n,
               "test_accuracy_ci95": list(A.wilson(k, n)), "epochs_completed": 6, "train_s": 101.5,
               "best_checkpoint_test_accuracy": (k - 1) / n}
    if ns:
        metrics.update(subject_test_accuracy=ks / ns, subject_test_correct=ks, subject_test_count=ns)
    # only the fields this module reads (the strict schema is tested with real runs elsewhere)
    return Record("training", name, {"experiment": "experiments/training-laptop.yaml", "split": split,
                                     "device": {"kind": "cpu", "name": "AMD EPYC"}}, metrics)


def test_table_carries_counts_intervals_split_and_subjects() -> None:
    df = _frame(_training("cpu", "subject", 474, 488, 8, 8), _training("old", "stratified", 36, 37))
    table = A.accuracy_table(df)
    cpu = table[table["run"] == "training-laptop/cpu"].iloc[0]
    assert cpu["slices"] == "474/488" and cpu["accuracy"].startswith("97.13% [95.")
    assert cpu["accuracy"].endswith("(474/488)") and cpu["split"] == "subject (held-out subjects)"
    assert cpu["subjects"] == "8/8" and cpu["subject_accuracy"].startswith("100.00% [67.")
    assert cpu["best_checkpoint"].endswith("(473/488)")
    old = table[table["run"] == "training-laptop/old"].iloc[0]
    assert old["split"] == "stratified (leaky: not held-out subjects)" and old["subjects"] == "\u2014"
    assert cpu["device"] == "cpu (AMD EPYC)" and A.accuracy_table(df).columns.tolist() == [c for c, _ in A.COLUMNS]


def test_headline_names_the_split_and_the_study_caveat() -> None:
    df = _frame(_training("cpu", "subject", 474, 488, 7, 8))
    (line,) = A.headline(df)
    assert "474/488" in line and "split subject (held-out subjects)" in line and "per subject 87.50%" in line
    assert "not an accuracy on held-out subjects" in A.context(df)["study_note"]
    (label, value), = A.callouts(df)
    assert "474/488" in value and "study: 94.95% (94/99), not on held-out subjects" in value


def test_records_without_counts_show_a_dash_not_an_invented_interval() -> None:
    rec = Record("training", "legacy", {"device": "cpu"}, {"test_accuracy": 0.9})
    df = _frame(rec)
    row = A.accuracy_table(df).iloc[0]
    assert row["accuracy"] == "\u2014" and row["split"] == "unknown split"
    assert A.headline(df) == ["legacy: test accuracy 90.00% (no counts recorded), unknown split"]
    assert A.callouts(df) == [] and A.accuracy_table(pd.DataFrame()).empty
