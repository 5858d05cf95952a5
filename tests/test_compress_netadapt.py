"""NetAdapt: the MAC counter on every row of the study's history, channel slicing, the loop."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from hpc.compress.evaluation import Split
from hpc.compress.netadapt import NetAdaptSettings, channels_to_remove, netadapt
from hpc.compress.pruning import (channel_counts, mac_unit_table, macs_after_removing, macs_for_channels,
                                  prune_layer, prunable, smallest_l2, weighted_layers)
from hpc.models.alexnet import build_model
from hpc.models.summary import summarize

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# FIGURES.md, 003, Figure 38(a): iteration, resource (MACs), conv1-5, fc1, fc2, fc3 widths
NETADAPT_HISTORY = [
    (0, 710133440, [64, 192, 384, 256, 256, 4096, 4096, 10]),
    (1, 673355240, [56, 192, 384, 256, 256, 4096, 4096, 10]),
    (2, 656176616, [56, 192, 384, 256, 224, 4096, 4096, 10]),
    (3, 630501992, [56, 176, 384, 256, 224, 4096, 4096, 10]),
    (4, 614732264, [56, 176, 360, 256, 224, 4096, 4096, 10]),
    (5, 599556584, [56, 176, 360, 256, 224, 2848, 4096, 10]),
    (6, 578238248, [56, 176, 360, 232, 224, 2848, 4096, 10]),
    (7, 563344616, [56, 176, 336, 232, 224, 2848, 4096, 10]),
    (8, 538838120, [56, 160, 336, 232, 224, 2848, 4096, 10]),
    (9, 525209960, [56, 160, 336, 216, 224, 2848, 4096, 10]),
    (10, 493097360, [48, 160, 336, 216, 224, 2848, 4096, 10]),
    (11, 479469200, [48, 160, 336, 200, 224, 2848, 4096, 10]),
    (12, 465841040, [48, 160, 336, 184, 224, 2848, 4096, 10]),
    (13, 454945680, [48, 160, 336, 184, 224, 1952, 4096, 10]),
]


@pytest.mark.parametrize("iteration,macs,channels", NETADAPT_HISTORY, ids=[f"iter{r[0]}" for r in NETADAPT_HISTORY])
def test_mac_counter_reproduces_every_netadapt_history_row(iteration: int, macs: int, channels: list[int]) -> None:
    assert macs_for_channels(channels, layout="torchvision", input_size=224) == macs


def tiny(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model("alexnet-small", num_classes=3, in_channels=1, input_size=32, width=0.25, hidden=128).eval()


@pytest.mark.parametrize("layer_index", range(7))
def test_pruned_model_equals_the_original_with_those_channels_zeroed(layer_index: int) -> None:
    model = tiny()
    name, module = weighted_layers(model)[layer_index]
    n = channel_counts(model)[layer_index]
    keep = smallest_l2(module, n // 4)
    pruned = prune_layer(model, name, keep)
    zeroed = tiny()
    drop = sorted(set(range(n)) - set(keep.tolist()))
    mod = dict(zeroed.named_modules())[name]
    with torch.no_grad():
        mod.weight[drop] = 0
        mod.bias[drop] = 0
    x = torch.randn(5, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(pruned(x), zeroed(x), rtol=1e-5, atol=1e-5)
    counts = channel_counts(pruned)
    assert counts[layer_index] == len(keep) and counts[:layer_index] == channel_counts(model)[:layer_index]


def test_smallest_l2_removes_the_weakest_channels() -> None:
    conv = nn.Conv2d(1, 4, 1, bias=False)
    with torch.no_grad():
        conv.weight[:, 0, 0, 0] = torch.tensor([3.0, -0.1, 2.0, 0.5])
    assert smallest_l2(conv, 2).tolist() == [0, 2]


def test_mac_shortcut_agrees_with_the_counter_for_every_layer() -> None:
    model = tiny()
    table = mac_unit_table(model, (1, 32, 32))
    for k, name in enumerate(prunable(model)):
        m = weighted_layers(model)[k][1]
        pruned = prune_layer(model, name, smallest_l2(m, 8))
        assert macs_after_removing(table, k, 8) == summarize(pruned, (1, 32, 32)).total_macs


def test_channels_to_remove_is_the_smallest_multiple_of_the_granularity() -> None:
    model = tiny()
    table = mac_unit_table(model, (1, 32, 32))
    total = sum(r["macs"] for r in table)
    k = 5  # first linear layer (128 outputs)
    r = channels_to_remove(table, k, total - 1, 64)
    assert r == 64
    assert channels_to_remove(table, k, 0, 64) is None  # cannot get there leaving >= 64


def test_netadapt_meets_the_budget_one_layer_per_iteration() -> None:
    model = tiny()
    g = torch.Generator().manual_seed(0)
    train = Split(torch.randn(24, 1, 32, 32, generator=g), torch.randint(0, 3, (24,), generator=g))
    val = Split(torch.randn(12, 1, 32, 32, generator=g), torch.randint(0, 3, (12,), generator=g))
    s = NetAdaptSettings(budget_ratio=0.8, initial_reduction=0.1, short_term_steps=1, long_term_epochs=0.5,
                         batch_size=8, latency_repeats=1, max_iterations=5)
    final, history = netadapt(model, train, val, (1, 32, 32), s, log=lambda _m: None)
    assert history[0].macs == summarize(model, (1, 32, 32)).total_macs
    assert history[-1].macs <= 0.8 * history[0].macs
    assert channel_counts(final) == history[-1].channels
    for prev, row in zip(history, history[1:]):
        assert row.macs < prev.macs
        changed = [i for i, (a, b) in enumerate(zip(prev.channels, row.channels)) if a != b]
        assert len(changed) == 1  # one layer per iteration
        i = changed[0]
        gran = 8 if i < 5 else 64
        assert (prev.channels[i] - row.channels[i]) % gran == 0
        assert row.chosen_layer == prunable(model)[i]
        assert row.val.total == 12
