"""The in-memory form every dataset is turned into: whole splits as tensors on one device.

Keeping a split as two tensors (images, labels) lets the engine draw a batch with one index
operation (no DataLoader, no per-sample Python), which is what makes small models fast here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Split:
    images: torch.Tensor  # (N, C, H, W) float32, already normalized
    labels: torch.Tensor  # (N,) int64 class indices

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def to(self, device: torch.device) -> Split:
        return Split(self.images.to(device), self.labels.to(device))


@dataclass(frozen=True)
class DataBundle:
    train: Split
    val: Split
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example, (C, H, W): what a model needs to size its first layer."""
        return tuple(self.train.images.shape[1:])

    def to(self, device: torch.device) -> DataBundle:
        return DataBundle(self.train.to(device), self.val.to(device), self.num_classes)


def split_train_val(
    images: torch.Tensor, labels: torch.Tensor, *, num_classes: int, val_fraction: float, seed: int
) -> DataBundle:
    """Shuffle with ``seed``, hold out ``val_fraction`` for validation, normalize both splits.

    Normalization uses the training split's mean and std (one scalar each) so no statistic
    leaks from validation into training.
    """
    import torch

    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(labels), generator=generator)
    num_val = max(1, round(len(labels) * val_fraction))
    val_idx, train_idx = order[:num_val], order[num_val:]
    train_images = images[train_idx].float()
    mean, std = train_images.mean(), train_images.std().clamp_min(1e-8)

    def normalized(index: torch.Tensor) -> Split:
        return Split((images[index].float() - mean) / std, labels[index].long())

    return DataBundle(normalized(train_idx), normalized(val_idx), num_classes)
