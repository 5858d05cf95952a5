"""The study's augmentations, on whole batches, without torchvision.

The study used torchvision's RandomRotation(5), RandomHorizontalFlip, RandomCrop(padding=2)
and Normalize. Here each is a pure function of (batch, generator): applying them per batch
(vectorised, on whichever device the batch lives) is faster than per-sample transforms in
DataLoader workers, and seeding one ``torch.Generator`` per (seed, epoch, step) makes the
augmentation of every step reproducible and independent of how many steps ran before, which
is what lets an interrupted run resume mid-epoch bit-identically.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import torch
import torch.nn.functional as F


def step_generator(seed: int, epoch: int, step: int, rank: int = 0) -> torch.Generator:
    """A CPU generator determined only by (seed, epoch, step, rank)."""
    g = torch.Generator(device="cpu")
    # distinct, well-spread 63-bit seed per step (splitmix-style mixing of the tuple)
    x = (seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + step * 0x94D049BB133111EB
         + rank * 0x2545F4914F6CDD1D) & ((1 << 63) - 1)
    g.manual_seed(x)
    return g


def random_rotation(x: torch.Tensor, max_degrees: float, gen: torch.Generator) -> torch.Tensor:
    """Rotate each image by a uniform angle in [-max_degrees, max_degrees] about its centre
    (bilinear, zero fill), via one batched affine_grid/grid_sample."""
    if max_degrees <= 0:
        return x
    n = x.shape[0]
    angles = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(max_degrees)
    cos, sin = torch.cos(angles), torch.sin(angles)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos, -sin
    theta[:, 1, 0], theta[:, 1, 1] = sin, cos
    theta = theta.to(device=x.device, dtype=x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def random_hflip(x: torch.Tensor, gen: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Mirror each image left-right with probability ``p``."""
    flip = (torch.rand(x.shape[0], generator=gen) < p).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def random_crop(x: torch.Tensor, padding: int, gen: torch.Generator) -> torch.Tensor:
    """Zero-pad by ``padding`` on each side, then crop back to (H, W) at a uniform random
    offset per image (torchvision RandomCrop(size, padding) semantics)."""
    if padding <= 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    offsets = torch.randint(0, 2 * padding + 1, (n, 2), generator=gen).tolist()
    return torch.stack([padded[i, :, dy:dy + h, dx:dx + w] for i, (dy, dx) in enumerate(offsets)])


def normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(x - mean) / std per channel (the training split's statistics)."""
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - m) / s


@dataclasses.dataclass(frozen=True)
class Augment:
    """The study's pipeline: rotation, flip, crop (training only), then normalisation."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    rotation_degrees: float = 5.0
    hflip: bool = True
    crop_padding: int = 2

    def train(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        x = random_rotation(x, self.rotation_degrees, gen)
        if self.hflip:
            x = random_hflip(x, gen)
        x = random_crop(x, self.crop_padding, gen)
        return normalize(x, self.mean, self.std)

    def eval(self, x: torch.Tensor) -> torch.Tensor:
        return normalize(x, self.mean, self.std)
