"""MAC counts against published figures (NetAdapt, Yang et al. 2018) and the CLI."""
from __future__ import annotations

import pytest
from torch import nn

from hpc.cli import main
from hpc.models.alexnet import build_model
from hpc.models.summary import summarize


def test_torchvision_alexnet_macs_match_netadapt() -> None:
    model = build_model("alexnet-imagenet", num_classes=10, input_size=224, layout="torchvision")
    s = summarize(model, (3, 224, 224), count_bias=False)
    assert s.total_macs == 710_133_440
    assert s.total_params == sum(p.numel() for p in model.parameters())


def test_pruned_alexnet_macs_match_netadapt() -> None:
    model = build_model("alexnet-imagenet", num_classes=10, input_size=224, layout="torchvision",
                        channels=[48, 160, 336, 184, 224, 1952, 4096, 10])
    assert summarize(model, (3, 224, 224)).total_macs == 454_945_680


def test_count_bias_adds_one_mac_per_output_of_biased_layers() -> None:
    model = build_model("alexnet-small", num_classes=3, input_size=32)
    without = summarize(model, (1, 32, 32), count_bias=False)
    with_bias = summarize(model, (1, 32, 32), count_bias=True)
    outputs = 0
    for layer in without.layers:
        if layer.kind in ("Conv2d", "Linear"):
            n = 1
            for d in layer.output_shape[1:]:
                n *= d
            outputs += n
    assert with_bias.total_macs - without.total_macs == outputs
    # first conv by hand: 16x16 outputs x 64 channels x (1 x 3 x 3)
    assert without.layers[0].macs == 16 * 16 * 64 * 9
    assert without.layers[0].output_shape == (1, 64, 16, 16)


def test_summary_restores_training_mode() -> None:
    model = build_model("alexnet-small", num_classes=3)
    model.train()
    summarize(model, (1, 32, 32))
    assert model.training and all(m.training for m in model.modules() if isinstance(m, nn.Dropout))


def test_cli_prints_table_with_netadapt_total(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["model", "summary", "--arch", "alexnet-imagenet", "--input-size", "224",
                 "--classes", "10"]) == 0
    out = capsys.readouterr().out
    assert "710,133,440" in out and "features.0" in out and "55x55" in out


def test_cli_rejects_bad_size(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["model", "summary", "--input-size", "48"]) == 2
    assert "input_size=48" in capsys.readouterr().err
