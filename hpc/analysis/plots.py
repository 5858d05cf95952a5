"""The report's figures (matplotlib, Agg backend: no display needed on a cluster node).

Each ``plot_*`` function takes a table from ``hpc.analysis.tables`` and returns a
matplotlib Figure, or None when there is nothing to draw; ``FigureSink`` writes each
figure as PNG and SVG (atomically) and keeps a base64 PNG for embedding in the HTML.
"""
from __future__ import annotations

import base64
import math
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from hpc.analysis import metrics, published  # noqa: E402
from hpc.atomic import atomic_path, ensure_writable_dir  # noqa: E402

STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 130,
    "font.size": 9.5,
    "axes.titlesize": 10.5,
    "axes.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linestyle": "-",
    "legend.fontsize": 8,
    "legend.frameon": False,
    "svg.fonttype": "none",
    "svg.hashsalt": "hpc-report",  # stable SVG ids: reruns give identical files
}
# no pure red: red is reserved for the study's published figures
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#17becf", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#393b79"]
STUDY_COLOR = "#b22222"


def op_family(op: str) -> str:
    """'maxpool2d', 'max_pool2d', 'maxpool' -> 'maxpool' (producers spell ops differently)."""
    o = str(op).lower().replace("_", "").replace("-", "")
    return o[:-2] if o.endswith("2d") else o


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "figure"


@dataclass
class EmbeddedFigure:
    """One figure ready for the HTML template (and where its files went, if anywhere)."""

    key: str
    title: str
    caption: str
    png_base64: str
    files: list[Path] = field(default_factory=list)
    wide: bool = False      # spans the full report width (multi-panel figures)
    tall: bool = False      # many rows (bar charts of every point): full row, limited width


class FigureSink:
    """Collects figures: renders each to PNG (embedded) and, with a directory, PNG+SVG files."""

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.directory = Path(directory) if directory is not None else None
        if self.directory is not None:
            # exists even when there is nothing to draw (a Snakemake directory() output)
            ensure_writable_dir(self.directory)
        self.figures: list[EmbeddedFigure] = []

    def add(self, key: str, fig: Figure | None, title: str, caption: str = "",
            wide: bool | None = None) -> EmbeddedFigure | None:
        if fig is None:
            return None
        w, h = fig.get_size_inches()
        tall = h > 6.0
        if wide is None:  # multi-panel, very wide or very tall figures get the full row
            wide = (tall or w > 8.5
                    or sum(1 for a in fig.axes if a.get_label() != "<colorbar>") > 1)
        key = _slug(key)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", metadata={"Software": None})  # constrained layout already fits
        png = buf.getvalue()
        files: list[Path] = []
        if self.directory is not None:
            for ext, data in (("png", png), ("svg", None)):
                target = self.directory / f"{key}.{ext}"
                with atomic_path(target, suffix=f".{ext}") as tmp:
                    if data is not None:
                        tmp.write_bytes(data)
                    else:
                        fig.savefig(tmp, format="svg", metadata={"Date": None})
                    os.chmod(tmp, 0o644)  # the atomic temp file starts as 0600
                files.append(target)
        plt.close(fig)
        emb = EmbeddedFigure(key=key, title=title, caption=caption,
                             png_base64=base64.b64encode(png).decode("ascii"), files=files, wide=wide,
                             tall=tall)
        self.figures.append(emb)
        return emb


def _new(ncols: int = 1, width: float = 6.4, height: float = 3.8) -> tuple[Figure, np.ndarray]:
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, ncols, figsize=(width * ncols if ncols > 1 else width, height),
                                 squeeze=False, layout="constrained")
    return fig, axes[0]


def _styled(func):  # type: ignore[no-untyped-def]
    """Run a plotting function under the report's rc style."""
    def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
        with plt.rc_context(STYLE):
            return func(*args, **kwargs)
    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper


# ----------------------------------------------------------------------------- kernels
def _is_batch_shape(shape: str) -> bool:
    """'8x96x55x55' is an NCHW batch (N*C > 1); '1x1x1024x1024' and '1024x1024' are images."""
    parts = [p for p in str(shape).split("x") if p]
    try:
        return len(parts) == 4 and int(parts[0]) * int(parts[1]) > 1
    except ValueError:
        return False


@_styled
def plot_time_vs_size(kt: pd.DataFrame, op: str, show_study: bool = True,
                      batches: bool | None = None) -> Figure | None:
    """Median time vs input elements (log-log), one line per backend/variant/device class.

    For max pooling and matmul the study's published single figures are drawn as red
    error bars (their ranges) at their size, so the reader sees both on one axis.
    """
    d = kt[(kt["op"] == op)].dropna(subset=["median_s", "elements"])
    if batches is not None and "shape" in d.columns:
        is_batch = d["shape"].map(_is_batch_shape)
        d = d[is_batch] if batches else d[~is_batch]
    if d.empty:
        return None
    fig, (ax,) = _new(width=7.6, height=4.0)
    d = d.assign(label=[" ".join(x for x in (b, v, f"[{c}]" if c not in ("cpu", b) else "", w) if x)
                        for b, v, c, w in zip(d["backend"], d["variant"], d["device_class"], d["window"])])
    for i, (label, g) in enumerate(d.groupby("label", sort=True)):
        g = g.groupby("elements", as_index=False)["median_s"].min().sort_values("elements")
        style = "--" if label.startswith("study") else "-"
        ax.plot(g["elements"], g["median_s"], style, marker="o", ms=3.5, lw=1.4,
                color=PALETTE[i % len(PALETTE)], label=label)
    if show_study and not batches:
        markers = "DvsP^X"
        for j, (label, xs, ys) in enumerate(published_series(op)):
            ax.plot(xs, ys, ls=":", marker=markers[j % len(markers)], ms=4, lw=0.9,
                    color=STUDY_COLOR, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    lo, hi = ax.get_xlim()
    ax.set_xlim(lo / 1.6, hi * 1.6)  # room for the study's annotations at the edges
    ax.set_xlabel("input elements" + (" (per operand)" if op == "matmul" else ""))
    ax.set_ylabel("median time [s]")
    ax.set_title(f"{op}: time vs size" + (" (NCHW batches)" if batches else ""))
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return fig


def published_series(op: str) -> list[tuple[str, list[float], list[float]]]:
    """(label, elements, seconds) of every published time series of ``op``: N x N images
    (pooling) or N x N operands (matmul), or the table's explicit shape."""
    out = []
    for t in published.tables():
        if op_family(str(t.measures.get("op", ""))) != op_family(op) or not t.compare:
            continue
        for c in t.compare:
            pts = [(float(np.prod(t.measures["shape"])) if "shape" in t.measures else float(r["N"]) ** 2,
                    float(r[c])) for r in t.records() if r[c] is not None]
            if pts:
                label = f"{t.document[:3]} {c.removesuffix('_s')} ({t.hardware_of(c)}), published"
                out.append((label, [p[0] for p in pts], [p[1] for p in pts]))
    return out


@_styled
def plot_bound_fraction(kt: pd.DataFrame, column: str = "bound_fraction",
                        target: float | None = 0.8, title: str = "bandwidth / same-run copy bound"
                        ) -> Figure | None:
    """Grouped horizontal bars: one group per measured point (op, window, shape), one bar
    per backend (colour, legend). The study's method is left out: it is slow on purpose
    and sits at ~0% everywhere (its times are in the tables)."""
    d = kt[kt["backend"] != "study"].dropna(subset=[column])
    if d.empty:
        return None
    d = d.assign(series=[f"{b}:{v}" if v else b for b, v in zip(d["backend"], d["variant"])],
                 point=[" ".join(x for x in (o, w, s) if x) for o, w, s in zip(d["op"], d["window"], d["shape"])])
    order = d.sort_values(["op", "window", "elements"])["point"].drop_duplicates().tolist()
    series = sorted(d["series"].unique())
    k = len(series)
    bar_h = 0.8 / k
    height = max(2.6, len(order) * (0.11 * k + 0.14) + 1.2)
    fig, (ax,) = _new(width=7.6, height=min(height, 24))
    for j, name in enumerate(series):
        g = d[d["series"] == name].groupby("point")[column].max()
        ys = [order.index(p) - 0.4 + (j + 0.5) * bar_h for p in g.index]
        ax.barh(ys, g.to_numpy(dtype=float), height=bar_h * 0.92, color=PALETTE[j % len(PALETTE)], label=name)
        if len(order) * k <= 40:
            for yv, v in zip(ys, g.to_numpy(dtype=float)):
                ax.text(v + 0.01, yv, f"{v:.0%}", va="center", fontsize=6.5)
    ax.set_yticks(range(len(order)), order, fontsize=7)
    ax.invert_yaxis()
    ax.axvline(1.0, color="black", lw=1)
    if target is not None:
        ax.axvline(target, color="grey", lw=1, ls="--", label=f"target {target:.0%}")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    ax.set_xlim(0, max(1.1, float(d[column].max()) * 1.12))
    ax.set_xlabel("fraction of bound")
    ax.set_title(title)
    ax.grid(axis="y", visible=False)
    return fig


# ----------------------------------------------------------------------------- scaling
def _group_label(g: pd.DataFrame) -> str:
    r = g.iloc[0]
    return " ".join(str(x) for x in (r["op"], r["path"], r["devices"], r["problem"]) if str(x))


def _legend_below(fig: Figure, handles: list, labels: list[str]) -> None:
    """One legend under all panels: many experiments would otherwise cover the data."""
    ncols = 1 if len(labels) <= 2 else (2 if len(labels) <= 8 else 3)
    fig.legend(handles, labels, loc="outside lower center", ncols=ncols, fontsize=7.5)


def _line(**kw):  # type: ignore[no-untyped-def]
    from matplotlib.lines import Line2D
    return Line2D([], [], **kw)


def _legend_rows(n: int) -> float:
    """Figure height (inches) a legend of n entries below the panels needs."""
    ncols = 1 if n <= 2 else (2 if n <= 8 else 3)
    return 0.2 * math.ceil(n / ncols) + 0.3


@_styled
def plot_strong_scaling(st: pd.DataFrame, fits: Sequence[object] = ()) -> Figure | None:
    """Speed-up and efficiency vs ranks (strong scaling) with the ideal line, the fitted
    Amdahl curve of each experiment (same colour, dash-dot) and the study's 61.21% curve."""
    d = st[st["mode"] != "weak"].dropna(subset=["speedup"])
    if d.empty:
        return None
    from hpc.analysis.tables import SCALING_GROUP, group_text  # local: avoid cycle
    f_study = published.amdahl_parallel_fraction()
    groups = list(d.groupby(SCALING_GROUP, sort=True, dropna=False))
    n_leg = len(groups) + 5
    fig, (ax1, ax2) = _new(ncols=2, width=5.0, height=3.6 + _legend_rows(n_leg))
    nmax = max(2.0, float(d["ranks"].max()))
    grid = np.linspace(1, nmax, 100)
    ax1.plot(grid, grid, color="black", lw=1, ls=":")
    ax1.plot(grid, [metrics.amdahl_speedup(f_study, n) for n in grid],
             color=STUDY_COLOR, lw=1.4, ls="--")
    ax2.axhline(1.0, color="black", lw=1, ls=":")
    fit_by_group = {getattr(f, "group", None): f for f in fits if getattr(f, "law", "") == "Amdahl"}
    handles = [_line(color="black", lw=1, ls=":"),
               _line(color=STUDY_COLOR, lw=1.4, ls="--"),
               _line(color="grey", ls="-", marker="o", ms=4), _line(color="grey", ls="--", marker="s", ms=3),
               _line(color="grey", ls="-.")]
    labels = ["ideal", f"004 (published): Amdahl f = {f_study:.2%}", "total time",
              "compute phase", "our Amdahl fit (same colour)"]
    for i, (_, g) in enumerate(groups):
        g = g.sort_values("ranks")
        c = PALETTE[i % len(PALETTE)]
        ax1.plot(g["ranks"], g["speedup"], marker="o", ms=4, color=c)
        ax2.plot(g["ranks"], g["efficiency"], marker="o", ms=4, color=c)
        if g["compute_efficiency"].notna().any():
            ax2.plot(g["ranks"], g["compute_efficiency"], marker="s", ms=3, ls="--", color=c, alpha=0.8)
        f = fit_by_group.get(group_text(g.iloc[0]))
        lab = _group_label(g)
        if f is not None:
            pf = float(getattr(f, "parallel_fraction"))
            ax1.plot(grid, [metrics.amdahl_speedup(pf, n) for n in grid], color=c, lw=1, ls="-.", alpha=0.8)
            lab += f" (fit f = {pf:.1%})"
        handles.append(_line(color=c, lw=2))
        labels.append(lab)
    ax1.set_xlabel("ranks")
    ax1.set_ylabel("speed-up")
    ax1.set_title("strong scaling: speed-up")
    ax2.set_xlabel("ranks")
    ax2.set_ylabel("parallel efficiency")
    ax2.set_title("strong scaling: efficiency")
    top = np.nanmax(d[["efficiency", "compute_efficiency"]].to_numpy(dtype=float))
    ax2.set_ylim(0, max(1.15, float(top) * 1.1))
    for ax in (ax1, ax2):
        ax.set_xticks(sorted(d["ranks"].unique()))
    _legend_below(fig, handles, labels)
    return fig


@_styled
def plot_weak_scaling(st: pd.DataFrame) -> Figure | None:
    """Weak-scaling efficiency (total and compute phase) vs ranks with the ideal 1.0 and 90% target."""
    d = st[st["mode"] == "weak"].dropna(subset=["efficiency"])
    if d.empty:
        return None
    from hpc.analysis.tables import SCALING_GROUP
    groups = list(d.groupby(SCALING_GROUP, sort=True, dropna=False))
    fig, (ax,) = _new(width=6.0, height=3.4 + _legend_rows(len(groups) + 4))
    ax.axhline(1.0, color="black", lw=1, ls=":")
    ax.axhline(0.9, color="grey", lw=1, ls="--")
    handles = [_line(color="black", lw=1, ls=":"), _line(color="grey", lw=1, ls="--"),
               _line(color="grey", ls="-", marker="o", ms=4), _line(color="grey", ls="--", marker="s", ms=3)]
    labels = ["ideal", "target 90% (compute)", "total time", "compute phase"]
    for i, (_, g) in enumerate(groups):
        g = g.sort_values("ranks")
        c = PALETTE[i % len(PALETTE)]
        ax.plot(g["ranks"], g["efficiency"], marker="o", ms=4, color=c)
        if g["compute_efficiency"].notna().any():
            ax.plot(g["ranks"], g["compute_efficiency"], marker="s", ms=3, ls="--", color=c, alpha=0.8)
        handles.append(_line(color=c, lw=2))
        labels.append(_group_label(g))
    ax.set_xticks(sorted(d["ranks"].unique()))
    top = np.nanmax(d[["efficiency", "compute_efficiency"]].to_numpy(dtype=float))
    ax.set_ylim(0, max(1.15, float(top) * 1.1))
    ax.set_xlabel("ranks")
    ax.set_ylabel("weak-scaling efficiency t\u2081/t\u2099")
    ax.set_title("weak scaling: efficiency")
    _legend_below(fig, handles, labels)
    return fig


@_styled
def plot_phases(st: pd.DataFrame) -> Figure | None:
    """Stacked bars of read/distribute, compute and gather/write time per run (max over ranks).

    One panel per scaling mode, stacked vertically: strong runs (whole problem) and weak
    runs (per-rank problem) differ by orders of magnitude and would hide each other.
    """
    if st.empty:
        return None
    phases = [p for p in ("t_distribute_s", "t_compute_s", "t_gather_s") if st[p].notna().any()]
    if not phases:
        return None
    d = st.dropna(subset=phases, how="all").sort_values(["mode", "op", "problem", "path", "ranks"])
    modes = sorted(d["mode"].unique())
    n_max = max(int((d["mode"] == m).sum()) for m in modes)
    if n_max <= 6:  # few runs: panels side by side
        with plt.rc_context(STYLE):
            fig, axes = plt.subplots(1, len(modes), figsize=(max(5.5, 4.6 * len(modes)), 4.0),
                                     squeeze=False, layout="constrained")
        axes = axes.T
    else:           # many runs: one full-width panel per mode, one above the other
        width = min(11.0, max(5.5, 0.42 * n_max + 2.0))
        with plt.rc_context(STYLE):
            fig, axes = plt.subplots(len(modes), 1, figsize=(width, 3.6 * len(modes) + 0.4),
                                     squeeze=False, layout="constrained")
    names = {"t_distribute_s": "read/distribute", "t_compute_s": "compute", "t_gather_s": "gather/write"}
    colors = {"t_distribute_s": "#9ecae1", "t_compute_s": "#3182bd", "t_gather_s": "#fdae6b"}
    for ax, mode in zip(axes[:, 0], modes):
        g = d[d["mode"] == mode]
        many = len(g) > 6
        sep = " " if many else "\n"
        labels = [sep.join(x for x in (o, p, pr, f"P={int(n)}") if x)
                  for o, p, pr, n in zip(g["op"], g["path"], g["problem"], g["ranks"])]
        x = np.arange(len(g))
        bottom = np.zeros(len(g))
        for p in phases:
            v = g[p].fillna(0).to_numpy(dtype=float)
            ax.bar(x, v, bottom=bottom, color=colors[p], label=names[p], width=0.7)
            bottom += v
        ax.set_xticks(x, labels, fontsize=6.5 if many else 7, rotation=35 if many else 0,
                      ha="right" if many else "center", rotation_mode="anchor" if many else "default")
        ax.set_ylabel("time [s], max over ranks")
        ax.set_title(f"time per phase: {mode or 'scaling'} scaling")
        ax.grid(axis="x", visible=False)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncols=len(phases))
    return fig


@_styled
def plot_ddp(dt: pd.DataFrame) -> Figure | None:
    """DDP throughput vs ranks with the ideal linear line from the smallest run."""
    d = dt.dropna(subset=["images_per_s"])
    if d.empty or d["ranks"].nunique() < 2:
        return None  # a single rank count is a number, not a scaling curve (it is in the table)
    fig, (ax,) = _new(width=5.2, height=3.4)
    for i, (dev, g) in enumerate(d.groupby("device", sort=True)):
        g = g.sort_values("ranks")
        c = PALETTE[i % len(PALETTE)]
        ax.plot(g["ranks"], g["images_per_s"], marker="o", color=c, label=dev or "ddp")
        n0, ips0 = g["ranks"].iloc[0], g["images_per_s"].iloc[0]
        ax.plot(g["ranks"], ips0 * g["ranks"] / n0, ls=":", color=c, label="ideal")
    ax.set_xticks(sorted(d["ranks"].unique()))
    ax.set_xlabel("ranks")
    ax.set_ylabel("images/s")
    ax.set_title("DDP training throughput")
    ax.legend()
    return fig


# ----------------------------------------------------------------------------- training
@_styled
def plot_training_curves(et: pd.DataFrame) -> Figure | None:
    """Loss and accuracy per epoch (train solid, validation dashed), one colour per run."""
    d = et.dropna(subset=["epoch"])
    if d.empty:
        return None
    fig, (ax1, ax2) = _new(ncols=2, width=4.6, height=3.5)
    for i, (run, g) in enumerate(d.groupby("run", sort=True)):
        c = PALETTE[i % len(PALETTE)]
        for ax, m in ((ax1, "loss"), (ax2, "acc")):
            if g[f"train_{m}"].notna().any():
                ax.plot(g["epoch"], g[f"train_{m}"], color=c, label=f"{run} train")
            if g[f"val_{m}"].notna().any():
                ax.plot(g["epoch"], g[f"val_{m}"], color=c, ls="--", label=f"{run} val")
    for ax in (ax1, ax2):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax1.set_title("loss")
    ax1.set_xlabel("epoch")
    ax2.set_title("accuracy")
    ax2.set_xlabel("epoch")
    for r in published.table("training_alexnet_mri").records():
        if r["test_acc_pct"] is not None:   # accuracies are fractions in our records
            level = float(r["test_acc_pct"]) / 100
            ax2.axhline(level, color=STUDY_COLOR, lw=0.8, ls=":")
            ax2.text(ax2.get_xlim()[0], level, f" 004 test acc {r['test_acc_pct']}% ({r['epochs']} ep, published)",
                     fontsize=6.5, color=STUDY_COLOR, va="bottom")
    ax1.legend(fontsize=7)
    ax2.legend(fontsize=7, loc="lower right")
    return fig


@_styled
def plot_confusion(run: str, names: Sequence[str], mat: np.ndarray) -> Figure:
    """Confusion matrix heatmap (rows: true class, columns: predicted), counts annotated."""
    k = len(names)
    size = max(3.0, 0.6 * k + 1.6)
    fig, (ax,) = _new(width=size + 0.9, height=size)
    im = ax.imshow(mat, cmap="Blues")
    ax.grid(False)
    ax.set_xticks(range(k), names, rotation=30, ha="right")
    ax.set_yticks(range(k), names)
    vmax = mat.max() if mat.size else 0
    for i in range(k):
        for j in range(k):
            v = mat[i, j]
            ax.text(j, i, f"{v:g}", ha="center", va="center", fontsize=8,
                    color="white" if vmax and v > vmax / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"confusion matrix: {run}")
    fig.colorbar(im, ax=ax, shrink=0.8)
    return fig
