"""The inference batch sweep: fits, the profiler breakdown, the memory cap and real
out-of-memory, bad inputs, weights, records and the report section."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from hpc.config import ConfigError, load_experiment
from hpc.inference import fits
from hpc.inference.backends import (BackendUnavailable, OpenCLBackend, TorchBackend, get_backend, layer_type,
                                    layers, opencl_components)
from hpc.inference.networks import UnknownModelError, WeightsError, build
from hpc.inference.sweep import (SweepSettings, memory_cap, per_image_bytes, run_sweep,
                                 validate_batch_sizes)
from hpc.records import new_record
from hpc.schema import RecordSchemaError
from hpc.schema.inference import COMPONENTS

REPO = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- fits
@given(a=st.floats(1e-6, 10.0), b=st.floats(1e-7, 1.0),
       batches=st.lists(st.sampled_from([1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]),
                        min_size=2, max_size=11, unique=True))
def test_fit_recovers_fixed_and_per_image_cost_of_exact_linear_data(a, b, batches):
    f = fits.fit_linear(batches, [a + b * n for n in batches])
    assert f.fixed_s == pytest.approx(a, rel=1e-6, abs=1e-9)
    assert f.per_image_s == pytest.approx(b, rel=1e-6, abs=1e-12)
    assert f.r2 == pytest.approx(1.0, abs=1e-9)
    assert (f.n_points, f.batch_min, f.batch_max) == (len(batches), min(batches), max(batches))


def test_fit_of_noisy_data_is_close_and_reports_imperfect_r2():
    rng = np.random.default_rng(0)
    batches = [2 ** i for i in range(11)]
    times = [(0.3 + 0.005 * n) * (1 + rng.normal(0, 0.02)) for n in batches]
    f = fits.fit_linear(batches, times)
    assert f.fixed_s == pytest.approx(0.3, rel=0.1)
    assert f.per_image_s == pytest.approx(0.005, rel=0.1)
    assert 0.9 < f.r2 < 1.0


def test_fit_of_constant_component_has_zero_slope_and_no_r2():
    f = fits.fit_linear([1, 2, 4, 8], [0.5] * 4)
    assert f.per_image_s == pytest.approx(0.0, abs=1e-12)
    assert f.fixed_s == pytest.approx(0.5)
    assert f.r2 is None


def test_fit_needs_two_distinct_batch_sizes():
    with pytest.raises(ValueError, match="at least 2 distinct batch sizes"):
        fits.fit_linear([4, 4], [1.0, 1.1])


def test_batch_reaching_90_percent_of_peak():
    batches = [1, 2, 4, 8, 16, 32]
    rate = [10, 40, 80, 91, 100, 97]
    assert fits.batch_reaching_fraction_of_peak(batches, rate, 0.9) == (8, 100.0, 16)
    assert fits.batch_reaching_fraction_of_peak(batches, rate, 0.5)[0] == 4
    with pytest.raises(ValueError, match="fraction"):
        fits.batch_reaching_fraction_of_peak(batches, rate, 0.0)


# --------------------------------------------------------------------------- models
@pytest.fixture(scope="module")
def imagenet():
    """The 61M-parameter network, built once (its initialisation takes seconds)."""
    return build("alexnet-imagenet", seed=0)[0]


def test_layer_by_layer_forward_matches_the_model_and_books_every_layer_type(imagenet):
    mri, label = build("alexnet-mri", seed=0)
    assert label == "random(seed=0)"
    squeeze, _ = build("squeezenet1_1", seed=0, num_classes=10)
    for model, shape in ((imagenet, (2, 3, 227, 227)), (mri, (3, 1, 32, 32)), (squeeze, (2, 3, 64, 64))):
        x = torch.randn(shape)
        y = x
        with torch.inference_mode():
            for _, m in layers(model):
                y = m(y)
            assert torch.allclose(y, model(x), atol=1e-5)
        kinds = {layer_type(m) for _, m in layers(model)}
        assert {"conv", "pool", "activation", "other"} <= kinds
        assert ("fc" in kinds) == (model is not squeeze)


def test_imagenet_model_is_the_studys_layout(imagenet):
    with torch.inference_mode():
        assert imagenet(torch.zeros(1, 3, 227, 227)).shape == (1, 1000)
    assert imagenet.features[0].out_channels == 96 and imagenet.features[0].kernel_size == (11, 11)


def test_weights_load_from_a_state_dict(tmp_path):
    other, _ = build("alexnet-mri", seed=1)
    path = tmp_path / "w.pt"
    torch.save({"model": other.state_dict()}, path)
    model, label = build("alexnet-mri", seed=0, weights=path)
    assert label == str(path)
    for k, v in other.state_dict().items():
        assert torch.equal(model.state_dict()[k], v)


def test_weights_decide_the_widths_and_classes(tmp_path):
    from hpc.models.alexnet import AlexNetSmall
    narrow = AlexNetSmall(num_classes=4, in_channels=1, input_size=32, width=0.5, hidden=256)
    path = tmp_path / "narrow.pt"
    torch.save({"format": "hpc-train-checkpoint", "model": narrow.state_dict()}, path)
    model, _ = build("alexnet-mri", weights=path)
    assert (model.num_classes, model.features[0].out_channels, model.classifier[1].out_features) == (4, 32, 256)
    x = torch.randn(2, 1, 32, 32)
    with torch.inference_mode():
        assert torch.equal(model(x), narrow.eval()(x))


def test_weights_with_wrong_keys_name_the_file_and_the_keys(tmp_path):
    model, _ = build("alexnet-mri")
    sd = model.state_dict()
    sd["features.99.weight"] = sd.pop("features.0.weight")
    path = tmp_path / "bad.pt"
    torch.save(sd, path)
    with pytest.raises(WeightsError, match=r"bad\.pt: weights do not match alexnet-mri: "
                                           r"missing keys features\.0\.weight; unexpected keys features\.99\.weight"):
        build("alexnet-mri", weights=path)


def test_weights_with_wrong_shapes_or_not_a_state_dict_are_errors(tmp_path, imagenet):
    path = tmp_path / "imagenet.pt"
    torch.save(imagenet.state_dict(), path)
    with pytest.raises(WeightsError, match=r"imagenet\.pt: weights do not match alexnet-mri: missing keys"):
        build("alexnet-mri", weights=path)
    junk = tmp_path / "junk.pt"
    junk.write_text("not a checkpoint")
    with pytest.raises(WeightsError, match=r"junk\.pt: not a readable torch weights file"):
        build("alexnet-mri", weights=junk)
    with pytest.raises(WeightsError, match=r"missing\.pt: weights file not found"):
        build("alexnet-mri", weights=tmp_path / "missing.pt")


def test_unknown_model_is_an_error_naming_the_parameter():
    with pytest.raises(UnknownModelError, match=r"model='vgg16': unknown model"):
        build("vgg16")


# --------------------------------------------------------------------------- sweep
@pytest.mark.parametrize("bad", [[0], [-4], [1, 0, 2], [], [1.5]])
def test_bad_batch_sizes_are_errors_naming_the_parameter(bad):
    with pytest.raises(ValueError, match="batch_sizes"):
        validate_batch_sizes(bad)


def test_unknown_backend_is_an_error_naming_it():
    with pytest.raises(ValueError, match="backend='tensorflow'"):
        get_backend("tensorflow")


@pytest.fixture(scope="module")
def small_sweep():
    settings = SweepSettings(batch_sizes=[1, 4, 16], repeats=2, warmup=1, profiled_runs=2, threads=1)
    return run_sweep("alexnet-mri", "torch", settings)


def test_sweep_writes_one_batch_record_per_batch_and_a_sweep_record(small_sweep):
    batch = [r for r in small_sweep if r.kind == "inference_batch"]
    sweep = [r for r in small_sweep if r.kind == "inference_sweep"]
    assert [r.params["batch"] for r in batch] == [1, 4, 16]
    assert all(r.status == "ok" for r in small_sweep)
    assert len(sweep) == 1
    assert sweep[0].params["device"]["kind"] == "cpu"
    m = sweep[0].metrics
    assert m["batches_ok"] == [1, 4, 16] and m["batches_skipped"] == []
    assert m["cold_start_s"] > 0 and m["warm_batch1_s"] > 0
    assert set(m["fits"]) >= {"conv", "fc", "pool", "total"}
    assert "h2d" not in m["fits"]             # no copy on a CPU backend: null, not fitted
    assert m["batch_90pct_peak"] in (1, 4, 16)


def test_profiler_breakdown_sums_close_to_the_profiled_batch_time(small_sweep):
    for r in (r for r in small_sweep if r.kind == "inference_batch"):
        m = r.metrics
        parts = sum(m[f"{c}_s"] or 0.0 for c in COMPONENTS)
        assert parts == pytest.approx(m["components_sum_s"])
        assert m["components_sum_s"] <= m["profiled_total_s"] * 1.001
        # the ranges cover the batch: what falls between them is glue, a small share
        assert m["unattributed_s"] <= 0.2 * m["profiled_total_s"] + 2e-4, m
        assert m["conv_s"] > 0 and m["fc_s"] > 0 and m["pool_s"] > 0
        assert m["h2d_s"] is None and m["d2h_s"] is None and m["sync_s"] is None
        assert m["images_per_s"] == pytest.approx(r.params["batch"] / m["total_s"])
        assert m["peak_memory_bytes"] is not None and m["peak_memory_bytes"] >= 0


def test_batches_above_the_memory_budget_are_skipped_with_the_cap_and_the_sweep_goes_on():
    model, _ = build("alexnet-mri")
    per_image = per_image_bytes(model, (1, 32, 32), 4, device_copy=False)
    weights = sum(p.numel() for p in model.parameters()) * 4
    budget = int(weights + 2.0 * per_image * 3)         # room for batch 2, not 4
    assert memory_cap([1, 2, 4, 8], per_image, weights, budget) == 2
    settings = SweepSettings(batch_sizes=[1, 2, 4, 8], repeats=1, warmup=0, memory_budget_bytes=budget)
    recs = run_sweep("alexnet-mri", "torch", settings)
    status = {r.params["batch"]: (r.status, r.error) for r in recs if r.kind == "inference_batch"}
    assert status[1][0] == status[2][0] == "ok"
    for b in (4, 8):
        assert status[b][0] == "skipped"
        assert f"out of memory at {b}" in status[b][1] and "cap: batch 2" in status[b][1]
    skipped = [r for r in recs if r.kind == "inference_batch" and r.status == "skipped"]
    assert all(r.params["memory_cap_batch"] == 2 and r.params["memory_budget_bytes"] == budget for r in skipped)
    sweep = [r for r in recs if r.kind == "inference_sweep"][0]
    assert sweep.status == "ok" and sweep.metrics["batches_skipped"] == [4, 8]


@pytest.mark.slow
def test_a_real_allocation_failure_is_recorded_as_skipped(tmp_path):
    """Address space limited (RLIMIT_AS) below what batch 8192 needs, budget check off:
    the allocation really fails, the point is skipped, the larger one too, smaller ones run."""
    script = textwrap.dedent("""
        import json, resource, sys
        import torch
        from hpc.inference.sweep import SweepSettings, run_sweep
        torch.set_num_threads(1)
        run_sweep("alexnet-mri", "torch", SweepSettings(batch_sizes=[1], repeats=1, warmup=0))
        vm = [int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmSize")][0]
        resource.setrlimit(resource.RLIMIT_AS, (vm + 400 * 2**20, resource.RLIM_INFINITY))
        recs = run_sweep("alexnet-mri", "torch", SweepSettings(
            batch_sizes=[2, 8192, 16384], repeats=1, warmup=0, memory_budget_bytes=2**50))
        print(json.dumps([[r.kind, r.status, r.params.get("batch"), r.error] for r in recs]))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(proc.stdout.strip().splitlines()[-1])
    by_batch = {b: (s, e) for k, s, b, e in rows if k == "inference_batch"}
    assert by_batch[2][0] == "ok"
    assert by_batch[8192][0] == "skipped" and by_batch[8192][1].startswith("out of memory at 8192")
    assert by_batch[16384] == ("skipped", "out of memory at 8192 (a smaller batch already failed)")


def test_unavailable_backend_and_pinned_on_cpu_are_skipped_sweeps():
    recs = run_sweep("alexnet-mri", "torch", SweepSettings(batch_sizes=[1], host_memory="pinned"))
    assert [(r.kind, r.status) for r in recs] == [("inference_sweep", "skipped")]
    assert "pinned" in recs[0].error
    if not torch.cuda.is_available():
        recs = run_sweep("alexnet-mri", "torch-cuda", SweepSettings(batch_sizes=[1]))
        assert [(r.kind, r.status) for r in recs] == [("inference_sweep", "skipped")]
        assert "no CUDA device" in recs[0].error


def test_opencl_backend_is_skipped_with_its_reason_or_runs():
    backend = OpenCLBackend("tiled")
    try:
        backend.check_available()
    except BackendUnavailable as exc:
        assert "OpenCLEngine" in str(exc)
        return
    recs = run_sweep("alexnet-mri", "opencl:tiled", SweepSettings(batch_sizes=[1, 2], repeats=1, warmup=0))
    batch = [r for r in recs if r.kind == "inference_batch"]
    assert [r.status for r in batch] == ["ok", "ok"] and recs[-1].kind == "inference_sweep"
    for r in batch:
        assert r.params["device"]["kind"] == "opencl"
        m = r.metrics
        assert m["conv_s"] > 0 and m["fc_s"] > 0           # kernel events booked by layer type
        assert m["h2d_s"] > 0 and m["d2h_s"] > 0           # copies timed by OpenCL events


def test_opencl_profile_entries_map_to_components():
    profile = [("features.0", "conv3x3", "conv_tiled", 0.004), ("features.1", "maxpool", "pool", 0.001),
               ("features.3", "conv", "conv_tiled", 0.002), ("classifier.1", "linear", "fc", 0.003),
               ("avgpool", "avgpool_global", "gap", 0.0005), ("lrn", "lrn", "lrn", 0.0002)]
    comps = opencl_components(profile)
    assert comps == pytest.approx({"conv": 0.006, "pool": 0.0015, "fc": 0.003, "other": 0.0002})


def test_torch_cpu_backend_describes_its_copies_and_profiler():
    b = TorchBackend("cpu")
    assert "no host<->device copy" in b.copies and "torch.profiler" in b.profiler


# --------------------------------------------------------------------------- records, config, CLI
def test_batch_record_schema_rejects_unknown_metrics():
    recs = run_sweep("alexnet-mri", "torch", SweepSettings(batch_sizes=[1, 2], repeats=1, warmup=0))
    r = recs[0]
    new_record("inference_batch", r.name, r.params, r.metrics)          # round trip
    with pytest.raises(RecordSchemaError, match="inference_batch"):
        new_record("inference_batch", r.name, r.params, {**r.metrics, "speed": 1.0})
    with pytest.raises(RecordSchemaError, match="batch"):
        new_record("inference_batch", r.name, {**r.params, "batch": 0}, r.metrics)


def test_v2_inference_records_with_a_device_object_still_read():
    """docs/benchmarks/inference-batch/run1 was written under schema v2 with params.device
    already a Device: it upgrades as it is (a text label would not)."""
    from hpc.records import SchemaVersionError, read_records, upgrade
    recs = list(read_records([REPO / "docs/benchmarks/inference-batch/run1-cpu-sweep.jsonl"]))
    assert len(recs) == 24 and all(r.schema_version == 3 for r in recs)
    line = json.loads((REPO / "docs/benchmarks/inference-batch/run1-cpu-sweep.jsonl").read_text().splitlines()[0])
    assert line["schema_version"] == 2
    with pytest.raises(SchemaVersionError, match="re-run the point"):
        upgrade({**line, "params": {**line["params"], "device": "cpu"}})


def test_inference_experiments_validate_and_bad_ones_name_the_key(tmp_path):
    spec = load_experiment(REPO / "experiments/inference-laptop.yaml", kind="inference")
    assert spec["models"] == ["alexnet-imagenet", "alexnet-mri"] and spec["repeats"] == 2
    full = load_experiment(REPO / "experiments/inference-batch.yaml", kind="inference")
    assert full["batch_sizes"] == [2 ** i for i in range(11)]
    for body, key in (("batch_sizes: [1, 0]", "batch_sizes.1"), ("models: [vgg]", "models.0"),
                      ("weights: {resnet: x.pt}", "weights"), ("host_memory: [paged]", "host_memory.0")):
        path = tmp_path / "e.yaml"
        path.write_text(f"kind: inference\nname: e\n{body}\n")
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            load_experiment(path)


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    """``python -m hpc bench inference ARGS`` in this process: exit code, stdout, stderr."""
    from hpc.cli import main
    try:
        rc = main(["bench", "inference", *args])
    except SystemExit as exc:          # argparse errors
        rc = int(exc.code or 0)
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.parametrize("args, message", [
    (["--batch-sizes", "0"], "argument --batch-sizes: 0 is not a batch size"),
    (["--batch-sizes", "-2"], "argument --batch-sizes: -2 is not a batch size"),
    (["--models", "vgg"], "argument --models: invalid choice: 'vgg'"),
    (["--weights", "alexnet-mri"], "argument --weights: 'alexnet-mri': expected MODEL=PATH"),
    (["--repeats", "0"], "--repeats 0: must be >= 1"),
])
def test_cli_bad_inputs_name_the_parameter(capsys, args, message):
    rc, _, err = _cli(capsys, *args)
    assert rc == 2
    assert message in err


def test_cli_wrong_weights_keys_is_a_clear_error(capsys, tmp_path):
    path = tmp_path / "w.pt"
    torch.save({"conv.weight": torch.zeros(1)}, path)
    rc, _, err = _cli(capsys, "--models", "alexnet-mri", "--weights", f"alexnet-mri={path}", "--batch-sizes", "1",
                      "--output", str(tmp_path / "o.jsonl"))
    assert rc == 2
    assert f"{path}: weights do not match alexnet-mri: missing keys features.0.weight" in err


def test_cli_runs_a_sweep_and_appends_records(capsys, tmp_path):
    out = tmp_path / "o.jsonl"
    rc, stdout, err = _cli(capsys, "--models", "alexnet-mri", "--backends", "torch", "torch-cuda", "--batch-sizes", "1", "2",
                "--repeats", "1", "--warmup", "0", "--threads", "1", "--output", str(out), "--quiet")
    assert rc == 0, err[-2000:]
    lines = [json.loads(l) for l in out.read_text().splitlines()]
    kinds = [(r["kind"], r["status"], r["params"]["backend"], r["params"]["host_memory"]) for r in lines]
    assert ("inference_batch", "ok", "torch", "pageable") in kinds
    assert ("inference_sweep", "ok", "torch", "pageable") in kinds
    assert ("inference_sweep", "skipped", "torch", "pinned") in kinds
    if not torch.cuda.is_available():
        assert ("inference_sweep", "skipped", "torch-cuda", "pageable") in kinds
    assert "90% of peak" in stdout


# --------------------------------------------------------------------------- report
def test_report_section_shows_breakdown_fits_and_the_studys_table(small_sweep, tmp_path):
    from hpc.analysis import plots, section_inference_batch as sib
    from hpc.analysis.aggregate import records_to_frame

    df = records_to_frame([(r, "x.jsonl") for r in small_sweep])
    sink = plots.FigureSink(tmp_path / "figs")
    sec = sib.section(df, sink)
    assert sec.empty_note is None
    assert {f.key for f in sec.figures} == {"inference-breakdown", "inference-throughput"}
    titles = [t for t, _, _ in sec.tables]
    assert any("different hardware, unknown GPU" in t for t in titles)
    assert any(t.startswith("Fitted fixed and per-image costs") for t in titles)
    study_title, study, note = next(x for x in sec.tables if x[0].startswith("Study 001"))
    assert [c.key for c in study.columns][:3] == ["batch", "memcpy_htod", "convkernel"]
    assert study.rows[0][:3] == ["1", "40.16", "7.6397"]          # as published, not rounded
    assert "001_1c59acd15aed783c.txt" in note


def test_study_table_shapes_conv_linear_and_copy_amortised():
    from hpc.analysis import section_inference_batch as sib

    sf = sib.study_fits().set_index("study_column")
    assert sf.loc["convkernel", "r2"] > 0.99                     # linear growth with the batch
    assert sf.loc["convkernel", "per_image"] == pytest.approx(5.34, rel=0.05)
    assert sf.loc["memcpy_htod", "fixed_share_b1"] > 0.9         # batch 1 is almost all fixed cost
    st_, meta = sib.study_table()
    assert len(st_) == 11 and meta["caption"] == "Figure 3: Data"


def test_report_without_inference_records_says_so():
    import pandas as pd

    from hpc.analysis import plots, section_inference_batch as sib
    sec = sib.section(pd.DataFrame(columns=["kind", "status"]), plots.FigureSink(None))
    assert "No successful records" in sec.empty_note
    assert any(t.startswith("Study 001") for t, _, _ in sec.tables)


def test_report_section_combines_two_runs_of_the_same_sweep(small_sweep, tmp_path):
    from hpc.analysis import plots, section_inference_batch as sib
    from hpc.analysis.aggregate import records_to_frame

    df = records_to_frame([(r, "run1.jsonl") for r in small_sweep] + [(r, "run2.jsonl") for r in small_sweep])
    bt = sib.batch_table(df)
    assert len(bt) == 6 and len(sib.per_batch(bt)) == 3
    sec = sib.section(df, plots.FigureSink(None))
    _, beside, _ = next(x for x in sec.tables if x[0].startswith("Study 001"))
    assert len(beside.rows) == 11                 # one row per published batch size
