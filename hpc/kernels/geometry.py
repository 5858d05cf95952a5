"""Pure pooling geometry, shared by every backend and by the MPI decomposition.

Semantics follow ``torch.nn.functional.max_pool2d``: implicit padding of ``padding`` on
each side, ``ceil_mode`` may add one more output, but a window must start inside the
input or the left padding (torch drops a last window that starts in the right padding).
"""
from __future__ import annotations

from dataclasses import dataclass


def _pair(value: int | tuple[int, int] | list[int], name: str) -> tuple[int, int]:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int or a pair of ints, got bool")
    if isinstance(value, int):
        return (value, value)
    try:
        a, b = value  # type: ignore[misc]
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}") from None
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (a, b)):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    return (int(a), int(b))


def pooled_length(size: int, kernel: int, stride: int, padding: int, ceil_mode: bool) -> int:
    """Output length along one axis (torch's ``pooling_output_shape`` with dilation 1)."""
    span = size + 2 * padding - kernel
    if ceil_mode:
        out = -(-span // stride) + 1
        if (out - 1) * stride >= size + padding:
            out -= 1
    else:
        out = span // stride + 1
    return out


@dataclass(frozen=True)
class PoolGeometry:
    """Validated pooling parameters for one (H, W) plane."""

    in_h: int
    in_w: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    ceil_mode: bool
    out_h: int
    out_w: int

    def input_rows_for(self, out_row_start: int, out_row_stop: int) -> tuple[int, int]:
        """Half-open range of *input* rows (clipped to the image) that output rows
        ``[out_row_start, out_row_stop)`` read. The halo of a row block."""
        if out_row_stop <= out_row_start:
            return (0, 0)
        first = out_row_start * self.stride[0] - self.padding[0]
        last = (out_row_stop - 1) * self.stride[0] - self.padding[0] + self.kernel[0]
        return (max(first, 0), min(last, self.in_h))


def pool_geometry(in_h: int, in_w: int, kernel_size: int | tuple[int, int],
                  stride: int | tuple[int, int] | None = None,
                  padding: int | tuple[int, int] = 0, ceil_mode: bool = False) -> PoolGeometry:
    """Validate pooling parameters the way torch does and compute the output size.

    Raises ``ValueError`` naming the offending parameter.
    """
    k = _pair(kernel_size, "kernel_size")
    s = k if stride is None or stride == [] or stride == () else _pair(stride, "stride")
    p = _pair(padding, "padding")
    if min(k) <= 0:
        raise ValueError(f"kernel_size must be greater than zero, got {k}")
    if min(s) <= 0:
        raise ValueError(f"stride must be greater than zero, got {s}")
    if min(p) < 0:
        raise ValueError(f"padding must be non-negative, got {p}")
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ValueError(f"padding should be at most half of effective kernel size, "
                         f"got padding={p} for kernel_size={k}")
    out_h = pooled_length(in_h, k[0], s[0], p[0], ceil_mode)
    out_w = pooled_length(in_w, k[1], s[1], p[1], ceil_mode)
    if out_h <= 0 or out_w <= 0:
        raise ValueError(f"kernel_size={k} is larger than the padded input "
                         f"({in_h}+2*{p[0]}, {in_w}+2*{p[1]}): output size would be {out_h}x{out_w}")
    return PoolGeometry(in_h, in_w, k, s, p, bool(ceil_mode), out_h, out_w)
