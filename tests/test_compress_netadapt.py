"""NetAdapt: the MAC counter on every row of the study's history, channel slicing, the loop."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from hpc.analysis import published
from hpc.compress.evaluation import Split
from hpc.compress.netadapt import NetAdaptSettings, channels_to_remove, netadapt
from hpc.compress.pruning import (channel_counts, mac_unit_table, macs_after_removing, macs_for_channels,
                                  prune_layer, prunable, smallest_l2, weighted_layers)
from hpc.models.alexnet import build_model
from hpc.models.summary import summarize

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def study_history() -> list[tuple[int, int, list[int]]]:
    """FIGURES.md 003, Figure 38(a) as transcribed in hpc/analysis/published/003_netadapt.yaml:
    (iteration, resource in MACs, the 8 widths conv1-5, fc1, fc2, fc3)."""
    widths = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc1", "fc2", "fc3")
    return [(int(r["iteration"]), int(r["resource_macs"]), [int(r[w]) for w in widths])
            for r in published.table("netadapt_history").records()]


NETADAPT_HISTORY = study_history()


def test_the_published_history_has_every_row_of_figure_38a() -> None:
    assert [r[0] for r in NETADAPT_HISTORY] == list(range(14))  # iterations 0..13, none dropped


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
    after = lambda r: macs_after_removing(table, k, r)  # noqa: E731
    assert channels_to_remove(after, 128, total - 1, 64) == 64
    assert channels_to_remove(after, 128, 0, 64) is None  # cannot get there leaving >= 64
    # conv2 (48 outputs), granularity 8: the first multiple of 8 meeting the target, no more
    conv2 = lambda r: macs_after_removing(table, 1, r)  # noqa: E731
    assert channels_to_remove(conv2, 48, conv2(24), 8) == 24
    assert channels_to_remove(conv2, 48, conv2(24) - 1, 8) == 32


@settings(max_examples=200, deadline=None)
@given(out=st.integers(1, 600), granularity=st.sampled_from([1, 8, 64]), seed=st.integers(0, 2**32 - 1),
       target=st.integers(-1, 1300))
def test_bisection_finds_the_same_removal_as_a_linear_search_on_a_monotone_resource(
        out: int, granularity: int, seed: int, target: int) -> None:
    costs = np.random.default_rng(seed).integers(0, 3, size=out).cumsum()  # plateaus included (cost 0)

    def after(remove: int) -> float:  # never rises as channels are removed
        return 1200.0 - float(costs[remove - 1])
    linear = next((r for r in range(granularity, out, granularity) if out - r >= granularity and after(r) <= target),
                  None)
    assert channels_to_remove(after, out, target, granularity) == linear


def test_netadapt_meets_the_budget_one_layer_per_iteration() -> None:
    model = tiny()
    g = torch.Generator().manual_seed(0)
    train = Split(torch.randn(24, 1, 32, 32, generator=g), torch.randint(0, 3, (24,), generator=g))
    val = Split(torch.randn(12, 1, 32, 32, generator=g), torch.randint(0, 3, (12,), generator=g))
    s = NetAdaptSettings(budget_ratio=0.8, initial_reduction=0.1, short_term_steps=1, long_term_epochs=0.5,
                         batch_size=8, latency_repeats=1, max_iterations=5)
    result = netadapt(model, train, val, (1, 32, 32), s, log=lambda _m: None)
    final, history = result.model, result.history
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


def test_one_pass_evaluation_equals_accuracy_and_loss_of_the_shared_helpers() -> None:
    from hpc.compress.evaluation import accuracy, loss_of
    from hpc.compress.netadapt import evaluate
    model = tiny()
    g = torch.Generator().manual_seed(1)
    split = Split(torch.randn(300, 1, 32, 32, generator=g), torch.randint(0, 3, (300,), generator=g))
    acc, loss = evaluate(model, split)
    assert acc == accuracy(model, split)
    assert loss == pytest.approx(loss_of(model, split), rel=1e-6)


def test_long_term_fine_tune_reports_its_progress() -> None:
    from hpc.compress.netadapt import long_term
    g = torch.Generator().manual_seed(0)
    train = Split(torch.randn(16, 1, 32, 32, generator=g), torch.randint(0, 3, (16,), generator=g))
    lines: list[str] = []
    took = long_term(tiny(), train, NetAdaptSettings(long_term_epochs=1, batch_size=8), log=lines.append)
    assert took > 0
    assert lines[0] == "long-term fine-tune: 1 epochs"
    assert lines[-1].startswith("NetAdapt long-term fine-tune: step 2/2 (epoch 1.00)")
    assert long_term(tiny(), train, NetAdaptSettings(long_term_epochs=0), log=lines.append) == 0.0
