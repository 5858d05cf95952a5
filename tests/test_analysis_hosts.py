"""The report's warning for speed-up curves whose points ran on different hosts."""
from __future__ import annotations

import pandas as pd

from hpc.analysis.section_hosts import mixed_host_warnings


def _frame(points):
    rows = [{"kind": "scaling", "status": "ok", "params.experiment": "e", "params.mode": "strong",
             "params.op": "maxpool2d", "params.size": 256, "params.path": "scatter",
             "params.ranks": len(hosts), "params.hosts": hosts} for hosts in points]
    return pd.DataFrame(rows)


def test_points_on_one_set_of_nodes_are_not_flagged():
    assert mixed_host_warnings(_frame([["a"], ["a", "b"], ["a", "a", "b", "b"]])) == []


def test_points_on_different_nodes_are_flagged_with_their_hosts():
    (warning,) = mixed_host_warnings(_frame([["a"], ["b", "c"]]))
    assert "1 rank: a" in warning and "2 ranks: b, c" in warning and "e strong" in warning


def test_curves_are_judged_separately_and_failed_points_ignored():
    df = pd.concat([_frame([["a"], ["a", "b"]]),
                    _frame([["c"], ["d", "e"]]).assign(**{"params.mode": "weak"}),
                    _frame([["z"]]).assign(status="failed")])
    (warning,) = mixed_host_warnings(df)
    assert "weak" in warning and "z" not in warning


def test_hosts_as_json_text_from_a_csv_table():
    df = _frame([["a"], ["b", "c"]])
    df["params.hosts"] = df["params.hosts"].map(lambda h: str(h).replace("'", '"'))
    assert len(mixed_host_warnings(df)) == 1
