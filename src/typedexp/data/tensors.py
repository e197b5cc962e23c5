"""The in-memory form every dataset is turned into: whole splits as tensors on one device.

Keeping a split as two tensors (inputs, targets) lets the engine draw a batch with one index
operation (no DataLoader, no per-sample Python), which is what makes small models fast here.
Inputs are any ``(N, *shape)`` float tensor (images are ``(N, C, H, W)``); targets are class
indices or float vectors (``TargetKind``), which is what a task (engine/tasks.py) is checked against.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from typedexp.data.augment import Augmentation
from typedexp.core.errors import ConfigError

if TYPE_CHECKING:
    import torch


class TargetKind(enum.Enum):
    """What a split's targets are: a dataset spec may declare it (``targets``) before it loads."""

    classes = "classes"  # (N,) int64 class indices
    values = "values"  # (N, D) float32 vectors: regression targets

    @property
    def described(self) -> str:
        return "class labels" if self is TargetKind.classes else "float targets"


@dataclass(frozen=True)
class Split:
    images: torch.Tensor  # (N, *shape) float32 inputs, already normalized: (N, C, H, W) for images
    labels: torch.Tensor  # the targets: (N,) int64 class indices, or (N, D) float32 values
    source_index: torch.Tensor  # (N,) int64: each example's index in the dataset it came from

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def targets(self) -> TargetKind:
        return TargetKind.values if self.labels.is_floating_point() else TargetKind.classes

    def to(self, device: torch.device) -> Split:
        return Split(self.images.to(device), self.labels.to(device), self.source_index)

    def to_memory_format(self, memory_format: torch.memory_format) -> Split:
        images = self.images.contiguous(memory_format=memory_format)
        return Split(images, self.labels, self.source_index)


@dataclass(frozen=True)
class DataBundle:
    train: Split
    val: Split  # held out from the training files, with a fixed seed
    num_classes: int  # classes of the labels; 0 where the targets are float values
    test: Split | None = None  # the dataset's official test split, where it has one
    augmentation: Augmentation = Augmentation()  # applied to training batches only
    # Per-channel statistics of the training split, in the raw pixel unit (0..255 for uint8
    # files), that every split was normalized with: x = (pixel - mean) / std.
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example, e.g. (C, H, W): what a model needs to size its first layer."""
        return tuple(self.train.images.shape[1:])

    @property
    def targets(self) -> TargetKind:
        return self.train.targets

    @property
    def num_outputs(self) -> int:
        """What a model's last layer needs: one logit per class, or one output per target column."""
        return self.num_classes if self.targets is TargetKind.classes else int(self.train.labels.shape[1])

    def to(self, device: torch.device) -> DataBundle:
        return self._map(lambda split: split.to(device))

    def first_train(self, count: int) -> DataBundle:
        """Only the first ``count`` training examples (a seeded random subset: the split is shuffled)."""
        train = Split(self.train.images[:count], self.train.labels[:count], self.train.source_index[:count])
        return DataBundle(train, self.val, self.num_classes, self.test, self.augmentation, self.mean, self.std)

    def to_memory_format(self, memory_format: torch.memory_format) -> DataBundle:
        return self._map(lambda split: split.to_memory_format(memory_format))

    def _map(self, change: Callable[[Split], Split]) -> DataBundle:
        test = change(self.test) if self.test is not None else None
        return DataBundle(
            change(self.train),
            change(self.val),
            self.num_classes,
            test,
            self.augmentation,
            self.mean,
            self.std,
        )


def take(tensor: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``tensor[index]`` along the first dimension, in ``tensor``'s memory format.

    ``index_select`` copies the same rows as advanced indexing in a third to a half of its CPU
    time (benchmarks/README.md), but always returns a contiguous tensor: a channels_last batch is
    gathered from its (N, H, W, C) view, so it stays channels_last for the convolutions.
    """
    import torch

    if tensor.dim() == 4 and not tensor.is_contiguous() and tensor.is_contiguous(memory_format=torch.channels_last):
        return torch.index_select(tensor.permute(0, 2, 3, 1), 0, index).permute(0, 3, 1, 2)
    if tensor.is_contiguous():
        return torch.index_select(tensor, 0, index)
    return tensor[index]  # another layout: advanced indexing keeps it


def pixel_statistics(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and (unbiased) std of (N, C, H, W) uint8 pixels, each (1, C, 1, 1) float32.

    Counted from a 256-bin histogram per channel in float64: exact up to the final rounding to
    float32, and about a fifth of the CPU time of ``float_images.std(dim=(0, 2, 3))``, which was
    most of the time taken to load CIFAR-10 from its cache.
    """
    import torch

    channels = images.shape[1]
    counts = torch.stack([torch.bincount(images[:, c].reshape(-1), minlength=256) for c in range(channels)])
    counts = counts.to(torch.float64)  # (C, 256): how many pixels of each channel have each value
    values = torch.arange(256, dtype=torch.float64)
    total = counts.sum(dim=1)  # (C,) pixels per channel
    mean = (counts * values).sum(dim=1) / total
    variance = (counts * (values - mean[:, None]) ** 2).sum(dim=1) / (total - 1)
    return mean.float().view(1, channels, 1, 1), variance.sqrt().float().view(1, channels, 1, 1)


@dataclass(frozen=True)
class RawImages:
    """Decoded but not normalized: what a dataset file gives, before any split."""

    images: torch.Tensor  # (N, C, H, W), uint8 pixels (or float for synthetic data)
    labels: torch.Tensor  # (N,) int64


def split_train_val(
    train: RawImages,
    *,
    num_classes: int,
    val_fraction: float,
    seed: int,
    test: RawImages | None = None,
    augmentation: Augmentation = Augmentation(),
) -> DataBundle:
    """Shuffle ``train`` with ``seed``, hold out ``val_fraction``, normalize every split once.

    Normalization is per channel, with the mean and std of the remaining training examples, so
    no statistic leaks from validation or test into training.
    """
    import torch

    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(train.labels), generator=generator)
    total = len(train.labels)
    num_val = max(1, round(total * val_fraction))
    if num_val >= total:  # an empty split would fail later as a nan mean or a division by zero
        raise ConfigError(
            f"dataset.val_fraction={val_fraction}: leaves {total - num_val} of the dataset's {total} "
            "examples for training and needs at least one in each split; lower it or use more examples"
        )
    if test is not None and len(test.labels) == 0:
        raise ConfigError("the dataset's test files hold no examples; check the files under dataset.root")
    val_index, train_index = order[:num_val], order[num_val:]
    train_source = take(train.images, train_index)  # (N_train, C, H, W)
    train_pixels = train_source.float()
    if train_source.dtype == torch.uint8:
        mean, std = pixel_statistics(train_source)
    else:  # synthetic float images
        mean, std = train_pixels.mean(dim=(0, 2, 3), keepdim=True), train_pixels.std(dim=(0, 2, 3), keepdim=True)
    std = std.clamp_min(1e-8)  # (1, C, 1, 1); a constant channel becomes zeros, not nan

    def normalized(raw: RawImages, index: torch.Tensor) -> Split:
        return Split((take(raw.images, index).float() - mean) / std, take(raw.labels, index).long(), index)

    test_split = normalized(test, torch.arange(len(test.labels))) if test is not None else None
    # The training split normalized in place: the same two element-wise operations as
    # `normalized`, so the same values, without a second gather and float copy of the largest
    # split (CIFAR-10: 553 MB each).
    train_split = Split(train_pixels.sub_(mean).div_(std), take(train.labels, train_index).long(), train_index)
    return DataBundle(
        train_split,
        normalized(train, val_index),
        num_classes,
        test_split,
        augmentation,
        tuple(mean.flatten().tolist()),
        tuple(std.flatten().tolist()),
    )


def split_rows(
    features: torch.Tensor, targets: torch.Tensor, *, val_fraction: float, seed: int, scale_targets: bool
) -> DataBundle:
    """A table as a bundle: shuffle with ``seed``, hold out ``val_fraction``, standardize.

    ``features`` (N, F) and float ``targets`` (N, D). Each feature column (and each target column,
    if ``scale_targets``) becomes (x - mean) / std with the training rows' mean and std, so no
    statistic leaks from validation into training. ``mean``/``std`` of the bundle are the features'.
    """
    import torch

    total = int(features.shape[0])
    order = torch.randperm(total, generator=torch.Generator().manual_seed(seed))
    num_val = max(1, round(total * val_fraction))
    if num_val >= total:
        raise ConfigError(
            f"dataset.val_fraction={val_fraction}: leaves {total - num_val} of the dataset's {total} "
            "examples for training and needs at least one in each split; lower it"
        )
    val_index, train_index = order[:num_val], order[num_val:]

    def standardized(values: torch.Tensor) -> torch.Tensor:
        train = values[train_index]
        return (values - train.mean(dim=0)) / train.std(dim=0).clamp_min(1e-8)  # a constant column: zeros

    inputs = standardized(features.float())  # (N, F)
    outputs = standardized(targets.float()) if scale_targets else targets.float()  # (N, D)
    mean, std = features.float()[train_index].mean(dim=0), features.float()[train_index].std(dim=0)
    return DataBundle(
        Split(inputs[train_index], outputs[train_index], train_index),
        Split(inputs[val_index], outputs[val_index], val_index),
        num_classes=0,
        mean=tuple(mean.tolist()),
        std=tuple(std.tolist()),
    )
