"""Checks and rewrites of the overrides made before Hydra starts (and so before it writes anything).

Shared by ``cli.main`` and ``launch()``: refuse secrets typed into overrides, refuse unsafe
``_target_`` overrides, turn ``resume=`` into the run directory it continues, and refuse a run
directory that holds another run, is in use, or holds symlinks (checked on the composed config).
"""

from __future__ import annotations

from collections.abc import Sequence

from hydra import compose, initialize
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig

from typedexp.configs import APP_NAME
from typedexp.errors import TypedexpError
from typedexp.guards import refuse_reused_run_dirs
from typedexp.redaction import refuse_secrets_in_overrides
from typedexp.resume import plan_resume
from typedexp.targets import check_override_targets

# Flags after which Hydra prints something and exits without creating a run directory.
NO_RUN_FLAGS = ("--help", "-h", "--hydra-help", "--cfg", "-c", "--info", "-i", "--shell-completion", "-sc")


def compose_with_hydra_node(overrides: list[str]) -> DictConfig:
    """The config Hydra will run, with its ``hydra`` node, composed by Hydra's public API.

    Sweep overrides (``a=1,2``) are left out: a plain compose refuses them, and they cannot move
    the sweep directory. ``register_configs()`` must have run. HydraConfig is set to the result so
    that ``${hydra:...}`` interpolations resolve; Hydra sets it again for each job.
    """
    parsed = OverridesParser.create().parse_overrides(overrides)
    single = [o.input_line or "" for o in parsed if not o.is_sweep_override()]
    with initialize(version_base="1.3", config_path=None):
        composed = compose(config_name=APP_NAME, overrides=single, return_hydra_config=True)
    HydraConfig.instance().set_config(composed)
    return composed


def prepare_overrides(overrides: Sequence[str], *, multirun: bool = False, will_run: bool = True) -> list[str]:
    """The overrides Hydra should run; raises ``ConfigError`` (one line) for a refused one.

    ``will_run=False`` (``--help``, ``--cfg``) skips the run-directory checks: nothing is written.
    """
    refuse_secrets_in_overrides(overrides)
    check_override_targets(overrides)
    plan = plan_resume(overrides, multirun=multirun)
    final = plan.overrides if plan is not None else list(overrides)
    if will_run:
        try:
            composed = compose_with_hydra_node(final)
        except TypedexpError:
            raise
        except Exception:  # a bad override: Hydra reports it in its own words when it composes
            return final
        resuming = plan.run_dir if plan is not None else None
        refuse_reused_run_dirs(composed, multirun=multirun, resuming=resuming)
    return final


def prepare_argv(argv: Sequence[str]) -> list[str]:
    """``prepare_overrides`` for a command line that may also hold Hydra's flags (-m, --cfg job).

    Overrides are the arguments with ``=`` that are not flags (Hydra's flags take no ``key=value``
    arguments), so no Hydra-internal parser is needed.
    """
    overrides = [arg for arg in argv if "=" in arg and not arg.startswith("-")]
    multirun = any(arg in ("-m", "--multirun") for arg in argv)
    will_run = not any(arg in NO_RUN_FLAGS for arg in argv)
    final = prepare_overrides(overrides, multirun=multirun, will_run=will_run)
    if final == overrides:
        return list(argv)
    return [arg for arg in argv if arg not in overrides] + final
