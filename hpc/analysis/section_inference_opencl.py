"""Report section: the OpenCL inference engine beside the FPGA study's DE10-Nano tables.

Input: the tidy records DataFrame (``inference_network`` and ``inference_layer`` rows).
Output: one report ``Section``. The study's numbers are quoted from its tables 4.1-4.8
(seed 000, Rocabado Rocha 2023, see ../shared/seeds/FIGURES.md section 000); they were
measured on a Cyclone V FPGA (DE10-Nano), ours on whatever device the records name, so
every comparison is labelled "different hardware", and a study design run on a CPU device
is labelled emulated.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from hpc.analysis.tables import col as _col
from hpc.analysis.tables import of_kind

STUDY = "FPGA study (DE10-Nano, Cyclone V; Rocabado Rocha 2023)"
STUDY_MACS = 349_151_936
# the study's notebook printout, not in its tables: PyTorch on the ARM HPS, SqueezeNet v1.1,
# mean of 50 runs, including building the layers (FIGURES.md 000.2, seed L4976-L4982)
STUDY_TORCH_ARM_S = 1.1778
# Tabla 4.8's designs and the (style, queues) of ours that reproduces each: the study timed
# its single-task and "Our NDRange" with two queues, NDRange [7] with one
NETWORK_PAIRS: list[tuple[str, str, int]] = [
    ("Single Task (V6)", "single-task", 2),
    ("NDRange [7]", "ndrange", 1),
    ("Our NDRange", "ndrange", 2),
]
# Tablas 4.2, 4.4, 4.6, 4.5 (published table key) and the SqueezeNet layer (224 px) of that shape
KERNEL_PAIRS: list[tuple[str, str, str, int]] = [
    ("conv1x1_v6", "4.2", "classifier.1", 86_528_000),
    ("conv3x3_v3", "4.4", "features.12.expand3x3", 24_920_064),
    ("maxpool", "4.6", "features.2", 0),
    ("avgpool", "4.5", "classifier.3", 0),
]
# Tabla 4.8's block rows: fire 8 = features.12, block 3 = fire5..fire8 = features.9..12
BLOCK_PAIRS: list[tuple[str, str, tuple[str, ...]]] = [
    ("Fire 8 (features.12)", "fire8_s", ("features.12.",)),
    ("Block 3 (features.9-12)", "block3_s", ("features.9.", "features.10.", "features.11.", "features.12.")),
]
VERSION_TABLES: tuple[str, ...] = ("conv1x1_versions", "conv3x3_versions", "squeezenet_single_task_versions")


def _published(key: str) -> Any:
    from hpc.analysis import published
    return published.table(key)


def _row(key: str, first: str) -> dict[str, Any]:
    """The row of published table ``key`` whose first column is ``first``."""
    t = _published(key)
    for rec in t.records():
        if rec[t.columns[0]] == first:
            return rec
    raise KeyError(f"published table {key}: no row {first!r}")


def study_network_s(design: str) -> float:
    return float(_row("squeezenet_full_model", design)["global_s"])


def study_st_over_ndr() -> float:
    return study_network_s("Single Task (V6)") / study_network_s("NDRange [7]")


STYLE_ORDER = {"single-task": 0, "ndrange": 1, "tiled": 2}


def _run_columns(t: pd.DataFrame) -> dict[str, pd.Series]:
    """What network and layer records share: model, style, queues, batch, input, device."""
    return {"model": _col(t, "params.model"), "style": _col(t, "params.style"),
            "queues": _col(t, "params.two_queues").map(lambda v: 2 if v is True else 1),
            "batch": _col(t, "params.batch"),
            "input": _col(t, "params.input_shape").map(lambda s: "x".join(map(str, s[1:])) if isinstance(s, list) else ""),
            "device": _col(t, "params.device.name"),
            "emulated": _col(t, "params.device.emulated").fillna(False).astype(bool)}


def network_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per ok inference_network record, with the device label and MMAC/s."""
    net = of_kind(df, "inference_network")
    if net.empty:
        return pd.DataFrame()
    out = pd.DataFrame({
        **_run_columns(net), "engine": _col(net, "params.engine"),
        "device_type": _col(net, "params.device.opencl_type").fillna(_col(net, "params.device.kind")),
        "s_per_image": _col(net, "metrics.s_per_image_median"),
        "wall_s_median": _col(net, "metrics.wall_s_median"),
        "wall_s_q1": _col(net, "metrics.wall_s_q1"), "wall_s_q3": _col(net, "metrics.wall_s_q3"),
        "repeats": _col(net, "params.repeats"), "mmac_per_s": _col(net, "metrics.mmac_per_s"),
        "max_abs_diff": _col(net, "metrics.max_abs_diff_vs_torch"),
        "load_1min": _col(net, "params.load_avg").map(lambda v: v[0] if isinstance(v, list) and v else np.nan),
        "timestamp": _col(net, "provenance.timestamp"),
    })
    out["style"] = out["style"].fillna("torch")
    out["order"] = out["style"].map(lambda s: STYLE_ORDER.get(s, 3))
    return out.sort_values(["model", "input", "batch", "order", "queues"]).drop(columns="order").reset_index(drop=True)


def layer_table(df: pd.DataFrame) -> pd.DataFrame:
    lay = of_kind(df, "inference_layer")
    if lay.empty:
        return pd.DataFrame()
    return pd.DataFrame({
        **_run_columns(lay),
        "layer": _col(lay, "params.layer"), "layer_type": _col(lay, "params.layer_type"),
        "kernel": _col(lay, "params.kernel"), "macs": _col(lay, "params.macs"),
        "event_s": _col(lay, "metrics.event_s_median"), "mmac_per_s": _col(lay, "metrics.mmac_per_s"),
    }).reset_index(drop=True)


def _pick(nt: pd.DataFrame, style: str, queues: int) -> pd.Series | None:
    """Our SqueezeNet 224 px batch-1 point of (style, queues), fastest device if several."""
    sel = nt[(nt["model"] == "squeezenet1_1") & (nt["input"] == "3x224x224") & (nt["batch"] == 1)
             & (nt["style"] == style) & (nt["queues"] == queues)]
    if sel.empty:
        return None
    return sel.loc[sel["s_per_image"].idxmin()]


def _dev_label(row: pd.Series) -> str:
    t = row.get("device_type") or ""
    return f"{row['device']} ({t}{', emulated' if row.get('emulated') else ''})"


def comparison_rows(nt: pd.DataFrame) -> list[dict[str, Any]]:
    """Tabla 4.8's three designs beside ours (SqueezeNet, 224 px, one image)."""
    rows = []
    for label, style, queues in NETWORK_PAIRS:
        study_s = study_network_s(label)
        ours = _pick(nt, style, queues) if not nt.empty else None
        rows.append({"design": label, "study_s": study_s, "study_mmacs": STUDY_MACS / study_s / 1e6,
                     "ours_style": f"{style}, {queues} queue{'s' if queues == 2 else ''}",
                     "ours_s": None if ours is None else ours["s_per_image"],
                     "ours_mmacs": None if ours is None else ours["mmac_per_s"],
                     "device": "not run" if ours is None else _dev_label(ours),
                     "ratio": None if ours is None else study_s / ours["s_per_image"]})
    for style, queues in (("tiled", 1), ("tiled", 2)):
        ours = _pick(nt, style, queues) if not nt.empty else None
        if ours is not None:
            rows.append({"design": "(no study counterpart)", "study_s": None, "study_mmacs": None,
                         "ours_style": f"{style}, {queues} queue{'s' if queues == 2 else ''}",
                         "ours_s": ours["s_per_image"], "ours_mmacs": ours["mmac_per_s"],
                         "device": _dev_label(ours), "ratio": None})
    torch_rows = nt[(nt["engine"] == "torch") & (nt["input"] == "3x224x224") & (nt["batch"] == 1)
                    & (nt["model"] == "squeezenet1_1")] if not nt.empty else nt
    if not torch_rows.empty:
        t = torch_rows.loc[torch_rows["s_per_image"].idxmin()]
        rows.append({"design": "PyTorch on the ARM HPS (notebook, mean of 50)", "study_s": STUDY_TORCH_ARM_S,
                     "study_mmacs": STUDY_MACS / STUDY_TORCH_ARM_S / 1e6, "ours_style": "torch (CPU)",
                     "ours_s": t["s_per_image"], "ours_mmacs": t["mmac_per_s"], "device": _dev_label(t),
                     "ratio": STUDY_TORCH_ARM_S / t["s_per_image"]})
    return rows


def st_ndr_ratios(nt: pd.DataFrame) -> dict[str, float | None]:
    """Single-task / NDRange time ratio, paired as the study paired them (ST 2 queues vs
    NDRange 1 queue), and like for like (1 queue each)."""
    out: dict[str, float | None] = {"study": study_st_over_ndr(), "ours_as_study": None, "ours_one_queue": None}
    if nt.empty:
        return out
    st2, st1, nd1 = _pick(nt, "single-task", 2), _pick(nt, "single-task", 1), _pick(nt, "ndrange", 1)
    if st2 is not None and nd1 is not None:
        out["ours_as_study"] = st2["s_per_image"] / nd1["s_per_image"]
    if st1 is not None and nd1 is not None:
        out["ours_one_queue"] = st1["s_per_image"] / nd1["s_per_image"]
    return out


def kernel_rows(lt: pd.DataFrame) -> list[dict[str, Any]]:
    """Tablas 4.2/4.4/4.5/4.6 beside our event times for the same layer (224 px, batch 1)."""
    rows = []
    base = lt[(lt["model"] == "squeezenet1_1") & (lt["input"] == "3x224x224") & (lt["batch"] == 1)
              & (lt["queues"] == 1)] if not lt.empty else lt
    for key, number, layer, _macs in KERNEL_PAIRS:
        t = _published(key)
        st, ndr = _row(key, "Single Task")["time_s"], _row(key, "NDRange [7]")["time_s"]
        row = {"table": number, "test": t.caption.split(" \u2014 ", 1)[-1], "layer": layer, "study_st": st,
               "study_ndr": ndr, "study_torch": _row(key, "PyTorch")["time_s"]}
        for style in ("single-task", "ndrange", "tiled"):
            sel = base[(base["layer"] == layer) & (base["style"] == style)] if not base.empty else base
            row[style] = None if sel.empty else float(sel["event_s"].min())
        row["ratio_st_ndr"] = (row["single-task"] / row["ndrange"]
                               if row["single-task"] and row["ndrange"] else None)
        row["study_ratio"] = st / ndr
        rows.append(row)
    return rows


def block_rows(lt: pd.DataFrame) -> list[dict[str, Any]]:
    rows = []
    base = lt[(lt["model"] == "squeezenet1_1") & (lt["input"] == "3x224x224") & (lt["batch"] == 1)] \
        if not lt.empty else lt
    for label, column, prefixes in BLOCK_PAIRS:
        row: dict[str, Any] = {"block": label,
                               "study_st": _row("squeezenet_full_model", "Single Task (V6)")[column],
                               "study_ndr": _row("squeezenet_full_model", "NDRange [7]")[column],
                               "study_our_ndr": _row("squeezenet_full_model", "Our NDRange")[column]}
        for style, queues, key in (("single-task", 2, "ours_st"), ("ndrange", 1, "ours_ndr"),
                                   ("ndrange", 2, "ours_ndr2"), ("tiled", 1, "ours_tiled")):
            sel = base[(base["style"] == style) & (base["queues"] == queues)] if not base.empty else base
            sel = sel[sel["layer"].map(lambda n: any(str(n).startswith(p) for p in prefixes))] if not sel.empty else sel
            row[key] = None if sel.empty else float(sel["event_s"].sum())
        rows.append(row)
    return rows


def section(df: pd.DataFrame) -> Any:
    """The report section (a ``hpc.analysis.report.Section``)."""
    from hpc.analysis.report import Section, _col as col, fmt_num, make_table

    def missing(v: Any) -> bool:
        return v is None or (isinstance(v, float) and np.isnan(v))

    def ratio(v: Any) -> str:
        return "\u2014" if missing(v) else f"{v:.3g}\u00d7"

    def secs(v: Any) -> str:
        return "\u2014" if missing(v) else f"{float(v):.4g} s"

    sec = Section("inference-opencl", "CNN inference in OpenCL (FPGA study designs)",
                  "SqueezeNet v1.1 (and AlexNet) forward passes on the OpenCL engine in three kernel "
                  "styles: single-task (one work-item, pipelined loops, shift-register accumulation), "
                  "ndrange (the study's reference: one work-item per output row of one filter) and "
                  "tiled (this suite's NDRange design), beside torch. Network times are host wall time "
                  "per forward (median of the repeats); per-kernel times are OpenCL profiling events. "
                  f"Study figures: {STUDY}, Tablas 4.1-4.8, measured on an FPGA; ours ran on the devices "
                  "named (different hardware). A study design on a CPU device is an emulation, never an "
                  "FPGA time.")
    nt, lt = network_table(df), layer_table(df)
    if nt.empty and lt.empty:
        sec.empty_note = "No successful records of kind 'inference_network' or 'inference_layer' in this run."
    comp = pd.DataFrame(comparison_rows(nt))
    sec.add_table("Whole network, one 224x224 image: study (Tabla 4.8) vs ours", make_table(comp, [
        col("design", "study design"), col("study_s", "study s/image", secs),
        col("study_mmacs", "study MMAC/s", fmt_num), col("ours_style", "ours"),
        col("ours_s", "ours s/image", secs), col("ours_mmacs", "ours MMAC/s", fmt_num),
        col("device", "our device"), col("ratio", "study / ours", ratio)], drop_empty=False),
        "Different hardware (study: Cyclone V FPGA at ~106 MHz; ours: the device named). "
        "MMAC/s = 349,151,936 MACs / time. The study's PyTorch time includes building the layers.")
    r = st_ndr_ratios(nt)
    sec.callouts.append((f"single-task / NDRange, study ({study_network_s('Single Task (V6)')} / "
                         f"{study_network_s('NDRange [7]')} s)", ratio(r["study"])))
    sec.callouts.append(("single-task (2 queues) / NDRange (1 queue), ours", ratio(r["ours_as_study"])))
    sec.callouts.append(("single-task / NDRange, both 1 queue, ours", ratio(r["ours_one_queue"])))
    if not nt.empty:
        sec.add_table("All network points", make_table(nt, [
            col("model"), col("input"), col("batch", "batch", fmt_num), col("engine"), col("style"),
            col("queues", "queues", fmt_num), col("device"), col("device_type", "type"),
            col("emulated"), col("s_per_image", "s/image", secs),
            col("wall_s_q1", "q1 per forward", secs), col("wall_s_q3", "q3 per forward", secs),
            col("repeats", "repeats", fmt_num), col("mmac_per_s", "MMAC/s", fmt_num),
            col("max_abs_diff", "max |diff| vs torch", fmt_num), col("load_1min", "load (1 min)", fmt_num)]))
    if not lt.empty:
        sec.add_table("Single kernels: study (Tablas 4.2, 4.4, 4.5, 4.6) vs our event times", make_table(
            pd.DataFrame(kernel_rows(lt)), [
                col("table", "Tabla"), col("test", "study test"), col("layer", "our layer (224 px)"),
                col("study_st", "study ST", secs), col("study_ndr", "study NDR", secs),
                col("study_torch", "study PyTorch (ARM)", secs),
                col("single-task", "ours single-task", secs), col("ndrange", "ours ndrange", secs),
                col("tiled", "ours tiled", secs), col("study_ratio", "study ST/NDR", ratio),
                col("ratio_st_ndr", "ours ST/NDR", ratio)], drop_empty=False),
            "Our figures are OpenCL profiling events of that layer inside a whole forward pass (one "
            "queue); the study timed each kernel alone on the FPGA from the host.")
        sec.add_table("Blocks (Tabla 4.8): sum of kernel event times", make_table(pd.DataFrame(block_rows(lt)), [
            col("block"), col("study_st", "study ST", secs), col("study_ndr", "study NDR", secs),
            col("study_our_ndr", "study Our NDR", secs), col("ours_st", "ours ST (2 q)", secs),
            col("ours_ndr", "ours NDR", secs), col("ours_ndr2", "ours NDR (2 q)", secs),
            col("ours_tiled", "ours tiled", secs)], drop_empty=False),
            "With two queues kernels may overlap, so a sum of event times is not a wall time.")
    versions = []
    for key in VERSION_TABLES:
        t = _published(key)
        for rec in t.records():
            extra = ", ".join(f"{c} {rec[c]}" for c in t.columns[2:] if rec[c] is not None)
            versions.append({"table": t.caption.split(":")[0], "version": rec[t.columns[0]],
                             "s": rec["time_s"], "note": extra})
    sec.add_table("Study only: version histories (Tablas 4.1, 4.3, 4.7)", make_table(pd.DataFrame(versions), [
        col("table", "Tabla"), col("version"), col("s", "time on the FPGA", secs), col("note")]),
        "Our single-task kernels follow the final versions: conv1x1 as V6 (scalar, 16-entry shift "
        "register) and conv3x3 with the shift register over channels (as V2/V3). The study's FPGA "
        "resource figures have no counterpart here; every transcribed table is in 'Published "
        "figures of the studies'.")
    return sec
