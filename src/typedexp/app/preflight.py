"""Checks and rewrites of the overrides made before Hydra starts (and so before it writes anything).

Shared by ``cli.main`` and ``launch()``: refuse secrets typed into overrides, read the
``allowed_targets`` the person typed, turn ``resume=`` into the run directory it continues, and
refuse a run directory that holds another run, is in use, or holds symlinks (checked on the
composed config). What a config may build is checked on every composed config
(``config_guard``), wherever its parts came from.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from enum import Enum

from hydra import compose, initialize
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

from typedexp.engine.capacity import check_process_count
from typedexp.app.error_messages import group_options
from typedexp.core.errors import ConfigError, TypedexpError
from typedexp.specs.experiment import Experiment
from typedexp.app.guards import refuse_reused_run_dirs
from typedexp.runs.resume import plan_resume
from typedexp.app.store import APP_NAME
from typedexp.core.safety import AllowList, refuse_secrets_in_overrides
from typedexp.core.safety.allowlist import SETTING
from typedexp.core.safety.launchers import RENDEZVOUS_DEFAULTS, SECTION as LAUNCHER, as_text, flatten

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


def prepare_overrides(
    overrides: Sequence[str], *, multirun: bool = False, will_run: bool = True, dir_named: str | None = None
) -> list[str]:
    """The overrides Hydra should run; raises ``ConfigError`` (one line) for a refused one.

    ``will_run=False`` (``--help``, ``--cfg``) skips the run-directory checks: nothing is written.
    ``dir_named``: the caller's name for the run (sweep) directory in those checks' error lines.
    """
    refuse_keyless_and_empty_groups(overrides)
    refuse_deleting_fields(overrides)
    refuse_secrets_in_overrides(overrides)
    # `+experiment=<name>` is how Hydra users pick an experiment preset; the group is in the
    # defaults list (before `debug`, so that `debug=fast` wins over the preset), where `+` would
    # be refused as a second value.
    overrides = [override.removeprefix("+") if override.startswith("+experiment=") else override for override in overrides]
    plan = plan_resume(overrides, multirun=multirun)
    final = plan.overrides if plan is not None else list(overrides)
    # A torchrun worker other than rank 0 writes nothing of the run (rank 0 holds the run dir and
    # checks it): its check would race rank 0's lock on a shared hydra.run.dir (docs/ddp.md).
    if will_run and os.environ.get("RANK", "0") == "0":
        try:
            composed = compose_with_hydra_node(final)
        except TypedexpError:
            raise
        except Exception:  # a bad override: Hydra reports it in its own words when it composes
            return final
        refuse_too_many_processes(composed)  # before anything starts: no run dir, no rank
        resuming = plan.run_dir if plan is not None else None
        if OmegaConf.select(composed, "trainer.node_rank", default=0) == 0:  # node 0 checks and writes it
            refuse_reused_run_dirs(composed, multirun=multirun, resuming=resuming, named=dir_named)
    return final


def refuse_too_many_processes(composed: DictConfig) -> None:
    """``trainer.devices`` (x ``trainer.nodes``) against this machine's cores or GPUs (engine/capacity.py).

    Skipped under torchrun, which started the processes already. A value of the wrong type is left
    to the spec's own check, which names it when Hydra builds the config.
    """
    if "RANK" in os.environ:
        return
    try:
        devices, nodes, device, master_addr = (
            OmegaConf.select(composed, f"trainer.{name}", default=None)
            for name in ("devices", "nodes", "device", "master_addr")
        )
    except Exception:  # an interpolation that does not resolve: Hydra reports it when it composes
        return
    if not all(isinstance(count, int) and not isinstance(count, bool) for count in (devices, nodes)):
        return
    name = device.name if isinstance(device, Enum) else str(device)
    check_process_count(devices=devices, nodes=nodes, device=name, master_addr=str(master_addr))


def refuse_keyless_and_empty_groups(overrides: Sequence[str]) -> None:
    """``=3``, ``model=null``, ``dataset=``: Hydra's own error for these names no key."""
    for override in overrides:
        key, _, value = override.partition("=")
        name = key.lstrip("+~")
        if not name.strip():
            raise ConfigError(f"{override}: an override needs a key before '=', e.g. epochs=3")
        deleting = override.startswith("~")  # `~model` is Hydra's deletion: error_messages words it
        options = group_options(name) if value.strip() in ("", "null", "~") and not deleting else None
        if options:
            raise ConfigError(f"{override}: {name} needs an option, one of: {', '.join(options)}")


def refuse_deleting_fields(overrides: Sequence[str]) -> None:
    """``~trainer``, ``~epochs``: Hydra deletes the field, and the typed experiment then quietly
    takes its default (``~trainer`` trained whole epochs, whatever trainer.* was set to).

    Deleting a config group (``~model``) is Hydra's defaults-list deletion and is reported as
    required by ``error_messages.required_group``; inside a node (``~trainer.max_batches``) Hydra
    refuses itself ("does not support deletion"); ``~hydra.*`` and unknown keys are Hydra's to report.
    """
    fields = {field.name: field for field in dataclasses.fields(Experiment)}
    for override in overrides:
        key = override[1:].partition("=")[0].strip() if override.startswith("~") else ""
        if key not in fields or group_options(key) is not None:
            continue
        default = default_of(fields[key])
        if dataclasses.is_dataclass(default) and not isinstance(default, type):  # trainer
            first = dataclasses.fields(default)[0].name
            quietly, instead = "its defaults", f"its fields instead, e.g. {key}.{first}={plain(getattr(default, first))}"
        else:
            quietly, instead = "its default", f"it instead, e.g. {key}={plain(default)}"
        raise ConfigError(
            f"~{key}: {key} is part of every experiment and cannot be deleted (the run would quietly use {quietly}); "
            f"set {instead}"
        )


def default_of(field: dataclasses.Field[object]) -> object:
    return field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default


def plain(value: object) -> str:
    """``value`` as an override spells it: an enum by its name, None as null."""
    if value is None:
        return "null"
    if isinstance(value, (tuple, list)):
        return "[" + ",".join(plain(item) for item in value) + "]"
    name = getattr(value, "name", None)
    return name if isinstance(name, str) and not isinstance(value, (str, int, float)) else str(value)


def prepare_argv(argv: Sequence[str]) -> list[str]:
    """``prepare_overrides`` for a command line that may also hold Hydra's flags (-m, --cfg job).

    Overrides are the arguments with ``=`` that are not flags (Hydra's flags take no ``key=value``
    arguments), so no Hydra-internal parser is needed.
    """
    overrides = overrides_in(argv)
    multirun = any(arg in ("-m", "--multirun") for arg in argv)
    will_run = not any(arg in NO_RUN_FLAGS for arg in argv)
    final = prepare_overrides(overrides, multirun=multirun, will_run=will_run)
    if final == overrides:
        return list(argv)
    return [arg for arg in argv if arg not in overrides] + final


def overrides_in(argv: Sequence[str]) -> list[str]:
    # `~trainer` deletes a key and holds no '=': an override all the same.
    return [arg for arg in argv if ("=" in arg or arg.startswith("~")) and not arg.startswith("-")]


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


def parsed_overrides(overrides: Sequence[str]) -> list[Override]:
    """The overrides as Hydra parses them; none if one does not parse (Hydra reports it in one line)."""
    try:
        return OverridesParser.create().parse_overrides(list(overrides))
    except HydraException:
        return []


def typed_launcher_settings(overrides: Sequence[str]) -> dict[str, str]:
    """``hydra.launcher``'s leaves as the person typed them, before ``resume=`` adds a run's overrides.

    ``{"setup[0]": "module load cuda"}`` for ``hydra.launcher.setup=['module load cuda']``: the only
    source the config guard accepts for a launcher field that runs commands (safety/launchers.py).
    A sweep (``a,b``) is not one value and counts as not typed.
    """
    typed: dict[str, str] = {}
    for override in parsed_overrides(overrides):
        key = override.key_or_group
        if not (key == LAUNCHER or key.startswith(f"{LAUNCHER}.")) or override.is_sweep_override() or override.is_delete():
            continue
        path = key.removeprefix(LAUNCHER).removeprefix(".")  # "" for the whole node
        typed = {name: text for name, text in typed.items() if not within(name, path)}  # replaced
        typed.update(flatten(override.value(), path))
    return typed


def within(name: str, path: str) -> bool:
    """Whether leaf ``name`` lies in ``path`` (``setup[0]`` in ``setup``; not ``setup_x``; all in "")."""
    return not path or name == path or name.startswith((f"{path}.", f"{path}["))


def typed_rendezvous_settings(overrides: Sequence[str]) -> dict[str, str]:
    """``trainer.master_addr``/``master_port`` as the person typed them (the last of each, not a
    sweep), before ``resume=`` adds a run's overrides: the only source the config guard accepts for
    a rendezvous that is not the default (safety/launchers.py)."""
    typed: dict[str, str] = {}
    for override in parsed_overrides(overrides):
        key = override.key_or_group
        if key in RENDEZVOUS_DEFAULTS and not override.is_sweep_override() and not override.is_delete():
            typed[key] = as_text(override.value())
    return typed
