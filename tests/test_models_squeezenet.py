"""SqueezeNet v1.1: torchvision layout and keys, the study's layer table counts, the CLI."""
from __future__ import annotations

import json

import torch

from hpc.cli import main
from hpc.models.squeezenet import FIRE_CONFIG, SqueezeNet11
from hpc.models.summary import summarize


def test_counts_at_224_match_the_study_layer_table() -> None:
    s = summarize(SqueezeNet11(), (3, 224, 224))
    assert s.total_macs == 349_151_936
    assert s.total_params == 1_235_496
    assert s.layers[-1].output_shape == (1, 1000, 1, 1)


def test_state_dict_keys_follow_torchvision() -> None:
    keys = list(SqueezeNet11().state_dict())
    expected = ["features.0.weight", "features.0.bias"]
    for i in FIRE_CONFIG:
        for part in ("squeeze", "expand1x1", "expand3x3"):
            expected += [f"features.{i}.{part}.weight", f"features.{i}.{part}.bias"]
    expected += ["classifier.1.weight", "classifier.1.bias"]
    assert keys == expected


def test_ceil_mode_pooling_at_an_odd_size() -> None:
    model = SqueezeNet11(num_classes=5).eval()
    with torch.no_grad():
        assert model(torch.zeros(2, 3, 67, 67)).shape == (2, 5)


def test_model_summary_cli_prints_squeezenet_totals(capsys) -> None:
    assert main(["model", "summary", "--arch", "squeezenet1_1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["total_macs"] == 349_151_936 and out["total_params"] == 1_235_496
