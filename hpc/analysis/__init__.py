"""Aggregation, scaling metrics, figures and the HTML report (``python -m hpc report``).

Modules: ``aggregate`` (JSONL records -> one tidy table), ``metrics`` (pure scaling and
roofline formulas), ``tables`` (the report's derived tables), ``plots`` (matplotlib
figures), ``study`` (the original study's published figures, quoted), ``report`` (HTML).
"""
