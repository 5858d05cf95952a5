"""Layer geometry and kernel launch shapes (pure functions, no OpenCL).

Output sizes follow torch: ``floor((in + 2p - k) / s) + 1``; with ``ceil_mode`` the division
rounds up, but a last window that would start in the right padding is dropped.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FILTER_BLOCK = 8   # filters per work-item in the tiled style (float8 accumulator)


def conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def pool_out(size: int, kernel: int, stride: int, padding: int, ceil_mode: bool) -> int:
    if not ceil_mode:
        return conv_out(size, kernel, stride, padding)
    out = -(-(size + 2 * padding - kernel) // stride) + 1
    if (out - 1) * stride >= size + padding:
        out -= 1
    return out


@dataclass(frozen=True)
class ConvGeom:
    """One convolution on an (n, cin, h, w) input writing channels [coff, coff+cout) of an
    output with ``ctot`` channels."""

    n: int
    cin: int
    h: int
    w: int
    cout: int
    kh: int
    kw: int
    sh: int = 1
    sw: int = 1
    ph: int = 0
    pw: int = 0
    ctot: int = 0      # 0: same as cout
    coff: int = 0

    @property
    def out_channels(self) -> int:
        return self.ctot or self.cout

    @property
    def ho(self) -> int:
        return conv_out(self.h, self.kh, self.sh, self.ph)

    @property
    def wo(self) -> int:
        return conv_out(self.w, self.kw, self.sw, self.pw)

    @property
    def variant(self) -> str:
        """Which kernel specialisation applies: 1x1 (stride 1, no padding), 3x3, or generic."""
        if (self.kh, self.kw, self.sh, self.sw, self.ph, self.pw) == (1, 1, 1, 1, 0, 0):
            return "1x1"
        if (self.kh, self.kw) == (3, 3):
            return "3x3"
        return "generic"

    @property
    def macs(self) -> int:
        return self.n * self.cout * self.ho * self.wo * self.cin * self.kh * self.kw

    def check(self) -> None:
        if min(self.n, self.cin, self.h, self.w, self.cout, self.kh, self.kw, self.sh, self.sw) < 1:
            raise ValueError(f"{self}: sizes, kernel and stride must be >= 1")
        if min(self.ph, self.pw, self.coff) < 0:
            raise ValueError(f"{self}: padding and channel offset must be >= 0")
        if self.ho < 1 or self.wo < 1:
            raise ValueError(f"{self}: input {self.h}x{self.w} too small for a "
                             f"{self.kh}x{self.kw} kernel with padding ({self.ph}, {self.pw})")
        if self.coff + self.cout > self.out_channels:
            raise ValueError(f"{self}: channels [{self.coff}, {self.coff + self.cout}) do not fit "
                             f"in an output of {self.out_channels} channels")


@dataclass(frozen=True)
class PoolGeom:
    """Pooling of ``nc`` planes (batch x channels) of h x w."""

    nc: int
    h: int
    w: int
    kh: int
    kw: int
    sh: int
    sw: int
    ph: int = 0
    pw: int = 0
    ceil_mode: bool = False

    @property
    def ho(self) -> int:
        return pool_out(self.h, self.kh, self.sh, self.ph, self.ceil_mode)

    @property
    def wo(self) -> int:
        return pool_out(self.w, self.kw, self.sw, self.pw, self.ceil_mode)

    def check(self) -> None:
        if min(self.nc, self.h, self.w, self.kh, self.kw, self.sh, self.sw) < 1:
            raise ValueError(f"{self}: sizes, window and stride must be >= 1")
        if not (0 <= self.ph <= self.kh // 2 and 0 <= self.pw <= self.kw // 2):
            raise ValueError(f"{self}: padding must be between 0 and half the window (torch's rule)")
        if self.ho < 1 or self.wo < 1:
            raise ValueError(f"{self}: input {self.h}x{self.w} too small for a {self.kh}x{self.kw} window")


@dataclass(frozen=True)
class LaunchSpec:
    """A kernel, its global size and its leading scalar arguments (buffers follow)."""

    kernel: str
    global_size: tuple[int, ...]
    scalars: tuple[int, ...]
    float_scalars: tuple[float, ...] = ()   # passed as float after the int scalars


def _i32(*values: int) -> tuple[int, ...]:
    return tuple(int(v) for v in values)


def blocks(count: int) -> int:
    return -(-count // FILTER_BLOCK)


def conv_launch(style: str, g: ConvGeom, relu: bool) -> LaunchSpec:
    """Kernel and global size of a convolution in ``style`` (buffers: in, w, b, out)."""
    v = g.variant
    tail = _i32(g.out_channels, g.coff, relu)
    if v == "1x1":
        hw = g.h * g.w
        if style == "single-task":
            return LaunchSpec("conv2d_1x1", (1,), _i32(g.n, g.cin, hw, g.cout) + tail)
        if style == "ndrange":
            return LaunchSpec("conv2d_1x1", (g.n * g.cout, g.h), _i32(g.n, g.cin, g.h, g.w, g.cout) + tail)
        return LaunchSpec("conv2d_1x1", (hw, g.n * blocks(g.cout)), _i32(g.n, g.cin, hw, g.cout) + tail)
    if v == "3x3":
        name, geo = "conv2d_3x3", _i32(g.n, g.cin, g.h, g.w, g.cout, g.sh, g.sw, g.ph, g.pw, g.ho, g.wo)
    else:
        name, geo = "conv2d", _i32(g.n, g.cin, g.h, g.w, g.cout, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw,
                                   g.ho, g.wo)
    if style == "single-task":
        size: tuple[int, ...] = (1,)
    elif style == "ndrange":
        size = (g.n * g.cout, g.ho)
    else:
        size = (g.wo, g.ho, g.n * blocks(g.cout))
    return LaunchSpec(name, size, geo + tail)


def linear_launch(style: str, n: int, in_features: int, out_features: int, relu: bool) -> LaunchSpec:
    scalars = _i32(n, in_features, out_features, relu)
    if style == "single-task":
        return LaunchSpec("linear", (1,), scalars)
    if style == "ndrange":
        return LaunchSpec("linear", (n * out_features,), scalars)
    return LaunchSpec("linear", (blocks(out_features), n), scalars)


def pool_launch(style: str, op: str, g: PoolGeom, relu: bool) -> LaunchSpec:
    """``op``: maxpool2d or avgpool2d (buffers: in, out)."""
    scalars = _i32(g.nc, g.h, g.w, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.ho, g.wo, relu)
    if style == "single-task":
        size: tuple[int, ...] = (1,)
    elif style == "ndrange":
        size = (g.nc,)
    else:
        size = (g.wo, g.ho, g.nc)
    return LaunchSpec(op, size, scalars)


def global_avgpool_launch(style: str, nc: int, hw: int, relu: bool) -> LaunchSpec:
    return LaunchSpec("avgpool_global", (1,) if style == "single-task" else (nc,), _i32(nc, hw, relu))


def lrn_launch(style: str, n: int, c: int, h: int, w: int, size: int, alpha: float, beta: float, k: float,
               relu: bool) -> LaunchSpec:
    """Local response normalisation across channels (buffers: in, out)."""
    scalars = _i32(n, c, h * w, size, relu)
    floats = (float(alpha), float(beta), float(k))
    if style == "single-task":
        return LaunchSpec("lrn", (1,), scalars, floats)
    if style == "ndrange":
        return LaunchSpec("lrn", (n * c, h), scalars, floats)
    return LaunchSpec("lrn", (h * w, n * c), scalars, floats)


def device_weights(style: str, weight: np.ndarray, bias: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Weights and bias in the layout a style's kernels read: torch's (Cout, Cin, KH, KW)
    [or (Out, In)] as is, or for ``tiled`` re-blocked to (ceil(Cout/8), Cin, KH, KW, 8) with
    zero filters padding the last block, and the bias padded to a multiple of 8."""
    w = np.ascontiguousarray(weight, dtype=np.float32)
    cout = w.shape[0]
    b = (np.zeros(cout, np.float32) if bias is None
         else np.ascontiguousarray(bias, dtype=np.float32).reshape(cout))
    if style != "tiled":
        return w, b
    nb = blocks(cout)
    padded = np.zeros((nb * FILTER_BLOCK, *w.shape[1:]), np.float32)
    padded[:cout] = w
    blocked = padded.reshape(nb, FILTER_BLOCK, -1).transpose(0, 2, 1)   # (nb, Cin*KH*KW, 8)
    bpad = np.zeros(nb * FILTER_BLOCK, np.float32)
    bpad[:cout] = b
    return np.ascontiguousarray(blocked), bpad
