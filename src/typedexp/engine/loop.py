"""Train and evaluate on resident tensors.

The hot loop does no host synchronisation: each step's loss and logits stay on the device and
are reduced and read back (one ``.tolist()``) once per ``log_every`` steps and at the end of
each epoch.
Batches are drawn by indexing the whole split with a slice of a seeded permutation.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rich.console import Console

from typedexp.data.tensors import take
from typedexp.engine.checkpoint import Checkpointer, LoopPosition, StopRequested
from typedexp.engine.media import grid_due, log_confusion, log_grid, media_fits
from typedexp.engine.progress import TrainingProgress, wants_progress
from typedexp.engine.settings import Precision, TrainerSettings
from typedexp.engine.tasks import Classification, Task
from typedexp.core.errors import TrainingDiverged
from typedexp.tracking.base import Tracker

if TYPE_CHECKING:
    import torch
    from torch import nn

    from typedexp.data.tensors import DataBundle, Split
    from typedexp.engine.distributed import World


CLASSIFICATION = Classification()  # the task when none is given: cross-entropy and accuracy


@dataclass(frozen=True)
class FitResult:
    steps: int  # optimizer steps taken
    epochs: int
    metrics: dict[str, float]  # the last logged value of every metric
    seconds: float  # wall time of training and validation, excluding set-up
    stopped_early: bool = False  # ``should_stop`` ended it after ``epochs`` epochs (a pruned trial)


# Asked after every epoch's validation with (epoch, the last value of every metric): True stops
# training there. A hyper-parameter search's pruner answers it (hpo.py); the engine knows no more.
EpochCheck = Callable[[int, Mapping[str, float]], bool]


@dataclass
class _Window:
    """The steps since the last logged point, reduced only when read.

    ``add`` launches no kernel: it keeps references to the step's loss, outputs and targets, and
    ``totals``/``drain`` reduce them all at once: about 10 kernels per window instead of 3-6 per
    step (those measured ~80 µs per step on this project's 2-core VM, 7% of a `small` MLP step).
    A window of 10 steps costs 90-160 µs in all there (``benchmarks/engine_overhead.py``).
    ``weighted`` keeps each step's loss x batch size in step order, so a run resumed from a
    checkpoint sums exactly the same vector as the uninterrupted run. ``tally`` holds the task's
    statistics (engine/tasks.py): an integer total (classification's correct count), or float
    sums per step in step order, for the same reason as ``weighted``.
    """

    device: torch.device
    weighted: torch.Tensor  # (k,) float: loss x batch size of each step folded so far
    tally: torch.Tensor  # the task's statistics folded so far: () int64 correct, or (k, M) float rows
    count: int = 0  # examples in the window; a Python int since batch sizes are known
    task: Task = field(default_factory=lambda: CLASSIFICATION)
    losses: list[torch.Tensor] = field(default_factory=list)  # () mean loss, per pending step
    sizes: list[int] = field(default_factory=list)
    outputs: list[torch.Tensor] = field(default_factory=list)  # (B, outputs) per pending step
    targets: list[torch.Tensor] = field(default_factory=list)  # (B,) labels or (B, D) values
    empty: torch.Tensor = field(init=False)  # (0,) what `weighted` is reset to
    zero: torch.Tensor = field(init=False)  # () what `tally` is reset to

    def __post_init__(self) -> None:
        import torch

        # Reset values, made once: nothing updates them in place (torch.cat and + make new tensors).
        self.empty, self.zero = self.weighted[:0], torch.zeros((), dtype=torch.int64, device=self.device)

    @property
    def correct(self) -> torch.Tensor:
        """The tally by classification's name for it."""
        return self.tally

    @classmethod
    def zeros(cls, device: torch.device, task: Task | None = None) -> _Window:
        import torch

        empty = torch.zeros(0, device=device)
        return cls(device, empty, torch.zeros((), dtype=torch.int64, device=device), task=task or CLASSIFICATION)

    @classmethod
    def restored(
        cls, saved: tuple[torch.Tensor, torch.Tensor, int], device: torch.device, task: Task | None = None
    ) -> _Window:
        return cls(device, saved[0].to(device), saved[1].to(device), saved[2], task=task or CLASSIFICATION)

    def add(self, loss: torch.Tensor, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        self.losses.append(loss.detach())
        self.outputs.append(outputs.detach())
        self.targets.append(targets)
        self.sizes.append(int(targets.shape[0]))
        self.count += self.sizes[-1]

    def totals(self) -> tuple[torch.Tensor, torch.Tensor, int]:
        """(weighted losses, tally, count) with the pending steps folded in (no host sync)."""
        import torch

        if self.losses:
            losses = torch.stack(self.losses)  # (k,)
            if len(set(self.sizes)) == 1:  # the usual case: a Python scalar, bit-identical to a vector of it
                weighted = losses * self.sizes[0]
            else:
                weighted = losses * torch.tensor(self.sizes, dtype=losses.dtype).to(self.device, non_blocking=True)
            # Skipping the cat/add onto an empty window saves two kernels and changes no value.
            self.weighted = torch.cat([self.weighted, weighted]) if self.weighted.numel() else weighted
            new = self.task.statistics(torch.cat(self.outputs), torch.cat(self.targets), self.sizes)
            if self.tally is self.zero or (new.is_floating_point() and self.tally.dim() == 0):  # none folded yet
                self.tally = new
            elif new.is_floating_point():  # per-step rows, kept in step order
                self.tally = torch.cat([self.tally, new])
            else:  # integer counts: exact in any order
                self.tally = self.tally + new
            self.losses, self.sizes, self.outputs, self.targets = [], [], [], []
        return self.weighted, self.tally, self.count

    def drain(self, prefix: str, world: World | None = None) -> dict[str, float]:
        """Read the window back (the one host sync) and reset it; with ``world``, summed over ranks."""
        import torch

        weighted, tally, count = self.totals()
        summed = (tally.sum(dim=0) if tally.is_floating_point() else tally).reshape(-1)  # (M,)
        if weighted.device.type == "cpu":  # reading a CPU tensor is no sync: skip the cat
            loss_sum, sums = weighted.sum().item(), summed.tolist()
        else:
            wide = torch.float32 if weighted.device.type == "mps" else torch.float64  # MPS has no float64
            loss_sum, *sums = torch.cat([weighted.sum().view(1).to(wide), summed.to(wide)]).tolist()
        if world is not None:  # what one process over the global batches would have summed
            loss_sum, *sums, total = world.sum([loss_sum, *sums, count])
        else:
            total = count
        metrics = {f"{prefix}/loss": loss_sum / total}
        metrics.update({f"{prefix}/{name}": value for name, value in self.task.metrics(sums, int(total)).items()})
        self.weighted, self.tally, self.count = self.empty, self.zero, 0
        return metrics


def count_batches(train_size: int, batch_size: int, settings: TrainerSettings) -> int:
    """Batches in one epoch: the whole split, or ``trainer.max_batches`` if fewer."""
    batches = math.ceil(train_size / batch_size)
    return batches if settings.max_batches is None else min(batches, settings.max_batches)


# Asked before every validation batch: True stops the pass (``StopRequested``). Without it a
# Ctrl-C during a long validation (97 s on a loaded VM) was acted on only after the whole pass.
StopCheck = Callable[[], bool]


def evaluate(
    model: nn.Module,
    split: Split,
    *,
    batch_size: int,
    prefix: str = "val",
    stop: StopCheck | None = None,
    task: Task | None = None,
) -> dict[str, float]:
    """The mean loss and the task's metrics (classification: cross-entropy and accuracy) of
    ``model`` on ``split`` (model left in eval mode)."""
    import torch

    task = task or CLASSIFICATION
    model.eval()
    window = _Window.zeros(split.images.device, task)
    with torch.inference_mode():
        for start in range(0, len(split), batch_size):
            if stop is not None and stop():
                raise StopRequested
            images = split.images[start : start + batch_size]
            labels = split.labels[start : start + batch_size]
            outputs = model(images)
            # mean loss times batch size == summed loss, which is what the window accumulates
            window.add(task.loss(outputs, labels), outputs, labels)
    return window.drain(prefix)


def epoch_order(num_examples: int, generator: torch.Generator) -> torch.Tensor:
    """One epoch's order of example indices: a permutation drawn from ``generator`` (CPU)."""
    import torch

    return torch.randperm(num_examples, generator=generator)


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
    checkpoints: Checkpointer | None = None,
    resume_from: LoopPosition | None = None,
    schedule: LRSchedule | None = None,
    should_stop: EpochCheck | None = None,
    world: World | None = None,
    task: Task | None = None,
) -> FitResult:
    """Train ``model`` for ``epochs`` on ``data.train`` (already on the model's device).

    Validation runs after every epoch, the test split (if any) once at the end. Every logged
    point goes to ``tracker`` as Python floats. ``generator`` (CPU) fixes the shuffling order
    and the augmentation draws, so the same seed gives the same batches.
    ``checkpoints`` saves at each epoch's end and whenever it is due (every N steps, on a signal);
    ``resume_from`` continues from a restored position, mid-epoch included, bit-exactly on CPU.
    ``schedule`` is stepped after every optimizer step or every epoch, as it says; the learning
    rate it sets is logged as ``train/lr`` (a Python float in the optimizer: no sync).
    Every ``settings.media_every`` epochs a grid of validation predictions, and at the end a
    confusion matrix of the validation split, go to ``tracker.log_media`` if it has one.
    ``should_stop`` is asked after every epoch (once its checkpoint is saved); when it says True,
    training ends there and the end-of-run evaluations (confusion matrix, test split) are skipped.
    ``world`` (one of several processes, engine/distributed.py): ``model`` is DDP-wrapped, this
    rank trains on its slice of each global batch and logs metrics summed over the ranks.
    ``task`` (engine/tasks.py) gives the loss and the metrics; classification when None.
    """
    import torch

    if world is None:
        step_fn = training_step(model, optimizer, settings, data.train.images.device, task)
    else:
        if task is not None:
            world.task = task  # the loss its step computes
        step_fn = world.training_step(model, optimizer, settings)
    task = task or CLASSIFICATION
    train = data.train
    device = train.images.device
    augment = data.augmentation if data.augmentation.enabled else None
    media = media_fits(data, task)
    batches_per_epoch = count_batches(len(train), batch_size, settings)
    step_scheduler = schedule.scheduler.step if schedule is not None and schedule.per_step else None
    console = console or Console()
    enabled = wants_progress(settings.progress, console)
    start = resume_from or LoopPosition(epoch=1, batch=0, step=0)
    latest: dict[str, float] = dict(start.latest)
    step = start.step
    started = time.perf_counter()
    total = epochs * batches_per_epoch - step
    index_to_device = device.type != "cpu"  # the order lives on the CPU: a no-op `.to` costs ~1.5 µs a step
    stop = checkpoints.stop_now if checkpoints is not None else None  # asked between validation batches
    with TrainingProgress(total, enabled=enabled, console=console) as progress:
        for epoch in range(start.epoch, epochs + 1):
            model.train()
            first_batch = 0
            if epoch == start.epoch and start.order is not None:  # resuming mid-epoch
                order, first_batch = start.order.cpu(), start.batch
                window = _Window.zeros(device, task) if start.window is None else _Window.restored(start.window, device, task)
            else:
                order = epoch_order(len(train), generator)
                window = _Window.zeros(device, task)
            for batch in range(first_batch, batches_per_epoch):
                index = order[batch * batch_size : (batch + 1) * batch_size]
                if world is not None:  # this rank's slice of the global batch
                    images, labels = world.batch(train, index, augment, generator)
                else:
                    if index_to_device:
                        index = index.to(device, non_blocking=True)
                    images = take(train.images, index)  # (B, *shape), as train.images[index], faster
                    labels = take(train.labels, index)  # (B,) class indices or (B, D) values
                    if augment is not None:
                        images = augment(images, generator)
                loss, logits = step_fn(images, labels)
                if step_scheduler is not None:
                    step_scheduler()
                step += 1
                window.add(loss, logits, labels)
                if step % settings.log_every == 0 or batch == batches_per_epoch - 1:
                    metrics = window.drain("train", world)
                    if schedule is not None:
                        metrics["train/lr"] = float(optimizer.param_groups[0]["lr"])
                    _check_finite(metrics, epoch, step, settings, checkpoints)
                    tracker.log(metrics, step=step, epoch=epoch)
                    latest.update(metrics)
                    progress.describe(f"epoch {epoch}/{epochs} loss {metrics['train/loss']:.4f}")
                progress.advance()
                if checkpoints is not None and checkpoints.due(step):
                    checkpoints.save(LoopPosition(epoch, batch + 1, step, order, window.totals(), latest))
            try:
                val_metrics = evaluate(model, data.val, batch_size=settings.eval_batch_size, stop=stop, task=task)
            except StopRequested:
                assert checkpoints is not None  # only a checkpointer's signal stops a validation
                # Every batch of the epoch is trained: saved as the epoch's last mid-epoch position,
                # from which a resume runs this validation again and carries on bit-exactly.
                checkpoints.save(LoopPosition(epoch, batches_per_epoch, step, order, window.totals(), latest))
                raise
            _check_finite(val_metrics, epoch, step, settings, checkpoints)
            tracker.log(val_metrics, step=step, epoch=epoch)
            latest.update(val_metrics)
            if media and grid_due(epoch, epochs, settings):  # between epochs: no cost inside the step loop
                log_grid(model, data, tracker, settings, step=step, epoch=epoch)
            if schedule is not None and not schedule.per_step:
                schedule.scheduler.step()  # after the epoch's validation, before its checkpoint
            if checkpoints is not None:
                checkpoints.save(LoopPosition(epoch + 1, 0, step, latest=latest), epoch_end=True)
            if should_stop is not None and should_stop(epoch, latest):
                return FitResult(step, epoch, latest, time.perf_counter() - started, stopped_early=True)
    try:
        if media:
            log_confusion(model, data, tracker, settings, step=step, epoch=epochs, stop=stop)
        if data.test is not None:
            test_metrics = evaluate(
                model, data.test, batch_size=settings.eval_batch_size, prefix="test", stop=stop, task=task
            )
            tracker.log(test_metrics, step=step, epoch=epochs)
            latest.update(test_metrics)
    except StopRequested:
        assert checkpoints is not None
        raise checkpoints.interrupted(f"the end of epoch {epochs}", step) from None  # saved at the epoch's end
    return FitResult(step, epochs, latest, time.perf_counter() - started)


@dataclass(frozen=True)
class LRSchedule:
    """A built learning-rate scheduler and when ``fit`` steps it."""

    scheduler: torch.optim.lr_scheduler.LRScheduler
    per_step: bool  # True: after every optimizer step; False: after every epoch's validation


def _check_finite(
    metrics: dict[str, float], epoch: int, step: int, settings: TrainerSettings, checkpoints: Checkpointer | None
) -> None:
    """Stop on a NaN/inf loss: the values are host floats already, so this costs no sync."""
    for name in (key for key in metrics if key.endswith("/loss")):
        if not math.isfinite(metrics[name]):
            if checkpoints is not None:
                raise checkpoints.diverged(name, metrics[name], epoch=epoch, step=step)
            raise TrainingDiverged(
                f"{name} became {metrics[name]} at epoch {epoch}, step {step} (checked every "
                f"trainer.log_every={settings.log_every} steps); lower optim.lr or set trainer.clip_grad_norm"
            )


StepFunction = Callable[["torch.Tensor", "torch.Tensor"], tuple["torch.Tensor", "torch.Tensor"]]


def training_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    settings: TrainerSettings,
    device: torch.device,
    task: Task | None = None,
) -> StepFunction:
    """forward, the task's loss, backward, optimizer step; returns (loss, outputs), both still on the device.

    The float32 path is the plain lines of a hand-written loop (plus clipping, if configured);
    autocast and the fp16 GradScaler are only on the path when ``trainer.precision`` asks.
    """
    import torch

    loss_of = (task or CLASSIFICATION).loss
    clip = settings.clip_grad_norm  # max global L2 norm of the gradients, or None

    def plain(images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(images)  # (B, num_classes) logits, or (B, D) predicted values
        loss = loss_of(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(loss)  # = loss.backward(), which torch leaves unannotated
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        return loss, logits

    if settings.precision is Precision.fp32:
        return plain
    dtype = torch.bfloat16 if settings.precision is Precision.bf16 else torch.float16
    scaler = torch.amp.GradScaler(device.type, enabled=settings.precision is Precision.fp16)

    def mixed(images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast(device.type, dtype=dtype):
            logits = model(images)
            loss = loss_of(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(scaler.scale(loss))
        if clip is not None:
            scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        scaler.step(optimizer)
        scaler.update()
        return loss, logits

    return mixed
