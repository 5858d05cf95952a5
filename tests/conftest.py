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

import pytest
from hypothesis import HealthCheck, settings

sys.path.insert(0, str(Path(__file__).resolve().parent))  # shared helpers: kernel_cases, ...

settings.register_profile("ci", deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", deadline=None, print_blob=True, max_examples=1000,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def one_torch_thread():
    """Tiny networks: extra torch threads only add synchronisation (and on a loaded CI machine,
    spinning workers made a test 20x slower). Use with pytest.mark.usefixtures."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
