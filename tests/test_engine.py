"""Number tests: the engine computes exactly what a hand-written loop computes."""

from __future__ import annotations

import io

import pytest
import torch
import torch.nn.functional as F
from rich.console import Console

from tests.helpers import RecordingTracker
from typedexp.data import DataBundle, FakeData
from typedexp.engine import TrainerSettings, evaluate, fit, seed_everything
from typedexp.engine.progress import wants_progress
from typedexp.engine.settings import Progress
from typedexp.specs.models import MLP
from typedexp.specs.optim import SGD

EPOCHS, BATCH = 2, 32


def small_data() -> DataBundle:
    return FakeData(num_samples=300, noise=2.0).load()


def engine_run(data: DataBundle, log_every: int = 3) -> tuple[torch.nn.Module, RecordingTracker]:
    generator = seed_everything(0)
    model = MLP(hidden=(16,)).build(data.input_shape, data.num_classes)
    optimizer = SGD().build(model.parameters())
    tracker = RecordingTracker()
    settings = TrainerSettings(log_every=log_every, progress=Progress.off)
    fit(model, optimizer, data, epochs=EPOCHS, batch_size=BATCH, settings=settings,
        tracker=tracker, generator=generator)
    return model, tracker


def raw_loop(data: DataBundle) -> tuple[torch.nn.Module, list[float]]:
    """The seed lesson's loop, fed the same tensors, seed and order."""
    generator = seed_everything(0)
    model = MLP(hidden=(16,)).build(data.input_shape, data.num_classes)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    losses = []
    for _ in range(EPOCHS):
        model.train()
        order = torch.randperm(len(data.train), generator=generator)
        for start in range(0, len(data.train), BATCH):
            index = order[start : start + BATCH]
            optimizer.zero_grad()
            loss = F.cross_entropy(model(data.train.images[index]), data.train.labels[index])
            torch.autograd.backward(loss)
            optimizer.step()
            losses.append(loss.item())
    return model, losses


def test_engine_weights_equal_a_hand_written_loop() -> None:
    data = small_data()
    engine_model, _ = engine_run(data)
    raw_model, _ = raw_loop(data)
    for engine_param, raw_param in zip(engine_model.parameters(), raw_model.parameters(), strict=True):
        assert torch.equal(engine_param, raw_param)


def test_logged_train_loss_is_the_mean_over_its_window() -> None:
    data = small_data()
    _, tracker = engine_run(data, log_every=3)
    _, raw_losses = raw_loop(data)
    batches = -(-len(data.train) // BATCH)  # 240 examples -> 8 batches, the last one of 16
    sizes = [min(BATCH, len(data.train) - b * BATCH) for b in range(batches)] * EPOCHS
    train_points = [(step, metrics) for step, _, metrics in tracker.points if "train/loss" in metrics]
    previous = 0
    for step, metrics in train_points:
        window = range(previous, step)
        expected = sum(raw_losses[i] * sizes[i] for i in window) / sum(sizes[i] for i in window)
        assert metrics["train/loss"] == pytest.approx(expected, rel=1e-5)
        previous = step
    assert previous == batches * EPOCHS


def test_validation_runs_every_epoch_and_matches_evaluate() -> None:
    data = small_data()
    model, tracker = engine_run(data)
    val_points = [(step, epoch, m) for step, epoch, m in tracker.points if "val/acc" in m]
    assert [epoch for _, epoch, _ in val_points] == [1, 2]
    assert val_points[-1][2] == evaluate(model, data.val, batch_size=7)  # batch size is irrelevant


def test_evaluate_is_accuracy_and_mean_cross_entropy() -> None:
    data = small_data()
    model = MLP(hidden=(8,)).build(data.input_shape, data.num_classes)
    logits = model(data.val.images)
    expected_acc = (logits.argmax(1) == data.val.labels).float().mean().item()
    expected_loss = F.cross_entropy(logits, data.val.labels).item()
    got = evaluate(model, data.val, batch_size=13)
    assert got["val/acc"] == pytest.approx(expected_acc)
    assert got["val/loss"] == pytest.approx(expected_loss, rel=1e-5)


def test_progress_bar_only_on_a_terminal() -> None:
    pipe = Console(file=io.StringIO())
    terminal = Console(file=io.StringIO(), force_terminal=True)
    assert not wants_progress(Progress.auto, pipe)
    assert wants_progress(Progress.auto, terminal)
    assert wants_progress(Progress.on, pipe) and not wants_progress(Progress.off, terminal)


def test_tracker_is_not_finished_by_the_engine() -> None:
    # finish() belongs to the task's `finally`, so a crash in fit still finishes the run there.
    _, tracker = engine_run(small_data())
    assert tracker.outcome is None
