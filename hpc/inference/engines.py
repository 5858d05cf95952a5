"""The two inference engines ``hpc infer`` can run: torch (the golden model) and OpenCL.

Both take a float32 NCHW batch and return float32 scores, and say which device ran.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from hpc.schema.base import Device

BACKENDS: tuple[str, ...] = ("opencl", "torch")


class Engine(Protocol):
    device: Device

    def forward(self, x: np.ndarray) -> np.ndarray: ...


class TorchEngine:
    """``model(x)`` under ``torch.no_grad`` on the CPU (or a CUDA device)."""

    def __init__(self, model: nn.Module, device: str = "cpu") -> None:
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError("torch backend on cuda requested, but no CUDA device is available")
        self.torch_device = torch.device(device)
        self.model = model.to(self.torch_device).eval()
        if self.torch_device.type == "cuda":
            self.device = Device(kind="cuda", name=torch.cuda.get_device_name(self.torch_device),
                                 index=self.torch_device.index or 0)
        else:
            from hpc.provenance import cpu_model
            self.device = Device(kind="cpu", name=cpu_model())

    def forward(self, x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            y = self.model(torch.from_numpy(np.ascontiguousarray(x)).to(self.torch_device))
        if self.torch_device.type == "cuda":
            torch.cuda.synchronize()
        return y.cpu().numpy().astype(np.float32, copy=False)


def make_engine(backend: str, model: nn.Module, style: str = "tiled", device_index: int | None = None,
                two_queues: bool = False, binary: str | Path | None = None) -> Any:
    if backend == "torch":
        return TorchEngine(model)
    if backend == "opencl":
        from hpc.inference.opencl import OpenCLEngine
        return OpenCLEngine(model, style=style, device_index=device_index, two_queues=two_queues,
                            binary=binary)
    raise ValueError(f"--backend {backend!r}: expected one of {', '.join(BACKENDS)}")
