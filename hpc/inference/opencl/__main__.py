"""``python -m hpc.inference.opencl``: list OpenCL devices, or write a style's kernel source
(the file to give the Intel FPGA SDK's ``aoc``; see docs/inference-opencl.md).

    python -m hpc.inference.opencl devices
    python -m hpc.inference.opencl source --style single-task --output squeezenet_st.cl
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from hpc.inference.opencl.program import STYLES, kernel_source
    parser = argparse.ArgumentParser(prog="python -m hpc.inference.opencl", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("devices", help="list OpenCL devices with the indices --device takes")
    p = sub.add_parser("source", help="write the full OpenCL C source of one kernel style")
    p.add_argument("--style", choices=list(STYLES), required=True)
    p.add_argument("--output", default="-", help="file (default: standard output)")
    args = parser.parse_args(argv)
    if args.action == "devices":
        from hpc.inference.opencl.device import DeviceSelectionError, list_devices, type_name
        try:
            devices = list_devices()
        except DeviceSelectionError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        for i, d in enumerate(devices):
            print(f"{i}: {d.name.strip()} | platform {d.platform.name.strip()} | type {type_name(d)}")
        return 0
    text = kernel_source(args.style)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        from hpc.atomic import atomic_write_text
        atomic_write_text(args.output, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
