"""``launch()`` and ``launch_sweep()``: run typedexp from Python (tests, notebooks) as the CLI would."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn
from hydra_zen import instantiate
from hydra_zen import launch as hydra_zen_launch
from omegaconf import DictConfig

from typedexp.app.config_guard import active_job_guard, config_guard
from typedexp.app.error_messages import describe, error_line, user_message
from typedexp.core.errors import ConfigError, TypedexpError, find_user_error
from typedexp.specs.experiment import Experiment
from typedexp.app.guards import check_known_fields
from typedexp.app.preflight import prepare_overrides, typed_allow_list, typed_launcher_settings, typed_rendezvous_settings
from typedexp.runs.resume import merge, quoted_value
from typedexp.runs.record import RESULT_FILE, read_result
from typedexp.core.safety.secrets import mask_report
from typedexp.app.store import APP_NAME, differences, experiment_config, plain, register_configs
from typedexp.app.pipeline import RunResult
from typedexp.app.task import record_early_failure, run_experiment, swept_keys
from typedexp.app import tidy


@dataclass(frozen=True)
class Failure:
    """A job's exception, returned instead of raised so Hydra does not print it first."""

    error: Exception


@dataclass(frozen=True)
class JobFailure:
    """A sweep job that failed, returned by ``launch_sweep`` in its place among the results."""

    job: int  # hydra.job.num: its place in the sweep
    overrides: tuple[str, ...]  # the job's own overrides, e.g. ("optim.lr=0.1", "model=large")
    error: str  # the one line the CLI prints for it (secrets masked)
    run_dir: Path  # its run dir: result.json, the job log, whatever it wrote before failing
    exception: Exception  # what it raised (a ConfigError for a config mistake)


def guarded_task(swept: tuple[str, ...] = ()) -> Callable[[DictConfig], RunResult | Failure]:
    """The task Hydra runs: the config built into an ``Experiment`` and run, with exceptions
    returned as ``Failure``. ``swept`` (``task.swept_keys``) travels with it to the jobs."""

    job_guard = active_job_guard()  # travels with the task to joblib's and submitit's job processes

    def run(cfg: DictConfig) -> RunResult | Failure:
        started_at = time.time()  # wall clock: compared with result.json's mtime
        tidy.claim()  # what Hydra made for a single run, removed again if a mistake stops it
        try:
            if job_guard is not None:
                job_guard.confirm()
            check_known_fields(cfg)  # what it may build was checked when Hydra composed it
            experiment = instantiate(cfg)  # Any: Hydra builds it from the composed config
            if not isinstance(experiment, Experiment):
                raise TypeError(f"the top-level config built {type(experiment).__name__}, not Experiment")
            return run_experiment(experiment, cfg, swept)
        except Exception as exc:
            # A single run's mistake removes what the run made; a sweep job records it for the
            # sweep's summary (and so does a failure after the run took its dir, in run_experiment).
            if not tidy.remove_after_mistake(exc):
                record_early_failure(exc, started_at)
            return Failure(exc)
        finally:
            tidy.forget()

    return run


def check_overrides(overrides: object, name: str = "launch") -> list[str]:
    """``overrides`` as a list of strings, or a TypeError that says what ``launch`` takes.

    The annotation (``list[str] | tuple[str, ...]``) refuses a bare str for mypy and pyright;
    this refuses it, and anything else, at run time.
    """
    example = f"e.g. {name}(['model=large', 'epochs=3'])"
    if isinstance(overrides, str):  # a str is a Sequence[str] too; its letters are not overrides
        raise TypeError(f"{name}() takes a list of overrides, e.g. [{overrides!r}], not a str")
    if not isinstance(overrides, (list, tuple)):
        raise TypeError(f"{name}() takes a list of override strings, {example}; got {type(overrides).__name__}")
    for item in overrides:
        if not isinstance(item, str):
            raise TypeError(f"{name}() overrides must be strings like 'epochs=3'; got {item!r} ({type(item).__name__})")
    return list(overrides)


def launch(
    overrides: list[str] | tuple[str, ...] = (),
    *,
    experiment: Experiment | None = None,
    output_dir: str | Path | None = None,
) -> RunResult:
    """Run one experiment and return its typed result, exactly as the command line would.

    ``experiment`` (default: ``Experiment()``) is the run; CLI-style ``overrides`` apply on top
    (``["optim.lr=0.1"]``; an override of a group replaces the experiment's choice and changes
    there). ``output_dir`` replaces Hydra's dated run directory. User mistakes raise
    ``TypedexpError`` (``ConfigError`` for config problems) with the one line the CLI prints.
    """
    outcome = _launch(overrides, experiment, output_dir, multirun=False).return_value
    if isinstance(outcome, Failure):
        user_error = find_user_error(outcome.error)  # Hydra wraps a spec's ConfigError when it builds
        if user_error is not None:
            raise masked(user_error)
        message = user_message(outcome.error)
        if message is not None:
            raise ConfigError(mask_report(message)) from outcome.error  # e.g. a `???` value left missing
        raise masked(outcome.error)
    if not isinstance(outcome, RunResult):
        raise TypeError(f"the task returned {type(outcome).__name__}, not RunResult")
    return outcome


def launch_sweep(
    overrides: list[str] | tuple[str, ...],
    *,
    experiment: Experiment | None = None,
    sweep_dir: str | Path | None = None,
) -> list[RunResult | JobFailure]:
    """Run a sweep, as ``typedexp -m`` would, and return each job's result in job order.

    ``overrides`` sweep as on the command line (``["optim.lr=0.1,0.01", "model=small,large"]``:
    4 jobs). A job that fails is a ``JobFailure`` in its place, and the others still run. At the
    end the ranked summary is printed and saved in the sweep dir (``sweep_dir``, default
    ``multirun/<date>/<time>``). Mistakes found before any job runs (a bad override, an unknown
    option, a bad ``hydra.callbacks.summary.metric``) raise ``ConfigError`` as ``launch()`` does.
    """
    returned = _launch(overrides, experiment, sweep_dir, multirun=True)
    jobs = [job for batch in returned for job in (batch if isinstance(batch, list) else [batch])]
    results: list[RunResult | JobFailure] = []
    for job in jobs:
        if not isinstance(job, JobReturn):
            raise TypeError(f"the sweeper returned {type(job).__name__}, not JobReturn")
        outcome = job.return_value
        if isinstance(outcome, RunResult):
            results.append(outcome)
        elif isinstance(outcome, Failure):
            results.append(job_failure(job, outcome.error))
        else:
            raise TypeError(f"the task returned {type(outcome).__name__}, not RunResult")
    return results


def job_failure(job: JobReturn, error: Exception) -> JobFailure:
    hydra = job.hydra_cfg.hydra if job.hydra_cfg is not None else None
    number = int(hydra.job.num) if hydra is not None else -1
    run_dir = Path(str(hydra.runtime.output_dir)) if hydra is not None else Path(job.working_dir or ".")
    # The line the job wrote in its result.json: from a joblib worker the exception comes back
    # pickled, without the cause chain that error_line reads, as Hydra's "Error in call to target".
    recorded = read_result(run_dir / RESULT_FILE)  # (state, error line, ...) or None
    line = (recorded[1] if recorded is not None else None) or mask_report(error_line(error))
    user_error = find_user_error(error)  # as launch() raises it: Hydra wraps a spec's ConfigError
    return JobFailure(number, tuple(job.overrides or ()), line, run_dir, masked(user_error or error))


def _launch(
    overrides: list[str] | tuple[str, ...],
    experiment: Experiment | None,
    output_dir: str | Path | None,
    *,
    multirun: bool,
) -> Any:
    """Check the arguments, then run Hydra over the typed store with the config guard on.

    ``Any``: hydra-zen's ``launch`` returns a ``JobReturn`` for a run and the sweeper's own
    result (lists of ``JobReturn``) for a sweep; the callers narrow it.
    """
    name = "launch_sweep" if multirun else "launch"
    setting, argument = ("hydra.sweep.dir", "sweep_dir") if multirun else ("hydra.run.dir", "output_dir")
    given = check_overrides(overrides, name)
    if experiment is not None and not isinstance(experiment, Experiment):
        raise TypeError(f"{name}(experiment=...) takes an Experiment; got {type(experiment).__name__}")
    if output_dir is not None and not isinstance(output_dir, (str, Path)):
        raise TypeError(f"{name}({argument}=...) takes a str or Path; got {type(output_dir).__name__}")
    if output_dir is not None and "${" in str(output_dir):
        # Quoting gets it through the override parser, but Hydra copies the run dir into
        # hydra.runtime.output_dir unescaped, where `${` becomes an interpolation again.
        raise ConfigError(f"{argument}={str(output_dir)!r}: Hydra cannot use a path holding '${{'; choose another")
    register_configs()
    all_overrides = experiment_overrides(experiment, given) if experiment is not None else given
    if output_dir is not None:
        all_overrides.append(f"{setting}={quoted_value(str(output_dir))}")
    if multirun:  # as `-m` sets it: the jobs see that they are part of a sweep (HydraConfig.mode)
        all_overrides.append("hydra.mode=MULTIRUN")
    typed = typed_allow_list(all_overrides)
    try:
        with config_guard(typed, typed_launcher_settings(all_overrides), typed_rendezvous_settings(all_overrides)):
            # Secrets, resume=, reused dirs; a reused output_dir is named as the caller passed it.
            named = argument if output_dir is not None else None
            all_overrides = prepare_overrides(all_overrides, multirun=multirun, dir_named=named)
            if multirun:  # two calls: hydra-zen types each value of `multirun` with its own overload
                return hydra_zen_launch(
                    experiment_config(), guarded_task(swept_keys(all_overrides)), overrides=all_overrides, multirun=True,
                    version_base="1.3", config_name=APP_NAME, job_name=APP_NAME,
                )
            return hydra_zen_launch(
                experiment_config(), guarded_task(), overrides=all_overrides,
                version_base="1.3", config_name=APP_NAME, job_name=APP_NAME,
            )
    except TypedexpError as exc:
        masked(exc)
        raise
    except Exception as exc:  # Hydra's composition errors: bad override, unknown option, ...
        raise ConfigError(mask_report(describe(exc))) from exc


def masked(error: Exception) -> Exception:
    """``error`` with secrets masked in its message (its type and traceback kept)."""
    error.args = tuple(mask_report(arg) if isinstance(arg, str) else arg for arg in error.args)
    return error


def experiment_overrides(experiment: Experiment, overrides: Sequence[str]) -> list[str]:
    """Overrides that compose ``experiment``, then ``overrides`` on top.

    Written as overrides (not as a config of its own) so that ``.hydra/overrides.yaml`` holds the
    whole run and ``resume=`` can rebuild it. A later override of a group drops the experiment's
    changes inside that group, which belonged to its choice.
    """
    choices, values = differences(experiment)
    lines = [f"{group}={option}" for group, option in choices.items()]
    for key, value in values.items():
        if isinstance(value, dict):
            lines += [f"{key}.{name}={override_value(item)}" for name, item in value.items()]
        else:
            lines.append(f"{key}={override_value(value)}")
    regrouped = {line.partition("=")[0].lstrip("+~") for line in overrides if "." not in line.partition("=")[0]}
    lines = [line for line in lines if line.split("=")[0].split(".")[0] not in regrouped]
    parsed_then = OverridesParser.create().parse_overrides(list(overrides))
    parsed_first = OverridesParser.create().parse_overrides(lines)
    return [override.input_line or "" for override in merge(parsed_first, parsed_then)]


def override_value(value: object) -> str:
    """``value`` in Hydra's override grammar."""
    value = plain(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ",".join(override_value(item) for item in value) + "]"
    return quoted_value(str(value))
