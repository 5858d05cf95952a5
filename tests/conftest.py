"""Shared pytest configuration.

Hypothesis: a "ci" profile (default) with no per-example deadline - JIT compilation
(numba, OpenCL) makes a first example slow, which says nothing about correctness - and a
"thorough" profile for local runs (HYPOTHESIS_PROFILE=thorough: 10x the examples).
Tests that set max_examples themselves keep it under "ci".
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from hypothesis import HealthCheck, settings

sys.path.insert(0, str(Path(__file__).resolve().parent))  # shared helpers: kernel_cases, ...

settings.register_profile("ci", deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", deadline=None, print_blob=True, max_examples=1000,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
