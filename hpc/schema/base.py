"""Building blocks shared by every record kind's schema.

Why pydantic: the models are the single place a field's name, type and unit live; they
validate at write time (a producer that writes a wrong field fails loudly in its own tests),
and they export JSON Schema for users who read the JSONL files from other tools.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    """Base of every params/metrics model: unknown fields are errors, not silently kept."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Device(Strict):
    """The device a measurement actually ran on, set by the code that launched the work.

    The report classifies rows by this field only, never by parsing names or strings.
    """

    kind: Literal["cpu", "cuda", "opencl"] = Field(description="which runtime executed the work")
    name: str = Field(description="device name as the runtime reports it (CPU model, GPU name)")
    opencl_type: Literal["cpu", "gpu", "accelerator", "other"] | None = Field(
        default=None, description="OpenCL CL_DEVICE_TYPE, only for kind=opencl")
    opencl_platform: str | None = Field(default=None, description="OpenCL platform name")
    index: int | None = Field(default=None, description="CUDA device ordinal in this process")
    uuid: str | None = Field(default=None, description="CUDA device UUID")
    emulated: bool = Field(default=False, description=(
        "an FPGA/GPU-style kernel run on a device of another class (e.g. FPGA-style OpenCL on "
        "a CPU); never to be presented as that class's time"))


class KindSchema(BaseModel):
    """The params and metrics models of one record kind."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    params: type[Strict]
    metrics: type[Strict]
    description: str = ""
