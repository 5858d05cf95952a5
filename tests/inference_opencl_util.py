"""Shared by the OpenCL inference tests: skip without an OpenCL device, the tolerance."""
from __future__ import annotations

import pytest

RTOL = 1e-4
ATOL = 1e-4


def opencl_device_or_skip() -> None:
    try:
        from hpc.inference.opencl import list_devices
        if not list_devices():
            pytest.skip("no OpenCL device (install pocl-opencl-icd)")
    except Exception as exc:  # no ICD loader / platform
        pytest.skip(f"no OpenCL platform: {exc}")
