"""What a compression experiment may ask of its base network, checked when the file is loaded.

The JSON schema (``$defs/compression``) checks each key on its own; this module checks the
combinations it cannot express clearly: which run methods and which ``base`` options each
architecture supports. It is called by :func:`hpc.config.load_experiment`, so a SqueezeNet
experiment with a NetAdapt run fails at ``snakemake -n`` (and in ``python -m hpc compress``)
with the file and the run named, not minutes into the run. No torch import here: the
workflow loads every experiment when it parses the Snakefile.

Why only k-means and binary for SqueezeNet:

* ``netadapt`` prunes by slicing a *sequential* AlexNet (``hpc.compress.pruning``): output
  channel c of one layer is input channel c of the next. In SqueezeNet the two expand
  convolutions of a fire module are concatenated and feed the next squeeze layer, so
  removing a channel couples three tensors across a concat; that needs a dependency graph
  (Torch-Pruning) and NetAdapt's MAC/channel bookkeeping is written for AlexNet's 8 widths.
* ``conv`` benchmarks the study's AlexNet layer shapes (Tables 8.3/8.4) and never reads the
  base network, so in a SqueezeNet experiment it would only repeat the AlexNet benchmark
  under a SqueezeNet label.
"""
from __future__ import annotations

from typing import Any

from hpc.config import ConfigError

METHODS: tuple[str, ...] = ("kmeans", "conv", "netadapt", "binary")
ARCH_METHODS: dict[str, tuple[str, ...]] = {
    "alexnet-small": METHODS,
    "squeezenet1_1": ("kmeans", "binary"),
}
# base options of each arch (a subset of hpc.models.registry.ARCH_OPTIONS, kept here so that
# loading an experiment does not import torch; tests/test_compress_squeezenet.py checks the subset)
ARCH_BASE_OPTIONS: dict[str, tuple[str, ...]] = {
    "alexnet-small": ("width", "hidden"),
    "squeezenet1_1": (),
}
WHY_NOT: dict[str, str] = {
    "netadapt": "NetAdapt prunes by slicing a sequential AlexNet; SqueezeNet's fire modules concatenate "
                "two expand convolutions, so its channels are coupled across the concat",
    "conv": "the clustered-convolution benchmark measures the study's AlexNet layer shapes, not the base network",
}


def check_experiment(spec: dict[str, Any], source: str) -> None:
    """Raise :class:`hpc.config.ConfigError` naming ``source`` (and the run) if the base
    architecture does not support a run's method, a ``base`` option or ``base.from_training``."""
    base = spec.get("base") or {}
    arch = base.get("arch", "alexnet-small")
    if arch not in ARCH_METHODS:
        raise ConfigError(f"{source}: base.arch {arch!r}: the compression stage supports {tuple(ARCH_METHODS)}")
    for key in ("width", "hidden"):
        if key in base and key not in ARCH_BASE_OPTIONS[arch]:
            owners = [a for a, opts in ARCH_BASE_OPTIONS.items() if key in opts]
            raise ConfigError(f"{source}: base.{key}: not an option of {arch} (only {', '.join(owners)})")
    if base.get("from_training") and arch != "alexnet-small":
        ft = base["from_training"]
        raise ConfigError(f"{source}: base.from_training ({ft.get('experiment')}/{ft.get('run')}): the training "
                          f"stage trains alexnet-small only; a {arch} base is trained by the experiment itself "
                          "(remove from_training)")
    allowed = ARCH_METHODS[arch]
    for run in spec.get("runs") or []:
        method = run.get("method")
        if method not in allowed:
            why = WHY_NOT.get(method, "")
            raise ConfigError(f"{source}: run {run.get('name')!r}: method {method!r} is not supported for base arch "
                              f"{arch} (supported: {', '.join(allowed)})" + (f"; {why}" if why else ""))
