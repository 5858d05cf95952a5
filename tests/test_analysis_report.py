"""hpc.analysis.report: the HTML report from hand-written records.

Checks content (sections, the measured bound fraction, the fitted Amdahl fraction next to
the study's 61.21%, the study's quoted figures, every failed/skipped point), that the file
is self-contained, and that it renders in headless Chromium without errors (screenshot in
test-artifacts/analysis-report.png).
"""
from __future__ import annotations

import html as htmllib
import os
import re
import stat
from pathlib import Path

import pytest

import analysis_fixtures as fx
from hpc.analysis import report
from hpc.analysis.browser import check_page, find_chromium
from hpc.cli import main
from hpc.records import Record, write_records

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
SECTIONS = ("summary", "provenance", "dataset", "kernels", "scaling", "training", "published", "failures")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, str, Path]:
    root = tmp_path_factory.mktemp("report")
    records = root / "records"
    fx.write_all(records)
    out = root / "report.html"
    figures = root / "figures"
    assert main(["report", "build", "--records", str(records), "--output", str(out),
                 "--figures-dir", str(figures)]) == 0
    return out, out.read_text(encoding="utf-8"), figures


def _section(text: str, sid: str) -> str:
    m = re.search(rf'<section id="{sid}">(.*?)</section>', text, re.S)
    assert m, f"section {sid} missing"
    return m.group(1)


def _rows(fragment: str) -> list[str]:
    """Table rows as plain text (tags stripped, entities decoded)."""
    return [htmllib.unescape(re.sub(r"<[^>]+>", " ", r)) for r in re.findall(r"<tr.*?</tr>", fragment, re.S)]


def _row_with(fragment: str, *needles: str) -> str:
    hits = [r for r in _rows(fragment) if all(n in r for n in needles)]
    assert hits, f"no table row contains {needles}"
    return hits[0]


def test_all_sections_present_in_order(built):
    _, text, _ = built
    positions = [text.index(f'<section id="{s}">') for s in SECTIONS]
    assert positions == sorted(positions)
    for s in SECTIONS:
        assert f'href="#{s}"' in text


def test_kernel_numbers(built):
    _, text, _ = built
    k = _section(text, "kernels")
    # bound fraction of the numba 32x32 point: 40 GB/s over a 50 GB/s copy bound
    assert "80.0%" in _row_with(k, "maxpool2d", "numba", "1x1x32x32", "40")
    # CPU vs GPU from params.device: numba 2 us on the CPU, the H100 numba-cuda run 1 us
    assert "2\u00d7" in _row_with(k, "maxpool2d", "1x1x32x32", "numba-cuda", "2 \u00b5s", "1 \u00b5s")
    # torch on CUDA keeps its own row, next to torch on the CPU
    assert _row_with(k, "maxpool2d", "torch", "cuda", "NVIDIA H100", "4 \u00b5s")
    # published (004 serial, Intel Xeon, 0.0111 s at 32x32) vs our fastest CPU run (numba, 2 us)
    row = _row_with(k, "004_c5ca47a4e4bae5f9.txt", "Serial max pooling", "32x32")
    assert "0.0111 s" in row and "Intel Xeon" in row and "5,550\u00d7" in row
    # the headline sizes are shown even where we did not run them, with their flags
    row = _row_with(k, "Serial max pooling", "1024x1024")
    assert "5.1822 s [uncertain: [OCR?: 9.1822" in row and "not run" in row
    assert "396.6885 s" in _row_with(k, "t4_matmul1_total", "1024x1024", "NVIDIA Tesla T4")


def test_scaling_numbers(built):
    _, text, _ = built
    s = _section(text, "scaling")
    ours = _row_with(s, "Amdahl (ours")
    assert "80.00%" in ours and "1.667" in ours                  # fitted f and S(2) = 1/(0.2+0.4)
    theirs = _row_with(s, "Amdahl (004, published)")
    assert "61.21%" in theirs and "1.441" in theirs and "004_c5ca47a4e4bae5f9.txt" in theirs
    assert "90.48%" in _row_with(s, "Gustafson (ours")
    strong4 = _row_with(s, "strong", "scatter", "256x256", " 4 ")
    assert "2.5\u00d7" in strong4 and "62.5%" in strong4 and " 0.2 " in strong4 and "1.04" in strong4
    rank3 = _row_with(s, "P=4", "strong", " 3 ", "cpu")                   # per-rank figures
    assert " 32 " in rank3 and "3.2 s" in rank3


def test_training_and_dataset(built):
    _, text, _ = built
    t = htmllib.unescape(_section(text, "training"))
    for quoted in ("87.88%", "94.95%", "24.87 s", "54.31 s", "245 train / 28 valid / 99 test",
                   "004_c5ca47a4e4bae5f9.txt"):
        assert quoted in t
    assert "91.89%" in _row_with(_section(text, "training"), "ours: cpu")
    final = _row_with(_section(text, "training"), "cpu", "34", "37")
    assert "78.7%\u201397.2%" in final
    assert "90.0%" in _row_with(_section(text, "training"), "cpu", "180")       # DDP efficiency
    assert "confusion matrix (cpu)" in t
    assert "4\u00d7" in _row_with(_section(text, "training"), "median epoch time", "2 s", "500 ms")
    assert "88.89%" in _row_with(_section(text, "training"), "cpu", "functional")
    last = _row_with(_section(text, "training"), "gpu (NVIDIA H100", " 1 ")        # last epoch of each run
    assert "60.00%" in last and "65.00%" in last and "500 ms" in last
    assert "243" in _row_with(_section(text, "dataset"), "sample")


def test_published_section_cites_documents_not_issues(built):
    _, text, _ = built
    p = htmllib.unescape(_section(text, "published"))
    for doc in ("000_4eaf7de32e149e73.txt", "001_1c59acd15aed783c.txt", "002_ba771e556a5a6fdc.txt",
                "003_042cff9d0b6c3929.txt", "004_c5ca47a4e4bae5f9.txt"):
        assert doc in p
    assert "454945680" in p and "misleading" in p and "5469.98" in p and "4.2992" in p
    assert re.search(r"\bissues?\b", htmllib.unescape(re.sub(r"<[^>]+>", " ", text)), re.I) is None


def test_provenance(built):
    _, text, _ = built
    p = _section(text, "provenance")
    assert "vm" in _row_with(p, "host")
    assert "NVIDIA H100" in _row_with(p, "device")
    assert "numpy " in _row_with(p, "package versions")
    assert _row_with(p, "git_commit")


def test_failed_and_skipped_points_are_listed(built):
    _, text, _ = built
    f = _section(text, "failures")
    assert "10: 1 failed, 9 skipped" in f
    assert "Failed points (1)" in f and "Skipped points (9), grouped by reason" in f
    assert "exit status 2" in _row_with(f, "failed", "numpi")
    assert "no CUDA GPU" in _row_with(f, "skipped", "torch:cuda")
    assert "cupy not installed" in _row_with(f, "skipped", "cupy")
    assert "no CUDA GPU" in _row_with(f, "skipped", "training")
    assert f.count('class="status-failed"') == 1 and f.count('class="status-skipped"') == 3
    assert "10 (listed at the end)" in _section(text, "summary")


def test_self_contained_and_figures_written(built):
    out, text, figures = built
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o644
    assert "<script" not in text.lower() and "<link" not in text.lower()
    refs = re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', text)
    assert refs and all(r.startswith(("data:image/png;base64,", "#")) for r in refs), \
        [r for r in refs if not r.startswith(("data:", "#"))]
    assert "url(" not in text
    n_img = text.count('<img src="data:image/png;base64,')
    pngs = sorted(figures.glob("*.png"))
    assert n_img == len(pngs) >= 9
    assert {p.stem for p in pngs} == {p.stem for p in figures.glob("*.svg")}
    assert "kernel-time-maxpool2d" in {p.stem for p in pngs}
    assert (figures / "scaling-strong.svg").read_text().lstrip().startswith(("<?xml", "<svg"))


def test_record_text_is_escaped(tmp_path):
    broken = fx.recorded("kernels-broken")[0]
    write_records(tmp_path / "r.jsonl", [Record(kind="kernel", name="x", params=broken.params, metrics={},
                                                status="failed", error="<script>alert(1)</script>")])
    out = report.build_report([tmp_path], tmp_path / "r.html")
    text = out.read_text()
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_missing_kinds_say_so(tmp_path):
    write_records(tmp_path / "k.jsonl", fx.kernel_records()[:3])
    text = report.build_report([tmp_path], tmp_path / "r.html").read_text()
    assert "No successful records of kind &#39;scaling&#39;" in text
    assert "No successful records of kind &#39;training&#39;" in text
    assert "No successful records of kind &#39;dataset&#39;" in text
    assert "None: every recorded point succeeded." in text
    # the published figures are shown even without our runs
    assert "61.21%" in text and "94.95%" in text


def test_unknown_kinds_do_not_break_the_report(tmp_path):
    write_records(tmp_path / "x.jsonl", [Record(kind="pruning_future", name="from a newer suite",
                                                params={"bits": 5}, metrics={"ratio": 6.4})])
    text = report.build_report([tmp_path], tmp_path / "r.html").read_text()
    row = _row_with(_section(text, "failures"), "invalid", "pruning_future")
    assert "record kind" in row


def test_no_records_at_all(tmp_path, capsys):
    out = tmp_path / "empty.html"
    assert main(["report", "build", "--records", "--output", str(out),
                 "--figures-dir", str(tmp_path / "figs")]) == 0
    text = out.read_text()
    assert "No records were found" in text and (tmp_path / "figs").is_dir()


def test_cli_errors_name_the_problem(tmp_path, capsys):
    assert main(["report", "build", "--records", str(tmp_path / "absent"),
                 "--output", str(tmp_path / "r.html")]) == 2
    assert "absent: no such record file or directory" in capsys.readouterr().err
    assert main(["report", "build", "--records", str(tmp_path), "--output", str(tmp_path / "r.html"),
                 "--template", str(tmp_path / "nope.j2")]) == 2
    assert "nope.j2: report template not found" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()


@pytest.mark.skipif(find_chromium() is None, reason="chromium not installed (Debian package 'chromium'; "
                                                    "make test installs it when run as root)")
def test_report_renders_in_headless_chromium(built):
    out, _, _ = built
    shot = ARTIFACTS / "analysis-report.png"
    page = check_page(out, screenshot=shot, width=1280)
    assert page.errors == []
    assert page.external_requests == []
    assert page.title == "HPC MRI suite: scaling report"
    assert page.content_height > 3000            # every section laid out, figures decoded
    assert shot.stat().st_size > 50_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.skipif(find_chromium() is None, reason="chromium not installed")
def test_browser_check_catches_broken_pages(tmp_path, capsys):
    bad = tmp_path / "bad.html"
    bad.write_text('<html><head><title>bad</title></head><body><img src="missing.png">'
                   '<script>console.error("boom")</script></body></html>')
    page = check_page(bad)
    assert any("boom" in e for e in page.errors)
    assert any("missing.png" in u for u in page.external_requests)
    assert main(["report", "check", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "console.error: boom" in out and "external request: file://" in out
