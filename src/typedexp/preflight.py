"""Checks and rewrites of the overrides made before Hydra starts (and so before it writes anything).

Shared by ``cli.main`` and ``launch()``: refuse secrets typed into overrides, refuse unsafe
``_target_`` overrides, turn ``resume=`` into the run directory it continues, and refuse reusing
any other run's directory.
"""

from __future__ import annotations

from collections.abc import Sequence

from typedexp.error_messages import group_options
from typedexp.errors import ConfigError
from typedexp.guards import refuse_reused_output_dirs
from typedexp.redaction import refuse_secrets_in_overrides
from typedexp.resume import plan_resume
from typedexp.targets import check_override_targets


def prepare_overrides(overrides: Sequence[str], *, multirun: bool = False) -> list[str]:
    """The overrides Hydra should run; raises ``ConfigError`` (one line) for a refused one."""
    refuse_keyless_and_empty_groups(overrides)
    refuse_secrets_in_overrides(overrides)
    check_override_targets(overrides)
    plan = plan_resume(overrides, multirun=multirun)
    final = plan.overrides if plan is not None else list(overrides)
    refuse_reused_output_dirs(final, resuming=plan.run_dir if plan is not None else None)
    return final


def refuse_keyless_and_empty_groups(overrides: Sequence[str]) -> None:
    """``=3``, ``model=null``, ``dataset=``: Hydra's own error for these names no key."""
    for override in overrides:
        key, _, value = override.partition("=")
        name = key.lstrip("+~")
        if not name.strip():
            raise ConfigError(f"{override}: an override needs a key before '=', e.g. epochs=3")
        options = group_options(name) if value.strip() in ("", "null", "~") else None
        if options:
            raise ConfigError(f"{override}: {name} needs an option, one of: {', '.join(options)}")


def prepare_argv(argv: Sequence[str]) -> list[str]:
    """``prepare_overrides`` for a command line that may also hold Hydra's flags (-m, --cfg job).

    Overrides are the arguments with ``=`` that are not flags (Hydra's flags take no ``key=value``
    arguments), so no Hydra-internal parser is needed.
    """
    overrides = [arg for arg in argv if "=" in arg and not arg.startswith("-")]
    multirun = any(arg in ("-m", "--multirun") for arg in argv)
    final = prepare_overrides(overrides, multirun=multirun)
    if final == overrides:
        return list(argv)
    return [arg for arg in argv if arg not in overrides] + final
