"""Binarised layers: forward is scale*sign(w), STE gradients flow, training improves, packed size."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from hpc.compress.binary import (ActQuant8, BinaryConv2d, BinaryLinear, SignSTE, binarize_model,
                                 pack_binary_weights, packed_size_bytes)
from hpc.compress.evaluation import Split, accuracy, fit
from hpc.models.alexnet import build_model


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_binary_conv_forward_is_scaled_sign_convolution() -> None:
    torch.manual_seed(0)
    conv = BinaryConv2d(3, 5, 3, stride=2, padding=1)
    x = torch.randn(2, 3, 9, 9)
    w = conv.weight.detach()
    alpha = w.abs().mean(dim=(1, 2, 3), keepdim=True)
    sign = torch.where(w >= 0, 1.0, -1.0)
    expected = nn.functional.conv2d(x, alpha * sign, conv.bias, stride=2, padding=1)
    torch.testing.assert_close(conv(x), expected)
    conv.per_channel = False
    expected = nn.functional.conv2d(x, w.abs().mean() * sign, conv.bias, stride=2, padding=1)
    torch.testing.assert_close(conv(x), expected)


def test_binary_linear_uses_two_values_per_output_row() -> None:
    lin = BinaryLinear(7, 4)
    eye = torch.eye(7)
    effective = (lin(eye) - lin.bias).T  # rows = outputs, columns = inputs
    for row in effective:
        assert len(torch.unique(row.abs().round(decimals=6))) == 1


def test_sign_ste_passes_gradients_inside_the_clip_range_only() -> None:
    w = torch.tensor([-2.0, -0.5, 0.0, 0.3, 1.5], requires_grad=True)
    out = SignSTE.apply(w)
    assert out.tolist() == [-1.0, -1.0, 1.0, 1.0, 1.0]
    out.sum().backward()
    assert w.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]


def test_activation_quantiser_has_at_most_256_levels_and_passes_gradients() -> None:
    x = torch.rand(1000, requires_grad=True) * 3
    x.retain_grad()
    q = ActQuant8()(x)
    assert len(torch.unique(q.detach())) <= 256
    assert (q - x).abs().max() <= 3 / 255
    q.sum().backward()
    assert torch.all(x.grad == 1)


def test_binarised_alexnet_keeps_first_and_last_layers_in_full_precision() -> None:
    model = build_model("alexnet-small", num_classes=3, in_channels=1, input_size=32, width=0.125, hidden=32)
    b = binarize_model(model)
    kinds = [type(m).__name__ for m in b.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert kinds[0] == "Conv2d" and kinds[-1] == "Linear"
    assert set(kinds[1:-1]) <= {"BinaryConv2d", "BinaryLinear"} and len(kinds[1:-1]) == 6
    sizes = packed_size_bytes(b)
    n_binary = sum(m.weight.numel() for m in b.modules() if isinstance(m, (BinaryConv2d, BinaryLinear)))
    assert sizes["binary_weights"] == n_binary
    other = sum(v.numel() for v in b.state_dict().values()) - n_binary
    scales = sum(m.weight.shape[0] for m in b.modules() if isinstance(m, (BinaryConv2d, BinaryLinear)))
    assert sizes["packed_bytes"] == (n_binary + 7) // 8 + 4 * (other + scales)
    arrays = pack_binary_weights(b)
    assert sum(a.nbytes for k, a in arrays.items() if k.startswith("sign:")) == sum(
        (m.weight.numel() + 7) // 8 for m in b.modules() if isinstance(m, (BinaryConv2d, BinaryLinear)))


def test_short_training_of_the_binarised_network_beats_its_initialisation() -> None:
    # two easily separable classes: bright centre vs bright border
    g = torch.Generator().manual_seed(0)
    n = 64
    x = torch.randn(n, 1, 32, 32, generator=g) * 0.3
    y = torch.arange(n) % 2
    x[y == 0, :, 12:20, 12:20] += 2.0
    x[y == 1, :, :4, :] += 2.0
    split = Split(x, y)
    torch.manual_seed(1)
    model = binarize_model(build_model("alexnet-small", num_classes=2, in_channels=1, input_size=32,
                                       width=0.125, hidden=32))
    before = accuracy(model, split)
    latent = [m.weight.detach().clone() for m in model.modules() if isinstance(m, BinaryConv2d)]
    fit(model, split, epochs=6, batch_size=16, lr=3e-3, seed=0)
    after = accuracy(model, split)
    assert after.value >= 0.9 and after.value > before.value
    moved = [not torch.equal(a, m.weight) for a, m in
             zip(latent, [m for m in model.modules() if isinstance(m, BinaryConv2d)])]
    assert all(moved)  # gradients reached every binarised layer through the STE
