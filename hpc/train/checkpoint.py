"""Resumable training state, written atomically every epoch (and on preemption).

A checkpoint holds everything that determines the rest of the run: model, optimizer and
scheduler state, every RNG the run draws from (torch CPU, all CUDA devices, NumPy, Python),
the position (epoch, steps already done in it; the sampler's order is a pure function of
seed and epoch, so the position is enough to rebuild it), the epoch's partial sums, the
history of finished epochs and the best validation result. It also carries the hash of the
run's *identity* configuration (model, data, optimiser, seed, augmentation...; not
``epochs``, device or thread counts), and ``load_checkpoint`` refuses a checkpoint whose
hash differs, naming the keys that differ: resuming someone else's run into this output
directory would silently mix two experiments. The identity includes the dataset's content
hash (its input checksums and conversion options), so a rebuilt dataset is a new run too;
``--resume`` over such a stale run moves the old directory aside (``checkpoint_mismatch``,
``move_aside``) and starts fresh.

Files are written with ``torch.save`` to a temporary file then renamed, so a kill at any
moment leaves the previous complete checkpoint. They are loaded with ``weights_only=True``
(no arbitrary unpickling): every entry is a tensor or plain Python data.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hpc.atomic import atomic_path

CHECKPOINT_FORMAT = "hpc-train-checkpoint"
CHECKPOINT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint cannot be used: missing, unreadable, or from another model/config."""


def config_hash(config: dict[str, Any]) -> str:
    """Stable SHA-256 of a JSON-able dict (key order does not matter)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def model_signature(model: torch.nn.Module) -> str:
    """Hash of the model's class and parameter/buffer names and shapes: two models with the
    same signature can load each other's state dicts."""
    parts = [type(model).__name__] + [f"{k}:{tuple(v.shape)}" for k, v in model.state_dict().items()]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def rng_state() -> dict[str, Any]:
    """All RNG states a training step can draw from, as tensors/plain data."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]),
                  int(np_state[3]), float(np_state[4])],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write ``state`` (plus format tag and RNG states) atomically to ``path``."""
    payload = dict(state)
    payload["format"] = CHECKPOINT_FORMAT
    payload["version"] = CHECKPOINT_VERSION
    payload.setdefault("rng", rng_state())
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(payload, tmp)
    return Path(path)


def _diff_keys(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key, "<absent>"), b.get(key, "<absent>")
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _diff_keys(va, vb, f"{prefix}{key}.")
        elif va != vb:
            out.append(f"{prefix}{key} ({va!r} in checkpoint, {vb!r} now)")
    return out


def checkpoint_mismatch(path: str | os.PathLike[str], expected_config: dict[str, Any],
                        expected_signature: str) -> str | None:
    """Why the checkpoint at ``path`` does not belong to this run, or None when it does.

    The run's identity (``expected_config``) holds the dataset's content hash and every
    training setting that decides the result, so a stale checkpoint (another dataset,
    other settings, another model) is told apart from one to resume. An unreadable file
    is a mismatch too (its reason is returned).
    """
    try:
        load_checkpoint(path, expected_config, expected_signature)
    except CheckpointError as exc:
        return str(exc)
    return None


def move_aside(run_dir: str | os.PathLike[str]) -> Path:
    """Rename ``run_dir`` to ``<run_dir>.stale-<UTC time>[-n]`` (kept, never deleted)."""
    import time

    run_dir = Path(run_dir)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = run_dir.with_name(f"{run_dir.name}.stale-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = run_dir.with_name(f"{run_dir.name}.stale-{stamp}-{n}")
    os.replace(run_dir, target)
    return target


def load_checkpoint(path: str | os.PathLike[str], expected_config: dict[str, Any] | None = None,
                    expected_signature: str | None = None) -> dict[str, Any]:
    """Load a checkpoint; verify its config hash and model signature when expected ones are given."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt files
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not an hpc training checkpoint (format tag missing)")
    if state.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: checkpoint version {state.get('version')}, this code reads "
                              f"version {CHECKPOINT_VERSION}")
    if expected_signature is not None and state.get("model_signature") != expected_signature:
        raise CheckpointError(f"{path}: checkpoint is from a different model (layer names/shapes "
                              f"differ: {state.get('config', {}).get('model')} in checkpoint, "
                              f"{(expected_config or {}).get('model')} now)")
    if expected_config is not None and state.get("config_hash") != config_hash(expected_config):
        diffs = _diff_keys(state.get("config", {}), expected_config)
        raise CheckpointError(f"{path}: checkpoint is from a different configuration; differing "
                              f"keys: {'; '.join(diffs) or 'unknown'}")
    return state
