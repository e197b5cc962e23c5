"""Turns the specs' option tables into Hydra's ConfigStore (hydra-zen), and nothing else.

Each spec module ends with one table, default first (``models.OPTIONS = {"small": SMALL, ...}``);
``GROUPS`` lists them. Here every option becomes a config (``builds`` of the spec's class with the
option's values), ``Experiment`` becomes the top-level config with a defaults list that picks each
group's first option, and the ``Experiment`` presets become ``+experiment=<name>`` and
``debug=<name>`` configs. Nothing here imports torch.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any

from hydra.conf import HelpConf, HydraConf, JobConf, RunDir, SweepDir
from hydra.core.config_store import ConfigStore
from hydra_zen import ZenStore, builds
from omegaconf import MISSING, DictConfig, OmegaConf

from typedexp import data, tracking
from typedexp.specs import models, optim, schedules, tasks
from typedexp.engine import TrainerSettings
from typedexp.core.errors import ConfigError
from typedexp.specs.experiment import DEBUG, EXPERIMENTS, Experiment
from typedexp.sweeps.hpo import OptunaSweeperConf
from typedexp.sweeps.summary import SweepSummary
from typedexp.app.tidy import NoteRunDir

APP_NAME = "typedexp"  # Hydra's job name, the console script and the primary config's name

# Each group's options, default first; typedexp.register() adds yours.
GROUPS: dict[str, Mapping[str, object]] = {
    "dataset": data.OPTIONS,
    "model": models.OPTIONS,
    "optim": optim.OPTIONS,
    "schedule": schedules.OPTIONS,
    "tracker": tracking.OPTIONS,
    "task": tasks.OPTIONS,
}
_REGISTERED: dict[str, dict[str, object]] = {}  # register()'s additions, by group
_REQUIRED: dict[tuple[str, str], tuple[str, ...]] = {}  # register(required=...): (group, option) -> fields

HELP_HEADER = """typedexp: typed PyTorch experiments (hydra-zen configs, SwanLab tracking).

Examples:
  typedexp                                   # small MLP on the bundled digits, tracked locally
  typedexp model=large optim=adam optim.lr=3e-4 epochs=5
  typedexp -m optim.lr=0.1,0.01 model=small,large   # a sweep, one run per combination
  typedexp +experiment=seed_cifar10 debug=fast      # a preset, one quick epoch
  typedexp --cfg job                         # print the resolved config and exit
"""

HELP_FOOTER = """Outputs go to outputs/<date>/<time>/ (multirun/ for sweeps); SwanLab data to swanlog/.
Open the dashboard with: typedexp dashboard  (options: typedexp dashboard --help)
List and compare runs: typedexp runs [DIR]  (sort, filter, CSV, plots: typedexp runs --help)
Set HYDRA_FULL_ERROR=1 for a full traceback on errors; --hydra-help for Hydra's own flags.
"""

# Run directories carry microseconds so two runs started in the same second never share one.
# The summary callback ranks a sweep's jobs at its end: hydra.callbacks.summary.metric=val/loss.
# The tidy callback lets a single run refused for a config mistake remove the dir Hydra made (tidy.py).
HYDRA_SETTINGS = HydraConf(
    job=JobConf(name=APP_NAME),
    callbacks={"summary": builds(SweepSummary, populate_full_signature=True), "tidy": builds(NoteRunDir)},
    run=RunDir(dir="outputs/${now:%Y-%m-%d}/${now:%H-%M-%S-%f}"),
    sweep=SweepDir(dir="multirun/${now:%Y-%m-%d}/${now:%H-%M-%S-%f}", subdir="${hydra.job.num}"),
    help=HelpConf(app_name=APP_NAME, header=HELP_HEADER, footer=HELP_FOOTER),
)


def options(group: str) -> dict[str, object]:
    """A group's options, default first, with register()'s additions last."""
    return {**GROUPS[group], **_REGISTERED.get(group, {})}


def register(group: str, name: str, spec: object, *, required: list[str] | tuple[str, ...] = ()) -> None:
    """Offer ``spec`` as ``<group>=<name>`` on the command line and in ``launch()``.

    ``spec`` is a frozen dataclass instance with the group's method (``build`` for a model, ...);
    its class joins the allow-list because it is registered from Python. ``required`` names
    fields that every run must set (argparse's ``required=True``; Hydra's ``???``): the option
    leaves them at ``???``, and a run that does not set one stops with ``optim.lr is required:
    set it with optim.lr=VALUE``. A name typedexp already uses (``"sgd"``) replaces its option.
    """
    if group not in GROUPS:
        raise ConfigError(f"register: no group {group!r}; the groups are {', '.join(GROUPS)}")
    if not dataclasses.is_dataclass(spec) or isinstance(spec, type):
        raise ConfigError(f"register: {group}={name} must be a dataclass instance, e.g. MySpec()")
    fields = [field.name for field in dataclasses.fields(spec)]
    for field_name in field_names(required):
        if field_name not in fields:
            raise ConfigError(
                f"register: {group}={name} has no field {field_name!r} to require; its fields: {', '.join(fields)}"
            )
    if group == "task":
        if not isinstance(spec, tasks.TaskSpec):
            raise ConfigError(
                f"register: task={name} needs the members of typedexp.engine.tasks.Task (targets, goals, "
                "best_metric, loss, statistics, metrics); subclass Classification or Regression for most of them"
            )
        tasks.note_registered(name, spec)  # its metrics become names the sweep summary and `typedexp runs` know
    _REGISTERED.setdefault(group, {})[name] = spec
    _REQUIRED[group, name] = tuple(required)
    ConfigStore.instance().store(group=group, name=name, node=as_config(spec, required))


def field_names(required: object) -> list[str]:
    """``required`` as a list of names; a str (whose letters would pass as names) is refused at
    run time too, for callers that no type checker saw."""
    if isinstance(required, str) or not isinstance(required, (list, tuple)):
        raise ConfigError(f"register: required= takes a list of field names, e.g. required=['lr']; got {required!r}")
    return [str(name) for name in required]


def as_config(spec: object, required: list[str] | tuple[str, ...] = ()) -> Any:
    """The hydra-zen config that builds ``spec`` again: its class with its values as defaults,
    and ``required`` fields left at ``???`` (OmegaConf's MISSING), for each run to set.

    ``Any``: hydra-zen's ``builds`` returns a dynamically made dataclass type.
    """
    values = {field.name: getattr(spec, field.name) for field in dataclasses.fields(spec)}  # type: ignore[arg-type]
    values.update({field_name: MISSING for field_name in required})
    return builds(type(spec), populate_full_signature=True, **values)


def option_for(group: str, value: object) -> str:
    """The option ``value`` is, or else the first option of its class (whose fields it then sets)."""
    choices = options(group)
    for name, option in choices.items():
        if option == value:
            return name
    for name, option in choices.items():
        if type(option) is type(value):
            return name
    raise ConfigError(
        f"{group}: {type(value).__name__} is not one of the {group} options; register it first with "
        f"typedexp.register({group!r}, 'my_name', {type(value).__name__}(...))"
    )


def changed_fields(before: object, after: object) -> dict[str, object]:
    return {
        field.name: getattr(after, field.name)
        for field in dataclasses.fields(after)  # type: ignore[arg-type]
        if getattr(before, field.name) != getattr(after, field.name)
    }


def differences(experiment: Experiment) -> tuple[dict[str, str], dict[str, object]]:
    """Where ``experiment`` differs from ``Experiment()``: (group choices, field values by path).

    Nodes are dicts of their changed fields: ``({"model": "large"}, {"optim": {"lr": 0.1}})``.
    """
    default = Experiment()
    choices: dict[str, str] = {}
    values: dict[str, object] = {}
    for field in dataclasses.fields(Experiment):
        value = getattr(experiment, field.name)
        if field.name in GROUPS:
            option = option_for(field.name, value)
            if option != option_for(field.name, getattr(default, field.name)):
                choices[field.name] = option
            changed = changed_fields(options(field.name)[option], value)
            # A typed value always holds its required fields: they are given, as if typed.
            changed |= {name: getattr(value, name) for name in _REQUIRED.get((field.name, option), ())}
        elif dataclasses.is_dataclass(value):
            changed = changed_fields(getattr(default, field.name), value)
        else:
            if value != getattr(default, field.name):
                values[field.name] = value
            continue
        if changed:
            values[field.name] = changed
    return choices, values


def plain(value: object) -> object:
    """``value`` as OmegaConf takes it: enums by name, tuples as lists."""
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, (tuple, list)):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    return value


def preset_config(experiment: Experiment) -> DictConfig:
    """A ``_global_`` config that turns the default experiment into ``experiment``.

    A plain mapping, not a dataclass: Hydra merges it into the top-level config, which it can
    only do for a dataclass of the same class.
    """
    choices, values = differences(experiment)
    defaults: list[object] = [{f"override /{group}": option} for group, option in choices.items()]
    return OmegaConf.create({"defaults": [*defaults, "_self_"], **{key: plain(item) for key, item in values.items()}})


def experiment_config() -> Any:
    """The top-level config: ``Experiment``'s fields, each group set to its first option."""
    defaults: list[Any] = ["_self_", *({group: next(iter(options(group)))} for group in GROUPS), {"experiment": None}, {"debug": None}]
    # The groups' fields are left to the defaults list (a default value here would be a config
    # class of its own, which Hydra refuses to merge an option's config into).
    groups: dict[str, Any] = {group: MISSING for group in GROUPS}
    return builds(
        Experiment,
        populate_full_signature=True,
        trainer=as_config(TrainerSettings()),
        hydra_defaults=defaults,
        **groups,
    )


def build_store() -> ZenStore:
    store = ZenStore(name=APP_NAME, overwrite_ok=True)
    for group in GROUPS:
        for name, spec in options(group).items():
            store(as_config(spec, _REQUIRED.get((group, name), ())), group=group, name=name)
    for name, experiment in EXPERIMENTS.items():
        store(preset_config(experiment), group="experiment", name=name, package="_global_")
    for name, experiment in DEBUG.items():
        store(preset_config(experiment), group="debug", name=name, package="_global_")
    store(experiment_config(), name=APP_NAME)
    store(HYDRA_SETTINGS, name="config", group="hydra")
    # `hydra/sweeper=optuna` (hpo.py); registered from Python, so the config guard allows its class.
    store(OptunaSweeperConf, name="optuna", group="hydra/sweeper", provider=APP_NAME)
    return store


def register_configs() -> None:
    """Put every typedexp config into Hydra's global ConfigStore (safe to call repeatedly)."""
    build_store().add_to_hydra_store(overwrite_ok=True)
