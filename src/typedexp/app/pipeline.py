"""A run's life as one straight pipeline, without Hydra: data -> model and optimizer -> session
(checkpoints, resume) -> trackers -> ``engine.fit`` -> weights, in a run dir the caller holds.

``task.py`` reads Hydra's job into ``JobFacts`` and calls ``train`` with ``OneProcess()``; each rank
of ``trainer.devices=N`` (``ranks.py``) calls the same ``train`` with its ``RankPlace``, the one swap
between the two.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from rich.console import Console

from typedexp.data.cache import load_shared
from typedexp.engine import count_batches, fit, prepare, resolve_device, seed_everything
from typedexp.engine.checkpoint import malformed, write_atomically
from typedexp.engine.checkpoint_checks import resume_problem
from typedexp.engine.settings import Device, Progress, TrainerSettings
from typedexp.engine.signals import held_while_closing, stop_on_signals
from typedexp.engine.tasks import Classification, check_targets, shown_metrics
from typedexp.core.resources import naming_sizes, size_fields
from typedexp.runs.layout import METRICS_FILE, WEIGHTS_FILE
from typedexp.runs.session import Session, open_session
from typedexp.specs.experiment import Experiment
from typedexp.sweeps import trials
from typedexp.tracking import FanOut, JsonlTracker, RunOutcome
from typedexp.tracking.guarded import GuardedTracker
from typedexp.tracking.media_files import MEDIA_DIR, MediaFiles

if TYPE_CHECKING:
    import torch
    from torch import nn

    from typedexp.data import DatasetSpec
    from typedexp.data.tensors import DataBundle
    from typedexp.engine.checkpoint import Checkpointer
    from typedexp.engine.distributed import World
    from typedexp.engine.loop import EpochCheck
    from typedexp.engine.position import LoopPosition


# What the dashboard shows of a run: the experiment, not Hydra's or the allow-list's plumbing.
EXPERIMENT_FIELDS = ("dataset", "model", "optim", "schedule", "task", "trainer", "epochs", "batch_size", "seed")


@dataclass(frozen=True)
class RunResult:
    """What a finished run produced; returned by ``launch()``."""

    run_dir: Path  # Hydra's output directory: .hydra/, metrics.jsonl, model.pt
    metrics: dict[str, float]  # last value of every metric, e.g. metrics["val/acc"]
    steps: int
    epochs: int
    seconds: float  # training and validation wall time, excluding set-up
    device: str
    tracking_error: str | None = None  # why the external tracker stopped, if it failed
    pruned: bool = False  # a hyper-parameter search stopped it after ``epochs`` epochs (hpo.py)
    shown: tuple[str, ...] = shown_metrics(Classification())  # the summary line's metrics, from the task

    @property
    def metrics_file(self) -> Path:
        return self.run_dir / METRICS_FILE

    @property
    def weights_file(self) -> Path:
        return self.run_dir / WEIGHTS_FILE


@dataclass(frozen=True)
class JobFacts:
    """What a run needs of Hydra's job, read once in the Hydra process (spawned ranks have no Hydra)."""

    multirun: bool
    job_num: int  # hydra.job.num: a sweep job's number, which picks its colour
    job_name: str  # names the job's log file, <run dir>/<job name>.log
    run_name: str  # the overrides that name the run (the tracker's run name)
    group: str | None  # the sweep dir, for the tracker; None for one run
    # What the tracker records beside each group's fields: {"model": {"(option)": "large"}, ...}
    # and the presets a run was composed from, {"(preset)": {"experiment": "seed_cifar10"}}.
    choices: Mapping[str, Mapping[str, object]] = dataclasses.field(default_factory=dict)
    # The option chosen in each group (hydra.runtime.choices), to name them in error lines.
    chosen: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclass
class Stage:
    """How far a run got: ``writing`` once it starts the trackers, its first writes to the run dir."""

    writing: bool = False
    on_writing: Callable[[], None] | None = None  # a spawned rank tells its parent (ranks.py)

    def begin_writing(self) -> None:
        self.writing = True
        if self.on_writing is not None:
            self.on_writing()


class Place(Protocol):
    """Where a run's steps execute: what differs between this process alone and one rank of several.

    ``OneProcess`` is the usual case; ``ranks.RankPlace`` is one rank of a ``trainer.devices=N``
    or torchrun group. ``train`` reads the same for both."""

    @property
    def world(self) -> World | None: ...  # the group, for the engine's DDP step and checkpointer

    @property
    def is_main(self) -> bool: ...  # writes the run's files and talks to the tracker

    def device(self, setting: Device) -> torch.device: ...

    def load(self, dataset: DatasetSpec, job: JobFacts) -> DataBundle: ...

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module: ...

    def signals(self, checkpointer: Checkpointer) -> AbstractContextManager[None]: ...

    def closing(self, aborted: bool, line: Callable[[int], str]) -> AbstractContextManager[None]: ...

    def pruner(self, job: JobFacts) -> EpochCheck | None: ...


class OneProcess:
    """A run in this process alone."""

    world: None = None
    is_main = True

    def device(self, setting: Device) -> torch.device:
        return resolve_device(setting)

    def load(self, dataset: DatasetSpec, job: JobFacts) -> DataBundle:
        # A sweep's jobs with the same dataset load it once (data/cache.py). Only in a sweep: the
        # kept bundle and the job's copy take twice the dataset's memory (CIFAR-10: 2 x 0.7 GB).
        return load_shared(dataset) if job.multirun else dataset.load()

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        return model

    def signals(self, checkpointer: Checkpointer) -> AbstractContextManager[None]:
        return stop_on_signals(checkpointer)

    def closing(self, aborted: bool, line: Callable[[int], str]) -> AbstractContextManager[None]:
        return held_while_closing(aborted, line)

    def pruner(self, job: JobFacts) -> EpochCheck | None:
        # A sweeper's per-epoch check for this job (a trial's pruner), when it runs in its process.
        return trials.take(job.job_num) if job.multirun else None


def train(
    experiment: Experiment, config: dict[str, object], run_dir: Path, stage: Stage, job: JobFacts, place: Place
) -> RunResult:
    """The run itself, in a run dir this process (or its parent) holds: data -> model and optimizer
    -> session -> trackers -> fit -> weights. ``place`` says what differs for one rank of several:
    only the main process writes files and talks to the tracker."""
    dataset, model, optim, trainer = (
        experiment.dataset, experiment.model, experiment.optim, experiment.trainer
    )
    epochs, batch_size, seed, resume = experiment.epochs, experiment.batch_size, experiment.seed, experiment.resume
    generator = seed_everything(seed)  # the same seed on every rank: the same init and data order
    device = place.device(trainer.device)
    # Absurd sizes fail inside torch's allocator; these name the fields that asked for them.
    with naming_sizes("loading the dataset", size_fields("dataset", dataset)):
        data = place.load(dataset, job)
    # A dataset spec that declares its targets was checked before Hydra made the run dir (app/fits.py).
    check_targets(experiment.task, data.targets, task_name=job.chosen.get("task", type(experiment.task).__name__),
                  dataset_name=job.chosen.get("dataset", type(dataset).__name__))
    if trainer.overfit_batches is not None:
        data = data.first_train(trainer.overfit_batches * batch_size)
    model_sizes = size_fields("model", model)
    with naming_sizes("building the model", model_sizes):
        net = model.build(data.input_shape, data.num_outputs)  # classes, or target columns
        trained, data = prepare(net, data, trainer, device)  # `trained` is net, or net compiled
        optimizer = optim.build(net.parameters())
    per_epoch = count_batches(len(data.train), batch_size, trainer)
    schedule = experiment.schedule.build(optimizer, epochs=epochs, steps_per_epoch=per_epoch)
    step_sizes = [f"batch_size={batch_size}", f"trainer.eval_batch_size={trainer.eval_batch_size}", *model_sizes]
    # Restores a checkpoint (refusing one that does not fit) before any file of the run is opened.
    session = open_session(
        run_dir, resume=resume, config=config, epochs=epochs, model=net, optimizer=optimizer,
        generator=generator, settings=trainer, metrics_file=run_dir / METRICS_FILE, schedule=schedule,
        world=place.world, task=experiment.task,
    )
    check_resume_fits(session, train_size=len(data.train), batch_size=batch_size, settings=trainer)
    trained = place.wrap(trained, device)  # after restoring: DDP broadcasts rank 0's weights, the same ones
    stage.begin_writing()

    console = Console(quiet=not place.is_main)  # the main process speaks for the run
    if not place.is_main:
        trainer = dataclasses.replace(trainer, progress=Progress.off)
    external, trackers = start_trackers(experiment, config, run_dir, job, session, console) if place.is_main else (
        GuardedTracker(None), FanOut([])
    )
    if session.resume_from is not None:  # the start line's companion: where the restored run carries on
        console.print(resuming_line(session.resume_from), markup=False, highlight=False, soft_wrap=True)
    outcome, error = RunOutcome.crashed, None
    try:
        with place.signals(session.checkpointer), naming_sizes("training", step_sizes):
            fitted = fit(
                trained,
                optimizer,
                data,
                epochs=epochs,
                batch_size=batch_size,
                settings=trainer,
                tracker=trackers,
                generator=generator,
                console=console,
                checkpoints=session.checkpointer,
                resume_from=session.resume_from,
                schedule=schedule,
                should_stop=place.pruner(job),
                world=place.world,
                task=experiment.task,
            )
        outcome = RunOutcome.pruned if fitted.stopped_early else RunOutcome.success
        error = f"pruned after epoch {fitted.epochs}" if fitted.stopped_early else None
    except KeyboardInterrupt as exc:  # Ctrl-C, or Interrupted (SIGINT/SIGTERM, checkpoint saved)
        outcome, error = RunOutcome.aborted, str(exc) or "interrupted"
        raise
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        kept = session.checkpointer
        with place.closing(outcome is RunOutcome.aborted, lambda signum: closing_line(signum, kept, run_dir)):
            trackers.finish(outcome, error)

    # Atomic, so that model.pt exists only complete: its presence is what marks a finished run
    # (session.open_session), and a symlink planted as model.pt is replaced, never followed.
    if place.is_main:
        write_atomically(net.state_dict(), run_dir / WEIGHTS_FILE)
    result = RunResult(
        run_dir, fitted.metrics, fitted.steps, fitted.epochs, fitted.seconds, str(device), external.failure,
        pruned=fitted.stopped_early, shown=shown_metrics(experiment.task),
    )
    console.print(summary_line(result), markup=False, highlight=False, soft_wrap=True)
    return result


def start_trackers(
    experiment: Experiment, config: dict[str, object], run_dir: Path, job: JobFacts, session: Session, console: Console
) -> tuple[GuardedTracker, FanOut]:
    """The external tracker (a failure to start is one warning) and everything the run logs to:
    metrics.jsonl, media/*.png for every tracker mode, and the external one."""
    tracker = experiment.tracker
    color = session.tracker_color or tracker.pick_color(job.job_num if job.multirun else None)
    external = GuardedTracker.start(
        lambda: tracker.start(
            config=experiment_config(config, job.choices),
            run_name=job.run_name,
            run_dir=str(run_dir),
            resume_id=session.tracker_id,
            color=color,
            chatter=run_dir / f"{job.job_name}.log",
            group=job.group,
            tags=experiment.tags,
            note=experiment.note,
        )
    )
    session.checkpointer.extra.update(tracker_id=external.run_id, tracker_color=color)
    view = external.view or "tracker off: metrics.jsonl only"
    console.print(f"typedexp: run dir {run_dir}; {view}", markup=False, highlight=False, soft_wrap=True)
    return external, FanOut([JsonlTracker(run_dir / METRICS_FILE), MediaFiles(run_dir / MEDIA_DIR), external])


def closing_line(signum: int, checkpointer: Checkpointer, run_dir: Path) -> str:
    """The line for a signal that came while the trackers closed, after training."""
    import signal

    kept = f"; kept {checkpointer.saved}; continue with: typedexp resume={run_dir}" if checkpointer.saved else ""
    return f"interrupted by {signal.Signals(signum).name} while closing the tracker{kept}"


def resuming_line(position: LoopPosition) -> str:
    """``typedexp: resuming from epoch 2, step 36``, in the words of the line that stopped it."""
    # At an epoch's end the position already names the next epoch (see LoopPosition).
    where = f"epoch {position.epoch}" if position.batch else f"the end of epoch {position.epoch - 1}"
    return f"typedexp: resuming from {where}, step {position.step}"


def check_resume_fits(session: Session, *, train_size: int, batch_size: int, settings: TrainerSettings) -> None:
    """Refuse a resumed position that does not fit this data, before the tracker or any file starts."""
    if session.resume_from is None or session.checkpointer.saved is None:
        return
    batches = count_batches(train_size, batch_size, settings)
    problem = resume_problem(session.resume_from, train_size=train_size, batches_per_epoch=batches)
    if problem is not None:
        raise malformed(session.checkpointer.saved, problem)


def experiment_config(
    config: Mapping[str, object], choices: Mapping[str, Mapping[str, object]] | None = None
) -> dict[str, object]:
    """The fields that define the experiment, without ``_target_`` keys (what SwanLab shows).

    ``choices`` (``JobFacts.choices``) go first in each group's node, so that the option's name
    stands beside its fields: ``dataset: {(option): digits, split_seed: 0, ...}``.
    """
    choices = choices or {}
    recorded: dict[str, object] = {}
    for name in EXPERIMENT_FIELDS:
        if name not in config:
            continue
        value = without_targets(config[name])
        if name in choices and isinstance(value, dict):
            value = {**choices[name], **value}
        recorded[name] = value
    return {**recorded, **{key: dict(value) for key, value in choices.items() if key not in EXPERIMENT_FIELDS}}


def without_targets(value: object) -> object:
    if isinstance(value, dict):
        return {key: without_targets(item) for key, item in value.items() if key != "_target_"}
    return value


def summary_line(result: RunResult) -> str:
    metrics = "  ".join(
        f"{name} {result.metrics[name]:.4f}"
        for name in result.shown
        if name in result.metrics
    )
    tracking = f"  tracking failed ({result.tracking_error})" if result.tracking_error else ""
    return (
        f"{'pruned' if result.pruned else 'done'}: {metrics}  ({count(result.epochs, 'epoch')}, "
        f"{count(result.steps, 'step')}, {seconds(result.seconds)} on {result.device})  run dir: {result.run_dir}{tracking}"
    )


def seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


def count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
