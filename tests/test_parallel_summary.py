"""The scaling summary table: efficiencies computed against the 1-rank record."""
from __future__ import annotations

from hpc.parallel.summary import summarize
from hpc.records import Record


def _rec(ranks: int, mode: str, compute: float, total: float):
    phases = {"read_s": 0.0, "distribute_s": 0.0, "compute_s": compute, "gather_s": 0.0,
              "write_s": total - compute, "total_s": total, "load_imbalance": 1.0,
              "bandwidth_gbs": 2.0, "copy_bandwidth_gbs": 8.0, "bound_fraction": 0.25}
    params = {"op": "maxpool2d", "mode": mode, "size": 64, "path": "scatter", "ranks": ranks,
              "shape": [64 * (ranks if mode == "weak" else 1), 64]}
    # the summary reads only these fields; the full schema is tested with the producers
    return Record(kind="scaling", name=f"p{ranks}", params=params, metrics=phases)


def test_weak_and_strong_efficiency_columns():
    table = summarize([_rec(1, "weak", 1.0, 2.0), _rec(2, "weak", 1.25, 4.0),
                       _rec(1, "strong", 1.0, 2.0), _rec(4, "strong", 0.5, 1.0)])
    rows = {line.split(" | ")[2] + line.split(" | ")[4]: line for line in table.splitlines()[2:]}
    assert "| 80% | 50% |" in rows["weak2"]                 # 1.0/1.25 and 2.0/4.0
    assert "| 50% (2.00x) | 50% (2.00x) |" in rows["strong4"]
    assert "| 25% |" in rows["strong4"]                      # fraction of copy bandwidth
    assert len(table.splitlines()) == 2 + 4
