"""Time to accuracy: the first epoch at which a run's test accuracy reaches a target, read
from the run's ``training_epoch`` records (runs made with ``--eval-test-each-epoch``).

``python -m hpc.train.time_to_accuracy RUN_DIR [RUN_DIR ...] [--target 0.9495]`` prints one
line per run and the median over runs (the benchmark figure of
docs/benchmarks/training-cpu.md: median of 3 seeds). A run that never reaches the target
counts as not reached; the median is then reported only if most runs reached it.
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
from pathlib import Path
from typing import Iterable

from hpc.records import read_records

STUDY_TARGET = 0.9495


@dataclasses.dataclass(frozen=True)
class Reached:
    """Where a run first reached the target (None fields: never)."""

    run: str
    epoch: int | None
    wall_s: float | None        # run's wall clock at the end of that epoch (training + evaluation)
    train_s: float | None       # training time summed over epochs up to and including it
    test_accuracy: float | None
    epochs_run: int
    final_test_accuracy: float | None


def first_reaching(epochs: Iterable[dict], target: float, run: str = "") -> Reached:
    """``epochs``: per-epoch metric dicts in epoch order (``test_accuracy``, ``wall_s``,
    ``epoch_s``). Pure function."""
    train_s = 0.0
    rows = list(epochs)
    for i, m in enumerate(rows, start=1):
        train_s += float(m["epoch_s"])
        acc = m.get("test_accuracy")
        if acc is not None and acc >= target:
            return Reached(run, i, float(m["wall_s"]), train_s, float(acc), len(rows),
                           rows[-1].get("test_accuracy"))
    return Reached(run, None, None, None, None, len(rows), rows[-1].get("test_accuracy") if rows else None)


def from_run_dir(run_dir: str | Path, target: float = STUDY_TARGET) -> Reached:
    recs = [r for r in read_records([Path(run_dir) / "metrics.jsonl"]) if r.kind == "training_epoch"]
    recs.sort(key=lambda r: int(r.params["epoch"]))
    if not recs or "test_accuracy" not in recs[0].metrics:
        raise ValueError(f"{run_dir}: no per-epoch test accuracy (run with --eval-test-each-epoch)")
    return first_reaching([r.metrics for r in recs], target, str(run_dir))


def median_reached(results: list[Reached]) -> tuple[float, float, float] | None:
    """Median (epochs, wall s, train s) over runs, if more than half reached the target
    (runs that did not reach it count as infinitely slow)."""
    inf = float("inf")
    if sum(r.epoch is not None for r in results) * 2 <= len(results):
        return None
    return tuple(statistics.median(getattr(r, f) if getattr(r, f) is not None else inf for r in results)
                 for f in ("epoch", "wall_s", "train_s"))  # type: ignore[return-value]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hpc.train.time_to_accuracy", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dirs", nargs="+", help="training output directories (metrics.jsonl)")
    ap.add_argument("--target", type=float, default=STUDY_TARGET, help="test accuracy (fraction)")
    args = ap.parse_args(argv)
    try:
        results = [from_run_dir(d, args.target) for d in args.run_dirs]
    except (OSError, ValueError) as exc:
        print(f"time_to_accuracy: {exc}", file=sys.stderr)
        return 2
    for r in results:
        if r.epoch is None:
            print(f"{r.run}: not reached in {r.epochs_run} epochs (final test accuracy {r.final_test_accuracy})")
        else:
            print(f"{r.run}: epoch {r.epoch} of {r.epochs_run}, wall {r.wall_s:.1f} s, training {r.train_s:.1f} s, "
                  f"test accuracy {r.test_accuracy:.4f} (final {r.final_test_accuracy:.4f})")
    med = median_reached(results)
    print("median: " + ("not reached by most runs" if med is None else
                        f"{med[0]:g} epochs, wall {med[1]:.1f} s, training {med[2]:.1f} s"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
