"""``python -m hpc infer`` end to end (in-process CLI main) and its error messages."""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from inference_opencl_util import ATOL, RTOL, opencl_device_or_skip


@pytest.fixture(scope="module", autouse=True)
def _device() -> None:
    opencl_device_or_skip()


@pytest.fixture
def hpc(capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    from hpc.cli import main

    def _run(*args: str) -> subprocess.CompletedProcess:
        capsys.readouterr()
        rc = main([str(a) for a in args])
        out = capsys.readouterr()
        return subprocess.CompletedProcess(list(args), rc, out.out, out.err)
    return _run


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from hpc.models.squeezenet import SqueezeNet11
    d = tmp_path_factory.mktemp("infer")
    torch.manual_seed(0)
    model = SqueezeNet11(num_classes=20)
    torch.save(model.state_dict(), d / "w.pt")
    np.save(d / "x.npy", np.random.default_rng(0).standard_normal((2, 3, 48, 48)).astype(np.float32))
    return {"dir": d, "weights": d / "w.pt", "input": d / "x.npy"}


def _base(files: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return ["infer", "--model", "squeezenet1_1", "--weights", str(files["weights"]), "--input",
            str(files["input"]), "--output", str(out), *extra]


def test_opencl_and_torch_backends_agree_and_print_top5(hpc, files, tmp_path) -> None:
    r1 = hpc(*_base(files, tmp_path / "cl.npy", "--backend", "opencl", "--style", "ndrange", "--two-queues"))
    r2 = hpc(*_base(files, tmp_path / "t.npy", "--backend", "torch"))
    assert r1.returncode == 0 and r2.returncode == 0, r1.stderr + r2.stderr
    a, b = np.load(tmp_path / "cl.npy"), np.load(tmp_path / "t.npy")
    assert a.shape == (2, 20) and a.dtype == np.float32
    np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)
    lines = r1.stdout.splitlines()
    assert lines[0].startswith("image 0: ") and len(lines[0].split(", ")) == 5
    top = int(lines[0].split(": ")[1].split(" ")[0])
    assert top == int(np.argmax(b[0]))
    assert "s per image" in lines[2] and "ndrange two queues" in lines[2] and "emulated" in lines[2]


def test_saved_binary_is_loaded_with_binary(hpc, files, tmp_path) -> None:
    binary = tmp_path / "tiled.bin"
    assert hpc(*_base(files, tmp_path / "a.npy", "--save-binary", str(binary))).returncode == 0
    assert binary.stat().st_size > 0
    r = hpc(*_base(files, tmp_path / "b.npy", "--binary", str(binary)))
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))


@pytest.mark.parametrize("case, message", [
    ("missing_key", r"weights do not match squeezenet1_1: missing keys features.3.squeeze.weight"),
    ("bad_shape", r"shape mismatch features.12.expand3x3.weight: \(256, 64, 1, 1\) in the file, "
                  r"\(256, 64, 3, 3\) in squeezenet1_1"),
    ("extra_key", r"unexpected keys extra.weight"),
    ("float64", r"x.npy: dtype float64, expected float32"),
    ("ndim3", r"x.npy: shape \(3, 48, 48\), expected a non-empty 4-D NCHW batch"),
    ("channels", r"x.npy: shape \(1, 1, 48, 48\): squeezenet1_1 with these weights expects 3 input channels"),
    ("too_small", r"x\.npy: input_size=2: too small for squeezenet1_1 \(needs >= 17 px"),
    ("device", r"--device 99: there are \d+ OpenCL device\(s\): 0: "),
    ("not_weights", r"w.pt: not a readable torch weights file"),
])
def test_bad_input_gets_a_clear_error(case, message, hpc, files, tmp_path) -> None:
    state = torch.load(files["weights"], weights_only=True)
    x = np.load(files["input"])
    extra: list[str] = []
    if case == "missing_key":
        del state["features.3.squeeze.weight"]
    elif case == "bad_shape":
        state["features.12.expand3x3.weight"] = state["features.12.expand3x3.weight"][:, :, :1, :1].clone()
    elif case == "extra_key":
        state["extra.weight"] = torch.zeros(1)
    elif case == "float64":
        x = x.astype(np.float64)
    elif case == "ndim3":
        x = x[0]
    elif case == "channels":
        x = x[:1, :1]
    elif case == "too_small":
        x = x[:, :, :2, :2].copy()
    elif case == "device":
        extra = ["--device", "99"]
    torch.save(state, tmp_path / "w.pt")
    if case == "not_weights":
        (tmp_path / "w.pt").write_text("not a pickle")
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "y.npy"
    r = hpc("infer", "--model", "squeezenet1_1", "--weights", tmp_path / "w.pt", "--input", tmp_path / "x.npy",
            "--output", out, *extra)
    assert r.returncode == 2
    assert r.stderr.startswith("hpc infer: error: ")
    import re
    assert re.search(message, r.stderr), r.stderr
    assert not out.exists()


def test_kernel_source_for_aoc_is_written_per_style(tmp_path, capsys) -> None:
    from hpc.inference.opencl.__main__ import main
    out = tmp_path / "st.cl"
    assert main(["source", "--style", "single-task", "--output", str(out)]) == 0
    text = out.read_text()
    assert "#define SINGLE_TASK __attribute__((max_global_work_dim(0)))" in text
    for kernel in ("conv2d", "conv2d_3x3", "conv2d_1x1", "linear", "maxpool2d", "avgpool2d", "avgpool_global"):
        assert f"__kernel void {kernel}(" in text
    assert main(["devices"]) == 0 and capsys.readouterr().out.startswith("0: ")
