"""Train and evaluate on resident tensors.

The hot loop does no host synchronisation: loss and accuracy accumulate in device tensors and
are read back (one ``.tolist()``) once per ``log_every`` steps and at the end of each epoch.
Batches are drawn by indexing the whole split with a slice of a seeded permutation.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rich.console import Console

from typedexp.engine.progress import TrainingProgress, wants_progress
from typedexp.engine.settings import Precision, TrainerSettings
from typedexp.tracking.base import Tracker

if TYPE_CHECKING:
    import torch
    from torch import nn

    from typedexp.data.tensors import DataBundle, Split


@dataclass(frozen=True)
class FitResult:
    steps: int  # optimizer steps taken
    epochs: int
    metrics: dict[str, float]  # the last logged value of every metric
    seconds: float  # wall time of training and validation, excluding set-up


@dataclass
class _Window:
    """Running sums over the steps since the last logged point, kept on the device."""

    loss_sum: torch.Tensor  # () float: sum of per-example losses
    correct: torch.Tensor  # () int64: correctly classified examples
    count: int = field(default=0)  # examples; a Python int since batch sizes are known

    @classmethod
    def zeros(cls, device: torch.device) -> _Window:
        import torch

        zero_float = torch.zeros((), device=device)
        return cls(zero_float, torch.zeros((), dtype=torch.int64, device=device))

    def add(self, loss: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        batch = int(labels.shape[0])
        self.loss_sum += loss.detach() * batch
        self.correct += (logits.detach().argmax(dim=1) == labels).sum()
        self.count += batch

    def drain(self, prefix: str) -> dict[str, float]:
        """Read the window back (the one host sync) and reset it."""
        import torch

        loss_sum, correct = torch.stack([self.loss_sum, self.correct.to(self.loss_sum.dtype)]).tolist()
        metrics = {f"{prefix}/loss": loss_sum / self.count, f"{prefix}/acc": correct / self.count}
        self.loss_sum.zero_()
        self.correct.zero_()
        self.count = 0
        return metrics


def evaluate(model: nn.Module, split: Split, *, batch_size: int, prefix: str = "val") -> dict[str, float]:
    """Mean cross-entropy and accuracy of ``model`` on ``split`` (model left in eval mode)."""
    import torch
    import torch.nn.functional as F

    model.eval()
    window = _Window.zeros(split.images.device)
    with torch.inference_mode():
        for start in range(0, len(split), batch_size):
            images = split.images[start : start + batch_size]
            labels = split.labels[start : start + batch_size]
            logits = model(images)
            # mean loss times batch size == summed loss, which is what the window accumulates
            window.add(F.cross_entropy(logits, labels), logits, labels)
    return window.drain(prefix)


def batch_order(
    num_examples: int, batch_size: int, generator: torch.Generator, max_batches: int | None
) -> list[torch.Tensor]:
    """One epoch's batches of example indices: a seeded permutation cut into slices (CPU)."""
    import torch

    order = torch.randperm(num_examples, generator=generator)
    starts = range(0, num_examples, batch_size)
    if max_batches is not None:
        starts = starts[:max_batches]
    return [order[start : start + batch_size] for start in starts]


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: DataBundle,
    *,
    epochs: int,
    batch_size: int,
    settings: TrainerSettings,
    tracker: Tracker,
    generator: torch.Generator,
    console: Console | None = None,
) -> FitResult:
    """Train ``model`` for ``epochs`` on ``data.train`` (already on the model's device).

    Validation runs after every epoch, the test split (if any) once at the end. Every logged
    point goes to ``tracker`` as Python floats. ``generator`` (CPU) fixes the shuffling order
    and the augmentation draws, so the same seed gives the same batches.
    """
    import torch

    train = data.train
    device = train.images.device
    augment = data.augmentation if data.augmentation.enabled else None
    step_fn = training_step(model, optimizer, settings, device)
    batches_per_epoch = math.ceil(len(train) / batch_size)
    if settings.max_batches is not None:
        batches_per_epoch = min(batches_per_epoch, settings.max_batches)
    console = console or Console()
    enabled = wants_progress(settings.progress, console)
    latest: dict[str, float] = {}
    step = 0
    started = time.perf_counter()
    with TrainingProgress(epochs * batches_per_epoch, enabled=enabled, console=console) as progress:
        for epoch in range(1, epochs + 1):
            model.train()
            window = _Window.zeros(device)
            batches = batch_order(len(train), batch_size, generator, settings.max_batches)
            for batch, index in enumerate(batches):
                index = index.to(device, non_blocking=True)
                images, labels = train.images[index], train.labels[index]  # (B, C, H, W), (B,)
                if augment is not None:
                    images = augment(images, generator)
                loss, logits = step_fn(images, labels)
                step += 1
                window.add(loss, logits, labels)
                if step % settings.log_every == 0 or batch == len(batches) - 1:
                    metrics = window.drain("train")
                    tracker.log(metrics, step=step, epoch=epoch)
                    latest.update(metrics)
                    progress.describe(f"epoch {epoch}/{epochs} loss {metrics['train/loss']:.4f}")
                progress.advance()
            val_metrics = evaluate(model, data.val, batch_size=settings.eval_batch_size)
            tracker.log(val_metrics, step=step, epoch=epoch)
            latest.update(val_metrics)
    if data.test is not None:
        test_metrics = evaluate(model, data.test, batch_size=settings.eval_batch_size, prefix="test")
        tracker.log(test_metrics, step=step, epoch=epochs)
        latest.update(test_metrics)
    return FitResult(step, epochs, latest, time.perf_counter() - started)


StepFunction = Callable[["torch.Tensor", "torch.Tensor"], tuple["torch.Tensor", "torch.Tensor"]]


def training_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, settings: TrainerSettings, device: torch.device
) -> StepFunction:
    """forward, loss, backward, optimizer step; returns (loss, logits), both still on the device.

    The float32 path is the plain four lines of a hand-written loop; autocast and the fp16
    GradScaler are only on the path when ``trainer.precision`` asks for them.
    """
    import torch
    import torch.nn.functional as F

    def plain(images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(images)  # (B, num_classes)
        loss = F.cross_entropy(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(loss)  # = loss.backward(), which torch leaves unannotated
        optimizer.step()
        return loss, logits

    if settings.precision is Precision.fp32:
        return plain
    dtype = torch.bfloat16 if settings.precision is Precision.bf16 else torch.float16
    scaler = torch.amp.GradScaler(device.type, enabled=settings.precision is Precision.fp16)

    def mixed(images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast(device.type, dtype=dtype):
            logits = model(images)
            loss = F.cross_entropy(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(scaler.scale(loss))
        scaler.step(optimizer)
        scaler.update()
        return loss, logits

    return mixed
