"""``launch()``: run typedexp from Python (tests, notebooks) exactly as the CLI would."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from hydra_zen import launch as hydra_zen_launch
from hydra_zen import zen
from omegaconf import DictConfig

from typedexp.config_guard import config_guard
from typedexp.configs import APP_NAME, ExperimentConf, register_configs
from typedexp.error_messages import describe, user_message
from typedexp.errors import ConfigError, TypedexpError, find_user_error
from typedexp.guards import check_known_fields
from typedexp.preflight import prepare_overrides, typed_allow_list
from typedexp.safety.secrets import mask_report
from typedexp.task import RunResult, run_experiment


@dataclass(frozen=True)
class Failure:
    """A job's exception, returned instead of raised so Hydra does not print it first."""

    error: Exception


def guarded_task() -> Callable[[DictConfig], RunResult | Failure]:
    """The task Hydra runs: ``zen(run_experiment)``, with exceptions returned as ``Failure``."""
    task = zen(run_experiment)

    def run(cfg: DictConfig) -> RunResult | Failure:
        try:
            check_known_fields(cfg)  # what it may build was checked when Hydra composed it
            return task(cfg)
        except Exception as exc:
            return Failure(exc)

    return run


def launch(overrides: Sequence[str] = (), *, output_dir: str | Path | None = None) -> RunResult:
    """Run one experiment with CLI-style ``overrides`` and return its typed result.

    ``output_dir`` replaces Hydra's dated run directory. User mistakes raise ``TypedexpError``
    (``ConfigError`` for config problems) with the same one-line message the CLI prints.
    """
    if isinstance(overrides, str):  # a str is a Sequence[str] too; its letters are not overrides
        raise TypeError(f"launch() takes a list of overrides, e.g. [{overrides!r}], not a str")
    register_configs()
    all_overrides = list(overrides)
    if output_dir is not None:
        all_overrides.append(f"hydra.run.dir={output_dir}")
    typed = typed_allow_list(all_overrides)
    all_overrides = prepare_overrides(all_overrides)  # secrets, resume=, reused dirs
    try:
        with config_guard(typed):
            job = hydra_zen_launch(
                ExperimentConf,
                guarded_task(),
                overrides=all_overrides,
                version_base="1.3",
                config_name=APP_NAME,
                job_name=APP_NAME,
            )
    except TypedexpError as exc:
        masked(exc)
        raise
    except Exception as exc:  # Hydra's composition errors: bad override, unknown option, ...
        raise ConfigError(mask_report(describe(exc))) from exc
    outcome = job.return_value
    if isinstance(outcome, Failure):
        message = user_message(outcome.error)
        if message is not None and find_user_error(outcome.error) is None:
            raise ConfigError(mask_report(message)) from outcome.error  # e.g. a `???` value left missing
        raise masked(outcome.error)
    if not isinstance(outcome, RunResult):
        raise TypeError(f"the task returned {type(outcome).__name__}, not RunResult")
    return outcome


def masked(error: Exception) -> Exception:
    """``error`` with secrets masked in its message (its type and traceback kept)."""
    error.args = tuple(mask_report(arg) if isinstance(arg, str) else arg for arg in error.args)
    return error
