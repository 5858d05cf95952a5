"""A clustered model as one file: bit-packed indices, codebooks, the rest in float32.

Why a real file: the study's compression ratio is arithmetic (``n*32 / (n*bits + k*32)``);
its own implementation stored indices in whole bytes and so never reached it. Here every
layer's indices are packed at ``bits`` bits each (``np.packbits`` on the low bits of each
index, no byte padding between indices), so the file size can be set beside the theory.

Layout: an uncompressed NumPy ``.npz`` (a zip of ``.npy`` arrays, readable anywhere):

* ``header``          UTF-8 JSON: format tag, the model's build arguments, per clustered
                      layer its name, shape, bits and codebook length;
* ``idx:<layer>``     uint8, the packed index bits (``ceil(n*bits/8)`` bytes);
* ``cb:<layer>``      float32 codebook;
* ``raw:<key>``       every other state-dict entry (biases, ...) as stored by torch.

Written atomically (temporary file, then rename).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from hpc.atomic import atomic_path
from hpc.compress.kmeans import LayerClusters

FORMAT = "hpc-clustered-model"
VERSION = 1


class PackedModelError(ValueError):
    """The file is not a clustered-model file this code can read; names the file."""


def pack_indices(indices: np.ndarray, bits: int) -> np.ndarray:
    """The low ``bits`` bits of each uint8 index, concatenated MSB first, packed into bytes."""
    if not 1 <= bits <= 8:
        raise ValueError(f"bits={bits}: expected 1..8")
    v = np.asarray(indices, dtype=np.uint8).ravel()
    if v.size and int(v.max()) >= 2 ** bits:
        raise ValueError(f"index {int(v.max())} does not fit in {bits} bits")
    planes = np.unpackbits(v[:, None], axis=1)[:, 8 - bits:]
    return np.packbits(planes.ravel())


def unpack_indices(packed: np.ndarray, bits: int, n: int) -> np.ndarray:
    """Inverse of :func:`pack_indices` for ``n`` indices."""
    flat = np.unpackbits(np.asarray(packed, dtype=np.uint8))[: n * bits]
    if flat.size != n * bits:
        raise ValueError(f"packed data holds {flat.size} bits, need {n * bits}")
    planes = np.zeros((n, 8), dtype=np.uint8)
    planes[:, 8 - bits:] = flat.reshape(n, bits)
    return np.packbits(planes, axis=1).ravel()


def save_clustered(path: str | os.PathLike[str], model: nn.Module, layers: list[LayerClusters],
                   model_args: dict[str, Any]) -> int:
    """Write the clustered model to ``path``; return the file size in bytes."""
    clustered = {f"{l.name}.weight" for l in layers}
    arrays: dict[str, np.ndarray] = {}
    header = {"format": FORMAT, "version": VERSION, "model_args": model_args,
              "layers": [{"name": l.name, "shape": list(l.shape), "bits": l.bits,
                          "codebook_size": int(l.codebook.size)} for l in layers]}
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    for l in layers:
        arrays[f"idx:{l.name}"] = pack_indices(l.indices, l.bits)
        arrays[f"cb:{l.name}"] = np.asarray(l.codebook, dtype=np.float32)
    for key, value in model.state_dict().items():
        if key not in clustered:
            arrays[f"raw:{key}"] = value.detach().cpu().numpy()
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    return Path(path).stat().st_size


def load_clustered(path: str | os.PathLike[str],
                   build: Callable[..., nn.Module] | None = None) -> tuple[nn.Module, list[LayerClusters]]:
    """Rebuild the model with ``build(**model_args)`` (default: the model registry,
    ``hpc.models.registry.build_model``, which knows every arch the suite writes) and load the
    decoded weights into it."""
    if build is None:
        from hpc.models.registry import build_model as build
    path = Path(path)
    try:
        data = np.load(path, allow_pickle=False)
        header = json.loads(bytes(data["header"]).decode())
    except (OSError, ValueError, KeyError) as exc:
        raise PackedModelError(f"{path}: not a clustered-model file ({exc})") from None
    if header.get("format") != FORMAT or header.get("version") != VERSION:
        raise PackedModelError(f"{path}: format {header.get('format')!r} v{header.get('version')}, "
                               f"expected {FORMAT!r} v{VERSION}")
    try:
        model = build(**header["model_args"])
    except ValueError as exc:
        raise PackedModelError(f"{path}: cannot rebuild its model ({exc})") from None
    layers = []
    for entry in header["layers"]:
        shape = tuple(entry["shape"])
        n = int(np.prod(shape))
        idx = unpack_indices(data[f"idx:{entry['name']}"], entry["bits"], n)
        layers.append(LayerClusters(entry["name"], shape, entry["bits"], idx, data[f"cb:{entry['name']}"]))
    state = {key[4:]: torch.from_numpy(np.array(data[key])) for key in data.files if key.startswith("raw:")}
    for l in layers:
        state[f"{l.name}.weight"] = torch.from_numpy(l.decode().copy())
    model.load_state_dict(state)
    model.eval()
    return model, layers
