"""The NumPy reference backend against torch.nn.functional: this pins the semantics that
every other backend is tested against (padding, ceil_mode, NaN, count_include_pad,
divisor_override, integer max pooling)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from kernel_cases import FLOAT_DTYPES, assert_pool_close, pool_cases, reference

from hpc.kernels import api


def _torch_nchw(x: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(x))
    return t.reshape((-1, 1) + x.shape[-2:])


@settings(max_examples=150)
@given(case=pool_cases())
def test_reference_max_matches_torch(case) -> None:
    want = F.max_pool2d(_torch_nchw(case.x), case.kernel, case.stride, case.padding,
                        ceil_mode=case.ceil_mode).numpy()
    got = reference(case, "max").reshape(want.shape)
    assert_pool_close(got, want, "max", "reference vs torch")


@settings(max_examples=150)
@given(case=pool_cases(dtypes=FLOAT_DTYPES))
def test_reference_avg_matches_torch(case) -> None:
    want = F.avg_pool2d(_torch_nchw(case.x), case.kernel, case.stride, case.padding,
                        ceil_mode=case.ceil_mode, count_include_pad=case.count_include_pad,
                        divisor_override=case.divisor_override).numpy()
    got = reference(case, "avg").reshape(want.shape)
    assert_pool_close(got, want, "avg", "reference vs torch")


def test_reference_known_values() -> None:
    """A hand-checked 4x4 example: 2x2/2 max, 3x3/2 padded max with ceil_mode, avg."""
    x = np.arange(16, dtype=np.float32).reshape(4, 4)
    np.testing.assert_array_equal(api.maxpool2d(x, 2, backend="numpy"), [[5, 7], [13, 15]])
    np.testing.assert_array_equal(api.maxpool2d(x, 3, 2, 1, backend="numpy"), [[5, 7], [13, 15]])
    np.testing.assert_array_equal(api.maxpool2d(x, 3, 2, 0, ceil_mode=True, backend="numpy"),
                                  [[10, 11], [14, 15]])
    np.testing.assert_allclose(api.avgpool2d(x, 2, backend="numpy"), [[2.5, 4.5], [10.5, 12.5]])
    # corner window of a padded 3x3/2 avg: (0+1+4+5)/9 with padding counted, /4 without
    assert api.avgpool2d(x, 3, 2, 1, backend="numpy")[0, 0] == pytest.approx(10 / 9)
    assert api.avgpool2d(x, 3, 2, 1, count_include_pad=False, backend="numpy")[0, 0] == pytest.approx(2.5)
    y = x.copy()
    y[0, 1] = np.nan
    assert np.isnan(api.maxpool2d(y, 2, backend="numpy")[0, 0])
    assert api.maxpool2d(y, 2, backend="numpy")[0, 1] == 7
