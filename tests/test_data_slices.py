"""Pure slice maths of hpc.data.slices: orientation, empty-slice filter, normalisation, resize."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hpc.data.slices import (nonempty_slice_indices, normalize, pad_to_square, prepare_slice,
                             resize, slice_image, voxel_to_pixel)


def test_axial_slice_puts_anterior_at_top_and_right_at_right() -> None:
    vol = np.zeros((5, 7, 3), dtype=np.float32)
    vol[4, 6, 1] = 1.0  # most right, most anterior voxel of axial slice 1
    img = slice_image(vol, "axial", 1)
    assert img.shape == (7, 5)
    assert img[0, 4] == 1.0 and img.sum() == 1.0


@settings(max_examples=60, deadline=None)
@given(shape=st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 6)),
       axis=st.sampled_from(["axial", "coronal", "sagittal"]), data=st.data())
def test_voxel_to_pixel_inverts_slice_image(shape: tuple[int, int, int], axis: str, data) -> None:
    voxel = tuple(data.draw(st.integers(0, n - 1)) for n in shape)
    vol = np.zeros(shape, dtype=np.float32)
    vol[voxel] = 7.0
    index, (row, col) = voxel_to_pixel(voxel, shape, axis)
    img = slice_image(vol, axis, index)
    assert img[row, col] == 7.0 and img.sum() == 7.0


def test_unknown_axis_names_the_parameter() -> None:
    with pytest.raises(ValueError, match="slice_axis='transverse'"):
        slice_image(np.zeros((2, 2, 2)), "transverse", 0)


def test_empty_slice_filter_uses_fraction_of_volume_peak() -> None:
    vol = np.zeros((10, 10, 4), dtype=np.float32)
    vol[:, :, 1] = 100.0          # full slice
    vol[0:2, 0:5, 2] = 100.0      # 10 % of the slice
    vol[:, :, 3] = 1.0            # faint everywhere: 1 % of peak
    assert nonempty_slice_indices(vol, "axial", 0.0, 0.0) == [1, 2, 3]
    assert nonempty_slice_indices(vol, "axial", 0.05, 0.0) == [1, 2]
    assert nonempty_slice_indices(vol, "axial", 0.05, 0.2) == [1]


def test_empty_slice_filter_counts_negative_values_as_foreground() -> None:
    vol = np.zeros((4, 4, 2), dtype=np.float32)
    vol[:, :, 0] = -3.0  # a t-map's deactivation is signal too
    assert nonempty_slice_indices(vol, "axial", 0.5, 0.5) == [0]


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 40), st.integers(2, 40), st.integers(0, 2**31 - 1))
def test_zscore_gives_zero_mean_unit_std(h: int, w: int, seed: int) -> None:
    x = np.random.default_rng(seed).normal(50, 10, (h, w)).astype(np.float32)
    z = normalize(x, "zscore")
    assert z.dtype == np.float32
    assert abs(float(z.mean())) < 1e-4 and abs(float(z.std()) - 1.0) < 1e-3


def test_minmax_and_percentile_map_to_unit_interval() -> None:
    x = np.arange(101, dtype=np.float32).reshape(1, 101)
    x[0, -1] = 1e6  # one outlier
    mm = normalize(x, "minmax")
    assert mm.min() == 0.0 and mm.max() == 1.0
    pc = normalize(x, "percentile", (0.0, 99.0))
    assert pc.min() == 0.0 and pc.max() == 1.0
    assert pc[0, 50] == pytest.approx(50 / 99, abs=1e-3)  # outlier no longer squashes the range


def test_constant_slice_normalises_to_zeros_not_nan() -> None:
    for method in ("zscore", "minmax", "percentile"):
        out = normalize(np.full((4, 4), 3.0, dtype=np.float32), method)
        assert np.array_equal(out, np.zeros((4, 4), dtype=np.float32))


def test_pad_to_square_centres_the_image() -> None:
    img = np.ones((3, 5), dtype=np.float32)
    out = pad_to_square(img)
    assert out.shape == (5, 5)
    assert out[1:4].sum() == 15 and out[0].sum() == 0 and out[4].sum() == 0


def test_resize_preserves_mean_of_smooth_image_and_antialiases() -> None:
    yy, xx = np.mgrid[0:128, 0:128]
    smooth = (xx + yy).astype(np.float32)
    assert resize(smooth, 32).mean() == pytest.approx(smooth.mean(), rel=0.02)
    checker = ((xx + yy) % 2).astype(np.float32)   # Nyquist pattern: must average out, not alias
    small = resize(checker, 32)
    assert small.shape == (32, 32)
    assert np.abs(small - 0.5).max() < 0.1


@pytest.mark.parametrize("size", [32, 64, 128])
def test_prepare_slice_output_shape_and_stats(size: int) -> None:
    img = np.random.default_rng(0).random((109, 91)).astype(np.float32)
    out = prepare_slice(img, image_size=size, keep_aspect=True, normalization="zscore",
                        percentiles=(1, 99))
    assert out.shape == (size, size) and out.dtype == np.float32
    assert abs(float(out.mean())) < 1e-4
