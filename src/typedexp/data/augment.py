"""Batched augmentation on the device: one random crop offset and flip per image, no Python loop.

Applied to normalized training batches, so the zero padding of the crop is the dataset's mean
colour rather than black (torchvision's RandomCrop pads raw pixels with black).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from typedexp.checks import require_finite
from typedexp.errors import ConfigError

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Augmentation:
    crop_padding: int = 0  # pixels of padding before a random crop back to the original size
    horizontal_flip: bool = False  # flip each image left-right with probability 1/2

    def __post_init__(self) -> None:
        require_finite(self, "dataset")
        if self.crop_padding < 0:
            raise ConfigError(f"dataset.crop_padding={self.crop_padding}: must be >= 0")

    @property
    def enabled(self) -> bool:
        return self.crop_padding > 0 or self.horizontal_flip

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment a (B, C, H, W) batch; random draws come from ``generator`` (CPU, seeded)."""
        if self.crop_padding > 0:
            images = random_crop(images, self.crop_padding, generator)
        if self.horizontal_flip:
            images = random_flip(images, generator)
        return images


def random_crop(images: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    import torch
    import torch.nn.functional as F

    batch, channels, height, width = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))  # (B, C, H + 2p, W + 2p)
    # Top-left corner of each crop, drawn on the CPU generator, then moved without a sync.
    top = torch.randint(0, 2 * padding + 1, (batch,), generator=generator).to(images.device)
    left = torch.randint(0, 2 * padding + 1, (batch,), generator=generator).to(images.device)
    rows = (top[:, None] + torch.arange(height, device=images.device))[:, None, :, None]  # (B,1,H,1)
    cols = (left[:, None] + torch.arange(width, device=images.device))[:, None, None, :]  # (B,1,1,W)
    batch_index = torch.arange(batch, device=images.device)[:, None, None, None]
    channel_index = torch.arange(channels, device=images.device)[None, :, None, None]
    return padded[batch_index, channel_index, rows, cols]  # (B, C, H, W)


def random_flip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    import torch

    flip = torch.rand(images.shape[0], generator=generator).to(images.device) < 0.5  # (B,)
    return torch.where(flip[:, None, None, None], images.flip(3), images)
