"""What the engine shows beyond scalars: sample predictions and a confusion matrix.

Both are computed between epochs, after validation, every ``trainer.media_every`` epochs (the
sample grid) and once at the end (the confusion matrix); never inside the step loop. Each reads
its result back to the host once, so trackers get CPU tensors and plain ints they can keep.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from typedexp.engine.checkpoint import StopRequested
from typedexp.data.tensors import TargetKind
from typedexp.engine.settings import TrainerSettings
from typedexp.engine.tasks import Task
from typedexp.tracking.base import ConfusionMatrix, MediaTracker, PredictionSamples, Tracker

if TYPE_CHECKING:
    import torch
    from torch import nn

    from typedexp.data.tensors import DataBundle, Split

SAMPLES = "val/samples"
CONFUSION = "val/confusion_matrix"


def media_fits(data: DataBundle, task: Task) -> bool:
    """Pictures of predictions are for classes of images (C, H, W): a grid of "pred 3 / true 5"
    tiles and a confusion matrix mean nothing for regression targets or feature vectors."""
    return task.targets is TargetKind.classes and data.targets is TargetKind.classes and len(data.input_shape) == 3


def grid_due(epoch: int, epochs: int, settings: TrainerSettings) -> bool:
    """A sample grid after this epoch: every ``media_every`` epochs and after the last one."""
    every = settings.media_every
    return every > 0 and (epoch % every == 0 or epoch == epochs)


def displayable(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """(K, C, H, W) normalized images scaled to [0, 1] for display.

    ``x * std + mean`` per channel restores the source pixels (0-16 for the digits, 0-255 for
    the vision datasets: the unit differs), then the sample's own minimum and maximum, shared by
    all channels so colours keep their balance, map to 0 and 1.
    """
    import torch

    if len(mean) == images.shape[1] and len(std) == images.shape[1]:
        shape = (1, images.shape[1], 1, 1)
        images = images * torch.tensor(std, dtype=images.dtype).view(shape) + torch.tensor(mean, dtype=images.dtype).view(shape)
    low, high = images.min(), images.max()
    return (images - low) / (high - low).clamp_min(1e-12)


def sample_predictions(model: nn.Module, data: DataBundle, count: int) -> PredictionSamples:
    """The model's predictions on the first ``count`` validation images (model left in eval mode)."""
    import torch

    split = data.val
    model.eval()
    with torch.inference_mode():
        images = split.images[:count]  # (K, C, H, W) on the device, normalized
        predicted = model(images).argmax(dim=1)  # (K,)
    labels = split.labels[:count]
    # One read-back: images, labels and predictions together (a host sync, once per grid).
    shown = displayable(images.float().cpu(), data.mean, data.std)
    return PredictionSamples(SAMPLES, shown, tuple(labels.tolist()), tuple(predicted.tolist()))


def confusion_counts(
    model: nn.Module, split: Split, *, num_classes: int, batch_size: int, stop: Callable[[], bool] | None = None
) -> ConfusionMatrix:
    """Counts of (true, predicted) over ``split``, ``batch_size`` examples per forward pass.

    ``stop`` is asked before every batch, as ``loop.evaluate`` asks it; True raises ``StopRequested``.
    """
    import torch

    model.eval()
    counts = torch.zeros(num_classes * num_classes, dtype=torch.int64, device=split.images.device)
    with torch.inference_mode():
        for start in range(0, len(split), batch_size):
            if stop is not None and stop():
                raise StopRequested
            logits = model(split.images[start : start + batch_size])  # (B, num_classes)
            pairs = split.labels[start : start + batch_size] * num_classes + logits.argmax(dim=1)  # (B,)
            counts += torch.bincount(pairs, minlength=num_classes * num_classes)
    rows = counts.view(num_classes, num_classes).tolist()  # the one host sync
    return ConfusionMatrix(CONFUSION, tuple(tuple(int(value) for value in row) for row in rows))


def log_grid(model: nn.Module, data: DataBundle, tracker: Tracker, settings: TrainerSettings, *, step: int, epoch: int) -> None:
    if isinstance(tracker, MediaTracker):  # a tracker without images (a user's own) is skipped
        tracker.log_media(sample_predictions(model, data, settings.media_samples), step=step, epoch=epoch)


def log_confusion(
    model: nn.Module, data: DataBundle, tracker: Tracker, settings: TrainerSettings, *, step: int, epoch: int,
    stop: Callable[[], bool] | None = None,
) -> None:
    if settings.media_every > 0 and isinstance(tracker, MediaTracker):
        matrix = confusion_counts(
            model, data.val, num_classes=data.num_classes, batch_size=settings.eval_batch_size, stop=stop
        )
        tracker.log_media(matrix, step=step, epoch=epoch)
