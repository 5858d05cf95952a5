"""Report section "Inference across batch sizes": where a batch's time goes, per backend.

From the ``inference_batch`` and ``inference_sweep`` records: a stacked bar chart of the
time per image in each component vs batch size (log x; per image so that fixed costs show
as bars shrinking with the batch and per-image costs as constant bars), images/s vs batch
size with the 90 %-of-peak batch marked, the fitted fixed and per-image costs, and study
001's published table beside ours. The study ran a hand-written CUDA AlexNet on a GPU it
does not name and gives no units (read as ms), so only *shapes* are compared: the same
``a + b * batch`` fit is applied to its columns and to ours, and the table shows how much
of batch 1 is fixed cost and how linear each component is, never absolute times.

``section(df, sink)`` returns the report's Section; the table/figure builders are plain
functions of the records DataFrame.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from hpc.analysis.tables import col, num, of_kind
from hpc.inference.fits import fit_linear
from hpc.schema.inference import COMPONENTS

SECTION_ID = "inference-batch"
STUDY_LABEL = "study 001 (different hardware, unknown GPU; unit not stated, read as ms)"
COMPONENT_LABELS = {"conv": "convolution", "fc": "fully connected", "pool": "pooling",
                    "activation": "activation", "other": "other layers", "h2d": "copy host\u2192device",
                    "d2h": "copy device\u2192host", "alloc": "allocation", "free": "free", "sync": "synchronise"}
COMPONENT_COLORS = {"conv": "#1f77b4", "fc": "#ff7f0e", "pool": "#2ca02c", "activation": "#9467bd",
                    "other": "#8c564b", "h2d": "#17becf", "d2h": "#bcbd22", "alloc": "#7f7f7f",
                    "free": "#e377c2", "sync": "#393b79"}
#: study 001 column -> our component (the study's API calls map to the closest of ours)
STUDY_COLUMNS = {"convkernel": "conv", "fckernel": "fc", "maxpoolkernel": "pool", "memcpy_htod": "h2d",
                 "memcpy_dtoh": "d2h", "cudamalloc": "alloc", "cudafreehost": "free",
                 "cudadevicesynchronize": "sync", "cudamemcpy": None}
SWEEP_KEYS = ["model", "backend", "style", "device", "dtype", "host_memory"]


# ----------------------------------------------------------------------------- data
def study_table() -> tuple[pd.DataFrame, dict[str, Any]]:
    """Study 001's batch table (columns as published, from ``hpc.analysis.published``,
    table ``batch_sweep``) and its metadata (document, caption, line pointer, hardware)."""
    from hpc.analysis import published
    t = published.table("batch_sweep")
    meta = {"document": t.document, "caption": t.caption, "seed": t.seed, "locator": t.locator,
            "hardware": t.hardware, "unit": t.unit("convkernel")}
    return pd.DataFrame(t.rows, columns=t.columns), meta


def _device_label(row: pd.Series) -> str:
    name = row.get("params.device.name")
    kind = row.get("params.device.kind")
    label = f"{kind}: {name}" if isinstance(name, str) else str(kind)
    return label + (" (emulated)" if row.get("params.device.emulated") is True else "")


def _backend_label(backend: Any, style: Any) -> str:
    """``backend:style`` (``opencl:tiled``), or the backend alone when it has no style."""
    return f"{backend}:{style}" if isinstance(style, str) and style else str(backend)


def batch_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per ok inference_batch record, component times in seconds."""
    b = of_kind(df, "inference_batch")
    if b.empty:
        return pd.DataFrame()
    out = pd.DataFrame({
        "model": b["params.model"], "backend": b["params.backend"], "style": col(b, "params.style"),
        "device": [_device_label(r) for _, r in b.iterrows()],
        "dtype": b["params.dtype"], "host_memory": b["params.host_memory"],
        "batch": b["params.batch"].astype(int)})
    for m in (*(f"{c}_s" for c in COMPONENTS), "total_s", "per_image_s", "images_per_s", "unattributed_s",
              "profiled_total_s", "components_sum_s", "peak_memory_bytes"):
        out[m] = num(b, f"metrics.{m}")
    out["backend_label"] = [_backend_label(r.backend, r.style) for r in out.itertuples()]
    return out.sort_values(["model", "backend_label", "dtype", "host_memory", "batch"]).reset_index(drop=True)


def sweep_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per ok inference_sweep record: cold start, throughput knee, cap."""
    rows = []
    for _, r in of_kind(df, "inference_sweep").iterrows():
        rows.append({"model": r["params.model"], "backend": _backend_label(r["params.backend"], r.get("params.style")),
                     "device": _device_label(r), "dtype": r["params.dtype"], "host_memory": r["params.host_memory"],
                     "cold_start_s": r.get("metrics.cold_start_s"), "warm_batch1_s": r.get("metrics.warm_batch1_s"),
                     "peak_images_per_s": r.get("metrics.peak_images_per_s"), "peak_batch": r.get("metrics.peak_batch"),
                     "batch_90pct_peak": r.get("metrics.batch_90pct_peak"),
                     "memory_cap_batch": r.get("params.memory_cap_batch"),
                     "skipped": ", ".join(str(b) for b in (r.get("metrics.batches_skipped") or []))})
    return pd.DataFrame(rows)


def fit_table(bt: pd.DataFrame) -> pd.DataFrame:
    """``time = a + b * batch`` per (sweep, component) from the batch records (the same fit
    the sweep stores), with a's share of batch 1: 1 = pure fixed cost, 0 = pure per image."""
    rows = []
    if bt.empty:
        return pd.DataFrame()
    for keys, g in bt.groupby(["model", "backend_label", "device", "dtype", "host_memory"], sort=True):
        for comp in (*COMPONENTS, "total"):
            col = f"{comp}_s"
            vals = g[["batch", col]].dropna()
            if len(vals["batch"].unique()) < 2 or (vals[col] == 0).all():
                continue
            f = fit_linear(vals["batch"].tolist(), vals[col].tolist())
            rows.append({**dict(zip(["model", "backend", "device", "dtype", "host_memory"], keys)),
                         "component": comp, "fixed_s": f.fixed_s, "per_image_s": f.per_image_s, "r2": f.r2,
                         "fixed_share_b1": _fixed_share(f.fixed_s, f.per_image_s),
                         "batches": f"{f.batch_min}\u2013{f.batch_max} ({f.n_points})"})
    return pd.DataFrame(rows)


def per_batch(g: pd.DataFrame) -> pd.DataFrame:
    """One row per batch size: the median over the records of that point (several runs of
    the same sweep, e.g. a rerun, are combined rather than drawn on top of each other)."""
    return g.groupby("batch", as_index=False).median(numeric_only=True).sort_values("batch")


def _as_published(v: Any) -> str:
    """A published number as printed in the source (no rounding)."""
    return "\u2014" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:g}"


def _fixed_share(a: float, b: float) -> float:
    total = a + b
    return float("nan") if total <= 0 else min(1.0, max(0.0, a / total))


def study_fits() -> pd.DataFrame:
    """The same fit on the study's columns (its unit; only a's share and r2 are compared)."""
    st, _ = study_table()
    rows = []
    for col, comp in STUDY_COLUMNS.items():
        f = fit_linear(st["batch"].tolist(), st[col].astype(float).tolist())
        rows.append({"study_column": col, "component": comp or "\u2014", "fixed": f.fixed_s,
                     "per_image": f.per_image_s, "r2": f.r2, "fixed_share_b1": _fixed_share(f.fixed_s, f.per_image_s)})
    return pd.DataFrame(rows)


def shape_comparison(ft: pd.DataFrame) -> pd.DataFrame:
    """Per component: the study's fixed share at batch 1 and linearity beside each of our
    sweeps' (alexnet-imagenet only: the study's network)."""
    sf = study_fits().set_index("study_column")
    rows = []
    ours = ft[ft["model"] == "alexnet-imagenet"] if not ft.empty else ft
    for col, comp in STUDY_COLUMNS.items():
        if comp is None:
            continue
        row = {"component": COMPONENT_LABELS[comp], "study_column": col,
               "study_fixed_share_b1": sf.loc[col, "fixed_share_b1"], "study_r2": sf.loc[col, "r2"]}
        mine = ours[ours["component"] == comp] if not ours.empty else ours
        row["ours"] = "; ".join(
            f"{r.backend} {r.host_memory}: fixed share {r.fixed_share_b1:.0%}, r\u00b2 {r.r2:.3f}" if r.r2 is not None
            and not pd.isna(r.r2) else f"{r.backend} {r.host_memory}: fixed share {r.fixed_share_b1:.0%}"
            for r in mine.itertuples()) or "not measured (no such step on our backends here)"
        rows.append(row)
    return pd.DataFrame(rows)


def ours_beside_study(bt: pd.DataFrame) -> pd.DataFrame:
    """Per batch size: the study's columns as published next to our alexnet-imagenet
    components in ms (one column group per backend/host-memory sweep)."""
    st, _ = study_table()
    out = st.copy()
    ours = bt[bt["model"] == "alexnet-imagenet"] if not bt.empty else bt
    for keys, g in (ours.groupby(["backend_label", "host_memory", "dtype"]) if not ours.empty else []):
        label = f"{keys[0]} {keys[1]}" + ("" if keys[2] == "float32" else f" {keys[2]}")
        g = per_batch(g).set_index("batch")
        for comp in ("conv", "fc", "pool", "h2d", "d2h", "alloc", "free", "sync"):
            if g[f"{comp}_s"].notna().any() and (g[f"{comp}_s"].fillna(0) != 0).any():
                out[f"ours {label}: {comp} ms"] = out["batch"].map(g[f"{comp}_s"] * 1e3)
        out[f"ours {label}: total ms"] = out["batch"].map(g["total_s"] * 1e3)
    return out


# ----------------------------------------------------------------------------- figures
def plot_breakdown(bt: pd.DataFrame):  # -> matplotlib Figure | None
    """Stacked bars of time per image per component vs batch (log x), one panel per sweep."""
    if bt.empty:
        return None
    import matplotlib.pyplot as plt

    from hpc.analysis.plots import STYLE
    groups = list(bt.groupby(["model", "backend_label", "dtype", "host_memory"], sort=True))
    ncols = min(3, len(groups))
    nrows = (len(groups) + ncols - 1) // ncols
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 3.6 * nrows + 0.6), squeeze=False,
                                 layout="constrained")
        handles: dict[str, Any] = {}
        for ax, (keys, g) in zip(axes.flat, groups):
            g = per_batch(g)
            x = g["batch"].to_numpy(dtype=float)
            width = x * 0.55                       # equal-looking bars on a log2 axis
            bottom = np.zeros(len(g))
            for comp in COMPONENTS:
                vals = g[f"{comp}_s"].to_numpy(dtype=float)
                if np.all(np.isnan(vals)) or np.nansum(vals) == 0:
                    continue
                per_image = np.nan_to_num(vals) / x * 1e3
                h = ax.bar(x, per_image, width=width, bottom=bottom, color=COMPONENT_COLORS[comp],
                           label=COMPONENT_LABELS[comp], align="center")
                handles[comp] = h
                bottom += per_image
            ax.plot(x, g["per_image_s"].to_numpy(dtype=float) * 1e3, "k.--", lw=1, ms=4, label="wall (unprofiled)")
            ax.set_xscale("log", base=2)
            ax.set_xlabel("batch size")
            ax.set_ylabel("ms per image")
            ax.set_title(f"{keys[0]} \u2014 {keys[1]} ({keys[3]}, {keys[2]})")
        for ax in axes.flat[len(groups):]:
            ax.set_visible(False)
        wall = axes.flat[0].get_lines()[-1]
        labels = [COMPONENT_LABELS[c] for c in handles] + ["wall time per image (unprofiled)"]
        fig.legend(list(handles.values()) + [wall], labels, loc="outside lower center", ncol=6)
    return fig


def plot_throughput(bt: pd.DataFrame, sw: pd.DataFrame):  # -> matplotlib Figure | None
    """Images/s vs batch size per sweep (log x), the 90 %-of-peak batch marked."""
    if bt.empty:
        return None
    import matplotlib.pyplot as plt

    from hpc.analysis.plots import PALETTE, STYLE
    models = sorted(bt["model"].unique())
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(models), figsize=(5.6 * len(models), 3.8), squeeze=False,
                                 layout="constrained")
        for ax, model in zip(axes[0], models):
            sub = bt[bt["model"] == model]
            for i, (keys, g) in enumerate(sub.groupby(["backend_label", "host_memory", "dtype"], sort=True)):
                g = per_batch(g)
                color = PALETTE[i % len(PALETTE)]
                label = f"{keys[0]} {keys[1]} {keys[2]}"
                ax.plot(g["batch"], g["images_per_s"], "o-", color=color, label=label, ms=4)
                peak = g["images_per_s"].max()
                knee = g[g["images_per_s"] >= 0.9 * peak]["batch"].min()
                ax.axhline(0.9 * peak, color=color, lw=0.8, ls=":")
                ax.plot([knee], [g.loc[g["batch"] == knee, "images_per_s"].iloc[0]], "*", color=color, ms=12,
                        label=f"{keys[0]}: 90 % of peak at batch {knee}")
            ax.set_xscale("log", base=2)
            ax.set_xlabel("batch size")
            ax.set_ylabel("images / s")
            ax.set_title(model)
            ax.legend()
    return fig


# ----------------------------------------------------------------------------- section
def section(df: pd.DataFrame, sink: Any) -> Any:
    """The report section (hpc.analysis.report.Section) for the inference batch sweep."""
    from hpc.analysis.report import Column, Section, _col, _no_records, fmt_num, fmt_pct, fmt_seconds, make_table

    sec = Section(SECTION_ID, "Inference across batch sizes",
                  "AlexNet inference (227x227x3 ImageNet layout, the study's network, and the suite's "
                  "32x32 MRI AlexNet) for batch sizes up to 1024 on every inference backend: where a "
                  "warm batch's time goes (per layer type, copies, allocation, free, synchronisation), "
                  "images/s, and the batch size worth using on each device. Component times come from "
                  "the profiler runs (torch.profiler ranges per layer on CPU, CUDA events on GPU); "
                  "the wall time from separate unprofiled runs.")
    bt = batch_table(df)
    sw = sweep_table(df)
    ms = lambda v: fmt_num(None if v is None or pd.isna(v) else float(v) * 1e3, 4)  # noqa: E731
    if bt.empty:
        sec.empty_note = _no_records(["inference_batch", "inference_sweep"], df)
    else:
        ft = fit_table(bt)
        sink_fig = sink.add("inference-breakdown", plot_breakdown(bt),
                            "Where each image's time goes, per batch size",
                            "Stacked: time per image (ms) in each component at each batch size (log x), "
                            "from the profiled run; dashed: unprofiled wall time per image (medians when "
                            "a point was run more than once). Fixed costs shrink along x, per-image costs "
                            "stay flat.")
        if sink_fig is not None:
            sec.figures.append(sink_fig)
        tp = sink.add("inference-throughput", plot_throughput(bt, sw), "Images per second vs batch size",
                      "Unprofiled warm runs. Dotted: 90 % of each sweep's peak; star: the smallest "
                      "batch reaching it.")
        if tp is not None:
            sec.figures.append(tp)
        for r in sw.itertuples():
            if r.batch_90pct_peak is not None and not pd.isna(r.batch_90pct_peak):
                sec.callouts.append((f"{r.model} {r.backend} {r.host_memory}: batch for 90 % of peak",
                                     f"{int(r.batch_90pct_peak)} ({fmt_num(r.peak_images_per_s)} images/s "
                                     f"peak at {int(r.peak_batch)})"))
        sec.add_table("Sweeps: cold start, throughput, memory cap", make_table(sw, [
            _col("model"), _col("backend"), _col("device"), _col("dtype"), _col("host_memory", "host memory"),
            _col("cold_start_s", "cold start", fmt_seconds), _col("warm_batch1_s", "warm batch 1", fmt_seconds),
            _col("peak_images_per_s", "peak images/s", fmt_num), _col("peak_batch", "at batch", fmt_num),
            _col("batch_90pct_peak", "batch for 90 % of peak", fmt_num),
            _col("memory_cap_batch", "memory cap (batch)", fmt_num),
            _col("skipped", "batches skipped")]),
            "Cold start: the first batch-1 forward of a freshly prepared network, measured once per "
            "sweep and kept out of every other figure (warm runs only).")
        if not ft.empty:
            ftd = ft.assign(fixed_ms=ft["fixed_s"] * 1e3, per_image_ms=ft["per_image_s"] * 1e3)
            sec.add_table("Fitted fixed and per-image costs: time = a + b \u00d7 batch", make_table(ftd, [
                _col("model"), _col("backend"), _col("host_memory", "host memory"), _col("dtype"),
                _col("component"), Column("fixed_ms", "a: fixed (ms)", lambda v: fmt_num(v, 4), numeric=True),
                Column("per_image_ms", "b: per image (ms)", lambda v: fmt_num(v, 4), numeric=True),
                _col("r2", "r\u00b2", fmt_num), _col("fixed_share_b1", "fixed share at batch 1", fmt_pct),
                _col("batches")]),
                "Least squares weighted by 1/t (relative residuals), so batch 1 weighs as much as "
                "batch 1024 (hpc.inference.fits). A component whose fixed share at batch 1 is near "
                "100 % is fixed-cost (like the study's cudaFreeHost); near 0 % it scales with the batch.")
        cols = [_col("model"), _col("backend_label", "backend"), _col("device"), _col("dtype"),
                _col("host_memory", "host memory"), _col("batch", "batch", fmt_num)]
        cols += [Column(f"{c}_s", f"{c} ms", ms, numeric=True) for c in COMPONENTS]
        cols += [Column("unattributed_s", "unattributed ms", ms, numeric=True),
                 Column("total_s", "total ms", ms, numeric=True),
                 Column("per_image_s", "per image ms", ms, numeric=True),
                 _col("images_per_s", "images/s", fmt_num),
                 Column("peak_memory_bytes", "peak memory MiB",
                        lambda v: fmt_num(None if v is None or pd.isna(v) else float(v) / 2**20, 4), numeric=True)]
        t = make_table(bt, cols)
        t.collapsed = True
        sec.add_table("Every batch point", t)
    # the study's table, always shown (it is data, not a result of this run)
    st, meta = study_table()
    src = (f"{meta['document']}, {meta['caption']} ({meta['seed']}; FIGURES.md: \u201c{meta['locator']}\u201d); "
           f"hardware: {meta['hardware']}; unit: {meta['unit']}.")
    beside = ours_beside_study(bt)
    sec.add_table(f"Study 001's batch table as published beside ours \u2014 {STUDY_LABEL}",
                  make_table(beside, [Column(c, c if c.startswith("ours") else f"[study] {c}",
                                             _as_published if not c.startswith("ours") else lambda v: fmt_num(v, 4),
                                             numeric=True) for c in beside.columns], drop_empty=False),
                  "Quoted, not measured by this suite: " + src + " Columns in brackets in the source are GPU "
                  "activities, the others CUDA API calls. Ours: ms, alexnet-imagenet, this run's hardware. "
                  "Different hardware and a different implementation: compare shapes (growth with the "
                  "batch, amortisation), not absolute times.")
    shapes = shape_comparison(fit_table(bt) if not bt.empty else pd.DataFrame())
    sec.add_table("Shapes compared: fixed share at batch 1 and linearity, study vs ours", make_table(shapes, [
        _col("component"), _col("study_column", "study column"),
        _col("study_fixed_share_b1", "study: fixed share at batch 1", fmt_pct), _col("study_r2", "study: r\u00b2", fmt_num),
        Column("ours", "ours (alexnet-imagenet)", wrap=True)], drop_empty=False),
        "The same fit (a + b \u00d7 batch, 1/t weights) on the study's columns and on ours. The study's "
        "conv kernel is linear with a small fixed share; its host-to-device copy is mostly fixed at small "
        "batches (40 at batch 1, 0.86 per image at 1024); cudaFreeHost is flat up to batch 64 and then grows.")
    return sec
