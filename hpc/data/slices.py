"""Pure functions from a canonical (RAS) 3-D volume to normalised 2-D network inputs.

Image orientation (all axes): the slice plane keeps the two remaining volume axes (u, v)
in RAS order; the 2-D image is ``plane.T[::-1]``, so columns run along u (left -> right,
posterior -> anterior) and rows run along v from high to low (anterior / superior at the
top), the usual neurological display. Hence voxel (i, j, k) of an axial slice k is pixel
(row = Y - 1 - j, col = i) before resizing.
"""
from __future__ import annotations

from typing import Literal

import numpy as np
from PIL import Image

SliceAxis = Literal["sagittal", "coronal", "axial"]
Normalization = Literal["zscore", "minmax", "percentile", "none"]
AXES: dict[str, int] = {"sagittal": 0, "coronal": 1, "axial": 2}
NORMALIZATIONS: tuple[str, ...] = ("zscore", "minmax", "percentile", "none")


def axis_number(axis: str) -> int:
    try:
        return AXES[axis]
    except KeyError:
        raise ValueError(f"slice_axis={axis!r}: expected one of {sorted(AXES)}") from None


def slice_image(volume: np.ndarray, axis: str, index: int) -> np.ndarray:
    """Slice ``index`` along ``axis`` of a 3-D RAS volume as a display-oriented 2-D image."""
    if volume.ndim != 3:
        raise ValueError(f"volume must be 3-D, got shape {volume.shape}")
    plane = np.take(volume, index, axis=axis_number(axis))
    return np.ascontiguousarray(plane.T[::-1, :])


def voxel_to_pixel(voxel: tuple[int, int, int], shape: tuple[int, int, int],
                   axis: str) -> tuple[int, tuple[int, int]]:
    """(slice index, (row, col)) of a voxel in the unresized slice image; inverse of slice_image."""
    ax = axis_number(axis)
    u_axis, v_axis = [a for a in range(3) if a != ax]
    return voxel[ax], (shape[v_axis] - 1 - voxel[v_axis], voxel[u_axis])


def nonempty_slice_indices(volume: np.ndarray, axis: str, foreground_threshold: float,
                           min_foreground_fraction: float) -> list[int]:
    """Indices of slices worth keeping.

    A voxel is foreground when ``|value| > foreground_threshold * max|volume|`` (relative, so
    the rule means the same for uint8 templates and t-maps); a slice is kept when its
    foreground fraction is at least ``min_foreground_fraction``. Both 0 keeps every slice
    with any non-zero voxel.
    """
    if not 0.0 <= foreground_threshold < 1.0:
        raise ValueError(f"foreground_threshold={foreground_threshold}: expected 0 <= t < 1")
    if not 0.0 <= min_foreground_fraction <= 1.0:
        raise ValueError(f"min_foreground_fraction={min_foreground_fraction}: expected 0..1")
    magnitude = np.abs(volume)
    peak = float(magnitude.max()) if magnitude.size else 0.0
    if peak == 0.0:
        return []
    foreground = magnitude > foreground_threshold * peak
    ax = axis_number(axis)
    other = tuple(a for a in range(3) if a != ax)
    fraction = foreground.mean(axis=other)
    keep = (fraction >= min_foreground_fraction) & foreground.any(axis=other)
    return [int(i) for i in np.flatnonzero(keep)]


def normalize(image: np.ndarray, method: str, percentiles: tuple[float, float] = (1.0, 99.0)) -> np.ndarray:
    """Per-slice intensity normalisation, float32 out.

    zscore: mean 0, std 1 (a constant slice becomes all zeros); minmax: [0, 1];
    percentile: clip to the given percentiles, then [0, 1]; none: unchanged.
    """
    x = image.astype(np.float32, copy=True)
    if method == "none":
        return x
    if method == "zscore":
        std = float(x.std())
        return (x - np.float32(x.mean())) / np.float32(std) if std > 0 else np.zeros_like(x)
    if method == "percentile":
        lo_p, hi_p = percentiles
        if not 0.0 <= lo_p < hi_p <= 100.0:
            raise ValueError(f"percentiles={percentiles}: expected 0 <= low < high <= 100")
        lo, hi = np.percentile(x, [lo_p, hi_p])
        x = np.clip(x, lo, hi)
    elif method != "minmax":
        raise ValueError(f"normalization={method!r}: expected one of {NORMALIZATIONS}")
    lo, hi = float(x.min()), float(x.max())
    return (x - np.float32(lo)) / np.float32(hi - lo) if hi > lo else np.zeros_like(x)


def pad_to_square(image: np.ndarray, fill: float = 0.0) -> np.ndarray:
    """Centre the image on a square canvas of its larger side (extra pixel goes bottom/right)."""
    h, w = image.shape
    side = max(h, w)
    top, left = (side - h) // 2, (side - w) // 2
    out = np.full((side, side), fill, dtype=np.float32)
    out[top:top + h, left:left + w] = image
    return out


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """Resize to size x size with Pillow's antialiased bilinear filter (float32 'F' mode).

    Antialiasing matters here: 109 -> 32 pixels with plain interpolation would alias.
    """
    if size < 1:
        raise ValueError(f"image_size={size}: expected a positive integer")
    if image.shape == (size, size):
        return image.astype(np.float32, copy=True)
    pil = Image.fromarray(np.ascontiguousarray(image, dtype=np.float32))
    return np.asarray(pil.resize((size, size), resample=Image.Resampling.BILINEAR), dtype=np.float32)


def prepare_slice(image: np.ndarray, *, image_size: int | None, keep_aspect: bool,
                  normalization: str, percentiles: tuple[float, float]) -> np.ndarray:
    """Pad (if keeping aspect), resize, then normalise, so the final pixels have the stated stats."""
    x = image.astype(np.float32, copy=False)
    if image_size is not None:
        if keep_aspect:
            x = pad_to_square(x)
        x = resize(x, image_size)
    return normalize(x, normalization, percentiles)
