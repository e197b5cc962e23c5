"""``launch()``: run typedexp from Python (tests, notebooks) exactly as the CLI would."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from hydra_zen import launch as hydra_zen_launch
from hydra_zen import zen
from omegaconf import DictConfig

from typedexp.configs import APP_NAME, ExperimentConf, register_configs
from typedexp.error_messages import describe, user_message
from typedexp.errors import ConfigError, TypedexpError, find_user_error
from typedexp.guards import check_known_fields, refuse_used_dir
from typedexp.preflight import prepare_overrides
from typedexp.targets import allowed_from, check_config_targets
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
            check_config_targets(cfg, allowed_from(cfg))  # before anything is instantiated
            check_known_fields(cfg)
            return task(cfg)
        except Exception as exc:
            return Failure(exc)

    return run


def override_value(text: str) -> str:
    """``text`` as a quoted Hydra override value that reads back as exactly ``text``.

    Inside quotes Hydra's grammar only treats a quote, ``${`` (an interpolation) and the
    backslashes right before them (or before the closing quote) specially, so those backslashes
    are doubled and the quote and ``${`` escaped: ``out,a``, ``it's``, ``a b=c``, ``日本`` all
    parse back unchanged.
    """
    doubled = re.sub(r"(\\+)(?='|\$\{|$)", lambda run: run.group(1) * 2, text)
    return "'" + doubled.replace("'", "\\'").replace("${", "\\${") + "'"


def check_overrides(overrides: object) -> list[str]:
    """``overrides`` as a list of strings, or a TypeError that says what ``launch`` takes."""
    example = "e.g. launch(['model=large', 'epochs=3'])"
    if isinstance(overrides, str):  # a str is a Sequence[str] too; its letters are not overrides
        raise TypeError(f"launch() takes a list of overrides, e.g. [{overrides!r}], not a str")
    if not isinstance(overrides, Sequence):
        raise TypeError(f"launch() takes a list of override strings, {example}; got {type(overrides).__name__}")
    for item in overrides:
        if not isinstance(item, str):
            raise TypeError(f"launch() overrides must be strings like 'epochs=3'; got {item!r} ({type(item).__name__})")
    return list(overrides)


def launch(overrides: Sequence[str] = (), *, output_dir: str | Path | None = None) -> RunResult:
    """Run one experiment with CLI-style ``overrides`` and return its typed result.

    ``output_dir`` replaces Hydra's dated run directory. User mistakes raise ``TypedexpError``
    (``ConfigError`` for config problems) with the same one-line message the CLI prints.
    """
    all_overrides = check_overrides(overrides)
    if output_dir is not None and not isinstance(output_dir, (str, Path)):
        raise TypeError(f"launch(output_dir=...) takes a str or Path; got {type(output_dir).__name__}")
    if output_dir is not None and "${" in str(output_dir):
        # Quoting gets it through the override parser, but Hydra copies the run dir into
        # hydra.runtime.output_dir unescaped, where `${` becomes an interpolation again.
        raise ConfigError(f"output_dir={str(output_dir)!r}: Hydra cannot use a path holding '${{'; choose another")
    register_configs()
    if output_dir is not None:
        if not any(item.startswith("resume=") for item in all_overrides):
            # The real path, checked here: the text check in prepare_overrides sees it quoted.
            refuse_used_dir(Path(output_dir), "output_dir")
        all_overrides.append(f"hydra.run.dir={override_value(str(output_dir))}")
    all_overrides = prepare_overrides(all_overrides)  # resume=, unsafe _target_, reused dirs
    try:
        job = hydra_zen_launch(
            ExperimentConf,
            guarded_task(),
            overrides=all_overrides,
            version_base="1.3",
            config_name=APP_NAME,
            job_name=APP_NAME,
        )
    except TypedexpError:
        raise
    except Exception as exc:  # Hydra's composition errors: bad override, unknown option, ...
        raise ConfigError(describe(exc)) from exc
    outcome = job.return_value
    if isinstance(outcome, Failure):
        message = user_message(outcome.error)
        if message is not None and find_user_error(outcome.error) is None:
            raise ConfigError(message) from outcome.error  # e.g. a `???` value left missing
        raise outcome.error
    if not isinstance(outcome, RunResult):
        raise TypeError(f"the task returned {type(outcome).__name__}, not RunResult")
    return outcome
