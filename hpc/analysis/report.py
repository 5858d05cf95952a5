"""Records -> one self-contained HTML report (figures embedded, CSS inline, no scripts).

The page must open from a cluster's scratch directory or a mail attachment with no
network, so every figure is a base64 PNG inside the file and the template links to
nothing outside it. Sections are always present; a stage without records says so instead
of vanishing, and failed/skipped sweep points get their own table.
"""
from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from hpc.analysis import DEFAULT_TEMPLATE, plots, published, section_accuracy, section_hosts, tables
from hpc.analysis import section_inference_batch
from hpc.analysis.aggregate import load_frame, make_readable
from hpc.atomic import atomic_path



class TemplateNotFoundError(FileNotFoundError):
    """The Jinja2 template path does not exist; the message names it."""


# ----------------------------------------------------------------------------- formatting
_missing = tables.missing


def fmt_seconds(v: Any) -> str:
    """1.2e-4 -> '120 µs', 0.5 -> '500 ms', 12.3 -> '12.3 s'."""
    if _missing(v):
        return "\u2014"
    v = float(v)
    if v == 0:
        return "0 s"
    for scale, unit in ((1, "s"), (1e-3, "ms"), (1e-6, "\u00b5s"), (1e-9, "ns")):
        if abs(v) >= scale or unit == "ns":
            return f"{v / scale:.3g} {unit}"
    return f"{v:.3g} s"


def fmt_pct(v: Any, digits: int = 1) -> str:
    """0.8123 -> '81.2%'."""
    return "\u2014" if _missing(v) else f"{float(v) * 100:.{digits}f}%"


def fmt_num(v: Any, digits: int = 3) -> str:
    """Numbers with a sensible number of significant digits, ints without decimals."""
    if _missing(v):
        return "\u2014"
    if isinstance(v, (int, np.integer)) or (isinstance(v, float) and v.is_integer() and abs(v) < 1e15):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.{digits}g}"
    return str(v)


def fmt_acc(v: Any) -> str:
    """An accuracy (a fraction, as every record holds it) -> '95.00%'."""
    return fmt_pct(v, 2)


def fmt_text(v: Any) -> str:
    return "\u2014" if _missing(v) or v == "" else str(v)


@dataclass
class Column:
    key: str
    label: str
    fmt: Callable[[Any], str] = fmt_text
    numeric: bool = False
    wrap: bool = False      # long free text (errors, descriptions) may wrap; the rest stays on one line


@dataclass
class Table:
    """A table for the template: header labels and rows of formatted strings."""

    columns: list[Column]
    rows: list[list[str]]
    row_classes: list[str] = field(default_factory=list)
    numeric: list[bool] = field(default_factory=list)
    wrap: list[bool] = field(default_factory=list)
    collapsed: bool = False   # long detail tables start folded (<details>, no script needed)

    @property
    def empty(self) -> bool:
        return not self.rows


def make_table(df: pd.DataFrame, columns: Sequence[Column], row_class: Callable[[pd.Series], str] | None = None,
               drop_empty: bool = True) -> Table:
    """Format a DataFrame; columns that are empty in every row are dropped (less noise)."""
    cols = [c for c in columns if c.key in df.columns]
    if drop_empty and not df.empty:
        cols = [c for c in cols if not df[c.key].map(lambda v: _missing(v) or v == "").all()]
    rows = [[c.fmt(r[c.key]) for c in cols] for _, r in df.iterrows()]
    classes = [row_class(r) for _, r in df.iterrows()] if row_class else []
    return Table(columns=cols, rows=rows, row_classes=classes, numeric=[c.numeric for c in cols],
                 wrap=[c.wrap or c.key in WRAP_KEYS for c in cols])


WRAP_KEYS = frozenset({"error", "point", "what", "values", "group", "source", "note",
                       "ours_study", "ours_fast"})


def _col(key: str, label: str | None = None, fmt: Callable[[Any], str] = fmt_text) -> Column:
    return Column(key, label or key, fmt, numeric=fmt is not fmt_text)


# ----------------------------------------------------------------------------- sections
@dataclass
class Section:
    """One report section: id for the table of contents, title, and what to show."""

    id: str
    title: str
    intro: str = ""
    empty_note: str | None = None      # set when the stage has no (ok) records
    tables: list[tuple[str, Table, str]] = field(default_factory=list)   # (title, table, note)
    figures: list[plots.EmbeddedFigure] = field(default_factory=list)
    callouts: list[tuple[str, str]] = field(default_factory=list)        # (label, value)
    notes: list[str] = field(default_factory=list)

    def add_table(self, title: str, table: Table, note: str = "") -> None:
        if not table.empty:
            self.tables.append((title, table, note))


def _no_records(kind: str | Iterable[str], df: pd.DataFrame) -> str:
    kinds = [kind] if isinstance(kind, str) else list(kind)
    n_bad = 0 if df.empty else int((df["kind"].isin(kinds) & (df["status"] != "ok")).sum())
    extra = f" ({n_bad} failed/skipped: see 'Failed and skipped points')" if n_bad else ""
    return f"No successful records of kind {', '.join(repr(k) for k in kinds)} in this run{extra}."


KERNEL_COLS = [
    _col("op"), _col("window"), _col("backend"), _col("variant"), _col("device"),
    _col("device_class", "class"), _col("dtype"),
    _col("shape"), _col("median_s", "median", fmt_seconds), _col("iqr_s", "IQR", fmt_seconds),
    _col("transfer_s", "transfer", fmt_seconds), _col("bandwidth_gbs", "GB/s", fmt_num),
    _col("bound_gbs", "copy bound GB/s", fmt_num), _col("bound_fraction", "of bound", fmt_pct),
    _col("gflops", "GFLOP/s", fmt_num), _col("bound_gflops", "BLAS GFLOP/s", fmt_num),
    _col("gflops_fraction", "of BLAS", fmt_pct),
]


def kernel_section(df: pd.DataFrame, sink: plots.FigureSink) -> Section:
    sec = Section("kernels", "Kernels",
                  "Median of repeats after warm-up; transfer time (host\u2194device) is reported "
                  "separately from kernel time. The bound is measured in the same run on the same "
                  "device: a plain copy of the same bytes for pooling, BLAS/cuBLAS for matmul.")
    kt = tables.kernel_table(df)
    _published_kernels(sec, kt)
    if kt.empty:
        sec.empty_note = _no_records("kernel", df)
        return sec
    frac = kt["bound_fraction"].dropna()
    if not frac.empty:
        best = kt.loc[frac.idxmax()]
        sec.callouts.append(("best bandwidth fraction",
                             f"{fmt_pct(best['bound_fraction'])} ({best['backend']} {best['op']} "
                             f"{best['shape']} {best['window']})"))
    # the BLAS reference itself sits at 100% of its own bound: not a finding
    not_ref = ~(kt["backend"].eq("numpy") | kt["variant"].str.contains("blas", case=False, na=False))
    gfr = kt.loc[not_ref, "gflops_fraction"].dropna()
    if not gfr.empty:
        best = kt.loc[gfr.idxmax()]
        sec.callouts.append(("best matmul fraction of BLAS",
                             f"{fmt_pct(best['gflops_fraction'])} ({best['backend']} {best['variant']} {best['shape']})"))
    for op in sorted(kt["op"].unique()):
        batches: tuple[bool | None, ...] = (None,) if op == "matmul" else (False, True)
        for b in batches:
            sink_fig = sink.add(f"kernel-time-{op}" + ("-batches" if b else ""),
                                plots.plot_time_vs_size(kt, op, batches=b),
                                f"{op}: time vs size" + (" (NCHW batches)" if b else ""),
                                "Log-log; one line per backend" + (
                                    "; CNN pooling-layer shapes." if b else
                                    ". Red dotted: the studies' published times (document and "
                                    "hardware in the legend), different hardware."))
            if sink_fig:
                sec.figures.append(sink_fig)
    pool = kt[kt["op"] != "matmul"]
    f = sink.add("kernel-bandwidth-fraction", plots.plot_bound_fraction(pool), "bandwidth fraction",
                 "Achieved GB/s over the same-run copy bandwidth; dashed: 80% target.")
    if f:
        sec.figures.append(f)
    mm = kt[kt["op"] == "matmul"]
    f = sink.add("kernel-gflops-fraction",
                 plots.plot_bound_fraction(mm, "gflops_fraction", target=0.5,
                                           title="matmul GFLOP/s / same-run BLAS"),
                 "matmul fraction of BLAS", "Dashed: 50% target for the register-blocked GPU kernel.")
    if f:
        sec.figures.append(f)
    sec.add_table("All kernel measurements", make_table(kt, KERNEL_COLS))
    cg = tables.kernel_cpu_gpu(kt)
    sec.add_table("CPU vs GPU (fastest backend of each)", make_table(cg, [
        _col("op"), _col("window"), _col("dtype"), _col("shape"), _col("cpu_backend", "CPU backend"),
        _col("cpu_median_s", "CPU", fmt_seconds), _col("gpu_backend", "GPU backend"),
        _col("gpu_median_s", "GPU", fmt_seconds), _col("gpu_speedup", "GPU speed-up", _times)]))
    ss = tables.study_speedups(kt)
    sec.add_table("The study's method vs our fastest backend on the same device class (same machine, same run)", make_table(ss, [
        _col("op"), _col("window"), _col("dtype"), _col("shape"), _col("study_variant", "study variant"),
        _col("device_class", "device class"), _col("study_median_s", "study method", fmt_seconds), _col("fastest_backend", "fastest"),
        _col("fastest_median_s", "fastest", fmt_seconds), _col("speedup", "speed-up", _times)]))
    return sec


def _ratio(v: float) -> str:
    """3 significant digits, thousands separated, no exponent: 28200000 -> '28,200,000'."""
    v = float(v)
    if abs(v) >= 1000:
        return f"{float(f'{v:.3g}'):,.0f}"
    return f"{v:.3g}"


def _times(v: Any) -> str:
    return "\u2014" if _missing(v) else f"{_ratio(v)}\u00d7"


def _flagged(value: Any, unit: str, flags: Sequence[published.Flag]) -> str:
    text = f"{value} {unit}".strip()   # as transcribed: published numbers are never re-rounded
    return text + "".join(f" [{f.kind}: {f.note}]" for f in flags)


def _published_kernels(sec: Section, kt: pd.DataFrame) -> None:
    """Every published kernel time next to our runs of the same op, size and window.

    A published row is shown where we measured the same point, and always at the table's
    largest size (the study's headline)."""
    rows = []
    for t in published.tables():
        op = t.measures.get("op")
        if not t.compare or op not in ("maxpool2d", "avgpool2d", "matmul"):
            continue
        window = tables.window_label(t.measures["kernel"], t.measures["stride"],
                                     t.measures.get("padding", 0)) if op != "matmul" else ""
        recs = t.records()
        largest = max((r["N"] for r in recs), default=None) if "N" in t.columns else None
        for i, r in enumerate(recs):
            elements = float(np.prod(t.measures["shape"])) if "shape" in t.measures else float(r["N"]) ** 2
            same = kt[(kt["op"] == op) & (kt["elements"] == elements) & (kt["window"] == window)] \
                if not kt.empty else kt
            if same.empty and r.get("N", largest) != largest:
                continue
            ours_study = same[same["backend"] == "study"]
            fast = same[same["backend"] != "study"]
            want = {"gpu": "gpu", "cpu": "cpu"}.get(t.device_class)
            note = ""
            if want and not fast.empty:
                if (fast["device_class"] == want).any():
                    fast = fast[fast["device_class"] == want]
                else:
                    note = f"; no {want.upper()} run here"
            for c in t.compare:
                if r[c] is None:
                    continue
                row = {"source": f"{t.document}: {t.caption}", "hardware": t.hardware_of(c),
                       "size": as_size(t, r), "series": c.removesuffix("_s"),
                       "published": _flagged(r[c], t.unit(c), t.flags_for(i, c)),
                       "ours_study": "not run", "ours_fast": "not run", "vs": "\u2014"}
                if not ours_study.empty:
                    b = ours_study.loc[ours_study["median_s"].idxmin()]
                    row["ours_study"] = f"{fmt_seconds(b['median_s'])} ({b['variant'] or 'serial'}, {b['device']})"
                if not fast.empty:
                    b = fast.loc[fast["median_s"].idxmin()]
                    row["ours_fast"] = f"{fmt_seconds(b['median_s'])} ({tables._target(b)}, {b['device']}{note})"
                    row["vs"] = f"{_ratio(float(r[c]) / float(b['median_s']))}\u00d7"
                rows.append(row)
    table = make_table(pd.DataFrame(rows), [
        _col("source", "published in"), _col("series"), _col("size"), _col("hardware", "study hardware"),
        _col("published", "published"), _col("ours_study", "ours: study method"),
        _col("ours_fast", "ours: fastest backend (same device class)"), _col("vs", "published / ours")],
        drop_empty=False)
    table.collapsed = len(table.rows) > 16
    sec.add_table("Published (the studies) vs ours", table, PUBLISHED_NOTE +
                  " Different hardware: the ratio shows the method's cost, not a like-for-like comparison.")


PUBLISHED_NOTE = ("Published figures are transcribed from the source documents (../shared/seeds, via "
                  "FIGURES.md; hpc/analysis/published/*.yaml), not measured by this suite; flags mark "
                  "numbers the source prints garbled (uncertain) or that mislead (misleading).")


def as_size(t: published.PublishedTable, r: dict[str, Any]) -> str:
    if "shape" in t.measures:
        return "x".join(map(str, t.measures["shape"]))
    return f"{r['N']}x{r['N']}"


SCALING_COLS = [
    _col("mode"), _col("op"), _col("path"), _col("devices"), _col("problem"), _col("window"),
    _col("ranks", "ranks", fmt_num), _col("t_distribute_s", "distribute", fmt_seconds),
    _col("t_compute_s", "compute", fmt_seconds), _col("t_gather_s", "gather", fmt_seconds),
    _col("t_total_s", "total", fmt_seconds), _col("speedup", "speed-up", _times),
    _col("efficiency", "efficiency", fmt_pct), _col("compute_efficiency", "compute eff.", fmt_pct),
    _col("karp_flatt", "Karp-Flatt e", fmt_num), _col("scaled_speedup", "scaled speed-up", _times),
    _col("imbalance", "imbalance", fmt_num), _col("bandwidth_gbs", "compute GB/s", fmt_num),
    _col("copy_bound_gbs", "node copy GB/s", fmt_num), _col("bound_fraction", "of copy bound", fmt_pct),
]


def scaling_section(df: pd.DataFrame, sink: plots.FigureSink) -> Section:
    sec = Section("scaling", "MPI scaling",
                  "Phases timed with MPI.Wtime between barriers, max over ranks. Strong scaling: "
                  "fixed total size; weak scaling: fixed size per rank. Speed-up and efficiency are "
                  "relative to the smallest run of each experiment (baseline ranks).")
    st = tables.scaling_table(df)
    fits = tables.law_fits(st)
    f_study = published.amdahl_parallel_fraction()
    amdahl = published.table("amdahl")
    fit_rows = [{"law": "Amdahl (004, published)", "group": f"{amdahl.document}: {amdahl.caption} ({amdahl.seed})",
                 "parallel_fraction": f_study, "serial_fraction": 1 - f_study,
                 "s2": plots.metrics.amdahl_speedup(f_study, 2), "limit": plots.metrics.amdahl_limit(f_study),
                 "points": None, "rmse": None}]
    for fit in fits:
        pf = fit.parallel_fraction
        law_s2 = (plots.metrics.amdahl_speedup(pf, 2) if fit.law == "Amdahl"
                  else plots.metrics.gustafson_speedup(pf, 2))
        fit_rows.append({"law": f"{fit.law} (ours, least-squares fit)", "group": fit.group,
                         "parallel_fraction": pf, "serial_fraction": 1 - pf, "s2": law_s2,
                         "limit": plots.metrics.amdahl_limit(pf) if fit.law == "Amdahl" else None,
                         "points": fit.points, "rmse": fit.rmse})

    for law in ("Amdahl", "Gustafson"):
        fs = [f for f in fits if f.law == law]
        if not fs:
            continue
        versus = f"; 004's published Amdahl f: {f_study:.2%}" if law == "Amdahl" else ""
        if len(fs) == 1:
            value = f"{fmt_pct(fs[0].parallel_fraction, 2)} ({fs[0].group}, up to {fs[0].max_ranks} ranks{versus})"
        else:
            pfs = sorted(f.parallel_fraction for f in fs)
            value = (f"{fmt_pct(pfs[0], 1)}\u2013{fmt_pct(pfs[-1], 1)}, median {fmt_pct(float(np.median(pfs)), 1)} "
                     f"over {len(fs)} experiments (up to {max(f.max_ranks for f in fs)} ranks{versus})")
        sec.callouts.append((f"fitted {law} parallel fraction", value))
    sec.add_table("Amdahl / Gustafson: fitted parallel fraction vs 004's published 61.21%", make_table(
        pd.DataFrame(fit_rows), [
            _col("law"), _col("group", "experiment"), _col("parallel_fraction", "parallel fraction f", lambda v: fmt_pct(v, 2)),
            _col("serial_fraction", "serial 1\u2212f", lambda v: fmt_pct(v, 2)),
            _col("s2", "S(2) from the law", lambda v: "\u2014" if _missing(v) else f"{float(v):.3f}"),
            _col("limit", "Amdahl limit 1/(1\u2212f)", _times), _col("points", "points", fmt_num),
            _col("rmse", "RMSE (speed-up)", fmt_num)], drop_empty=False),
        "Amdahl: S(n) = 1/((1\u2212f) + f/n), fitted to strong-scaling speed-ups of total time. "
        "Gustafson: S(n) = (1\u2212f) + f\u00b7n, fitted to weak-scaling scaled speed-ups. Only "
        "experiments with a 1-rank baseline are fitted. 004's fraction is transcribed, not measured.")
    if st.empty:
        sec.empty_note = _no_records("scaling", df)
        return sec
    for key, fig, title, cap in (
        ("scaling-strong", plots.plot_strong_scaling(st, fits), "strong scaling",
         "Left: speed-up with the ideal line, our Amdahl fits and 004's published 61.21% curve. "
         "Right: efficiency of total time (solid) and compute phase (dashed)."),
        ("scaling-weak", plots.plot_weak_scaling(st), "weak scaling",
         "Efficiency t\u2081/t\u2099 of total time and compute phase; dashed: 90% target."),
        ("scaling-phases", plots.plot_phases(st), "phase breakdown",
         "Read/distribute, compute and gather/write time per run."),
    ):
        emb = sink.add(key, fig, title, cap)
        if emb:
            sec.figures.append(emb)
    sec.notes.extend(section_hosts.mixed_host_warnings(df))
    sec.add_table("Scaling runs", make_table(st, SCALING_COLS))
    pr = tables.per_rank_table(df)
    if not pr.empty:
        cols = [Column(c, c, fmt_seconds if c.endswith("_s") else (fmt_num if pd.api.types.is_numeric_dtype(pr[c]) else fmt_text),
                       numeric=pd.api.types.is_numeric_dtype(pr[c])) for c in pr.columns]
        table = make_table(pr, cols)
        table.collapsed = len(table.rows) > 16
        sec.add_table("Per-rank figures", table)
    return sec


def training_section(df: pd.DataFrame, sink: plots.FigureSink) -> Section:
    sec = Section("training", "Training",
                  "AlexNet (004's small-input variant) on the HDF5 slice dataset.")
    et, tt, dd = tables.epoch_table(df), tables.training_table(df), tables.ddp_table(df)
    # the published results next to ours, quoted verbatim (never re-rounded)
    pub = published.table("training_alexnet_mri")
    rows = []
    for i, r in enumerate(pub.records()):
        if r["test_acc_pct"] is None:
            continue
        rows.append({"who": f"004 (published, {r['source']})", "device": pub.hardware, "epochs": str(r["epochs"]),
                     "test_acc": _flagged(r["test_acc_pct"], "%", pub.flags_for(i, "test_acc_pct")).replace(" %", "%"),
                     "wall_s": f"{r['training_time_s']} s"})
    for _, r in tt.iterrows():
        rows.append({"who": f"ours: {r['run']}", "device": r["device"], "epochs": fmt_num(r["epochs"]),
                     "test_acc": fmt_acc(r["test_acc"]), "wall_s": fmt_seconds(r["wall_s"])})
    sec.add_table("Published (004) vs ours", make_table(pd.DataFrame(rows), [
        _col("who", "run"), _col("device"), Column("epochs", "epochs", numeric=True),
        Column("test_acc", "test accuracy", numeric=True), Column("wall_s", "wall time", numeric=True)],
        drop_empty=False),
        f"{PUBLISHED_NOTE} Source: {published.cite(pub)}; split {pub.measures['split']}.")
    if tt.empty and et.empty and dd.empty:
        sec.empty_note = _no_records(("training", "training_epoch", "ddp"), df)
        return sec
    sec.callouts.extend(section_accuracy.callouts(df))
    emb = sink.add("training-curves", plots.plot_training_curves(et), "training curves",
                   "Solid: training; dashed: validation. Dotted red: 004's published test accuracies.")
    if emb:
        sec.figures.append(emb)
    for run, names, mat in tables.confusion_matrices(df):
        emb = sink.add(f"confusion-{run}", plots.plot_confusion(run, names, mat), f"confusion matrix ({run})",
                       "Test set; rows: true class, columns: predicted class.")
        if emb:
            sec.figures.append(emb)
    emb = sink.add("ddp-throughput", plots.plot_ddp(dd), "DDP throughput", "Images/s vs ranks; dotted: linear scaling.")
    if emb:
        sec.figures.append(emb)
    sec.add_table("Final results", make_table(tt, [
        _col("run"), _col("device"), _col("epochs", "epochs", fmt_num), _col("test_acc", "test acc", fmt_acc),
        _col("test_correct", "correct", fmt_num), _col("test_count", "of", fmt_num),
        _col("test_ci95", "95% interval"), _col("test_loss", "test loss", fmt_num), _col("best_val_acc", "best val acc", fmt_acc),
        _col("wall_s", "wall time", fmt_seconds), _col("images_per_s", "images/s", fmt_num)]))
    sec.add_table("Test accuracy: counts (k/n), 95% Wilson intervals, split, per subject",
                  make_table(section_accuracy.accuracy_table(df), [Column(c, label, numeric=c not in ("run", "device", "split"))
                                                                   for c, label in section_accuracy.COLUMNS]),
                  section_accuracy.STUDY_NOTE)
    pc = tables.per_class_table(df)
    if not pc.empty:
        sec.add_table("Per-class precision / recall", make_table(pc, [
            _col("run"), _col("class"), _col("precision", "precision", fmt_acc), _col("recall", "recall", fmt_acc)]))
    sec.add_table("CPU vs GPU", make_table(tables.training_cpu_gpu(et), [
        _col("measure"), _col("cpu_s", "CPU", fmt_seconds), _col("gpu_s", "GPU", fmt_seconds),
        _col("gpu_speedup", "GPU speed-up", _times)]))
    sec.add_table("DDP scaling", make_table(dd, [
        _col("device"), _col("ranks", "ranks", fmt_num), _col("images_per_s", "images/s", fmt_num),
        _col("speedup", "speed-up", _times), _col("efficiency", "efficiency", fmt_pct)]))
    if not et.empty:
        last = et.sort_values("epoch").groupby("run").tail(1)
        sec.add_table("Last epoch of each run", make_table(last, [
            _col("run"), _col("device"), _col("epoch", "epoch", fmt_num), _col("train_loss", "train loss", fmt_num),
            _col("train_acc", "train acc", fmt_acc), _col("val_loss", "val loss", fmt_num),
            _col("val_acc", "val acc", fmt_acc), _col("epoch_s", "epoch time", fmt_seconds),
            _col("images_per_s", "images/s", fmt_num)]))
    return sec


def dataset_section(df: pd.DataFrame) -> Section:
    sec = Section("dataset", "Dataset", "The HDF5 slice dataset built from the NIfTI volumes.")
    dt = tables.dataset_table(df)
    if dt.empty:
        sec.empty_note = _no_records("dataset", df)
        return sec
    cols = [Column(c, c, fmt_seconds if c.endswith("_s") else (fmt_num if pd.api.types.is_numeric_dtype(dt[c]) else fmt_text),
                   numeric=pd.api.types.is_numeric_dtype(dt[c])) for c in dt.columns]
    sec.add_table("Dataset builds", make_table(dt, cols))
    return sec


def failures_section(df: pd.DataFrame) -> Section:
    sec = Section("failures", "Failed and skipped points",
                  "Every sweep point that did not produce a measurement, with the reason the "
                  "producer recorded. Skipped: not runnable here (e.g. no GPU); failed: an error.")
    ft = tables.failures(df)
    if ft.empty:
        sec.empty_note = "None: every recorded point succeeded."
        return sec
    failed = ft[ft["status"] == "failed"]
    invalid = ft[ft["status"] == "invalid"]
    skipped = tables.skipped_by_reason(ft)
    n_skipped = int((ft["status"] == "skipped").sum())
    sec.callouts.append(("points without a result",
                         f"{len(ft)}: {len(failed)} failed, {n_skipped} skipped"
                         + (f", {len(invalid)} invalid" if len(invalid) else "")))
    sec.add_table(f"Records that do not match the schema ({len(invalid)}): a producer bug or another "
                  "version's kind", make_table(
        invalid, [_col("status"), _col("kind"), _col("name"), _col("error", "what is wrong"),
                  _col("source", "record file")], row_class=lambda r: "status-failed"))
    sec.add_table(f"Failed points ({len(failed)})", make_table(
        failed, [_col("status"), _col("kind"), _col("name"), _col("point", "parameters"), _col("error"),
                 _col("source", "record file")], row_class=lambda r: f"status-{r['status']}",
        drop_empty=False))
    sec.add_table(f"Skipped points ({n_skipped}), grouped by reason", make_table(
        skipped, [_col("status"), _col("kind"), _col("error", "reason"), _col("count", "points", fmt_num),
                  Column("points", "which", wrap=True)], row_class=lambda r: "status-skipped",
        drop_empty=False))
    return sec


def provenance_section(df: pd.DataFrame) -> Section:
    sec = Section("provenance", "Provenance",
                  "Where the measurements came from: every distinct value seen across the records.")
    pt = tables.provenance_table(df)
    if pt.empty:
        sec.empty_note = "No records, so no provenance."
        return sec
    sec.add_table("Run environment", make_table(pt, [_col("field"), _col("values")], drop_empty=False))
    return sec


def summary_section(df: pd.DataFrame, others: Sequence[Section]) -> Section:
    sec = Section("summary", "Summary")
    counts = tables.status_counts(df)
    if df.empty:
        sec.empty_note = "No records were found: nothing has run yet."
    sec.add_table("Records per kind", make_table(counts, [
        _col("kind"), _col("ok", "ok", fmt_num), _col("failed", "failed", fmt_num),
        _col("skipped", "skipped", fmt_num), _col("invalid", "invalid (schema)", fmt_num),
        _col("total", "total", fmt_num)]))
    for s in others:
        for label, value in s.callouts:
            sec.callouts.append((f"{s.title}: {label}", value))
    n_bad = 0 if df.empty else int((df["status"] != "ok").sum())
    sec.callouts.append(("failed / skipped points", f"{n_bad}" + (" (listed at the end)" if n_bad else "")))
    return sec


def references_section(df: pd.DataFrame, refs_path: Path | None, system: str) -> Section:
    """Each measured headline metric against the system's reference (ReFrame-style tolerances)."""
    from hpc.analysis import references
    sec = Section("references", f"References ({system})",
                  "Each point's headline metrics against the reference values of this system "
                  "(experiments/references/<system>.yaml, written by `hpc references update`): within, "
                  "below or above the allowed band; a regression is the worse side of the metric.")
    if refs_path is None or not refs_path.is_file():
        sec.empty_note = (f"No reference file for system {system!r} "
                          f"({refs_path or references.path_for(system)}); write one with "
                          "`hpc references update RESULTS_DIR` and commit it.")
        return sec
    marks = references.mark(df, references.load(refs_path))
    sec.callouts.append(("against references", references.summary_line(marks, system).split(": ", 1)[1]))
    have = marks[marks["mark"] != "no reference"]
    sec.add_table(f"Points with a reference ({refs_path})", make_table(have, [
        _col("mark"), _col("verdict"), _col("kind"), _col("point"), _col("metric"),
        _col("value", "measured", fmt_num), _col("reference", "reference", fmt_num),
        _col("low", "allowed from", fmt_num), _col("high", "to", fmt_num)],
        row_class=lambda r: "status-failed" if r["verdict"] == "regression" else ""))
    return sec


def published_section() -> Section:
    """Every transcribed table of every study, cited by document, caption and line."""
    sec = Section("published", "Published figures of the studies", PUBLISHED_NOTE)
    for t in published.tables():
        frame = pd.DataFrame([[_flagged(v, "", t.flags_for(i, c)) if t.flags_for(i, c) else v
                               for c, v in zip(t.columns, row)] for i, row in enumerate(t.rows)],
                             columns=t.columns)
        cols = [Column(c, f"{c} [{t.unit(c)}]" if t.unit(c) else c, fmt_text) for c in t.columns]
        table = make_table(frame, cols, drop_empty=False)
        table.collapsed = True
        whole = "; ".join(f"{f.kind}: {f.note}" for f in t.flags if f.row is None)
        sec.add_table(f"{t.document} \u2014 {t.caption}", table,
                      f"Hardware: {t.hardware}. Source: {t.seed}; FIGURES.md: \u201c{t.locator}\u201d."
                      + (f" Flags: {whole}." if whole else ""))
    return sec


# ----------------------------------------------------------------------------- build
def build_context(df: pd.DataFrame, sink: plots.FigureSink, title: str = "HPC MRI suite: scaling report",
                  sources: Sequence[str] = (), references: str | os.PathLike[str] | None = None,
                  system: str | None = None) -> dict[str, Any]:
    """Everything the template needs, as plain data. ``references``: the reference file
    (default: experiments/references/<system>.yaml when it exists)."""
    from hpc.analysis import history, section_inference_opencl
    from hpc.analysis import references as refs_mod
    system = history.system_name(df, system)
    refs_path = Path(references) if references is not None else refs_mod.path_for(system)
    from hpc.analysis.section_compression import compression_section
    body = [dataset_section(df), kernel_section(df, sink), scaling_section(df, sink),
            training_section(df, sink), compression_section(df, sink),
            section_inference_opencl.section(df), section_inference_batch.section(df, sink),
            references_section(df, refs_path, system)]
    failures = failures_section(df)
    sections = [summary_section(df, body), provenance_section(df), *body, published_section(), failures]
    return {
        "title": title,
        "generated": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "n_records": len(df),
        "n_failed": 0 if df.empty else int((df["status"] == "failed").sum()),
        "n_skipped": 0 if df.empty else int((df["status"] == "skipped").sum()),
        "sources": list(sources),
        "sections": sections,
        "study_note": PUBLISHED_NOTE,
        "study_notes": [f"{d.document}: {d.title}" for d in published.documents()],
        "accuracy": section_accuracy.context(df),
    }


def render(context: dict[str, Any], template: str | os.PathLike[str] = DEFAULT_TEMPLATE) -> str:
    """Render the Jinja2 template (autoescaped: record text cannot inject HTML)."""
    import jinja2

    template = Path(template)
    if not template.is_file():
        raise TemplateNotFoundError(f"{template}: report template not found")
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(template.parent)),
                             autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    return env.get_template(template.name).render(**context)


def build_report(records: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str],
                 template: str | os.PathLike[str] = DEFAULT_TEMPLATE,
                 figures_dir: str | os.PathLike[str] | None = None,
                 title: str = "HPC MRI suite: scaling report",
                 references: str | os.PathLike[str] | None = None, system: str | None = None) -> Path:
    """Read records, draw figures, render and write the HTML atomically; return its path."""
    if not Path(template).is_file():
        raise TemplateNotFoundError(f"{template}: report template not found")
    df = load_frame(records)
    sink = plots.FigureSink(figures_dir)
    html = render(build_context(df, sink, title=title, sources=[str(r) for r in records],
                                references=references, system=system), template)
    with atomic_path(output, suffix=".html") as tmp:
        tmp.write_text(html, encoding="utf-8")
        make_readable(tmp)
    return Path(output)
