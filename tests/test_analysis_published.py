"""The studies' published tables (hpc/analysis/published/*.yaml) against their source,
../shared/seeds/FIGURES.md (beside the repository; CI checks it out as shared/)."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from hpc.analysis import published

REPO = Path(__file__).resolve().parents[1]
# ../shared beside the clone (CI, the main checkout); HPC_SHARED_DIR for a checkout elsewhere
CANDIDATES = tuple(Path(d) / "seeds" / "FIGURES.md" for d in filter(None, (
    os.environ.get("HPC_SHARED_DIR"), REPO.parent / "shared", REPO / "shared")))
FIGURES = next((p for p in CANDIDATES if p.is_file()), None)
needs_figures = pytest.mark.skipif(FIGURES is None, reason="FIGURES.md not found at ../shared/seeds "
                                   "or shared/seeds (the studies' transcription lives beside the repo)")


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    nxt = text.find("\n## ", start + 1)
    return text[start: nxt if nxt > 0 else len(text)]


@needs_figures
@pytest.mark.parametrize("key, column, match, value", [
    ("squeezenet_full_model", "global_s", {"design": "Single Task (V6)"}, 4.2992),
    ("batch_sweep", "convkernel", {"batch": 1024}, 5469.98),
    ("training_alexnet_mri", "test_acc_pct", {"epochs": 50, "source": "main text"}, 94.95),
    ("netadapt_history", "resource_macs", {"iteration": 13}, 454945680),
    ("max_compression", "final_mb", {"model": "AlexNet"}, 36.4),
    ("maxpool_gpu_matmul12", "t4_matmul1_total_s", {"N": 1024}, 396.6885),
])
def test_known_numbers_are_transcribed_and_in_figures_md(key, column, match, value):
    t = published.table(key)
    [row] = [r for r in t.records() if all(r[k] == v for k, v in match.items())]
    assert row[column] == value
    section = _section(FIGURES.read_text(encoding="utf-8"), f"## {t.document[:3]}")
    assert re.search(rf"(?<![\d.]){re.escape(str(value))}(?!\d)", section), (key, value)


@needs_figures
def test_every_number_and_locator_occurs_in_its_study_section():
    text = FIGURES.read_text(encoding="utf-8")
    missing = []
    for doc in published.documents():
        section = _section(text, doc.section)
        assert doc.document in section
        for t in doc.tables:
            if t.locator not in section:
                missing.append((t.key, "locator", t.locator))
            for row in t.rows:
                for cell in row:
                    if isinstance(cell, (int, float)) and not isinstance(cell, bool) and str(cell) not in section:
                        missing.append((t.key, cell))
    assert missing == []


def test_flags_and_hardware_are_stated():
    for t in published.tables():
        assert t.hardware and t.document.endswith(".txt") and t.caption
    assert any(f.kind == "misleading" and f.column == "accuracy_pct"
               for f in published.table("netadapt_history").flags)
    serial = published.table("maxpool_serial_xeon")
    [flag] = serial.flags_for(8, "n49_total_s")
    assert flag.kind == "uncertain" and "9.1822" in flag.note
    assert published.table("maxpool_gpu_matmul12").hardware_of("k20_matmul1_total_s") == "NVIDIA Tesla K20"


def test_amdahl_fraction_is_the_studys_61_21_percent():
    assert published.amdahl_parallel_fraction() == 0.6121


def test_malformed_table_is_rejected_naming_it():
    with pytest.raises(ValueError, match="table bad: row 0 has 1 cells for 2 columns"):
        published.PublishedTable(key="bad", caption="c", locator="l", seed="s", hardware="h",
                                 measures={}, columns=["a", "b"], units={}, rows=[[1]])
