"""Batched augmentation on the device: one random crop offset and flip per image, no Python loop.

Applied to normalized training batches, so the zero padding of the crop is the dataset's mean
colour rather than black (torchvision's RandomCrop pads raw pixels with black).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from typedexp.core.checks import require_finite
from typedexp.core.errors import ConfigError

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
        return crop_and_flip(images, self.crop_padding, self.horizontal_flip, generator)


def crop_and_flip(images: torch.Tensor, padding: int, flip: bool, generator: torch.Generator) -> torch.Tensor:
    """A random crop of the zero-padded batch, then a random left-right flip, as one gather.

    The draws, in this order, are those of a crop then a flip: the crop's top and left corner
    (B each, in 0..2p) and the flip's (B,) uniform numbers (< 0.5: flipped). Each output pixel
    is copied from the padded batch, so the values are exactly a crop then a flip. The source
    offsets are computed per image for one channel, (B, H*W), and shared by the channels through
    a stride-0 view: building a (B, C*H*W) int64 index cost more than the gather itself
    (``benchmarks/README.md``).
    """
    import torch
    import torch.nn.functional as F

    batch, channels, height, width = images.shape
    channels_last = not images.is_contiguous() and images.is_contiguous(memory_format=torch.channels_last)
    corner: torch.Tensor | None = None  # (B,) int64: each crop's top-left pixel in its padded image
    if padding > 0:
        top = torch.randint(0, 2 * padding + 1, (batch,), generator=generator)
        left = torch.randint(0, 2 * padding + 1, (batch,), generator=generator)
        corner = (top * (width + 2 * padding) + left).to(images.device)
        images = F.pad(images, (padding, padding, padding, padding))  # (B, C, H + 2p, W + 2p)
    bases = _source_offsets(height, width, padding, images.device)  # (2, H*W)
    if flip:
        flipped = torch.rand(batch, generator=generator) < 0.5  # (B,)
        index = torch.index_select(bases, 0, flipped.long().to(images.device))  # (B, H*W), a new tensor
        if corner is not None:
            index.add_(corner[:, None])
    else:
        index = bases[0].expand(batch, -1)
        if corner is not None:
            index = index + corner[:, None]
    index = index[:, None, :].expand(batch, channels, height * width)  # every channel reads the same pixels
    out = images.reshape(batch, channels, -1).gather(2, index).view(batch, channels, height, width)
    # The gather writes (B, C, H, W) contiguous; a channels_last batch goes back to channels_last
    # (one copy), so the convolutions get the layout trainer.channels_last asked for.
    return out.contiguous(memory_format=torch.channels_last) if channels_last else out


@functools.lru_cache(maxsize=8)
def _source_offsets(height: int, width: int, padding: int, device: torch.device) -> torch.Tensor:
    """(2, H*W) int64: where each output pixel is read in one (H+2p, W+2p) channel cropped at its
    top-left corner; row 0 unflipped, row 1 flipped (column j read from column W-1-j)."""
    import torch

    padded_width = width + 2 * padding
    row = torch.arange(height, device=device)[:, None] * padded_width
    column = torch.arange(width, device=device)[None, :]
    return torch.stack([(row + column).flatten(), (row + (width - 1 - column)).flatten()])
