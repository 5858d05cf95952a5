"""Start the compression stage from a network the training stage already trained.

The workflow trains the MRI AlexNet in its training stage (``hpc train run``, with the
study's augmentations and a cosine schedule); training the same network a second time for
the compression stage would double the most expensive job of a laptop run. An experiment
whose ``base.from_training`` names a training run therefore loads that run's checkpoint
(``checkpoints/best.pt``: the best validation epoch, chosen without looking at the test
split) instead of training.

A checkpoint is only accepted for the dataset it was trained on: its identity holds the
dataset's content hash (``hpc.train.loop.dataset_content_hash``), which must equal the hash
of the file the compression job reads, and its network must take this dataset's image
shape and classes. Both inputs are normalised the same way (training-split channel
statistics), so the accuracies of the two stages are comparable.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from hpc.compress.evaluation import Data
from hpc.models.registry import build_model


class TrainedBaseError(ValueError):
    """A training checkpoint that cannot serve as the compression base; the message says why."""


@dataclasses.dataclass(frozen=True)
class TrainedBase:
    """A trained network and what the record says about where it came from."""

    model: nn.Module
    model_args: dict[str, Any]
    source: str          # the checkpoint's path
    epoch: int           # epochs finished when the checkpoint was written
    batch_size: int
    lr: float
    train_s: float       # the training run's wall time up to this checkpoint


def load_trained_base(path: str | Path, data: Data) -> TrainedBase:
    """Build the checkpoint's network, load its weights and check it fits this dataset."""
    from hpc.train.checkpoint import CheckpointError, load_checkpoint
    from hpc.train.data import validate_file
    from hpc.train.loop import dataset_content_hash

    try:
        state = load_checkpoint(path)
    except CheckpointError as exc:
        raise TrainedBaseError(f"base.from_training: {exc} (did the training run finish?)") from None
    config = state.get("config") or {}
    model_cfg, data_cfg = config.get("model") or {}, config.get("data") or {}
    data_path, image_shape, num_classes = data.path, data.image_shape, data.num_classes
    expected = dataset_content_hash(validate_file(data_path))
    if data_cfg.get("content") != expected:
        raise TrainedBaseError(f"{path}: trained on another dataset (content hash {data_cfg.get('content')!r}, "
                               f"{data_path} has {expected!r}); rerun the training stage on this dataset")
    c, h = int(image_shape[0]), int(image_shape[1])
    if (model_cfg.get("in_channels"), model_cfg.get("input_size"), model_cfg.get("classes")) != (c, h, num_classes):
        raise TrainedBaseError(f"{path}: network for {model_cfg.get('in_channels')} channels, "
                               f"{model_cfg.get('input_size')} px, {model_cfg.get('classes')} classes; "
                               f"{data_path} has {c} channels, {h} px, {num_classes} classes")
    if not np.allclose(state.get("mean", []), data.mean, rtol=1e-5) or \
            not np.allclose(state.get("std", []), data.std, rtol=1e-5):
        raise TrainedBaseError(f"{path}: normalised with mean {state.get('mean')}, std {state.get('std')}; "
                               f"this stage uses {data.mean}, {data.std} (training-split statistics)")
    args = {"arch": model_cfg["arch"], "num_classes": num_classes, "in_channels": c, "input_size": h,
            "width": float(model_cfg.get("width", 1.0)), "hidden": int(model_cfg.get("hidden", 4096))}
    model = build_model(**args)
    model.load_state_dict(state["model"])
    model.eval()
    return TrainedBase(model, args, str(path), int(state.get("epoch", -1)), int(config.get("batch_size", 0)),
                       float(config.get("lr", 0.0)), float(state.get("elapsed_s", 0.0)))
