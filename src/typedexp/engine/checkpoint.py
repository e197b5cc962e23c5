"""Checkpoints: everything needed to continue a run bit-exactly, written atomically.

A checkpoint holds the model, the optimizer, the LR scheduler's state (or None), the position in
training (epoch, batch, step, the epoch's permutation and the partial logging window), every RNG
state (python, numpy, torch, the data-order generator) and the resolved config. Files are written
to a fresh temp file (``O_EXCL``), fsynced and renamed, so a crash (even SIGKILL) leaves either the
old file or the new one, and a symlink planted in the run dir is replaced, never written through.
Loading uses ``torch.load(weights_only=True)``: only tensors and plain containers, never pickled
code, so a checkpoint from elsewhere cannot run anything.
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from typedexp.engine.checkpoint_checks import optimizer_problem, position_problem, rng_problem
from typedexp.engine.position import LoopPosition as LoopPosition
from typedexp.engine.settings import BestMode, TrainerSettings
from typedexp.engine.tasks import Classification, Task, direction
from typedexp.core.errors import CheckpointError, ConfigError, Interrupted, TrainingDiverged
from typedexp.core.resources import naming_full_disk
from typedexp.core.files import BEST as BEST, LAST as LAST, exclusive_temp, symlink_refused

if TYPE_CHECKING:
    import torch
    from torch import nn

FORMAT = "typedexp-checkpoint/1"


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint file read back and checked field by field."""

    path: Path
    config: dict[str, object]
    model: dict[str, torch.Tensor]
    optimizer: dict[str, object]
    position: LoopPosition
    rng: dict[str, object]
    best_value: float | None
    extra: dict[str, object]  # task-level facts: metrics.jsonl length, tracker run id
    scheduler: dict[str, object] | None = None  # the LR scheduler's state_dict, if the run had one


def _cpu(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().to("cpu", copy=True)


def rng_states(generator: torch.Generator) -> dict[str, object]:
    """Every random source, as tensors and plain containers (what ``weights_only`` loads)."""
    import numpy as np
    import torch

    version, internal, gauss_next = random.getstate()
    _, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    return {
        "python": [version, list(internal), gauss_next],
        "numpy": [torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "data": generator.get_state(),
    }


def restore_rng_states(states: Mapping[str, object], generator: torch.Generator) -> None:
    import numpy as np
    import torch

    python, numpy_state = states.get("python"), states.get("numpy")
    torch_state, data_state, cuda = states.get("torch"), states.get("data"), states.get("cuda")
    if not (
        isinstance(python, list)
        and len(python) == 3
        and isinstance(python[1], list)
        and isinstance(numpy_state, list)
        and len(numpy_state) == 4
        and isinstance(numpy_state[0], torch.Tensor)
        and isinstance(torch_state, torch.Tensor)
        and isinstance(data_state, torch.Tensor)
    ):
        raise CheckpointError("the checkpoint's random states are missing or malformed")
    version, internal, gauss_next = python
    keys, pos, has_gauss, cached = numpy_state
    random.setstate((int(version), tuple(int(x) for x in internal), gauss_next))
    np.random.set_state(("MT19937", keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(cached)))
    torch.set_rng_state(torch_state)
    if isinstance(cuda, list) and cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    generator.set_state(data_state)


def write_atomically(payload: object, path: Path) -> None:
    """``torch.save`` to a fresh temp file in the same directory, fsync, then rename over ``path``.

    The temp file is created with ``O_EXCL`` under a random name, so it is never a file or symlink
    someone planted; the rename replaces a symlink at ``path`` instead of writing through it.
    """
    import torch

    make_dir(path.parent)
    fd, temp = exclusive_temp(path)
    try:
        with naming_full_disk(path.parent), os.fdopen(fd, "wb") as file:
            torch.save(payload, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)  # atomic on POSIX: readers see the old file or the new one
    finally:
        temp.unlink(missing_ok=True)


def copy_atomically(source: Path, target: Path) -> None:
    fd, temp = exclusive_temp(target)
    try:
        with naming_full_disk(target.parent), os.fdopen(fd, "wb") as copy, source.open("rb") as original:
            shutil.copyfileobj(original, copy)
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)


def make_dir(directory: Path) -> None:
    """``mkdir -p``, refusing a symlink where the directory should be (files would land elsewhere)."""
    directory.mkdir(parents=True, exist_ok=True)
    if directory.is_symlink():
        raise symlink_refused(directory)


def read_checkpoint(path: Path) -> Checkpoint:
    """Load ``path`` with ``weights_only=True`` and check its shape; one-line errors otherwise."""
    import torch

    if not path.is_file():
        raise CheckpointError(f"resume={path}: no such checkpoint file")
    try:
        raw: object = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0].split(". ")[0]
        raise CheckpointError(
            f"resume={path}: not a readable checkpoint (truncated or corrupt: {reason[:100]})"
        ) from exc
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise CheckpointError(f"resume={path}: not a typedexp checkpoint (no '{FORMAT}' marker)")

    def part(name: str, kind: type) -> object:
        value = raw.get(name)
        if not isinstance(value, kind):
            raise CheckpointError(f"resume={path}: the checkpoint's '{name}' is missing or malformed")
        return value

    position = part("position", dict)
    assert isinstance(position, dict)
    order, window = position.get("order"), position.get("window")
    best = raw.get("best_value")
    try:
        loop = LoopPosition(
            epoch=int(position["epoch"]),
            batch=int(position["batch"]),
            step=int(position["step"]),
            order=order if isinstance(order, torch.Tensor) else None,
            window=(window[0], window[1], int(window[2])) if isinstance(window, list) else None,
            latest={str(k): float(v) for k, v in dict(position["latest"]).items()},
        )
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise CheckpointError(f"resume={path}: the checkpoint's 'position' is malformed ({exc})") from exc
    model = part("model", dict)
    optimizer = part("optimizer", dict)
    config = part("config", dict)
    rng = part("rng", dict)
    extra = part("extra", dict)
    assert isinstance(model, dict) and isinstance(optimizer, dict) and isinstance(config, dict)
    assert isinstance(rng, dict) and isinstance(extra, dict)
    problem = position_problem(loop)
    if not all(isinstance(value, torch.Tensor) for value in model.values()):
        problem = "the model state holds values that are not tensors"
    if best is not None and (isinstance(best, bool) or not isinstance(best, (int, float))):
        problem = f"best_value={best!r} is not a number"
    metrics_bytes, tracker_id = extra.get("metrics_bytes", 0), extra.get("tracker_id")
    if not (isinstance(metrics_bytes, int) and metrics_bytes >= 0 and isinstance(tracker_id, (str, type(None)))):
        problem = "extra.metrics_bytes or extra.tracker_id is malformed"
    scheduler = raw.get("scheduler")
    if scheduler is not None and not isinstance(scheduler, dict):
        problem = "the scheduler state is not a mapping"
    if problem is not None:
        raise malformed(path, problem)
    return Checkpoint(
        path=path,
        config={str(k): v for k, v in config.items()},
        model={str(k): v for k, v in model.items()},
        optimizer={str(k): v for k, v in optimizer.items()},
        position=loop,
        rng={str(k): v for k, v in rng.items()},
        best_value=float(best) if isinstance(best, (int, float)) else None,
        extra={str(k): v for k, v in extra.items()},
        scheduler={str(k): v for k, v in scheduler.items()} if isinstance(scheduler, dict) else None,
    )


def malformed(path: Path, problem: str) -> CheckpointError:
    return CheckpointError(f"resume={path}: a malformed checkpoint ({problem}); resume from another one")


def model_difference(saved: Mapping[str, torch.Tensor], current: Mapping[str, torch.Tensor]) -> str | None:
    """What differs between two state dicts (names, then shapes), or None if they fit."""
    missing = [name for name in current if name not in saved]
    unexpected = [name for name in saved if name not in current]
    if missing or unexpected:
        return (
            f"the checkpoint's model has other layers (only here: {', '.join(missing) or '-'}; "
            f"only in the checkpoint: {', '.join(unexpected) or '-'})"
        )
    for name, tensor in current.items():
        if tuple(saved[name].shape) != tuple(tensor.shape):
            return (
                f"the checkpoint's {name} has shape {tuple(saved[name].shape)}, "
                f"this model's has {tuple(tensor.shape)}"
            )
    return None


class StopRequested(Exception):
    """A signal asked to stop between two validation batches (``Checkpointer.stop_now``)."""


class Checkpointer:
    """Saves ``last.pt`` (every epoch, every ``checkpoint_every`` steps, on a signal) and ``best.pt``.

    The engine calls ``due(step)`` after every step (a Python comparison, no sync) and ``save``
    when it is due and at each epoch's end. A state whose loss window or weights are not finite is
    never saved: ``save`` raises ``TrainingDiverged`` instead, so the last file stays good.
    """

    def __init__(
        self,
        directory: Path,
        *,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        generator: torch.Generator,
        settings: TrainerSettings,
        config: Mapping[str, object],
        metrics_file: Path | None = None,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
        task: Task | None = None,
    ) -> None:
        self.directory = directory
        self.task: Task = task or Classification()  # names the best metric and its direction
        self.model, self.optimizer, self.generator = model, optimizer, generator
        self.scheduler = scheduler
        self.settings = settings
        self.config = dict(config)
        self.metrics_file = metrics_file
        self.extra: dict[str, object] = {}  # e.g. the tracker's run id, set by the task
        self.best_value: float | None = None
        self.stop_signal: int | None = None  # set by a signal handler; checked between steps
        self.saved: Path | None = None  # the newest good checkpoint written (or resumed from)

    @property
    def last(self) -> Path:
        return self.directory / LAST

    @property
    def best(self) -> Path:
        return self.directory / BEST

    def due(self, step: int) -> bool:
        every = self.settings.checkpoint_every
        return self.stop_signal is not None or (every is not None and step % every == 0)

    def stop_now(self) -> bool:
        """Whether a signal asks to stop at once: asked between validation batches, so that a long
        validation stops within a batch. A plain attribute read here; ranks agree on it."""
        return self.stop_signal is not None

    def save(self, position: LoopPosition, *, epoch_end: bool = False) -> None:
        """Write ``last.pt`` (and ``best.pt`` if a finished epoch improved); then honour a stop."""
        self._refuse_non_finite(position)
        improved = epoch_end and self._improves(position.latest)
        if improved:
            self.best_value = position.latest[self.best_metric]
        self.write(position, improved)
        if self.stop_signal is not None:
            # At an epoch's end the position already names the next epoch, which may not exist.
            where = f"epoch {position.epoch}" if position.batch else f"the end of epoch {position.epoch - 1}"
            raise self.interrupted(where, position.step)

    def interrupted(self, where: str, step: int) -> Interrupted:
        """The stop's one line: where it stopped, what ``last.pt`` holds and how to continue."""
        import signal

        signum = self.stop_signal or signal.SIGINT
        return Interrupted(
            signum,
            f"interrupted by {signal.Signals(signum).name} at {where}, step {step}; "
            f"saved {self.last}; continue with: typedexp resume={self.directory.parent}",
        )

    def write(self, position: LoopPosition, improved: bool) -> None:
        """``last.pt`` (and ``best.pt`` when ``improved``); a rank other than 0 writes nothing."""
        write_atomically(self._payload(position), self.last)
        self.saved = self.last
        if improved:
            copy_atomically(self.last, self.best)

    def restore(self, checkpoint: Checkpoint) -> LoopPosition:
        """Load ``checkpoint`` into the model, optimizer and RNGs; return where to carry on.

        Every part is checked before any is loaded, so a refused checkpoint changes nothing.
        """
        difference = model_difference(checkpoint.model, self.model.state_dict())
        if difference is not None:
            raise CheckpointError(f"resume={checkpoint.path}: {difference}")
        # The schedule first: a scheduler also adds its own fields to the optimizer's state.
        with_schedule = (checkpoint.scheduler is None) != (self.scheduler is None)
        problem = "it was saved with another schedule setting (with or without a schedule)" if with_schedule else None
        problem = problem or rng_problem(checkpoint.rng, self.generator) or optimizer_problem(checkpoint.optimizer, self.optimizer)
        if problem is not None:
            raise malformed(checkpoint.path, problem)
        self.model.load_state_dict(checkpoint.model)
        try:
            self.optimizer.load_state_dict(checkpoint.optimizer)
        except (KeyError, ValueError, TypeError) as exc:
            raise CheckpointError(
                f"resume={checkpoint.path}: the checkpoint's optimizer state does not fit ({exc})"
            ) from exc
        if self.scheduler is not None and checkpoint.scheduler is not None:
            try:
                self.scheduler.load_state_dict(checkpoint.scheduler)
            except (KeyError, ValueError, TypeError) as exc:
                raise malformed(checkpoint.path, f"its scheduler state does not fit ({exc})") from exc
        restore_rng_states(checkpoint.rng, self.generator)
        self.best_value = checkpoint.best_value
        self.saved = checkpoint.path
        return checkpoint.position

    @property
    def best_metric(self) -> str:
        """``trainer.best_metric``, or else the task's (``val/acc`` for classification)."""
        return self.settings.best_metric or self.task.best_metric

    def _improves(self, metrics: Mapping[str, float]) -> bool:
        name = self.best_metric
        setting = "trainer.best_metric" if self.settings.best_metric else "the task's best_metric"
        if name not in metrics:
            raise ConfigError(f"{setting}={name}: no such metric; choose one of: {', '.join(sorted(metrics))}")
        mode = self.settings.best_mode or direction(self.task, name)
        if mode is None:
            raise ConfigError(
                f"{setting}={name}: the task does not say whether larger or smaller is better; "
                "set trainer.best_mode=max or trainer.best_mode=min"
            )
        value = metrics[name]
        if self.best_value is None:
            return True
        if mode is BestMode.max:
            return value > self.best_value
        return value < self.best_value

    def _refuse_non_finite(self, position: LoopPosition) -> None:
        import torch

        # One host sync per parameter tensor, once per checkpoint: cheap next to writing the file.
        weights_ok = all(bool(torch.isfinite(p.detach()).all()) for p in self.model.parameters())
        window_ok = position.window is None or bool(torch.isfinite(position.window[0]).all())
        if not (weights_ok and window_ok):
            what = "train/loss" if not window_ok else "the weights"
            raise TrainingDiverged(
                f"{what} became non-finite by epoch {position.epoch}, step {position.step}; "
                f"{self._kept()}; lower optim.lr or set trainer.clip_grad_norm"
            )

    def _kept(self) -> str:
        return f"kept the last good checkpoint {self.saved}" if self.saved else "no checkpoint was saved yet"

    def diverged(self, metric: str, value: float, *, epoch: int, step: int) -> TrainingDiverged:
        """The error for a non-finite logged metric, naming the checkpoint that was kept."""
        return TrainingDiverged(
            f"{metric} became {value} at epoch {epoch}, step {step} (checked every "
            f"trainer.log_every={self.settings.log_every} steps); {self._kept()}; "
            "lower optim.lr or set trainer.clip_grad_norm"
        )

    def _payload(self, position: LoopPosition) -> dict[str, object]:
        window = position.window
        return {
            "format": FORMAT,
            "config": self.config,
            "model": {name: _cpu(tensor) for name, tensor in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "position": {
                "epoch": position.epoch,
                "batch": position.batch,
                "step": position.step,
                "order": None if position.order is None else _cpu(position.order),
                "window": None if window is None else [_cpu(window[0]), _cpu(window[1]), window[2]],
                "latest": dict(position.latest),
            },
            "rng": rng_states(self.generator),
            "best_value": self.best_value,
            "extra": {**self.extra, "metrics_bytes": self._metrics_bytes()},
        }

    def _metrics_bytes(self) -> int:
        # metrics.jsonl is flushed line by line, so its size now is exactly what this state logged.
        if self.metrics_file is None or not self.metrics_file.exists():
            return 0
        return self.metrics_file.stat().st_size
