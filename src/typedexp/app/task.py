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
from collections.abc import Mapping, Sequence
from pathlib import Path
from traceback import format_exception

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from typedexp.app import tidy
from typedexp.app.error_messages import error_line, user_message
from typedexp.app.pipeline import EXPERIMENT_FIELDS, JobFacts, OneProcess, RunResult, Stage, train
from typedexp.core.errors import ConfigError, TypedexpError
from typedexp.engine.settings import BestMode
from typedexp.engine.tasks import headline
from typedexp.core.report import warn
from typedexp.core.safety import redact
from typedexp.core.safety.secrets import mask_report
from typedexp.runs import layout as rundir
from typedexp.runs.record import RESULT_FILE, JobState, write_result
from typedexp.app.store import GROUPS, changed_fields, options
from typedexp.specs.experiment import Experiment
from typedexp.sweeps.summary import refresh_after_resume


# The keys the tracker's copy of the config adds: round brackets, so no field of a spec (a Python
# identifier) can be named so. "(option)": the group's option, e.g. model: {(option): large, ...};
# "(changed)": the fields that differ from that option's values (a typed override, a preset, a spec
# given to launch() that is no option as it is); "(preset)": the +experiment= / debug= presets.
OPTION_KEY, CHANGED_KEY, PRESET_KEY = "(option)", "(changed)", "(preset)"
PRESET_GROUPS = ("experiment", "debug")

# Overrides that do not change what is computed are left out of a run's name.
NOT_IN_RUN_NAME = (
    "tracker", "trainer.progress", "hydra", "resume", "allowed_targets", "tags", "note",
    "trainer.master_addr", "trainer.master_port", "trainer.node_rank", "trainer.timeout_s",  # where ranks meet
)


def run_experiment(experiment: Experiment, composed: DictConfig | None = None, swept: tuple[str, ...] = ()) -> RunResult:
    """Train and record ``experiment``; the task Hydra runs for each job.

    ``composed`` is the config it was built from, saved (resolved, secrets masked) in checkpoints
    and sent to the tracker. ``allowed_targets`` was enforced on it before anything was built.
    ``swept``: the keys a sweep varies (``swept_keys``), which lead the run's name.
    """
    started = time.monotonic()
    check_nodes(
        dataset=experiment.dataset, model=experiment.model, optim=experiment.optim,
        schedule=experiment.schedule, tracker=experiment.tracker, trainer=experiment.trainer, task=experiment.task,
    )
    experiment.dataset.check_available()  # both fail in milliseconds, before torch is imported
    experiment.tracker.check_available()
    hydra = HydraConfig.get()
    run_dir = Path(hydra.runtime.output_dir)
    job = job_facts(experiment, swept)
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
            if stage.writing:
                tidy.forget()  # training began: the dir keeps its checkpoints and says how it ended
            # A single run's mistake before it began writing leaves no result.json: the task
            # removes the dir Hydra made (tidy.py), as for a mistake found before the run took it.
            if stage.writing or not (continuing or tidy.removes(exc)):
                record_failure(run_dir, exc, time.monotonic() - started, experiment)
                if continuing and not job.multirun:
                    refresh_after_resume(run_dir)
            raise
        state = JobState.pruned if result.pruned else JobState.done
        record(
            run_dir, state, seconds=time.monotonic() - started, metrics=result.metrics, steps=result.steps,
            tags=experiment.tags, note=experiment.note,
            objective=headline(experiment.task),
        )
        if continuing and not job.multirun:  # a sweep job resumed on its own: its sweep's table too
            refresh_after_resume(run_dir)
        return result


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
    return train(experiment, config, run_dir, stage, job, OneProcess())


def job_facts(experiment: Experiment, swept: tuple[str, ...] = ()) -> JobFacts:
    """What the run needs of Hydra's job, read once here (spawned ranks have no Hydra)."""
    hydra = HydraConfig.get()
    multirun = hydra.mode == RunMode.MULTIRUN
    number = int(hydra.job.num) if multirun else 0  # unset (???) outside a sweep
    name = run_name(list(hydra.overrides.task), swept if multirun else ())
    chosen = {str(key): value for key, value in hydra.runtime.choices.items()}
    named = {group: str(option) for group, option in chosen.items() if option is not None}
    return JobFacts(
        multirun, number, str(hydra.job.name), name, sweep_group(), recorded_choices(experiment, chosen), named
    )


def recorded_choices(experiment: Experiment, chosen: Mapping[str, object]) -> dict[str, dict[str, object]]:
    """What the tracker records of Hydra's choices (``hydra.runtime.choices``), beside the fields.

    ``{"model": {"(option)": "large"}, "optim": {"(option)": "sgd", "(changed)": ["lr"]},
    "(preset)": {"experiment": "seed_cifar10"}}``: the option each group was composed from and,
    where the run's values are not that option's, which fields differ.
    """
    recorded: dict[str, dict[str, object]] = {}
    for group in (group for group in GROUPS if group in EXPERIMENT_FIELDS):  # not the tracker: no experiment
        option = chosen.get(group)
        if not isinstance(option, str):
            continue
        recorded[group] = {OPTION_KEY: option}
        spec, known = getattr(experiment, group), options(group).get(option)
        # An option registered only in the launching process is unknown to a job process: its
        # name is still recorded, without the comparison.
        if known is not None and type(known) is type(spec):
            changed = sorted(changed_fields(known, spec))
            if changed:
                recorded[group][CHANGED_KEY] = changed
    presets = {group: chosen[group] for group in PRESET_GROUPS if isinstance(chosen.get(group), str)}
    if presets:
        recorded[PRESET_KEY] = dict(presets)
    return recorded


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
    tags: Sequence[str] = (),
    note: str = "",
    objective: tuple[str, BestMode] | None = None,
) -> None:
    """Write ``result.json``; failing to (a full disk) is one warning, never the job's error."""
    try:
        write_result(
            run_dir, state, seconds=seconds, error=error, metrics=metrics, steps=steps, traceback=traceback,
            tags=tags, note=note,
            objective=objective,
        )
    except (OSError, TypedexpError) as exc:
        warn(f"{run_dir / RESULT_FILE} was not written: {exc}")


def record_failure(run_dir: Path, error: BaseException, seconds: float, experiment: Experiment | None = None) -> None:
    """``result.json`` for a job that raised: its one line, and a crash's traceback (and the
    ``experiment``'s tags and note, where it got as far as having one)."""
    tags, note = (experiment.tags, experiment.note) if experiment is not None else ((), "")
    if isinstance(error, KeyboardInterrupt):  # Ctrl-C, SIGINT/SIGTERM (the line says where it saved)
        message = mask_report(str(error) or "interrupted")
        record(run_dir, JobState.interrupted, seconds=seconds, error=message, tags=tags, note=note)
        return
    crash = user_message(error) is None
    trace = mask_report("".join(format_exception(error))) if crash else None
    record(run_dir, JobState.failed, seconds=seconds, error=mask_report(error_line(error)), traceback=trace, tags=tags, note=note)


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
    return f"job {hydra.job.num} ({','.join(sorted(defining(list(hydra.overrides.task)))) or 'defaults'})"


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


def check_nodes(**nodes: object) -> None:
    """``trainer=x`` or ``trainer=null`` replace a node of fields by a value, which zen passes on."""
    for name, node in nodes.items():
        if not dataclasses.is_dataclass(node):
            how = "choose an option with" if name != "trainer" else "set its fields, e.g."
            example = "trainer.max_batches=2" if name == "trainer" else f"{name}=<option>"
            raise ConfigError(f"{name}={node!r}: {name} is a group of fields, not a value; {how} {example}")


def plain_config(cfg: DictConfig | None) -> dict[str, object]:
    """The resolved config as plain containers, which is what SwanLab accepts."""
    if cfg is None:
        return {}
    container = redact(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))
    if not isinstance(container, dict):  # a task config is always a mapping
        raise TypeError(f"expected a mapping config, got {type(container).__name__}")
    return {str(key): value for key, value in container.items()}


def run_name(overrides: list[str], swept: Sequence[str] = ()) -> str:
    """The overrides that define the experiment, what most likely differs from other runs first.

    The dashboard cuts names at about 25 characters, so the order decides what shows: the keys
    a sweep varies (``swept``), then field values (``optim.lr=0.1``: the most specific), then
    top-level values (``seed=1``), group choices (``model=large``), how the trainer runs
    (``trainer.max_batches=2``) and presets (``+experiment=...``) last; sorted within each.
    """
    ranked = sorted((0 if override_key(o) in swept else name_rank(override_key(o)), o) for o in defining(overrides))
    return ",".join(override for _, override in ranked) or "defaults"


def defining(overrides: list[str]) -> list[str]:
    """The overrides that change what is computed (not ``NOT_IN_RUN_NAME``)."""
    return [
        override for override in overrides
        if not any(override_key(override) == name or override_key(override).startswith((name + ".", name + "/"))
                   for name in NOT_IN_RUN_NAME)
    ]


def override_key(override: str) -> str:
    """``optim.lr`` of ``+optim.lr=0.1``; ``model`` of ``model@x=large``."""
    return override.partition("=")[0].lstrip("+~").split("@")[0]


def name_rank(key: str) -> int:
    """Where an override goes in a run's name (see ``run_name``), 1 first."""
    if key in PRESET_GROUPS:
        return 5
    if key == "trainer" or key.startswith("trainer."):
        return 4
    if "." in key:
        return 1
    return 3 if key in GROUPS else 2


def swept_keys(overrides: Sequence[str]) -> tuple[str, ...]:
    """The keys a sweep's overrides vary: ``optim.lr`` of ``optim.lr=0.1,0.01`` (any sweep syntax),
    and those of ``hydra.sweeper.params.<key>=...`` (the Optuna sweeper's search space)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except Exception:  # Hydra reports a malformed override itself, with its own message
        return ()
    keys: list[str] = []
    for override in parsed:
        key = override.key_or_group
        if key.startswith("hydra.sweeper.params."):
            keys.append(key.removeprefix("hydra.sweeper.params."))
        elif override.is_sweep_override():
            keys.append(key)
    return tuple(dict.fromkeys(keys))
