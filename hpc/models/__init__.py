"""AlexNet variants used by the suite (``hpc model`` / ``hpc train``).

``alexnet.py`` builds the networks, ``summary.py`` counts per-layer shapes, parameters and
MACs, ``cli.py`` exposes ``python -m hpc model summary``.
"""
from hpc.models.alexnet import (ALEXNET_SMALL_INPUT_SIZES, AlexNetImageNet, AlexNetSmall,
                                build_model)

__all__ = ["ALEXNET_SMALL_INPUT_SIZES", "AlexNetImageNet", "AlexNetSmall", "build_model"]
