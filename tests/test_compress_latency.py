"""NetAdapt's latency resource: the per-layer lookup table and the loop driven by it."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hpc.compress.evaluation import Split
from hpc.compress.latency import BlockKey, LatencyTable, keys_after_removing
from hpc.compress.netadapt import NetAdaptSettings, netadapt
from hpc.compress.pruning import channel_counts, prunable, prune_layer, smallest_l2, weighted_layers
from hpc.config import ConfigError, load_experiment
from hpc.models.alexnet import build_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SHAPE = (1, 32, 32)
FAST = 0.002  # seconds of timing per entry: enough to exercise the harness, not to benchmark


def tiny(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model("alexnet-small", num_classes=3, in_channels=1, input_size=32, width=0.25, hidden=128).eval()


def test_keys_describe_every_weighted_layer_with_its_input_size_and_followers() -> None:
    keys = LatencyTable(min_run_s=FAST).keys(tiny(), SHAPE)
    assert [k.op for k in keys] == ["conv2d"] * 5 + ["linear"] * 3
    assert [k.out_channels for k in keys] == channel_counts(tiny())
    assert keys[0] == BlockKey("conv2d", 1, 16, (3, 3), (2, 2), (1, 1), (32, 32), True, keys[0].tail)
    assert [k.input_hw for k in keys[:5]] == [(32, 32), (8, 8), (4, 4), (4, 4), (4, 4)]
    assert keys[0].tail[0].startswith("MaxPool2d") and keys[0].tail[1].startswith("ReLU")
    assert keys[5].in_channels == 64 * 2 * 2 and keys[7].tail == ()


def test_table_is_built_lazily_and_measures_each_key_once() -> None:
    table = LatencyTable(min_run_s=FAST)
    keys = table.keys(tiny(), SHAPE)
    assert len(table) == 0 and table.build_s == 0.0  # asking for keys measures nothing
    first = table.seconds(keys[2])
    assert len(table) == 1 and first > 0
    built = table.build_s
    same = BlockKey(**{**keys[2].as_dict(), "kernel": (3, 3)})  # an equal key built independently
    assert table.seconds(same) == first and len(table) == 1 and table.build_s == built


def test_prediction_is_the_sum_of_the_per_layer_entries() -> None:
    table = LatencyTable(min_run_s=FAST)
    keys = table.keys(tiny(), SHAPE)
    total = table.predict_s(keys)
    assert len(table) == len(set(keys))
    assert total == pytest.approx(sum(table.entries[k] for k in keys), rel=1e-12)


def test_table_times_with_the_threads_it_was_given() -> None:
    assert LatencyTable(threads=3).threads == 3
    assert LatencyTable().threads == torch.get_num_threads()
    with pytest.raises(ValueError, match="min_run_s"):
        LatencyTable(min_run_s=0)


@pytest.mark.parametrize("layer_index", [1, 4, 5])
def test_keys_after_removing_match_the_pruned_network(layer_index: int) -> None:
    model, table = tiny(), LatencyTable(min_run_s=FAST)
    name, module = weighted_layers(model)[layer_index]
    pruned = prune_layer(model, name, smallest_l2(module, 8))
    assert keys_after_removing(table.keys(model, SHAPE), layer_index, 8) == table.keys(pruned, SHAPE)


def test_latency_resource_candidates_meet_the_latency_target() -> None:
    model = tiny()
    g = torch.Generator().manual_seed(0)
    train = Split(torch.randn(16, *SHAPE, generator=g), torch.randint(0, 3, (16,), generator=g))
    val = Split(torch.randn(8, *SHAPE, generator=g), torch.randint(0, 3, (8,), generator=g))
    s = NetAdaptSettings(resource="latency", budget_ratio=0.85, initial_reduction=0.1, short_term_steps=1,
                         long_term_epochs=0, batch_size=8, latency_repeats=1, max_iterations=3)
    table = LatencyTable(min_run_s=FAST)
    messages: list[str] = []
    history = netadapt(model, train, val, SHAPE, s, log=messages.append, table=table).history
    assert len(history) >= 2, messages
    r0 = history[0].predicted_latency_s
    for i, row in enumerate(history[1:], start=1):
        assert row.target == pytest.approx(history[i - 1].predicted_latency_s - 0.1 * r0 * 0.96 ** (i - 1))
        assert row.predicted_latency_s <= row.target  # the chosen candidate meets the latency target
        assert row.chosen_layer in prunable(model)
        assert row.latency_s > 0 and row.network_latency_s > 0
    assert 0 < len(table) and table.build_s > 0
    assert any("ms (table)" in m for m in messages)


def test_unknown_resource_is_rejected_by_settings_and_by_the_experiment_schema(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="resource='flops'"):
        NetAdaptSettings(resource="flops")
    exp = tmp_path / "bad.yaml"
    exp.write_text("kind: compression\nname: bad\nruns:\n  - {name: n, method: netadapt, resource: flops}\n")
    with pytest.raises(ConfigError, match="flops"):
        load_experiment(exp, kind="compression")
    exp.write_text("kind: compression\nname: ok\nruns:\n  - {name: n, method: netadapt, resource: latency}\n")
    assert load_experiment(exp, kind="compression")["runs"][0]["resource"] == "latency"



def test_measuring_entries_leaves_the_global_random_state_alone() -> None:
    table = LatencyTable(min_run_s=FAST)
    keys = table.keys(tiny(), SHAPE)
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    table.predict_s(keys)  # builds layers with random weights and inputs
    assert torch.equal(torch.rand(3), expected)  # so a MAC-budget run chooses the same with or without it
