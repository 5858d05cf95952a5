"""2-D convolution computed directly on clustered weights (``out += in * codebook[index]``).

The study (002, chapter 8) wrote these loops in C++ with OpenMP; here they are numba
kernels (``parallel=True``, ``fastmath=True`` so reductions may be reassociated and
vectorised, as the study's ``-funsafe-math-optimizations``). One image (batch 1, as in the
study), NCHW without the N, *hard* padding: the caller passes the input already padded
(:func:`pad_input`), so no bounds check sits in the inner loop (the study's finding 2).

Variants (``VARIANTS``), each also in a dense form (float weights, no codebook) where the
study compared one, so "cluster vs normal" can be measured under identical loops:

* ``vanilla``   - loops Cout (parallel) > Cin > Ho > Wo > Kh > Kw, codebook lookup in the
  innermost statement (Alg. 10);
* ``reordered`` - layouts Out[Ho][Wo][Cout], Index[Kh][Kw][Cin][Cout]; loops Ho (parallel) >
  Kh > Kw > Cin > Wo > Cout innermost, independent iterations over Cout (Alg. 11);
* ``blocked``   - the reordered loops tiled in Cout, Cin and Wo blocks (Alg. 14); the
  innermost loop runs over 1-D row views of the output and weight blocks (with 3-D indexing
  and block bounds LLVM did not vectorise it: 7x slower in a first version);
* ``grouped``   - cluster only: for each output channel and centroid c, first *sum* the input
  planes whose weight index is c, then multiply the summed plane by ``codebook[c]`` once (the
  study's Eq. 8.5 factorisation: at most 2**bits multiplies per output element instead of
  Cin*Kh*Kw). The per-channel index lists are built once by :func:`group_offsets` (setup,
  like the study's "configuration" time, not part of the timed call).

References for correctness and speed: :func:`im2col_gemm` (NumPy im2col + BLAS GEMM on the
decoded weights) and ``torch.nn.functional.conv2d`` (see ``conv_bench``).
"""
from __future__ import annotations

import numba
import numpy as np
from numba import prange

VARIANTS: tuple[str, ...] = ("vanilla", "reordered", "blocked", "grouped")


def out_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def pad_input(x: np.ndarray, padding: int) -> np.ndarray:
    """Hard padding: zeros around H and W of a (C, H, W) float32 image."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if padding == 0:
        return x
    return np.pad(x, ((0, 0), (padding, padding), (padding, padding)))


# --------------------------------------------------------------------------- vanilla

@numba.njit(parallel=True, fastmath=True, cache=True)
def _vanilla_cluster(xp, idx, cb, stride, ho, wo):  # pragma: no cover - numba
    cout, cin, kh, kw = idx.shape
    out = np.zeros((cout, ho, wo), dtype=np.float32)
    for j in prange(cout):
        for i in range(cin):
            for k in range(ho):
                for l in range(wo):
                    acc = out[j, k, l]
                    for m in range(kh):
                        for n in range(kw):
                            acc += xp[i, stride * k + m, stride * l + n] * cb[idx[j, i, m, n]]
                    out[j, k, l] = acc
    return out


@numba.njit(parallel=True, fastmath=True, cache=True)
def _vanilla_dense(xp, w, stride, ho, wo):  # pragma: no cover - numba
    cout, cin, kh, kw = w.shape
    out = np.zeros((cout, ho, wo), dtype=np.float32)
    for j in prange(cout):
        for i in range(cin):
            for k in range(ho):
                for l in range(wo):
                    acc = out[j, k, l]
                    for m in range(kh):
                        for n in range(kw):
                            acc += xp[i, stride * k + m, stride * l + n] * w[j, i, m, n]
                    out[j, k, l] = acc
    return out


# --------------------------------------------------------------------------- reordered

@numba.njit(parallel=True, fastmath=True, cache=True)
def _reordered_cluster(xp, idx_r, cb, stride, ho, wo):  # pragma: no cover - numba
    kh, kw, cin, cout = idx_r.shape
    out = np.zeros((ho, wo, cout), dtype=np.float32)
    for k in prange(ho):
        for m in range(kh):
            for n in range(kw):
                for i in range(cin):
                    for l in range(wo):
                        v = xp[i, stride * k + m, stride * l + n]
                        for j in range(cout):
                            out[k, l, j] += v * cb[idx_r[m, n, i, j]]
    return out


@numba.njit(parallel=True, fastmath=True, cache=True)
def _reordered_dense(xp, w_r, stride, ho, wo):  # pragma: no cover - numba
    kh, kw, cin, cout = w_r.shape
    out = np.zeros((ho, wo, cout), dtype=np.float32)
    for k in prange(ho):
        for m in range(kh):
            for n in range(kw):
                for i in range(cin):
                    for l in range(wo):
                        v = xp[i, stride * k + m, stride * l + n]
                        for j in range(cout):
                            out[k, l, j] += v * w_r[m, n, i, j]
    return out


# --------------------------------------------------------------------------- blocked

@numba.njit(parallel=True, fastmath=True, cache=True)
def _blocked_cluster(xp, idx_r, cb, stride, ho, wo, bco, bci, bwo):  # pragma: no cover - numba
    kh, kw, cin, cout = idx_r.shape
    out = np.zeros((ho, wo, cout), dtype=np.float32)
    for k in prange(ho):
        for j0 in range(0, cout, bco):
            j1 = min(j0 + bco, cout)
            for i0 in range(0, cin, bci):
                i1 = min(i0 + bci, cin)
                for l0 in range(0, wo, bwo):
                    l1 = min(l0 + bwo, wo)
                    for m in range(kh):
                        for n in range(kw):
                            for i in range(i0, i1):
                                irow = idx_r[m, n, i, j0:j1]
                                for l in range(l0, l1):
                                    v = xp[i, stride * k + m, stride * l + n]
                                    orow = out[k, l, j0:j1]
                                    for j in range(j1 - j0):
                                        orow[j] += v * cb[irow[j]]
    return out


@numba.njit(parallel=True, fastmath=True, cache=True)
def _blocked_dense(xp, w_r, stride, ho, wo, bco, bci, bwo):  # pragma: no cover - numba
    kh, kw, cin, cout = w_r.shape
    out = np.zeros((ho, wo, cout), dtype=np.float32)
    for k in prange(ho):
        for j0 in range(0, cout, bco):
            j1 = min(j0 + bco, cout)
            for i0 in range(0, cin, bci):
                i1 = min(i0 + bci, cin)
                for l0 in range(0, wo, bwo):
                    l1 = min(l0 + bwo, wo)
                    for m in range(kh):
                        for n in range(kw):
                            for i in range(i0, i1):
                                wrow = w_r[m, n, i, j0:j1]
                                for l in range(l0, l1):
                                    v = xp[i, stride * k + m, stride * l + n]
                                    orow = out[k, l, j0:j1]
                                    for j in range(j1 - j0):
                                        orow[j] += v * wrow[j]
    return out


# --------------------------------------------------------------------------- grouped by index

def group_offsets(idx: np.ndarray, k: int, hp: int, wp: int) -> tuple[np.ndarray, np.ndarray]:
    """Per output channel, the input offsets (into the flattened padded input) grouped by index.

    Returns ``offsets`` (Cout, Cin*Kh*Kw) int64, sorted by index within each row, and ``ptr``
    (Cout, k+1): the offsets of centroid c for channel j are ``offsets[j, ptr[j,c]:ptr[j,c+1]]``.
    """
    cout, cin, kh, kw = idx.shape
    i, m, n = np.meshgrid(np.arange(cin), np.arange(kh), np.arange(kw), indexing="ij")
    base = (i * hp * wp + m * wp + n).ravel().astype(np.int64)
    flat = idx.reshape(cout, -1)
    order = np.argsort(flat, axis=1, kind="stable")
    offsets = np.ascontiguousarray(base[order])
    counts = np.stack([np.bincount(row, minlength=k) for row in flat])
    ptr = np.zeros((cout, k + 1), dtype=np.int64)
    ptr[:, 1:] = np.cumsum(counts, axis=1)
    return offsets, ptr


@numba.njit(parallel=True, fastmath=True, cache=True)
def _grouped_cluster(xflat, offsets, ptr, cb, stride, wp, ho, wo):  # pragma: no cover - numba
    cout = offsets.shape[0]
    k = cb.shape[0]
    out = np.zeros((cout, ho, wo), dtype=np.float32)
    for j in prange(cout):
        plane = np.empty((ho, wo), dtype=np.float32)
        for c in range(k):
            p0, p1 = ptr[j, c], ptr[j, c + 1]
            if p0 == p1:
                continue
            plane[:, :] = 0.0
            for p in range(p0, p1):
                off = offsets[j, p]
                for r in range(ho):
                    row = off + stride * r * wp
                    for l in range(wo):
                        plane[r, l] += xflat[row + stride * l]
            w = cb[c]
            for r in range(ho):
                for l in range(wo):
                    out[j, r, l] += w * plane[r, l]
    return out


# --------------------------------------------------------------------------- public API

class ClusteredConv:
    """One clustered conv layer prepared for every variant (layouts and index lists built once).

    ``indices``: (Cout, Cin, Kh, Kw) uint8 codebook indices; ``codebook``: float32 (k,).
    ``run(variant, xp)`` takes the *padded* input (see :func:`pad_input`) and returns the
    output as (Cout, Ho, Wo) float32; ``dense=True`` runs the same loops on decoded weights.
    """

    def __init__(self, indices: np.ndarray, codebook: np.ndarray, stride: int, padding: int,
                 in_hw: tuple[int, int], blocks: tuple[int, int, int] = (64, 32, 16)) -> None:
        self.idx = np.ascontiguousarray(indices, dtype=np.uint8)
        self.cb = np.ascontiguousarray(codebook, dtype=np.float32)
        if self.idx.ndim != 4:
            raise ValueError(f"indices shape {self.idx.shape}: expected (Cout, Cin, Kh, Kw)")
        if self.idx.size and int(self.idx.max()) >= self.cb.size:
            raise ValueError(f"index {int(self.idx.max())} outside the codebook of {self.cb.size}")
        self.stride, self.padding = int(stride), int(padding)
        cout, cin, kh, kw = self.idx.shape
        self.hp, self.wp = in_hw[0] + 2 * padding, in_hw[1] + 2 * padding
        self.ho = out_size(in_hw[0], kh, stride, padding)
        self.wo = out_size(in_hw[1], kw, stride, padding)
        if self.ho < 1 or self.wo < 1:
            raise ValueError(f"input {in_hw} too small for kernel {kh}x{kw} pad {padding}")
        self.blocks = blocks
        self.weights = self.cb[self.idx]                        # decoded (Cout, Cin, Kh, Kw)
        self.idx_r = np.ascontiguousarray(self.idx.transpose(2, 3, 1, 0))
        self.w_r = np.ascontiguousarray(self.weights.transpose(2, 3, 1, 0))
        self.offsets, self.ptr = group_offsets(self.idx, self.cb.size, self.hp, self.wp)

    def flops(self) -> int:
        """2 * Ho * Wo * Cout * Cin * Kh * Kw (the study's Eq. 8.8)."""
        cout, cin, kh, kw = self.idx.shape
        return 2 * self.ho * self.wo * cout * cin * kh * kw

    def run(self, variant: str, xp: np.ndarray, dense: bool = False) -> np.ndarray:
        s, ho, wo = self.stride, self.ho, self.wo
        if xp.shape[1:] != (self.hp, self.wp):
            raise ValueError(f"padded input {xp.shape}: expected (Cin, {self.hp}, {self.wp})")
        if variant == "vanilla":
            return (_vanilla_dense(xp, self.weights, s, ho, wo) if dense
                    else _vanilla_cluster(xp, self.idx, self.cb, s, ho, wo))
        if variant == "reordered":
            out = (_reordered_dense(xp, self.w_r, s, ho, wo) if dense
                   else _reordered_cluster(xp, self.idx_r, self.cb, s, ho, wo))
            return out.transpose(2, 0, 1)
        if variant == "blocked":
            b = self.blocks
            out = (_blocked_dense(xp, self.w_r, s, ho, wo, *b) if dense
                   else _blocked_cluster(xp, self.idx_r, self.cb, s, ho, wo, *b))
            return out.transpose(2, 0, 1)
        if variant == "grouped":
            if dense:
                raise ValueError("variant 'grouped' exists only for clustered weights")
            return _grouped_cluster(xp.ravel(), self.offsets, self.ptr, self.cb, s, self.wp, ho, wo)
        raise ValueError(f"variant={variant!r}: expected one of {VARIANTS}")


def im2col(xp: np.ndarray, kh: int, kw: int, stride: int) -> np.ndarray:
    """(Cin*Kh*Kw, Ho*Wo) column matrix of a padded (Cin, Hp, Wp) image."""
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(1, 2))[:, ::stride, ::stride]
    cin, ho, wo = win.shape[:3]
    return np.ascontiguousarray(win.transpose(0, 3, 4, 1, 2)).reshape(cin * kh * kw, ho * wo)


def im2col_gemm(xp: np.ndarray, weights: np.ndarray, stride: int) -> np.ndarray:
    """Dense convolution as im2col + one BLAS GEMM (NumPy ``@``), output (Cout, Ho, Wo)."""
    cout, cin, kh, kw = weights.shape
    cols = im2col(xp, kh, kw, stride)
    ho = (xp.shape[1] - kh) // stride + 1
    wo = (xp.shape[2] - kw) // stride + 1
    return (weights.reshape(cout, -1) @ cols).reshape(cout, ho, wo)
