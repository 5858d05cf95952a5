"""The inference report section: pairing with the study's designs, ratios, labels."""
from __future__ import annotations

import pandas as pd

from hpc.analysis.aggregate import records_to_frame
from hpc.records import new_record
from hpc.schema.base import Device

CPU = Device(kind="opencl", name="pocl-cpu", opencl_type="cpu", opencl_platform="PoCL", index=0)


def _net(style: str | None, two_queues: bool, seconds: float, emulated: bool = True):  # type: ignore[no-untyped-def]
    dev = CPU.model_copy(update={"emulated": emulated}) if style else Device(kind="cpu", name="cpu")
    times = [seconds] * 3
    return new_record("inference_network", f"n/{style}/{two_queues}", dict(
        model="squeezenet1_1", engine="opencl" if style else "torch", style=style, two_queues=two_queues,
        batch=1, input_shape=[1, 3, 224, 224], classes=1000, macs_per_image=349_151_936, repeats=3, warmup=1,
        device=dev.model_dump(), load_avg=[1.0, 1.0, 1.0]), dict(
        wall_s=times, wall_s_median=seconds, wall_s_min=seconds, wall_s_max=seconds, wall_s_q1=seconds,
        wall_s_q3=seconds, s_per_image_median=seconds, mmac_per_s=349.151936 / seconds))


def _frame(recs) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    return records_to_frame((r, "test") for r in recs)


def test_single_task_over_ndrange_ratio_pairs_designs_as_the_study_did() -> None:
    from hpc.analysis import section_inference_opencl as s
    df = _frame([_net("single-task", True, 2.0), _net("single-task", False, 3.0), _net("ndrange", False, 0.5),
                 _net("ndrange", True, 0.4), _net("tiled", False, 0.1, emulated=False), _net(None, False, 0.2)])
    r = s.st_ndr_ratios(s.network_table(df))
    assert r["ours_as_study"] == 4.0 and r["ours_one_queue"] == 6.0
    assert abs(r["study"] - 4.2992 / 1.0454) < 1e-12
    rows = {row["design"]: row for row in s.comparison_rows(s.network_table(df))}
    assert rows["Our NDRange"]["ours_s"] == 0.4
    assert abs(rows["NDRange [7]"]["ratio"] - 1.0454 / 0.5) < 1e-12
    assert "emulated" in rows["Single Task (V6)"]["device"]
    assert rows["(no study counterpart)"]["ours_style"] == "tiled, 1 queue"
    sec = s.section(df)
    assert sec.empty_note is None and sec.tables[0][0].startswith("Whole network")
    assert ("single-task (2 queues) / NDRange (1 queue), ours", "4\u00d7") in sec.callouts


def test_section_without_records_says_so() -> None:
    from hpc.analysis import section_inference_opencl as s
    sec = s.section(pd.DataFrame())
    assert "No successful records" in (sec.empty_note or "")
