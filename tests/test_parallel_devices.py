"""Device specs per rank (pure parsing; the MPI side is exercised in test_parallel_mpi)."""
from __future__ import annotations

import pytest

from hpc.parallel.devices import DeviceError, parse_devices


@pytest.mark.parametrize("spec, ranks, expected", [
    ("cpu", 3, ["cpu", "cpu", "cpu"]),
    ("cpu,cpu,opencl", 3, ["cpu", "cpu", "opencl"]),
    ("cuda:2,cpu:*", 5, ["cuda", "cuda", "cpu", "cpu", "cpu"]),
    ("opencl:1, cpu:*", 1, ["opencl"]),
    ("cpu:*,cuda:1", 3, ["cpu", "cpu", "cuda"]),
    ("CPU", 2, ["cpu", "cpu"]),
])
def test_parse_devices(spec, ranks, expected):
    assert parse_devices(spec, ranks) == expected


@pytest.mark.parametrize("spec, ranks, message", [
    ("tpu", 2, "unknown device 'tpu'"),
    ("cpu,cuda", 3, "names 2 ranks but the job has 3"),
    ("cuda:4,cpu:*", 2, "names 4 ranks but the job has 2"),
    ("cpu:*,cuda:*", 2, "at most one"),
    ("cpu:0", 2, "bad count"),
    ("", 1, "empty"),
])
def test_parse_devices_errors(spec, ranks, message):
    with pytest.raises(DeviceError, match=message):
        parse_devices(spec, ranks)
