"""Aggregation, scaling metrics, figures and the HTML report (``python -m hpc report``).

Modules: ``aggregate`` (JSONL records -> one tidy table), ``metrics`` (pure scaling and
roofline formulas), ``tables`` (the report's derived tables), ``plots`` (matplotlib
figures), ``published`` (the studies' published tables, package data), ``report`` (HTML),
``references`` (per-system reference values with tolerances), ``history`` (the index of
runs), ``compare`` (two runs side by side).
"""

from importlib import resources
from pathlib import Path

# Package data (importlib.resources), so an installed, non-editable package finds its
# template from any directory; `hpc report build --template` overrides it.
DEFAULT_TEMPLATE = Path(str(resources.files("hpc.analysis") / "templates" / "report.html.j2"))
