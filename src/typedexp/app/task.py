"""The typed boundary between Hydra and the engine.

Hydra composes the config and instantiates it into an ``Experiment`` (``launch.guarded_task``);
from here on everything is plain typed Python. The only Hydra objects touched here are the
composed config (turned into a plain dict for checkpoints and the tracker) and ``HydraConfig``
(the run directory, the run's overrides and its job number).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from traceback import format_exception
from typing import TYPE_CHECKING

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from typedexp.runs import layout as rundir

from typedexp.sweeps import trials
from typedexp.data.cache import load_shared
from typedexp.engine import count_batches, fit, prepare, resolve_device, seed_everything
from typedexp.engine.checkpoint import malformed, write_atomically
from typedexp.engine.checkpoint_checks import resume_problem
from typedexp.engine.settings import Progress, TrainerSettings
from typedexp.engine.signals import held_while_closing, stop_on_signals
from typedexp.app.error_messages import error_line, user_message
from typedexp.core.errors import ConfigError, TypedexpError
from typedexp.specs.experiment import Experiment
from typedexp.core.report import warn
from typedexp.core.resources import naming_full_disk, naming_sizes, size_fields
from typedexp.runs.layout import METRICS_FILE, WEIGHTS_FILE
from typedexp.runs.record import RESULT_FILE, JobState, write_result
from typedexp.core.safety import redact
from typedexp.core.safety.secrets import mask_report
from typedexp.runs.session import Session, open_session
from typedexp.sweeps.summary import refresh_after_resume
from typedexp.tracking import FanOut, JsonlTracker, RunOutcome, Tracker
from typedexp.tracking.guarded import GuardedTracker
from typedexp.tracking.media_files import MEDIA_DIR, MediaFiles

if TYPE_CHECKING:  # engine/distributed.py is imported only by runs of more than one process
    from typedexp.engine.checkpoint import Checkpointer
    from typedexp.engine.distributed import World



# What the dashboard shows of a run: the experiment, not Hydra's or the allow-list's plumbing.
EXPERIMENT_FIELDS = ("dataset", "model", "optim", "schedule", "trainer", "epochs", "batch_size", "seed")
# Overrides that do not change what is computed are left out of a run's name.
NOT_IN_RUN_NAME = (
    "tracker", "trainer.progress", "hydra", "resume", "allowed_targets",
    "trainer.master_addr", "trainer.master_port", "trainer.node_rank", "trainer.timeout_s",  # where ranks meet
)


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

    @property
    def metrics_file(self) -> Path:
        return self.run_dir / METRICS_FILE

    @property
    def weights_file(self) -> Path:
        return self.run_dir / WEIGHTS_FILE


def run_experiment(experiment: Experiment, composed: DictConfig | None = None) -> RunResult:
    """Train and record ``experiment``; the task Hydra runs for each job.

    ``composed`` is the config it was built from, saved (resolved, secrets masked) in checkpoints
    and sent to the tracker. ``allowed_targets`` was enforced on it before anything was built.
    """
    started = time.monotonic()
    check_nodes(
        dataset=experiment.dataset, model=experiment.model, optim=experiment.optim,
        schedule=experiment.schedule, tracker=experiment.tracker, trainer=experiment.trainer,
    )
    experiment.dataset.check_available()  # both fail in milliseconds, before torch is imported
    experiment.tracker.check_available()
    hydra = HydraConfig.get()
    run_dir = Path(hydra.runtime.output_dir)
    job = JobFacts.current()
    launched = torchrun_rank()
    if (launched[0] != 0) if launched is not None else experiment.trainer.node_rank != 0:
        # A torchrun worker other than rank 0, or another node's ranks: the process of rank 0
        # holds the run dir and writes all of it (docs/ddp.md).
        return _train_all(experiment, plain_config(composed), run_dir, Stage(), job, torchrun=launched is not None)
    # The lock is taken before any file of ours is written and held until the run ends. Under it,
    # the pre-Hydra checks (guards.refuse_reused_run_dirs) are repeated, for a run that started
    # beside this one, and for a sweep job dir that a custom hydra.sweep.subdir made shared.
    setting = run_dir_setting()
    rundir.refuse_symlinks(run_dir, setting, [f"{hydra.job.name}.log"])
    with rundir.hold(run_dir, setting):
        continuing = continues(experiment.resume, run_dir)
        if not continuing:
            rundir.refuse_used(run_dir, setting)
        # From here the run dir is this job's: result.json records how it ends (runs.py). A resume
        # refused before it began writing (a checkpoint that does not fit) leaves the dir as it was.
        stage = Stage()
        try:
            result = _train_all(experiment, plain_config(composed), run_dir, stage, job, torchrun=launched is not None)
        except BaseException as exc:
            if stage.writing or not continuing:
                record_failure(run_dir, exc, time.monotonic() - started)
                if continuing and not job.multirun:
                    refresh_after_resume(run_dir)
            raise
        state = JobState.pruned if result.pruned else JobState.done
        record(run_dir, state, seconds=time.monotonic() - started, metrics=result.metrics, steps=result.steps)
        if continuing and not job.multirun:  # a sweep job resumed on its own: its sweep's table too
            refresh_after_resume(run_dir)
        return result


@dataclass(frozen=True)
class JobFacts:
    """What a run needs of Hydra's job, read once in the Hydra process (spawned ranks have no Hydra)."""

    multirun: bool
    job_num: int  # hydra.job.num: a sweep job's number, which picks its colour
    job_name: str  # names the job's log file, <run dir>/<job name>.log
    run_name: str  # the overrides that name the run (the tracker's run name)
    group: str | None  # the sweep dir, for the tracker; None for one run

    @classmethod
    def current(cls) -> JobFacts:
        hydra = HydraConfig.get()
        multirun = hydra.mode == RunMode.MULTIRUN
        number = int(hydra.job.num) if multirun else 0  # unset (???) outside a sweep
        return cls(multirun, number, str(hydra.job.name), run_name(list(hydra.overrides.task)), sweep_group())


def torchrun_rank() -> tuple[int, int, int, int] | None:
    """(rank, size, local rank, local size) when torchrun started this process; typedexp's own
    spawned ranks never run the task, so this is torchrun (or the elastic agent) only."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return None  # the usual case, without importing engine/distributed.py
    from typedexp.engine.distributed import from_environment

    return from_environment()


def _train_all(
    experiment: Experiment, config: dict[str, object], run_dir: Path, stage: Stage, job: JobFacts, *, torchrun: bool
) -> RunResult:
    """One process, or the ranks: joined to torchrun's group, or started here (typedexp/app/ranks.py)."""
    if torchrun:
        from typedexp.app.ranks import train_under_torchrun

        return train_under_torchrun(experiment, config, run_dir, stage, job)
    if experiment.trainer.world_size > 1:
        from typedexp.app.ranks import spawn_ranks

        return spawn_ranks(experiment, config, run_dir, stage, job)
    return train(experiment, config, run_dir, stage, job)


@dataclass
class Stage:
    """How far a run got: ``writing`` once it starts the trackers, its first writes to the run dir."""

    writing: bool = False
    on_writing: Callable[[], None] | None = None  # a spawned rank tells its parent (ranks.py)

    def begin_writing(self) -> None:
        self.writing = True
        if self.on_writing is not None:
            self.on_writing()


def run_dir_setting() -> str:
    """The setting that named this job's run dir, for error lines."""
    return "hydra.sweep.dir" if HydraConfig.get().mode == RunMode.MULTIRUN else "hydra.run.dir"


def record(
    run_dir: Path,
    state: JobState,
    *,
    seconds: float,
    error: str | None = None,
    metrics: Mapping[str, float] | None = None,
    steps: int | None = None,
    traceback: str | None = None,
) -> None:
    """Write ``result.json``; failing to (a full disk) is one warning, never the job's error."""
    try:
        write_result(run_dir, state, seconds=seconds, error=error, metrics=metrics, steps=steps, traceback=traceback)
    except (OSError, TypedexpError) as exc:
        warn(f"{run_dir / RESULT_FILE} was not written: {exc}")


def record_failure(run_dir: Path, error: BaseException, seconds: float) -> None:
    """``result.json`` for a job that raised: its one line, and a crash's traceback."""
    if isinstance(error, KeyboardInterrupt):  # Ctrl-C, SIGINT/SIGTERM (the line says where it saved)
        record(run_dir, JobState.interrupted, seconds=seconds, error=mask_report(str(error) or "interrupted"))
        return
    crash = user_message(error) is None
    trace = mask_report("".join(format_exception(error))) if crash else None
    record(run_dir, JobState.failed, seconds=seconds, error=mask_report(error_line(error)), traceback=trace)


def record_early_failure(error: Exception, started_at: float) -> None:
    """``result.json`` for a job that failed before its run took the run dir (a config mistake),
    so that a sweep's summary lists it with its line.

    Written only where this job may write: a run dir that is no symlink, not locked by another
    run, holds no run's results, and has no result.json written since ``started_at`` (wall-clock
    seconds; the run itself records failures that happen after it took the dir).
    """
    if not HydraConfig.initialized():
        return
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    result = run_dir / RESULT_FILE
    try:
        if run_dir.is_symlink() or not run_dir.is_dir() or rundir.results_in(run_dir) is not None:
            return
        if result.is_symlink() or (result.exists() and result.stat().st_mtime >= started_at):
            return
        with rundir.hold(run_dir, run_dir_setting()):
            record_failure(run_dir, error, time.time() - started_at)
    except (OSError, TypedexpError):  # in use by another run, unreadable: leave it as it is
        return


def sweep_job_label() -> str:
    """``job 3 (model=large,optim.lr=0.1)`` in a sweep, for a failed job's line; empty for one run."""
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return ""
    hydra = HydraConfig.get()
    return f"job {hydra.job.num} ({run_name(list(hydra.overrides.task))})"


def sweep_group() -> str | None:
    """The sweep a job belongs to (its sweep dir, as configured), for the tracker; None for one run."""
    hydra = HydraConfig.get()
    return str(hydra.sweep.dir) if hydra.mode == RunMode.MULTIRUN else None


def continues(resume: str | None, run_dir: Path) -> bool:
    """Whether ``resume`` is this run dir's own ``last.pt``: a resume in place (``resume.plan_resume``).

    Any other checkpoint starts a new run, which must not land in a directory holding one.
    """
    if resume is None:
        return False
    path = Path(resume).resolve()
    return path.name == rundir.LAST and path.parent == (run_dir / rundir.CHECKPOINT_DIR).resolve()


def train(
    experiment: Experiment,
    config: dict[str, object],
    run_dir: Path,
    stage: Stage,
    job: JobFacts,
    world: World | None = None,
) -> RunResult:
    """The run itself, in a run dir this process (or its parent) holds: train, record, save the
    weights. With ``world``, this is one rank: only rank 0 writes files and talks to the tracker."""
    dataset, model, optim, tracker, trainer = (
        experiment.dataset, experiment.model, experiment.optim, experiment.tracker, experiment.trainer
    )
    epochs, batch_size, seed, resume = experiment.epochs, experiment.batch_size, experiment.seed, experiment.resume
    main = world is None or world.is_main
    generator = seed_everything(seed)  # the same seed on every rank: the same init and data order
    device = resolve_device(trainer.device) if world is None else world.device
    # Absurd sizes fail inside torch's allocator; these name the fields that asked for them.
    with naming_sizes("loading the dataset", size_fields("dataset", dataset)):
        # A sweep's jobs with the same dataset load it once (data/cache.py). Only in a sweep: the
        # kept bundle and the job's copy take twice the dataset's memory (CIFAR-10: 2 x 0.7 GB).
        data = load_shared(dataset) if job.multirun and world is None else dataset.load()
    if trainer.overfit_batches is not None:
        data = data.first_train(trainer.overfit_batches * batch_size)
    model_sizes = size_fields("model", model)
    with naming_sizes("building the model", model_sizes):
        net = model.build(data.input_shape, data.num_classes)
        trained, data = prepare(net, data, trainer, device)  # `trained` is net, or net compiled
        optimizer = optim.build(net.parameters())
    per_epoch = count_batches(len(data.train), batch_size, trainer)
    schedule = experiment.schedule.build(optimizer, epochs=epochs, steps_per_epoch=per_epoch)
    step_sizes = [f"batch_size={batch_size}", f"trainer.eval_batch_size={trainer.eval_batch_size}", *model_sizes]
    # Restores a checkpoint (refusing one that does not fit) before any file of the run is opened.
    session = open_session(
        run_dir, resume=resume, config=config, epochs=epochs, model=net, optimizer=optimizer,
        generator=generator, settings=trainer, metrics_file=run_dir / METRICS_FILE, schedule=schedule,
        world=world,
    )
    check_resume_fits(session, train_size=len(data.train), batch_size=batch_size, settings=trainer)
    if world is not None:  # after restoring: DDP broadcasts rank 0's weights, the same ones
        from typedexp.engine.distributed import wrap

        trained = wrap(trained, device)
    stage.begin_writing()

    console = Console(quiet=not main)  # rank 0 speaks for the run
    if not main:
        trainer = dataclasses.replace(trainer, progress=Progress.off)
    sweep_job = job.job_num if job.multirun else None
    color = session.tracker_color or tracker.pick_color(sweep_job)
    external = GuardedTracker(None) if not main else GuardedTracker.start(
        lambda: tracker.start(
            config=experiment_config(config),
            run_name=job.run_name,
            run_dir=str(run_dir),
            resume_id=session.tracker_id,
            color=color,
            chatter=run_dir / f"{job.job_name}.log",
            group=job.group,
        )
    )
    session.checkpointer.extra.update(tracker_id=external.run_id, tracker_color=color)
    view = external.view or "tracker off: metrics.jsonl only"
    console.print(f"typedexp: run dir {run_dir}; {view}", markup=False, highlight=False, soft_wrap=True)
    # media/*.png for every tracker mode (tracker=disabled included); SwanLab gets the same pictures.
    trackers = FanOut([JsonlTracker(run_dir / METRICS_FILE), MediaFiles(run_dir / MEDIA_DIR), external] if main else [])
    # A sweeper's per-epoch check for this job (a trial's pruner), when it runs in its process.
    should_stop = trials.take(job.job_num) if job.multirun and world is None else None
    outcome, error = RunOutcome.crashed, None
    # A spawned rank leaves signals to its parent, which sets the stop flag the ranks agree on.
    if world is None or world.handles_signals:
        signals = stop_on_signals(session.checkpointer)
    else:
        from typedexp.engine.distributed import ignoring_signals

        signals = ignoring_signals()
    try:
        with signals, naming_sizes("training", step_sizes):
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
                should_stop=should_stop,
                world=world,
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
        if world is None or world.handles_signals:  # a spawned rank leaves signals to its parent
            kept = session.checkpointer
            with held_while_closing(outcome is RunOutcome.aborted, lambda signum: closing_line(signum, kept, run_dir)):
                trackers.finish(outcome, error)
        else:
            trackers.finish(outcome, error)

    # Atomic, so that model.pt exists only complete: its presence is what marks a finished run
    # (session.open_session), and a symlink planted as model.pt is replaced, never followed.
    if main:
        write_atomically(net.state_dict(), run_dir / WEIGHTS_FILE)
    result = RunResult(
        run_dir, fitted.metrics, fitted.steps, fitted.epochs, fitted.seconds, str(device), external.failure,
        pruned=fitted.stopped_early,
    )
    console.print(summary_line(result), markup=False, highlight=False, soft_wrap=True)
    return result


def closing_line(signum: int, checkpointer: Checkpointer, run_dir: Path) -> str:
    """The line for a signal that came while the trackers closed, after training."""
    import signal

    kept = f"; kept {checkpointer.saved}; continue with: typedexp resume={run_dir}" if checkpointer.saved else ""
    return f"interrupted by {signal.Signals(signum).name} while closing the tracker{kept}"


def check_nodes(**nodes: object) -> None:
    """``trainer=x`` or ``trainer=null`` replace a node of fields by a value, which zen passes on."""
    for name, node in nodes.items():
        if not dataclasses.is_dataclass(node):
            how = "choose an option with" if name != "trainer" else "set its fields, e.g."
            example = "trainer.max_batches=2" if name == "trainer" else f"{name}=<option>"
            raise ConfigError(f"{name}={node!r}: {name} is a group of fields, not a value; {how} {example}")


def check_resume_fits(session: Session, *, train_size: int, batch_size: int, settings: TrainerSettings) -> None:
    """Refuse a resumed position that does not fit this data, before the tracker or any file starts."""
    if session.resume_from is None or session.checkpointer.saved is None:
        return
    batches = count_batches(train_size, batch_size, settings)
    problem = resume_problem(session.resume_from, train_size=train_size, batches_per_epoch=batches)
    if problem is not None:
        raise malformed(session.checkpointer.saved, problem)


def plain_config(cfg: DictConfig | None) -> dict[str, object]:
    """The resolved config as plain containers, which is what SwanLab accepts."""
    if cfg is None:
        return {}
    container = redact(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))
    if not isinstance(container, dict):  # a task config is always a mapping
        raise TypeError(f"expected a mapping config, got {type(container).__name__}")
    return {str(key): value for key, value in container.items()}


def experiment_config(config: Mapping[str, object]) -> dict[str, object]:
    """The fields that define the experiment, without ``_target_`` keys (what SwanLab shows)."""
    return {name: without_targets(config[name]) for name in EXPERIMENT_FIELDS if name in config}


def without_targets(value: object) -> object:
    if isinstance(value, dict):
        return {key: without_targets(item) for key, item in value.items() if key != "_target_"}
    return value


def run_name(overrides: list[str]) -> str:
    """The overrides that define the experiment, sorted and joined like Hydra's override_dirname."""
    kept = []
    for override in overrides:
        key = override.partition("=")[0].lstrip("+~").split("@")[0]
        if not any(key == name or key.startswith((name + ".", name + "/")) for name in NOT_IN_RUN_NAME):
            kept.append(override)
    return ",".join(sorted(kept)) or "defaults"


def seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


def count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def summary_line(result: RunResult) -> str:
    metrics = "  ".join(
        f"{name} {result.metrics[name]:.4f}"
        for name in ("val/acc", "val/loss", "train/loss", "test/acc")
        if name in result.metrics
    )
    tracking = f"  tracking failed ({result.tracking_error})" if result.tracking_error else ""
    return (
        f"{'pruned' if result.pruned else 'done'}: {metrics}  ({count(result.epochs, 'epoch')}, "
        f"{count(result.steps, 'step')}, {seconds(result.seconds)} on {result.device})  run dir: {result.run_dir}{tracking}"
    )
