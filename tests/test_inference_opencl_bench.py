"""The inference benchmark writes valid records: one network record per (style, queues)
point plus torch, one layer record per kernel launch, with the device as it ran."""
from __future__ import annotations

from pathlib import Path

from hpc.records import read_records

from inference_opencl_util import opencl_device_or_skip


def test_bench_writes_network_and_layer_records(tmp_path: Path) -> None:
    opencl_device_or_skip()
    from hpc.inference.opencl.bench import cli
    out = tmp_path / "b.jsonl"
    assert cli(["--input-size", "40", "--classes", "10", "--batch", "2", "--styles", "single-task,tiled",
                "--queues", "1,2", "--repeats", "2", "--layer-repeats", "1", "--torch",
                "--output", str(out)]) == 0
    recs = list(read_records([out]))
    nets = [r for r in recs if r.kind == "inference_network"]
    layers = [r for r in recs if r.kind == "inference_layer"]
    assert [r.name for r in nets] == ["squeezenet1_1/opencl/single-task/q1", "squeezenet1_1/opencl/single-task/q2",
                                      "squeezenet1_1/opencl/tiled/q1", "squeezenet1_1/opencl/tiled/q2",
                                      "squeezenet1_1/torch"]
    # conv1, pool, 2 fires (3 convs), pool, 2 fires, pool, 4 fires, classifier conv, global avg pool
    assert len(layers) == 4 * (1 + 1 + 6 + 1 + 6 + 1 + 12 + 1 + 1)
    for r in nets:
        p, m = r.params, r.metrics
        assert len(m["wall_s"]) == 2 and m["wall_s_min"] <= m["wall_s_median"] <= m["wall_s_max"]
        assert m["max_abs_diff_vs_torch"] <= 1e-4 and len(p["load_avg"]) == 3
        if p["engine"] == "opencl":
            assert p["device"]["kind"] == "opencl"
            assert p["device"]["emulated"] == (p["style"] == "single-task" and
                                               p["device"]["opencl_type"] != "accelerator")
        else:
            assert p["device"]["kind"] == "cpu" and p["threads"] >= 1
    assert {r.params["layer_type"] for r in layers} == {"conv3x3", "conv1x1", "maxpool", "avgpool_global"}
    assert all(r.metrics["event_s_median"] > 0 for r in layers)
    assert sum(r.params["macs"] for r in layers if r.params["style"] == "tiled" and not r.params["two_queues"]) \
        == nets[2].params["macs_per_image"] * 2


def test_bench_rejects_an_unknown_style(tmp_path: Path, capsys) -> None:
    from hpc.inference.opencl.bench import cli
    assert cli(["--styles", "systolic", "--output", str(tmp_path / "x.jsonl")]) == 2
    assert "unknown style/queue count systolic" in capsys.readouterr().err
