"""`hpc report markdown`: report sections as Markdown tables, from the recorded fixtures."""
from __future__ import annotations

import pytest

from analysis_fixtures import RECORDED
from hpc.analysis.markdown import sections_markdown, table_markdown
from hpc.analysis.report import Column, Table
from hpc.cli import main


def test_table_escapes_pipes_and_right_aligns_numbers() -> None:
    t = Table([Column("a", "name"), Column("b", "value", numeric=True)], [["x|y", "1.5"], ["z", "2"]],
              numeric=[False, True])
    assert table_markdown(t).splitlines() == ["| name | value |", "|---|---:|", "| x\\|y | 1.5 |", "| z | 2 |"]


def test_training_section_has_the_html_reports_rows(tmp_path, capsys) -> None:
    from hpc.analysis import plots
    from hpc.analysis.aggregate import load_frame
    from hpc.analysis.report import build_context

    records = [str(RECORDED / "training.jsonl"), str(RECORDED / "dataset.jsonl")]
    sections = build_context(load_frame(records), plots.FigureSink(None))["sections"]
    training = next(s for s in sections if s.id == "training")
    assert training.tables, "the fixture must give the training section a table"
    out = tmp_path / "t.md"
    assert main(["report", "markdown", "--records", *records, "--section", "training", "--output", str(out)]) == 0
    text = out.read_text()
    assert text.startswith(f"## {training.title}\n")
    for title, table, _ in training.tables:
        assert f"### {title}" in text
        for row in table.rows:  # every formatted cell of every row, in order
            assert "| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" in text
    assert sections_markdown(sections, ["training"]) == text


def test_unknown_section_names_the_ones_there_are(capsys) -> None:
    rc = main(["report", "markdown", "--records", str(RECORDED / "training.jsonl"), "--section", "nope"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "section(s) nope: not in the report; sections: summary, provenance, dataset" in err
