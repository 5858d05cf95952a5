"""Whole networks on the OpenCL engine against torch: SqueezeNet v1.1 (seeded weights, 224 px
and a small odd size), the suite's AlexNet trained on the MRI sample dataset, and the
program-binary path. One 224 px forward per style keeps the file quick."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from inference_opencl_util import ATOL, RTOL, opencl_device_or_skip

STYLES = ("single-task", "ndrange", "tiled")


@pytest.fixture(scope="module", autouse=True)
def _device() -> None:
    opencl_device_or_skip()


def _squeezenet(classes: int = 1000, seed: int = 0) -> torch.nn.Module:
    from hpc.models.squeezenet import SqueezeNet11
    torch.manual_seed(seed)
    return SqueezeNet11(num_classes=classes).eval()


def _torch(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


@pytest.fixture(scope="module")
def squeezenet_224() -> tuple[torch.nn.Module, np.ndarray, np.ndarray]:
    model = _squeezenet()
    x = np.random.default_rng(1).standard_normal((1, 3, 224, 224)).astype(np.float32)
    return model, x, _torch(model, x)


@pytest.mark.parametrize("style", STYLES)
def test_squeezenet_224_matches_torch(style, squeezenet_224) -> None:
    from hpc.inference.opencl import OpenCLEngine
    model, x, ref = squeezenet_224
    engine = OpenCLEngine(model, style=style, two_queues=(style == "ndrange"))
    got = engine.forward(x)
    assert got.shape == (1, 1000)
    np.testing.assert_allclose(got, ref, rtol=RTOL, atol=ATOL)
    assert np.argsort(-got[0])[:5].tolist() == np.argsort(-ref[0])[:5].tolist()


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("two_queues", [False, True])
def test_squeezenet_small_odd_input_batch_matches_torch(style, two_queues) -> None:
    """67 px: ceil-mode pooling keeps partial windows (33 -> 16 -> 8 -> 4), batch of 3."""
    from hpc.inference.opencl import OpenCLEngine
    model = _squeezenet(classes=10, seed=3)
    x = np.random.default_rng(2).standard_normal((3, 3, 67, 67)).astype(np.float32)
    got = OpenCLEngine(model, style=style, two_queues=two_queues).forward(x)
    np.testing.assert_allclose(got, _torch(model, x), rtol=RTOL, atol=ATOL)


def test_fire_module_writes_both_expands_into_one_buffer_at_channel_offsets() -> None:
    from hpc.inference.opencl import OpenCLEngine
    engine = OpenCLEngine(_squeezenet(), style="tiled", two_queues=True)
    launches = {L.layer: L for L in engine.launches((1, 3, 64, 64))}
    e1, e3 = launches["features.3.expand1x1"], launches["features.3.expand3x3"]
    assert e1.buffers[3] is e3.buffers[3]                        # same output buffer
    # scalars end in (ctot, coff, relu): expand1x1 at channel 0, expand3x3 at 64 of 128
    assert e1.spec.scalars[-3:] == (128, 0, 1) and e3.spec.scalars[-3:] == (128, 64, 1)
    assert e1.queue == 1 and e3.queue == 0
    order = list(launches)
    assert set(launches["features.4.squeeze"].deps) == {order.index("features.3.expand1x1"),
                                                         order.index("features.3.expand3x3")}
    assert sum(L.macs for L in engine.launches((1, 3, 224, 224))) == 349_151_936


def test_profile_reports_every_launch_with_event_times(squeezenet_224) -> None:
    from hpc.inference.opencl import OpenCLEngine
    model, x, _ = squeezenet_224
    engine = OpenCLEngine(model, style="tiled")
    rows = engine.profile(x)
    assert [r[0] for r in rows] == [L.layer for L in engine.launches(x.shape)]
    assert {r[1] for r in rows} == {"conv3x3", "conv1x1", "maxpool", "avgpool_global"}
    assert all(r[3] > 0 for r in rows)
    dev = engine.device
    assert dev.kind == "opencl" and dev.opencl_type in ("cpu", "gpu", "accelerator", "other")
    assert dev.emulated is False                                # tiled is not an FPGA design
    assert OpenCLEngine(model, style="single-task", runtime=engine.runtime).device.emulated == \
        (dev.opencl_type != "accelerator")


def test_program_binary_from_pocl_loads_and_gives_the_same_scores(tmp_path: Path) -> None:
    """The FPGA path (clCreateProgramWithBinary) with the single-task program PoCL built."""
    from hpc.inference.opencl import OpenCLEngine
    model = _squeezenet(classes=10)
    x = np.random.default_rng(4).standard_normal((2, 3, 40, 40)).astype(np.float32)
    source_engine = OpenCLEngine(model, style="single-task")
    path = tmp_path / "single-task.bin"
    path.write_bytes(source_engine.runtime.binary("single-task"))
    loaded = OpenCLEngine(model, style="single-task", binary=path)
    assert loaded.runtime.binaries == {"single-task": path}
    np.testing.assert_array_equal(loaded.forward(x), source_engine.forward(x))


def test_a_binary_the_device_cannot_load_names_the_device_and_file(tmp_path: Path) -> None:
    from hpc.inference.opencl import KernelBuildError, OpenCLEngine
    bad = tmp_path / "garbage.aocx"
    bad.write_bytes(b"\x00not a program binary" * 10)
    with pytest.raises(KernelBuildError, match=r"OpenCL device '.+' .* could not load the program binary .*garbage\.aocx"):
        OpenCLEngine(_squeezenet(classes=10), style="tiled", binary=bad)


@pytest.mark.parametrize("layout, size", [("classic", 100), ("torchvision", 224)])
def test_narrow_imagenet_alexnets_match_torch(layout, size) -> None:
    """Both ImageNet layouts: 11x11/4 and 5x5 convolutions, LRN (classic), the adaptive
    average pool (identity at 224), flatten and three Linear layers; narrow widths keep it quick."""
    from hpc.inference.opencl import OpenCLEngine
    from hpc.models.alexnet import build_model
    torch.manual_seed(5)
    model = build_model("alexnet-imagenet", 10, input_size=size, layout=layout,
                        channels=[8, 16, 16, 16, 8, 32, 32, 10]).eval()
    x = np.random.default_rng(5).standard_normal((2, 3, size, size)).astype(np.float32)
    ref = _torch(model, x)
    for style in STYLES:
        np.testing.assert_allclose(OpenCLEngine(model, style=style).forward(x), ref, rtol=RTOL, atol=ATOL)


def test_unsupported_layer_and_bad_input_are_named() -> None:
    from hpc.inference.opencl import InputError, OpenCLEngine, UnsupportedLayerError
    with pytest.raises(UnsupportedLayerError, match=r"1: BatchNorm2d has no OpenCL kernel"):
        OpenCLEngine(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)), style="tiled")
    engine = OpenCLEngine(_squeezenet(classes=10), style="tiled")
    with pytest.raises(InputError, match="dtype float64"):
        engine.forward(np.zeros((1, 3, 64, 64)))
    with pytest.raises(InputError, match="expects 3 channels, got 1"):
        engine.forward(np.zeros((1, 1, 64, 64), np.float32))


# ---- the suite's AlexNet trained on the MRI sample dataset -----------------------------------

@pytest.fixture(scope="module")
def trained_alexnet(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Build the sample MRI slice dataset (nilearn volumes) and train a narrow small AlexNet on
    it with the suite's trainer for a few epochs; return (model, test images, test labels)."""
    from hpc.config import load_config
    from hpc.data.build import build_dataset
    from hpc.inference.networks import build
    from hpc.train.data import SliceDataset
    from hpc.train.loop import Settings, run_training

    root = tmp_path_factory.mktemp("mri")
    cfg = copy.deepcopy(load_config()["dataset"])
    build_dataset(cfg, root / "slices.h5", progress=False, log=lambda _m: None)
    settings = Settings(data=str(root / "slices.h5"), out_dir=str(root / "run"), epochs=3, batch_size=32,
                        lr=1e-3, width=0.25, hidden=128, threads=1, device="cpu", progress=False, seed=0)
    assert run_training(settings) == 0
    test = SliceDataset(root / "slices.h5", "test")
    model, _ = build("alexnet-small", weights=root / "run" / "checkpoints" / "best.pt",
                     input_size=test.image_shape[1])
    return model, test.load_all(), test.labels


@pytest.mark.parametrize("style", STYLES)
def test_trained_alexnet_predicts_the_same_classes_as_torch_on_the_test_split(style, trained_alexnet) -> None:
    from hpc.inference.opencl import OpenCLEngine
    model, x, _labels = trained_alexnet
    ref = _torch(model, x)
    got = OpenCLEngine(model, style=style).forward(x)
    np.testing.assert_allclose(got, ref, rtol=RTOL, atol=ATOL)
    assert x.shape[0] >= 10
    assert (got.argmax(1) == ref.argmax(1)).all()


def test_a_kernel_the_device_cannot_build_names_device_and_style(monkeypatch) -> None:
    """Real build on the real device of a source with an error in it (as a device lacking a
    feature would fail): the message names the device, the style and the compiler's log."""
    from hpc.inference.opencl import KernelBuildError, Runtime, program
    good = program.kernel_source("tiled")
    monkeypatch.setattr(program, "kernel_source", lambda style: good + "\n__kernel void broken() { undefined_fn(); }\n")
    with pytest.raises(KernelBuildError, match=r"OpenCL device '.+' \(.+\) could not build the tiled kernels"):
        Runtime().program("tiled")
