"""Markdown tables from scaling records (``hpc scale --summarize FILE...``; no MPI needed).

Weak-scaling efficiency of a phase = t(1 rank) / t(P ranks) (same work per rank); strong
speed-up = t(1) / t(P) and efficiency = speed-up / P, all against the 1-rank record of the
same op, path, mode, size (and matmul algorithm).
"""
from __future__ import annotations

from typing import Any, Iterable

from hpc.records import Record

PHASES = ("read", "distribute", "compute", "gather", "write", "total")


def _key(rec: Record) -> tuple[Any, ...]:
    p = rec.params
    return (p["op"], p.get("algorithm") or "", p["mode"], p["size"], p["path"])


def summarize(records: Iterable[Record]) -> str:
    recs = sorted((r for r in records if r.kind == "scaling" and r.status == "ok"),
                  key=lambda r: (_key(r), r.params["ranks"]))
    base = {_key(r): r for r in recs if r.params["ranks"] == 1}
    head = ["op", "path", "mode", "shape", "P"] + [f"{p} s" for p in PHASES] + [
        "imbalance", "compute eff.", "total eff.", "GB/s", "copy GB/s", "of copy", "GFLOP/s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in recs:
        p, m = r.params, r.metrics
        one = base.get(_key(r))
        eff = {}
        for phase in ("compute", "total"):
            if one is None:
                eff[phase] = ""
                continue
            ratio = one.metrics[f"{phase}_s"] / max(m[f"{phase}_s"], 1e-12)
            eff[phase] = f"{ratio:.0%}" if p["mode"] == "weak" else f"{ratio / p['ranks']:.0%} ({ratio:.2f}x)"
        op = p["op"] + (f" {p['algorithm']}" if p.get("algorithm") else "")
        row = [op, p["path"], p["mode"], "x".join(map(str, p["shape"])), str(p["ranks"])]
        row += [f"{m.get(f'{ph}_s', 0):.3f}" for ph in PHASES]
        row += [f"{m['load_imbalance']:.2f}", eff["compute"], eff["total"],
                f"{m['bandwidth_gbs']:.2f}" if "bandwidth_gbs" in m else "",
                f"{m['copy_bandwidth_gbs']:.2f}" if "copy_bandwidth_gbs" in m else "",
                f"{m['bound_fraction']:.0%}" if "bound_fraction" in m else "",
                f"{m['gflops']:.1f}" if "gflops" in m else ""]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"
