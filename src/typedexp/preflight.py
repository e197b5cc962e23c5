"""Checks and rewrites of the overrides made before Hydra starts (and so before it writes anything).

Shared by ``cli.main`` and ``launch()``: refuse secrets typed into overrides, read the
``allowed_targets`` the person typed, turn ``resume=`` into the run directory it continues, and
refuse reusing any other run's directory. What a config may build is checked later, on the
composed config (``config_guard``), wherever its parts came from.
"""

from __future__ import annotations

from collections.abc import Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException

from typedexp.errors import ConfigError
from typedexp.guards import refuse_reused_output_dirs
from typedexp.resume import plan_resume
from typedexp.safety import AllowList, refuse_secrets_in_overrides
from typedexp.safety.allowlist import SETTING


def prepare_overrides(overrides: Sequence[str], *, multirun: bool = False) -> list[str]:
    """The overrides Hydra should run; raises ``ConfigError`` (one line) for a refused one."""
    refuse_secrets_in_overrides(overrides)
    plan = plan_resume(overrides, multirun=multirun)
    final = plan.overrides if plan is not None else list(overrides)
    refuse_reused_output_dirs(final, resuming=plan.run_dir if plan is not None else None)
    return final


def prepare_argv(argv: Sequence[str]) -> list[str]:
    """``prepare_overrides`` for a command line that may also hold Hydra's flags (-m, --cfg job).

    Overrides are the arguments with ``=`` that are not flags (Hydra's flags take no ``key=value``
    arguments), so no Hydra-internal parser is needed.
    """
    overrides = overrides_in(argv)
    multirun = any(arg in ("-m", "--multirun") for arg in argv)
    final = prepare_overrides(overrides, multirun=multirun)
    if final == overrides:
        return list(argv)
    return [arg for arg in argv if arg not in overrides] + final


def overrides_in(argv: Sequence[str]) -> list[str]:
    return [arg for arg in argv if "=" in arg and not arg.startswith("-")]


def typed_allow_list(overrides: Sequence[str]) -> AllowList:
    """``allowed_targets`` as the person typed it, before ``resume=`` adds a run's saved overrides.

    Only this can extend the allow-list: a value that a preset, a config file or a run directory
    sets is refused on the composed config.
    """
    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except HydraException:
        return AllowList()  # Hydra reports the syntax error itself, in one line
    typed = AllowList()
    for override in parsed:
        if override.key_or_group != SETTING:
            continue
        if override.is_sweep_override():
            raise ConfigError(f"{SETTING}: give one list, not a sweep")
        value = None if override.is_delete() else override.value()
        entries = value if isinstance(value, list) else [] if value is None else [value]
        typed = AllowList.parse(entries)
    return typed


# Hydra 1.3's flags that take a value (tests/test_cli.py checks this against Hydra's own parser).
VALUE_FLAGS = frozenset(
    {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd",
     "--experimental-rerun"}
)
INFO_FLAGS = frozenset({"--info", "-i"})  # an optional value, one of INFO_TOPICS
INFO_TOPICS = frozenset({"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"})


def flags_first(argv: Sequence[str]) -> list[str]:
    """``argv`` with Hydra's flags (and their values) moved before the overrides, order kept.

    Hydra's argparse parser stops taking flags at the first override, so ``typedexp model=large
    -m optim.lr=0.1,0.01`` would fail with "unrecognized arguments"; people type ``-m``,
    ``--cfg job`` or ``--help`` at the end as often as at the start.
    """
    flags: list[str] = []
    overrides: list[str] = []
    tokens = list(argv)
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if not token.startswith("-"):
            overrides.append(token)
        else:
            flags.append(token)
            following = tokens[index + 1] if index + 1 < len(tokens) else None
            if following is not None and (token in VALUE_FLAGS or (token in INFO_FLAGS and following in INFO_TOPICS)):
                index += 1
                flags.append(tokens[index])
        index += 1
    return flags + overrides
