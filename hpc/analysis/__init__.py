"""Aggregation, scaling metrics, figures and the HTML report (``python -m hpc report``).

Modules: ``aggregate`` (JSONL records -> one tidy table), ``metrics`` (pure scaling and
roofline formulas), ``tables`` (the report's derived tables), ``plots`` (matplotlib
figures), ``study`` (the original study's published figures, quoted), ``report`` (HTML).
"""

from pathlib import Path

# The report's Jinja2 template lives with the workflow's other stage files (analysis/);
# `hpc report build --template` overrides it (e.g. for an installed, non-editable package).
DEFAULT_TEMPLATE = Path(__file__).resolve().parents[2] / "analysis" / "templates" / "report.html.j2"
