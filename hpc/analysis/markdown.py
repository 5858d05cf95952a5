"""Report sections as Markdown, for the measured tables in ``docs/benchmarks/``.

The HTML report and the benchmark documents show the same numbers; writing the documents'
tables by hand from a run's records is how a figure gets retyped wrong. ``hpc report
markdown`` renders chosen sections of the report (the same :class:`~hpc.analysis.report.Section`
objects, from the same records) as GitHub-flavoured Markdown: intro, callouts as a list,
every table with its title and note, the section's notes. Figures are left out (they are in
the HTML report and, with ``hpc report build --figures-dir``, in PNG/SVG files).
"""
from __future__ import annotations

from typing import Iterable

from hpc.analysis.report import Section, Table


def _cell(text: str) -> str:
    """A table cell: pipes escaped, line breaks folded (a Markdown row is one line)."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def table_markdown(table: Table) -> str:
    header = "| " + " | ".join(_cell(c.label) for c in table.columns) + " |"
    rule = "|" + "|".join("---:" if num else "---" for num in table.numeric) + "|"
    rows = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in table.rows]
    return "\n".join([header, rule, *rows])


def section_markdown(section: Section, level: int = 2) -> str:
    """One section: heading, intro, empty note, callouts, tables (title, table, note), notes."""
    h = "#" * level
    parts = [f"{h} {section.title}"]
    if section.intro:
        parts.append(section.intro)
    if section.empty_note:
        parts.append(f"*{section.empty_note}*")
    if section.callouts:
        parts.append("\n".join(f"- **{label}:** {value}" for label, value in section.callouts))
    for title, table, note in section.tables:
        parts.append(f"{h}# {title}")
        parts.append(table_markdown(table))
        if note:
            parts.append(note)
    parts.extend(section.notes)
    return "\n\n".join(parts) + "\n"


def sections_markdown(sections: Iterable[Section], ids: Iterable[str], level: int = 2) -> str:
    """The sections whose ids are in ``ids``, in that order; an unknown id is a ValueError
    naming the ids there are."""
    by_id = {s.id: s for s in sections}
    wanted = list(ids)
    unknown = [i for i in wanted if i not in by_id]
    if unknown:
        raise ValueError(f"section(s) {', '.join(unknown)}: not in the report; sections: {', '.join(by_id)}")
    return "\n".join(section_markdown(by_id[i], level) for i in wanted)
