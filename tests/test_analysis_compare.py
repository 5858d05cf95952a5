"""References with tolerances, run history and `hpc compare`, on recorded producer output."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

import analysis_fixtures as fx
from hpc.analysis import aggregate, compare, history, points, references
from hpc.cli import main
from hpc.records import write_records

NUMBA32 = "maxpool2d numba 1x1x32x32 k2s2 float32"


def _frame(recs) -> pd.DataFrame:
    return aggregate.records_to_frame([(r, None) for r in recs])


def _run(directory: Path, kernels=None) -> Path:
    """A tiny run directory: recorded kernel and scaling records."""
    write_records(directory / "kernels.jsonl", kernels if kernels is not None else fx.kernel_records())
    write_records(directory / "scaling.jsonl", fx.scaling_records())
    return directory


def _slower(recs, factor: float):
    """The numba 32x32 max-pool point made ``factor`` times slower (time and bandwidth)."""
    out = []
    for r in recs:
        if r.status == "ok" and r.params["backend"] == "numba" and r.params["shape"] == [1, 1, 32, 32] \
                and r.params["op"] == "maxpool2d":
            m = r.metrics
            r = fx.variant(r, metrics={"median_s": m["median_s"] * factor,
                                       "bandwidth_gbs": m["bandwidth_gbs"] / factor,
                                       "bound_fraction": m["bound_fraction"] / factor})
        out.append(r)
    return out


def test_point_keys_include_backend_target_window_and_ranks():
    pt = points.point_table(_frame(fx.kernel_records() + fx.scaling_records()))
    keys = set(pt["point"])
    assert NUMBA32 in keys and "maxpool2d torch:cuda 1x1x32x32 k2s2 float32" in keys
    assert "maxpool2d strong scatter 256x256 cpu float32 ranks=4" in keys
    row = pt[(pt["point"] == NUMBA32) & (pt["metric"] == "bound_fraction")].iloc[0]
    assert (row["value"], row["better"]) == (0.8, "higher")


def test_compare_flags_exactly_the_point_made_worse(tmp_path):
    a = _run(tmp_path / "a")
    b = _run(tmp_path / "b", _slower(fx.kernel_records(), 1.5))
    cmp = compare.compare_runs(a, b, tolerance=0.10)
    bad = cmp[cmp["status"] == "regressed"]
    assert set(bad["point"]) == {NUMBA32}
    assert set(bad["metric"]) == {"median_s", "bound_fraction"}
    t = bad[bad["metric"] == "median_s"].iloc[0]
    assert (t["a"], t["b"], t["ratio"]) == pytest.approx((2e-6, 3e-6, 1.5))
    assert (cmp["status"] != "regressed").sum() == (cmp["status"] == "unchanged").sum()
    # 1.5x slower is within a 60 % tolerance
    assert not (compare.compare_runs(a, b, tolerance=0.6)["status"] == "regressed").any()


def test_compare_lists_points_of_one_run_only(tmp_path):
    a = _run(tmp_path / "a")
    b = _run(tmp_path / "b", [r for r in fx.kernel_records() if r.params.get("backend") != "torch"])
    cmp = compare.compare_runs(a, b)
    only_a = cmp[cmp["status"] == "only in A"]
    assert set(only_a["point"]) == {"maxpool2d torch 1x1x16x16 k2s2 float32", "maxpool2d torch 1x1x32x32 k2s2 float32",
                                    "matmul torch 16x16x16 float32", "matmul torch 32x32x32 float32"}
    assert only_a["b"].isna().all() and (cmp["status"] == "only in B").sum() == 0


def test_compare_cli_exit_status_and_html(tmp_path, capsys):
    a = _run(tmp_path / "a")
    b = _run(tmp_path / "b", _slower(fx.kernel_records(), 2.0))
    html = tmp_path / "cmp.html"
    assert main(["compare", str(a), str(b), "--html", str(html)]) == 0
    out = capsys.readouterr().out
    assert "tolerance 10%" in out and "2 regressed" in out
    line = next(x for x in out.splitlines() if x.startswith("regressed") and "median_s" in x)
    assert NUMBA32 in line and line.split()[-3:] == ["2e-06", "4e-06", "2"]
    assert main(["compare", str(a), str(b), "--fail-on-regression"]) == 1
    assert main(["compare", str(a), str(a), "--fail-on-regression"]) == 0
    assert main(["compare", str(a), str(b), "--fail-on-regression", "--tolerance", "1.5"]) == 0
    page = html.read_text()
    assert '<tr class="regressed">' in page and NUMBA32 in page and "<script" not in page
    assert main(["compare", str(a), "no-such-run", "--history", str(tmp_path / "h")]) == 2
    assert "no-such-run: not a results directory" in capsys.readouterr().err


def test_history_keeps_runs_and_compare_takes_run_ids(tmp_path, capsys):
    hist = tmp_path / "runs"
    a = _run(tmp_path / "a")
    b = _run(tmp_path / "b", _slower(fx.kernel_records(), 2.0))
    ea = history.add_run(a, hist, system="laptop")
    eb = history.add_run(b, hist, system="laptop")
    runs = history.list_runs(hist)
    assert runs["run_id"].tolist() == [ea.run_id, eb.run_id] and ea.run_id != eb.run_id
    assert runs["system"].tolist() == ["laptop", "laptop"]
    n = len(fx.kernel_records()) + len(fx.scaling_records())
    assert runs["n_records"].tolist() == [n, n]
    assert runs["git_commit"].iloc[0] == fx.kernel_records()[0].provenance["git_commit"]
    assert len(pd.read_parquet(hist / ea.run_id / "records.parquet")) == n
    assert main(["compare", ea.run_id, eb.run_id, "--history", str(hist), "--fail-on-regression"]) == 1
    assert "2 regressed" in capsys.readouterr().out
    assert main(["runs", "list", "--history", str(hist)]) == 0
    assert eb.run_id in capsys.readouterr().out


def test_references_mark_within_below_above(tmp_path):
    df = _frame(fx.kernel_records())
    refs = references.ReferenceFile(system="vm", references={"kernel": {NUMBA32: {
        "bound_fraction": (0.8, -0.1, math.inf), "median_s": (1e-6, -math.inf, 0.5)}}})
    m = references.mark(df, refs).set_index(["point", "metric"])
    assert m.loc[(NUMBA32, "bound_fraction"), "mark"] == "within"        # 0.8 in [0.72, inf)
    assert m.loc[(NUMBA32, "median_s"), "mark"] == "above"              # 2 us > 1.5 us
    assert m.loc[(NUMBA32, "median_s"), "verdict"] == "regression"      # a longer time is worse
    assert m.loc[(NUMBA32, "median_s"), "high"] == pytest.approx(1.5e-6)
    slow = references.mark(_frame(_slower(fx.kernel_records(), 2.0)), refs).set_index(["point", "metric"])
    assert slow.loc[(NUMBA32, "bound_fraction"), ["mark", "verdict"]].tolist() == ["below", "regression"]
    fast = references.ReferenceFile(system="vm", references={"kernel": {NUMBA32: {
        "bound_fraction": (0.5, -0.1, 0.2)}}})
    f = references.mark(df, fast).set_index(["point", "metric"])
    assert f.loc[(NUMBA32, "bound_fraction"), ["mark", "verdict"]].tolist() == ["above", "improvement"]
    assert (references.mark(df, refs)["mark"] == "no reference").sum() == len(points.point_table(df)) - 2


def test_references_update_then_check(tmp_path, capsys):
    run = _run(tmp_path / "a")
    refdir = tmp_path / "refs"
    assert main(["references", "update", str(run), "--system", "vm", "--dir", str(refdir)]) == 0
    body = yaml.safe_load((refdir / "vm.yaml").read_text())
    assert body["system"] == "vm"
    assert body["references"]["kernel"][NUMBA32]["bound_fraction"] == [0.8, -0.1, math.inf]
    assert body["references"]["kernel"][NUMBA32]["median_s"] == [2e-6, -math.inf, 0.1]
    assert body["references"]["scaling"]["maxpool2d strong scatter 256x256 cpu float32 ranks=2"][
        "efficiency"][0] == pytest.approx(10 / 12)
    capsys.readouterr()
    assert main(["references", "check", str(run), "--system", "vm", "--dir", str(refdir),
                 "--fail-on-regression"]) == 0
    assert "0 below, 0 above (0 regression(s))" in capsys.readouterr().out
    slow = _run(tmp_path / "b", _slower(fx.kernel_records(), 2.0))
    assert main(["references", "check", str(slow), "--system", "vm", "--dir", str(refdir),
                 "--fail-on-regression"]) == 1
    out = capsys.readouterr().out
    assert "2 regression(s)" in out and f"below   regression  kernel   {NUMBA32}  bound_fraction" in out


def test_bad_reference_file_is_named(tmp_path):
    bad = tmp_path / "vm.yaml"
    bad.write_text("system: vm\nreferences: {kernel: {p: {median_s: [1.0, 0.1, 0.2]}}}\n")
    with pytest.raises(ValueError, match=r"(?s)vm.yaml: not a valid reference file.*lower <= 0 <= upper"):
        references.load(bad)


def test_report_marks_points_against_the_systems_references(tmp_path):
    from hpc.analysis import report
    run = _run(tmp_path / "a", _slower(fx.kernel_records(), 2.0))
    refs = references.ReferenceFile(system="vm", references={"kernel": {NUMBA32: {
        "bound_fraction": (0.8, -0.1, math.inf), "median_s": (2e-6, -math.inf, 0.1)}}})
    path = tmp_path / "vm.yaml"
    path.write_text(yaml.safe_dump(refs.model_dump()))
    text = report.build_report([run], tmp_path / "r.html", references=path, system="vm").read_text()
    section = text[text.index('<section id="references">'):]
    section = section[:section.index("</section>")]
    assert "References (vm)" in section and "0 within, 1 below, 1 above (2 regression(s))" in section
    assert section.count('class="status-failed"') == 2
    text = report.build_report([run], tmp_path / "r2.html", references=tmp_path / "none.yaml",
                               system="vm").read_text()
    assert "No reference file for system &#39;vm&#39;" in text


def test_report_cli_prints_the_reference_summary(tmp_path, capsys):
    run = _run(tmp_path / "a")
    refdir = tmp_path / "refs"
    assert main(["references", "update", str(run), "--system", "vm", "--dir", str(refdir)]) == 0
    assert main(["report", "build", "--records", str(run), "--output", str(tmp_path / "r.html"),
                 "--system", "vm", "--references", str(refdir / "vm.yaml")]) == 0
    assert "references (vm): " in capsys.readouterr().err and "(0 regression(s))" in (tmp_path / "r.html").read_text()
