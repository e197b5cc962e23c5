"""Checkpoints whose fsync and rename run on a thread (engine/atomic.py, ``Checkpointer(background=True)``).

engine/atomic.py calls ``os.fsync`` through the module, so patching ``os.fsync`` slows or fails its disk.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from typedexp.data import FakeData
from typedexp.engine import TrainerSettings, fit, seed_everything
from typedexp.engine.checkpoint import Checkpointer, LoopPosition, read_checkpoint
from typedexp.engine.settings import Progress
from typedexp.errors import ResourceError
from typedexp.models import MLP
from typedexp.optim import SGD
from typedexp.tracking import NullTracker

SETTINGS = TrainerSettings(progress=Progress.off)


def checkpointer(directory: Path) -> Checkpointer:
    generator = seed_everything(0)
    model = MLP(hidden=(8,)).build((1, 8, 8), 10)
    optimizer = SGD().build(model.parameters())
    return Checkpointer(directory, model=model, optimizer=optimizer, generator=generator, settings=SETTINGS,
                        config={"seed": 0}, background=True)


@pytest.fixture
def held_fsync(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """fsync blocks until the test sets the event (a slow disk), with a timeout against hangs."""
    release = threading.Event()
    real = os.fsync

    def slow(fd: int) -> None:
        assert release.wait(timeout=30), "the test never released fsync"
        real(fd)

    monkeypatch.setattr(os, "fsync", slow)
    yield release
    release.set()


def test_save_returns_before_the_file_lands_and_settle_waits_for_it(tmp_path: Path, held_fsync: threading.Event) -> None:
    saver = checkpointer(tmp_path)
    saver.save(LoopPosition(2, 0, 5, latest={"val/acc": 0.5}), epoch_end=True)
    assert not saver.last.exists()  # training goes on while the disk syncs
    held_fsync.set()
    saver.settle()
    assert read_checkpoint(saver.last).position.step == 5
    assert saver.best.exists()  # copied once last.pt landed
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_a_checkpoint_holds_the_state_at_save_time_not_at_landing(tmp_path: Path, held_fsync: threading.Event) -> None:
    saver = checkpointer(tmp_path)
    before = {name: tensor.clone() for name, tensor in saver.model.state_dict().items()}
    saver.save(LoopPosition(1, 0, 3))
    with torch.no_grad():  # the next training steps, while the file is still landing
        for parameter in saver.model.parameters():
            parameter.add_(1.0)
    held_fsync.set()
    saver.settle()
    saved = read_checkpoint(saver.last).model
    assert all(torch.equal(saved[name], before[name]) for name in before)


def test_files_land_in_the_order_they_were_saved(tmp_path: Path) -> None:
    saver = checkpointer(tmp_path)
    for step in range(1, 6):
        saver.save(LoopPosition(1, step, step))
    saver.settle()
    assert read_checkpoint(saver.last).position.step == 5


def test_a_full_disk_while_landing_is_one_error_at_the_next_save(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    saver = checkpointer(tmp_path)

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    saver.save(LoopPosition(1, 0, 1))
    with pytest.raises(ResourceError, match="no space left") as raised:
        saver.save(LoopPosition(1, 0, 2))
    assert str(tmp_path) in str(raised.value)
    assert not saver.last.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_fit_returns_only_once_its_last_checkpoint_landed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.fsync

    def slow_disk(fd: int) -> None:  # widens the window in which an unsettled fit would return
        time.sleep(0.1)
        real(fd)

    monkeypatch.setattr(os, "fsync", slow_disk)
    data = FakeData(num_samples=200).load()
    generator = seed_everything(0)
    model = MLP(hidden=(8,)).build(data.input_shape, data.num_classes)
    optimizer = SGD().build(model.parameters())
    saver = Checkpointer(tmp_path, model=model, optimizer=optimizer, generator=generator, settings=SETTINGS,
                         config={}, background=True)
    fit(model, optimizer, data, epochs=2, batch_size=64, settings=SETTINGS, tracker=NullTracker(),
        generator=generator, checkpoints=saver)
    assert not any(thread.name == "typedexp-checkpoint" for thread in threading.enumerate())
    assert read_checkpoint(saver.last).position.epoch == 3  # the end of the last epoch
