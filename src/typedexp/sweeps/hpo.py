"""Hyper-parameter search with Optuna, selected the Hydra way: ``typedexp -m hydra/sweeper=optuna``.

``OptunaSweeperConf`` is the typed config (``hydra.sweeper.*``) that ``store.py`` registers in
ConfigStore's ``hydra/sweeper`` group; ``OptunaSweeper`` is the Hydra ``Sweeper`` it builds. Hydra
only instantiates plugin classes found in the ``hydra_plugins`` package, so the class Hydra names is
a one-line subclass in ``hydra_plugins/typedexp_optuna/optuna_sweeper.py``. The config guard allows
it because it is registered from Python (config_guard.registered_targets).

Each trial is one job, run through the configured Hydra launcher with the trial's overrides. How a
trial ended is read from its run dir (``runs.read_run``: result.json), the same way under every
launcher: done -> its metric is told to the study; pruned -> PRUNED; failed, NaN, interrupted or
killed -> FAIL, and the study goes on. Pruning: each job run in this process gets a per-epoch check
(``trials.offered``) that reports the validation metric to its trial and asks the pruner.

The study lives in a SQLite file inside the sweep dir (``study.db``), so running the same command
with the same ``hydra.sweep.dir`` again continues it. Optuna's RDB storage keeps parameters,
distributions and attributes as JSON and numbers (nothing in it is unpickled); only ``sqlite:///``
paths inside the sweep dir are accepted, so a config file cannot send the study to a network
database or write a file elsewhere. Optuna is imported only when a sweep starts.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from typedexp.runs import layout as rundir

from typedexp.sweeps import trials
from typedexp.engine.loop import EpochCheck
from typedexp.engine.settings import BestMode
from typedexp.core.errors import ConfigError
from typedexp.runs.resume import quoted_value
from typedexp.runs.record import JobState, read_run
from typedexp.runs.columns import known_metrics
from typedexp.sweeps.ranking import built_task, ranking
from typedexp.sweeps.summary import BEST_FILE

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution

PLUGIN_CLASS = "hydra_plugins.typedexp_optuna.optuna_sweeper.OptunaSweeper"
SQLITE = "sqlite:///"
SQLITE_HEADER = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database file


class Sampler(enum.Enum):
    tpe = "tpe"  # Optuna's default: random for the first 10 trials, then a Parzen-estimator model
    random = "random"


class Pruner(enum.Enum):
    median = "median"  # stop a trial whose metric is worse than the median of earlier trials' at that epoch
    hyperband = "hyperband"
    none = "none"  # every trial trains all its epochs


@dataclass
class OptunaSweeperConf:
    """``hydra.sweeper.*`` with ``hydra/sweeper=optuna`` (docs/hpo.md)."""

    _target_: str = PLUGIN_CLASS
    n_trials: int = 20  # trials this command adds to the study (a resumed study keeps its earlier ones)
    n_jobs: int = 1  # trials launched together; more than 1 only helps a parallel launcher (joblib)
    metric: str | None = None  # what to optimise; None: hydra.callbacks.summary.metric, else the task's (val/acc)
    mode: BestMode | None = None  # max or min; None: hydra.callbacks.summary.mode, else the metric's direction
    sampler: Sampler = Sampler.tpe
    seed: int = 0  # the sampler's seed: the same command proposes the same trials
    pruner: Pruner = Pruner.median
    pruner_startup_trials: int = 5  # trials that finish before the median pruner stops any
    pruner_warmup_epochs: int = 1  # epochs every trial trains before it can be pruned
    storage: str = f"{SQLITE}study.db"  # a SQLite file, relative to the sweep dir and inside it
    study_name: str = "typedexp"
    params: dict[str, str] = field(default_factory=dict)  # a search space: {"optim.lr": "interval(1e-4,0.1)"}


def study_file(storage: str, sweep_dir: Path) -> Path:
    """The SQLite file ``storage`` names, inside ``sweep_dir``; a one-line ``ConfigError`` otherwise."""
    if not storage.startswith(SQLITE):
        raise ConfigError(
            f"hydra.sweeper.storage={storage!r}: only a SQLite file in the sweep dir is supported, "
            f"e.g. {SQLITE}study.db (move the whole sweep with hydra.sweep.dir=...)"
        )
    path = PurePosixPath(storage.removeprefix(SQLITE).split("?")[0])
    if not path.parts or path.is_absolute() or ".." in path.parts or "?" in storage:
        raise ConfigError(
            f"hydra.sweeper.storage={storage!r}: the study file must be a relative path inside the sweep "
            "dir, without '..' or URL options; choose where the sweep lives with hydra.sweep.dir=..."
        )
    return sweep_dir / path


def is_sqlite_file(path: Path) -> bool:
    """Whether ``path`` is a file SQLite can open as a database: empty (SQLite starts it) or one of its own."""
    if not path.is_file():
        return False
    with path.open("rb") as file:
        head = file.read(len(SQLITE_HEADER))
    return head in (b"", SQLITE_HEADER)


def distribution(override: Override) -> BaseDistribution:
    """The Optuna distribution of one sweep override (``choice``, ``range``, ``interval``, ``tag(log, ...)``)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    key = override.get_key_element()
    value = override.value()
    if isinstance(value, IntervalSweep):
        start, end, log = value.start, value.end, "log" in value.tags
        if start is None or end is None or not start < end or (log and start <= 0):
            raise ConfigError(f"{override.input_line}: an interval needs start < end (and start > 0 with log)")
        if isinstance(start, int) and isinstance(end, int):
            return IntDistribution(start, end, log=log)
        return FloatDistribution(float(start), float(end), log=log)
    if not isinstance(value, (ChoiceSweep, RangeSweep)):  # glob() lists config options by pattern
        raise ConfigError(f"{override.input_line}: the optuna sweeper takes choice(), range() and interval() sweeps")
    values = list(override.sweep_iterator())  # Hydra's parsed values: str, int, float, bool, lists
    if not values:
        raise ConfigError(f"{key}: the sweep {override.input_line} has no values")
    ints = [v for v in values if type(v) is int]
    if override.is_range_sweep() and len(ints) == len(values):  # ordered: TPE can use that
        steps = {b - a for a, b in zip(ints, ints[1:])}
        if len(steps) <= 1 and min(steps, default=1) > 0:
            return IntDistribution(ints[0], ints[-1], step=min(steps, default=1))
    return CategoricalDistribution([override_value(item) for item in values])


def override_value(value: object) -> str | int | float | bool:
    """A sweep value as Optuna stores it and as the override grammar reads it back."""
    if isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return value if value.isidentifier() else quoted_value(value)
    raise ConfigError(f"{value!r}: the optuna sweeper chooses among plain values (numbers, words, quoted text)")


def as_override(key: str, value: object) -> str:
    if isinstance(value, bool):
        return f"{key}={'true' if value else 'false'}"
    return f"{key}={value!r}" if isinstance(value, float) else f"{key}={value}"


def search_space(lines: Sequence[str]) -> tuple[dict[str, BaseDistribution], list[str]]:
    """(the distribution of each swept key, the overrides every trial gets) from override lines.

    A key given twice keeps its last line: the command line's after ``hydra.sweeper.params``.
    """
    try:
        parsed = OverridesParser.create().parse_overrides(list(lines))
    except Exception as exc:  # Hydra's OverrideParseException: its first line says what is wrong
        raise ConfigError(str(exc).splitlines()[0]) from exc
    last = {override.get_key_element(): override for override in parsed}
    space = {key: distribution(o) for key, o in last.items() if o.is_sweep_override()}
    fixed = [o.input_line or "" for o in last.values() if not o.is_sweep_override()]
    if not space:
        raise ConfigError(
            "hydra/sweeper=optuna: nothing to search; give a sweep such as 'optim.lr=tag(log,interval(1e-4,0.1))' "
            "or hydra.sweeper.params"
        )
    return space, fixed


def epoch_check(trial: optuna.Trial, metric: str) -> EpochCheck:
    """The check ``engine.fit`` asks after every epoch: report ``metric`` to the trial, ask its pruner."""

    def should_stop(epoch: int, metrics: Mapping[str, float]) -> bool:
        value = metrics.get(metric)
        if value is None or not math.isfinite(value):
            return False  # a NaN stops the run by itself (TrainingDiverged) and fails the trial
        trial.report(value, step=epoch)
        return trial.should_prune()

    return should_stop


class OptunaSweeper(Sweeper):
    """Runs ``n_trials`` trials of an Optuna study through Hydra's launcher (see the module docstring)."""

    def __init__(
        self,
        n_trials: int, n_jobs: int, metric: str | None, mode: BestMode | str | None, sampler: Sampler | str,
        seed: int, pruner: Pruner | str, pruner_startup_trials: int, pruner_warmup_epochs: int, storage: str,
        study_name: str, params: DictConfig | dict[str, str] | None,
    ) -> None:
        for name, number, least in (
            ("n_trials", n_trials, 1), ("n_jobs", n_jobs, 1),
            ("pruner_startup_trials", pruner_startup_trials, 0), ("pruner_warmup_epochs", pruner_warmup_epochs, 0),
        ):
            if number < least:
                raise ConfigError(f"hydra.sweeper.{name}={number}: must be at least {least}")
        if metric is not None and metric not in known_metrics():
            raise ConfigError(
                f"hydra.sweeper.metric={metric!r}: no such metric; choose one of: {', '.join(known_metrics())}"
            )
        self.n_trials, self.n_jobs, self.metric = n_trials, n_jobs, metric
        self.mode = None if mode is None else BestMode(mode if isinstance(mode, str) else mode.value)
        self.sampler, self.pruner = Sampler(sampler), Pruner(pruner)
        self.seed, self.startup, self.warmup = seed, pruner_startup_trials, pruner_warmup_epochs
        self.storage, self.study_name = storage, study_name
        self.params = ["=".join((str(key), str(value))) for key, value in (params or {}).items()]
        study_file(storage, Path("."))  # refuse a bad storage before anything runs

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )
        self.sweep_dir = Path(str(config.hydra.sweep.dir))
        summary = (config.hydra.get("callbacks") or {}).get("summary") or {}  # the table ranks by the same metric
        metric = self.metric or summary.get("metric")
        mode = self.mode or summary.get("mode")  # a BestMode, or its name where a file wrote one
        # Neither set: the task's headline (val/acc, max; val/rmse, min for regression), ranking.py.
        self.metric, self.mode = ranking(
            None if metric is None else str(metric),
            None if mode is None else mode if isinstance(mode, BestMode) else BestMode(str(mode)),
            task=built_task(config),
        )

    def sweep(self, arguments: list[str]) -> list[Sequence[JobReturn]]:
        try:
            import optuna
        except ImportError as exc:
            raise ConfigError("hydra/sweeper=optuna needs Optuna: pip install 'typedexp[hpo]'") from exc

        if self.launcher is None:
            raise RuntimeError("OptunaSweeper.sweep() before Hydra called setup()")
        space, fixed = search_space([*self.params, *arguments])
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        path = self.checked_study_file()
        try:
            study = optuna.create_study(
                storage=SQLITE + str(path), study_name=self.study_name,
                sampler=self.make_sampler(self.seed), pruner=self.make_pruner(),
                direction="maximize" if self.mode is BestMode.max else "minimize", load_if_exists=True,
            )
        except Exception as exc:  # SQLAlchemy's or Optuna's: an unreadable file, a schema Optuna cannot use
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ConfigError(f"hydra.sweeper.storage={self.storage!r}: cannot open the study in {path} ({reason})") from exc
        # A continued study gets a sampler seeded past its earlier trials: the same seed would
        # propose the same first points again.
        study.sampler = self.make_sampler(self.seed + len(study.trials))
        job = self.next_job(study)
        returns: list[Sequence[JobReturn]] = []
        for start in range(0, self.n_trials, self.n_jobs):
            batch = [study.ask(space) for _ in range(min(self.n_jobs, self.n_trials - start))]
            overrides = [[*(as_override(k, v) for k, v in trial.params.items()), *fixed] for trial in batch]
            for number, (trial, lines) in enumerate(zip(batch, overrides, strict=True), job):
                trial.set_user_attr("job", number)
                trial.set_user_attr("overrides", lines)
            checks = {number: epoch_check(trial, str(self.metric)) for number, trial in enumerate(batch, job)}
            try:
                with trials.offered(checks):
                    results = self.launcher.launch(overrides, initial_job_idx=job)
            except BaseException:  # Ctrl-C or a launcher error: the batch's trials must not stay RUNNING
                for trial in batch:
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                raise
            for trial, result in zip(batch, results, strict=True):
                self.tell(study, trial, result)
            returns.append(results)
            job += len(batch)
        self.report_best(study)
        return returns

    def checked_study_file(self) -> Path:
        """The study file, refused where a symlink (the file, or a folder on its way) leads out of the sweep dir.

        SQLite follows symlinks: a sweep dir received from elsewhere could otherwise have the study
        created or written wherever its ``study.db`` points.
        """
        path = study_file(self.storage, self.sweep_dir)
        if path.is_symlink() or not path.resolve().is_relative_to(self.sweep_dir.resolve()):
            raise ConfigError(
                f"hydra.sweeper.storage={self.storage!r}: {path} is a symlink or leads through one out of the "
                "sweep dir; a study is kept only inside its sweep dir"
            )
        if path.exists() and not is_sqlite_file(path):  # SQLAlchemy's error would name neither setting nor file
            raise ConfigError(
                f"hydra.sweeper.storage={self.storage!r}: {path} is not a study file (not a SQLite database); "
                "move it away, or keep this sweep elsewhere with hydra.sweep.dir=..."
            )
        return path

    def make_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        import optuna

        if self.sampler is Sampler.random:
            return optuna.samplers.RandomSampler(seed=seed)
        return optuna.samplers.TPESampler(seed=seed)

    def make_pruner(self) -> optuna.pruners.BasePruner:
        import optuna

        if self.pruner is Pruner.none:
            return optuna.pruners.NopPruner()
        if self.pruner is Pruner.hyperband:
            return optuna.pruners.HyperbandPruner(min_resource=max(self.warmup, 1))
        return optuna.pruners.MedianPruner(n_startup_trials=self.startup, n_warmup_steps=self.warmup)

    def next_job(self, study: optuna.Study) -> int:
        """The first job number no earlier trial of the study (or job dir) used, so none is reused."""
        used = [int(trial.user_attrs.get("job", trial.number)) for trial in study.trials]
        used += [int(p.name) for p in self.sweep_dir.iterdir() if p.name.isdigit() and p.is_dir()]
        return max(used, default=-1) + 1

    def tell(self, study: optuna.Study, trial: optuna.Trial, result: JobReturn) -> None:
        """Tell the study how the trial's job ended, as its run dir records it."""
        from optuna.trial import TrialState

        hydra = result.hydra_cfg.hydra if result.hydra_cfg is not None else None
        record = read_run(Path(str(hydra.runtime.output_dir))) if hydra is not None else None
        value = record.metrics.get(str(self.metric)) if record is not None else None
        if record is not None and record.state is JobState.pruned:
            study.tell(trial, state=TrialState.PRUNED)
        elif record is not None and record.state is JobState.done and value is not None and math.isfinite(value):
            study.tell(trial, value)
        else:
            study.tell(trial, state=TrialState.FAIL)

    def report_best(self, study: optuna.Study) -> None:
        """Print the best trial and write ``best.yaml`` in the sweep dir."""
        from optuna.trial import TrialState

        counts = {state.name.lower(): len(study.get_trials(states=(state,))) for state in TrialState}
        finished = {name: count for name, count in counts.items() if count}
        try:
            best = study.best_trial
        except ValueError:  # no trial completed
            print(f"optuna: study {study.study_name!r}: no trial completed ({finished})", flush=True)
            return
        overrides = [str(line) for line in best.user_attrs.get("overrides", [])]
        record = {
            "study": study.study_name, "metric": self.metric, "mode": self.mode.value if self.mode else None,
            "value": best.value, "trial": best.number, "job": best.user_attrs.get("job"),
            "overrides": overrides, "trials": finished,
        }
        path = self.sweep_dir / BEST_FILE
        fd, temp = rundir.exclusive_temp(path)
        try:
            with open(fd, "w", encoding="utf-8") as file:
                yaml.safe_dump(record, file, sort_keys=False)
            temp.replace(path)
        finally:
            temp.unlink(missing_ok=True)
        print(
            f"optuna: best trial {best.number} (job {record['job']}): {self.metric} {best.value:.4f}  "
            f"{' '.join(as_override(key, value) for key, value in best.params.items())}  ({sum(finished.values())} trials in the study: "
            f"{', '.join(f'{n} {s}' for s, n in finished.items())}; saved in {path})",
            flush=True,
        )
