"""A run's state on disk: its checkpointer, and resuming from a checkpoint after checking it fits.

Typed Python only (no Hydra): the task hands in the resolved config as plain containers. A
checkpoint is refused, with one line naming the first differences, when it was made with another
config (other than the fields in ``MAY_DIFFER``) or for another model; this happens before the
tracker starts or any file of the run is touched.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from typedexp.engine.checkpoint import Checkpoint, Checkpointer, LoopPosition, read_checkpoint
from typedexp.engine.settings import TrainerSettings
from typedexp.core.errors import CheckpointError, ConfigError
from typedexp.runs.layout import CHECKPOINT_DIR, WEIGHTS_FILE, open_no_follow

if TYPE_CHECKING:
    import torch
    from torch import nn

    from typedexp.engine.distributed import World
    from typedexp.engine.loop import LRSchedule
    from typedexp.engine.tasks import Task

# Fields a resumed run may change: they do not alter the numbers computed so far. `epochs` lets a
# finished run train longer; prefixes end with a dot.
MAY_DIFFER = (
    "resume", "epochs", "allowed_targets", "tags", "note", "tracker.", "trainer.progress", "trainer.device",
    "trainer.eval_batch_size", "trainer.checkpoint_every",
    # Pictures drawn between epochs change no weight (and checkpoints made before they existed lack them).
    "trainer.media_every", "trainer.media_samples",
    # Where the dataset files live and how they are fetched do not change the data itself.
    "dataset.root", "dataset.download", "dataset.cache",
    # Where and how long the ranks meet; the number of ranks (devices, nodes) must stay the same.
    "trainer.master_addr", "trainer.master_port", "trainer.node_rank", "trainer.timeout_s",
)


@dataclass
class Session:
    checkpointer: Checkpointer
    resume_from: LoopPosition | None = None  # None: a fresh run
    tracker_id: str | None = None  # the tracker run to continue, if the checkpoint names one
    tracker_color: str | None = None  # its colour in the dashboard, kept across resumes


def open_session(
    run_dir: Path,
    *,
    resume: str | None,
    config: Mapping[str, object],
    epochs: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    settings: TrainerSettings,
    metrics_file: Path,
    schedule: LRSchedule | None = None,
    world: World | None = None,
    task: Task | None = None,
) -> Session:
    """A checkpointer for ``run_dir``; with ``resume``, the model/optimizer/RNGs restored from it.

    With ``world`` (one rank of several), every rank restores the same checkpoint, and only rank 0
    writes: checkpoints and the truncated ``metrics.jsonl``.
    """
    scheduler = None if schedule is None else schedule.scheduler
    if world is None:
        checkpointer = Checkpointer(
            run_dir / CHECKPOINT_DIR, model=model, optimizer=optimizer, generator=generator,
            settings=settings, config=config, metrics_file=metrics_file, scheduler=scheduler, task=task,
        )
    else:
        from typedexp.engine.distributed import DistributedCheckpointer

        checkpointer = DistributedCheckpointer(
            world, run_dir / CHECKPOINT_DIR, model=model, optimizer=optimizer, generator=generator,
            settings=settings, config=config, metrics_file=metrics_file, scheduler=scheduler, task=task,
        )
    if resume is None:
        return Session(checkpointer)
    checkpoint = read_checkpoint(Path(resume))
    check_same_config(checkpoint.config, config, checkpoint.path)
    saved_epochs = checkpoint.config.get("epochs")
    if schedule is not None and schedule.per_step and saved_epochs != epochs:
        # Its curve is laid over every step of the run: a longer run would leave it undefined.
        raise CheckpointError(
            f"resume={checkpoint.path}: its learning-rate schedule spans the run's {saved_epochs} epochs; "
            f"resume with epochs={saved_epochs}, or start a new run to train longer"
        )
    position = checkpointer.restore(checkpoint)
    refuse_finished(checkpoint, position, epochs)
    if world is not None and not world.is_main:
        position.window = None  # the saved window is the ranks' sum: rank 0 carries it, the others start at 0
        return Session(checkpointer, position)
    if checkpoint.path.resolve().parent == checkpointer.directory.resolve():
        # Same run directory: drop metrics.jsonl lines logged after the checkpoint (work that
        # the resumed run redoes, bit-exactly on CPU), so no step appears twice.
        kept = checkpoint.extra.get("metrics_bytes")
        if isinstance(kept, int) and metrics_file.exists() and metrics_file.stat().st_size > kept:
            fd = open_no_follow(metrics_file, os.O_WRONLY)
            try:
                os.ftruncate(fd, kept)
            finally:
                os.close(fd)
    tracker_id, color = checkpoint.extra.get("tracker_id"), checkpoint.extra.get("tracker_color")
    return Session(
        checkpointer,
        position,
        tracker_id if isinstance(tracker_id, str) else None,
        color if isinstance(color, str) else None,
    )


def refuse_finished(checkpoint: Checkpoint, position: LoopPosition, epochs: int) -> None:
    """Refuse to resume a run that has nothing left to do, or that trained past ``epochs``.

    A checkpoint whose training is complete (it names epoch ``epochs + 1``, saved after the last
    validation, which it records) still leaves the test split and ``model.pt`` to do if the run
    was stopped before them, e.g. by SIGTERM during the last validation: resuming it does exactly
    that. Only a run whose ``model.pt`` was written (atomically, as the last step) is finished.
    """
    trained = position.epoch - 1
    if trained > epochs:
        raise ConfigError(
            f"resume={checkpoint.path}: that run already trained {trained} epochs, more than epochs={epochs}; "
            f"set epochs={trained} or higher"
        )
    run_dir = checkpoint.path.resolve().parent.parent
    finished = checkpoint.path.parent.name == CHECKPOINT_DIR and (run_dir / WEIGHTS_FILE).exists()
    if trained == epochs and finished:
        raise ConfigError(
            f"resume={checkpoint.path}: that run already finished {trained} epochs; "
            f"set epochs= higher to train longer"
        )


def flatten(value: object, prefix: str = "") -> dict[str, object]:
    if isinstance(value, dict):
        flat: dict[str, object] = {}
        for key, item in value.items():
            flat.update(flatten(item, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): value}


def may_differ(key: str) -> bool:
    return any(key == field or (field.endswith(".") and key.startswith(field)) for field in MAY_DIFFER)


def check_same_config(saved: Mapping[str, object], current: Mapping[str, object], path: Path) -> None:
    before, now = flatten(dict(saved)), flatten(dict(current))
    differences = [
        f"{key}={before.get(key, '<absent>')} there, {now.get(key, '<absent>')} here"
        for key in sorted(before.keys() | now.keys())
        if not may_differ(key) and before.get(key, "<absent>") != now.get(key, "<absent>")
    ]
    if differences:
        more = f" (and {len(differences) - 2} more)" if len(differences) > 2 else ""
        raise CheckpointError(
            f"resume={path}: made with another config: {'; '.join(differences[:2])}{more}; "
            "resume with the run's own settings, or start a new run"
        )
