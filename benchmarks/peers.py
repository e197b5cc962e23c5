"""The training loops `engine_parity` compares, each training the same model on the same tensors.

Every runner seeds with ``seed_everything(0)``, builds the model from the same spec, uses SGD
(lr 0.01, momentum 0.9), draws each epoch's order with ``torch.randperm`` from the same seeded
generator, and validates once per epoch on the whole validation split. So all of them take the
same optimizer steps on the same batches, and ``losses`` (the training loss of every step, or
of every logged window for the engine) can be compared across runners.

- ``raw_loop``: the seed lesson's loop on resident tensors (``loss.item()`` every step), batches
  taken by indexing (``images[index]``); ``raw_loop_index_select``: the same with ``index_select``.
- ``dataloader_loop``: the seed's actual pipeline shape: ``DataLoader(TensorDataset)``, shuffled
  (a sampler doing RandomSampler's work), batches collated from single examples, ``num_workers=0``.
- ``lightning_loop``: a ``LightningModule`` with the same step, ``lightning.Trainer`` with its
  logger, checkpointing, progress bar and model summary off, fed the same resident batches as
  ``raw_loop`` (an iterable, no DataLoader). Only where the optional ``bench`` extra is installed.
- ``engine_run``: typedexp's ``fit``.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Sampler, TensorDataset

from typedexp.data import DataBundle
from typedexp.engine import TrainerSettings, fit, seed_everything
from typedexp.engine.settings import Progress
from typedexp.specs.models import ModelSpec
from typedexp.tracking import RunOutcome, Tracker


@dataclass
class Clock:
    """Wall and process CPU seconds (all threads of this process) of the timed part of a run."""

    wall: float = 0.0
    cpu: float = 0.0
    _started: tuple[float, float] = (0.0, 0.0)

    def start(self) -> None:
        self._started = (time.perf_counter(), time.process_time())

    def stop(self) -> None:
        self.wall += time.perf_counter() - self._started[0]
        self.cpu += time.process_time() - self._started[1]


@dataclass
class Trained:
    model: nn.Module
    clock: Clock
    # Training loss per step (raw, DataLoader, Lightning) or per logged window (the engine), in order.
    losses: list[float] = field(default_factory=list)


class Runner(Protocol):
    def __call__(self, spec: ModelSpec, data: DataBundle, epochs: int, batch_size: int) -> Trained: ...


def validate(model: nn.Module, data: DataBundle) -> tuple[float, float]:
    """The per-epoch validation every runner does: (mean loss, accuracy) of the whole split."""
    model.eval()
    with torch.no_grad():
        logits = model(data.val.images)  # (N_val, num_classes)
        return (F.cross_entropy(logits, data.val.labels).item(),
                (logits.argmax(1) == data.val.labels).float().mean().item())


def _start(spec: ModelSpec, data: DataBundle) -> tuple[torch.Generator, nn.Module, torch.optim.SGD]:
    generator = seed_everything(0)
    model = spec.build(data.input_shape, data.num_classes)
    return generator, model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)


def raw_loop(spec: ModelSpec, data: DataBundle, epochs: int, batch_size: int) -> Trained:
    """The seed's loop (zero_grad, forward, loss, backward, step, loss.item()) on resident tensors."""
    return _hand_written(spec, data, epochs, batch_size, lambda tensor, index: tensor[index])


def raw_loop_index_select(spec: ModelSpec, data: DataBundle, epochs: int, batch_size: int) -> Trained:
    """The same loop with batches taken by ``torch.index_select``, as the engine takes them: what
    is left of the engine's own overhead once the cheaper gather is out of the comparison."""
    return _hand_written(spec, data, epochs, batch_size, lambda tensor, index: torch.index_select(tensor, 0, index))


def _hand_written(spec: ModelSpec, data: DataBundle, epochs: int, batch_size: int,
                  gather: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Trained:
    clock, losses = Clock(), []
    clock.start()
    generator, model, optimizer = _start(spec, data)
    images, labels = data.train.images, data.train.labels
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(labels), generator=generator)
        for start in range(0, len(labels), batch_size):
            index = order[start : start + batch_size]
            optimizer.zero_grad()
            loss = F.cross_entropy(model(gather(images, index)), gather(labels, index))
            torch.autograd.backward(loss)
            optimizer.step()
            losses.append(loss.item())
        validate(model, data)
    clock.stop()
    return Trained(model, clock, losses)


@dataclass
class Shuffled(Sampler[int]):
    """What ``shuffle=True``'s RandomSampler does (``randperm(n).tolist()`` per epoch), drawn
    from ``generator`` alone: RandomSampler and the loader's iterator also draw seeds from a
    generator they are given, which would shift the order away from ``raw_loop``'s."""

    size: int
    generator: torch.Generator

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[int]:
        return iter(torch.randperm(self.size, generator=self.generator).tolist())


def dataloader_loop(spec: ModelSpec, data: DataBundle, epochs: int, batch_size: int) -> Trained:
    """The seed's DataLoader pipeline over the same tensors: batches collated from single
    examples, in ``raw_loop``'s order."""
    clock, losses = Clock(), []
    clock.start()
    generator, model, optimizer = _start(spec, data)
    loader = DataLoader(TensorDataset(data.train.images, data.train.labels), batch_size=batch_size,
                        sampler=Shuffled(len(data.train), generator))
    for _ in range(epochs):
        model.train()
        for images, labels in loader:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(images), labels)
            torch.autograd.backward(loss)
            optimizer.step()
            losses.append(loss.item())
        validate(model, data)
    clock.stop()
    return Trained(model, clock, losses)


@dataclass
class ResidentBatches:
    """Batches of resident tensors in ``raw_loop``'s order, as an iterable Lightning accepts."""

    images: torch.Tensor  # (N, C, H, W)
    labels: torch.Tensor  # (N,)
    batch_size: int
    generator: torch.Generator

    def __len__(self) -> int:
        return -(-len(self.labels) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(self.labels), generator=self.generator)  # one draw per epoch
        for start in range(0, len(self.labels), self.batch_size):
            index = order[start : start + self.batch_size]
            yield self.images[index], self.labels[index]


@dataclass
class WholeSplit:
    """One batch: the whole split (a list of batches would be read as a list of loaders)."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return 1

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        yield self.images, self.labels


def lightning_runner() -> tuple[Runner | None, str]:
    """(the Lightning runner, its version) or (None, why it is missing)."""
    try:
        # Typed by stubs/lightning (the dev install has no lightning: the stub has no source there).
        import lightning  # pyright: ignore[reportMissingModuleSource]
    except ImportError:
        return None, "lightning is not installed (pip install -e '.[bench]' in a separate venv)"
    # Its start-up banner ("GPU available: ...") and the "few workers" hint are noise here.
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="lightning")

    class Module(lightning.LightningModule):
        def __init__(self, model: nn.Module, data: DataBundle) -> None:
            super().__init__()
            self.model, self.data, self.step_losses = model, data, list[torch.Tensor]()

        def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_index: int) -> torch.Tensor:
            images, labels = batch
            loss = F.cross_entropy(self.model(images), labels)
            self.step_losses.append(loss.detach())
            return loss

        def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_index: int) -> None:
            images, labels = batch
            logits = self.model(images)
            self.log("val_loss", F.cross_entropy(logits, labels))
            self.log("val_acc", (logits.argmax(1) == labels).float().mean())

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9)

    def run(spec: ModelSpec, data: DataBundle, epochs: int, batch_size: int) -> Trained:
        clock = Clock()
        clock.start()
        generator = seed_everything(0)
        module = Module(spec.build(data.input_shape, data.num_classes), data)
        trainer = lightning.Trainer(
            max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        )
        train = ResidentBatches(data.train.images, data.train.labels, batch_size, generator)
        trainer.fit(module, train_dataloaders=train, val_dataloaders=WholeSplit(data.val.images, data.val.labels))
        clock.stop()
        return Trained(module.model, clock, [loss.item() for loss in module.step_losses])

    return run, lightning.__version__


@dataclass
class LossRecorder:
    """A tracker that keeps the engine's logged training losses (one per window)."""

    losses: list[float] = field(default_factory=list)

    def log(self, metrics: Mapping[str, float], *, step: int, epoch: int) -> None:
        if "train/loss" in metrics:
            self.losses.append(metrics["train/loss"])

    def finish(self, outcome: RunOutcome, error: str | None = None) -> None:
        pass


def engine_runner(
    make_tracker: Callable[[], Tracker], finish: Callable[[Tracker], None], log_every: int = 10
) -> Runner:
    """typedexp's ``fit``; the tracker's start and finish are outside the timed part (they happen
    once per run; benchmarks.tracking_cost prices them). No pictures (``media_every=0``): the
    other loops draw none, and benchmarks.media_cost prices them."""
    settings = TrainerSettings(progress=Progress.off, media_every=0, log_every=log_every)

    def run(spec: ModelSpec, data: DataBundle, epochs: int, batch_size: int) -> Trained:
        tracker = make_tracker()
        clock = Clock()
        clock.start()
        generator, model, optimizer = _start(spec, data)
        fit(model, optimizer, data, epochs=epochs, batch_size=batch_size, settings=settings,
            tracker=tracker, generator=generator)
        clock.stop()
        finish(tracker)
        return Trained(model, clock, list(tracker.losses) if isinstance(tracker, LossRecorder) else [])

    return run
