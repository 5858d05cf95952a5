"""Progress lines of the compression stage's training loop (hpc.compress.evaluation.fit)."""
from __future__ import annotations

import re

import torch
from torch import nn

from hpc.compress.evaluation import Split, fit, progress_line


def _split(n: int = 40) -> Split:
    g = torch.Generator().manual_seed(0)
    return Split(torch.randn(n, 4, generator=g), torch.arange(n) % 2)


def test_fit_logs_every_step_when_asked_and_ends_on_the_last_step() -> None:
    lines: list[str] = []
    stats = fit(nn.Linear(4, 2), _split(), epochs=2, batch_size=10, seed=0, log=lines.append,
                label="probe", progress_every_s=0.0)
    assert stats["steps"] == 8
    assert len(lines) == 8
    assert [int(re.search(r"step (\d+)/8", l).group(1)) for l in lines] == list(range(1, 9))
    assert lines[-1].startswith("probe: step 8/8 (epoch 2.00)")
    assert lines[-1].endswith("~0 s left")


def test_fit_rate_limits_progress_to_the_last_step_on_a_short_run() -> None:
    lines: list[str] = []
    fit(nn.Linear(4, 2), _split(), epochs=3, batch_size=10, seed=0, log=lines.append, progress_every_s=3600)
    assert len(lines) == 1 and "step 12/12" in lines[0]


def test_progress_line_estimates_time_left_linearly() -> None:
    line = progress_line("base", 25, 100, 10, 0.5, 30.0)
    assert line == "base: step 25/100 (epoch 2.50), loss 0.5000, 30 s elapsed, ~90 s left"
