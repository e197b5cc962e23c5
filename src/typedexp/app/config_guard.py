"""One check on every composed config, before Hydra builds anything from it.

Hydra imports and calls whatever a config names: ``_target_`` in the task's nodes, in
``hydra.callbacks``, ``hydra.launcher`` and ``hydra.sweeper``, and ``()``/``class`` in the
logging configs it hands to ``logging.config.dictConfig``. Those names can come from the command
line, a preset, a ``--config-dir`` file, a dict-valued override or the overrides a resumed run
re-applies, so the check runs on the composed config, whatever it came from: Hydra's
``ConfigLoaderImpl.load_configuration`` is the one function that composes every config (the
run's, a sweep's and each sweep job's), and it returns before Hydra sets up logging, callbacks,
the launcher or the sweeper. What may be named (docs/safety.md):

- in the task's nodes: every target registered in Hydra's ConfigStore from Python (typedexp's
  own store, and your code's if it registers specs), plus ``allowed_targets`` typed on the
  command line or passed to ``launch()``;
- in ``hydra.*``: the classes that installed Hydra plugins register in ConfigStore's ``hydra/``
  groups (``hydra/launcher=joblib`` works), logging's own handlers and formatters, and the same
  typed ``allowed_targets``.

A name that the list permits is then resolved (imported, never called) the way Hydra and
hydra-zen resolve it (``_locate``), and the object it gives must be defined where the list allows
(safety/allowlist.py): ``mylib.models.*`` does not admit ``shutil.copyfile`` imported into
``mylib.models``. Files and run directories can never extend the list. Hydra 1.3 has no hook between composition
and instantiation, so the loader's method is wrapped, only while ``cli.main`` or ``launch()``
runs, and only on the Hydra versions it was checked against; on any other the run is refused
rather than left unchecked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import hydra
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.core_plugins.importlib_resources_config_source import ImportlibResourcesConfigSource
from hydra._internal.sources_registry import SourcesRegistry
from hydra._internal.utils import _locate
from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.resolvers import oc

from typedexp.app.fits import check_task_fits_dataset
from typedexp.core.errors import ConfigError
from typedexp.core.safety.allowlist import SETTING, AllowList, refuse_unless_defined_in_allowed, refuse_unless_permitted
from typedexp.core.safety.launchers import RENDEZVOUS_DEFAULTS, SECTION as LAUNCHER, check_launcher_leaf, check_rendezvous, flatten
from typedexp.core.safety.secrets import mask_process_output, refuse_secret_in_name, remember_env_value, secrets_by_variable

SUPPORTED_HYDRA = "1.3."  # pyproject pins hydra-core>=1.3,<1.4; tests/test_config_guard.py checks both
TARGET_KEYS = ("_target_", "_zen_target")  # hydra-zen's zen_processing calls _zen_target
WRAPPER_KEY = "_zen_wrappers"  # hydra-zen imports and calls each of these, too
LOGGING_NODES = ("job_logging", "hydra_logging")
LOGGING_CALLABLE_KEYS = ("()", "class")  # dictConfig's factory and handler-class keys
LOGGING_CLASSES = AllowList(
    names=frozenset(
        {
            "logging.StreamHandler", "logging.FileHandler", "logging.NullHandler", "logging.Formatter",
            "logging.Filter", "logging.handlers.RotatingFileHandler",
            "logging.handlers.TimedRotatingFileHandler", "logging.handlers.WatchedFileHandler",
            "colorlog.ColoredFormatter",  # hydra-colorlog's formatter
        }
    )
)
LOG_STREAMS = ("ext://sys.stdout", "ext://sys.stderr")  # ext:// imports what it names
RUN_DIR_PREFIXES = ("${hydra.runtime.output_dir}/", "${hydra:runtime.output_dir}/")
# Variables a config may set for its jobs (hydra.job.env_set). Others can load code into a
# process (LD_PRELOAD, PYTHONPATH, NCCL_NET_PLUGIN) or send data elsewhere (SWANLAB_API_HOST).
ENV_SETTABLE = frozenset(
    {
        "CUDA_VISIBLE_DEVICES", "CUDA_LAUNCH_BLOCKING", "CUBLAS_WORKSPACE_CONFIG", "OMP_NUM_THREADS",
        "MKL_NUM_THREADS", "PYTORCH_CUDA_ALLOC_CONF", "NCCL_DEBUG", "TOKENIZERS_PARALLELISM",
    }
)
# Where a search path entry came from, as Hydra names it to its config sources: these three are
# typed by a user or written in a config file; Hydra, the app and installed plugins add the rest.
USER_SEARCH_PATHS = ("hydra.searchpath in command-line", "hydra.searchpath in main", "command-line")
MAX_DEPTH = 64  # an interpolation can point back at its parent; no real config nests this deep


@dataclass(frozen=True)
class Rules:
    typed: AllowList  # allowed_targets as typed on the command line or given to launch()
    own: AllowList  # what the task's nodes may name
    plugins: AllowList  # what the hydra node may name
    # hydra.launcher's leaves as typed on the command line or given to launch() ({"setup[0]": "..."})
    typed_launcher: dict[str, str] = field(default_factory=dict)
    # What the installed plugins registered, flattened, for each launcher class (_target_)
    launcher_defaults: dict[str, tuple[dict[str, str], ...]] = field(default_factory=dict)
    # trainer.master_addr / master_port as typed ({"trainer.master_addr": "10.0.0.1"})
    typed_rendezvous: dict[str, str] = field(default_factory=dict)


def leaves(node: DictConfig | ListConfig, path: str, depth: int = 0) -> Iterator[tuple[str, object, object, object]]:
    """``(where, key, value, text)`` for every leaf, with interpolations resolved where they resolve now.

    Hydra resolves the config before it instantiates, so a dict reached through an interpolation
    (``${oc.create:...}``) is walked like any other. An interpolation that does not resolve yet
    (``${hydra:runtime.output_dir}``) is given as its text. ``text`` is the leaf as written
    (``${...}`` for an interpolation), for rules about how a value is spelled.
    """
    if depth > MAX_DEPTH:
        start = ".".join(path.split(".")[:4])
        raise ConfigError(f"{start}...: the config nests more than {MAX_DEPTH} levels deep (an interpolation loop?)")
    keys: list[Any] = list(node.keys()) if isinstance(node, DictConfig) else list(range(len(node)))
    written: object = None
    for key in keys:
        where = f"{path}[{key}]" if isinstance(node, ListConfig) else f"{path}.{key}" if path else str(key)
        if OmegaConf.is_missing(node, key):
            continue
        if OmegaConf.is_interpolation(node, key):
            if written is None:
                written = OmegaConf.to_container(node, resolve=False)
            text = written[key] if isinstance(written, (dict, list)) else None
        else:
            text = None
        try:
            value = node[key]
        except Exception:  # does not resolve before the job runs: check its text instead
            value = text
        if isinstance(value, (DictConfig, ListConfig)):
            yield from leaves(value, where, depth + 1)
        else:
            yield where, key, value, value if text is None else text


def targets_in(node: DictConfig | ListConfig) -> set[str]:
    return {str(value) for _, key, value, _ in leaves(node, "") if key in TARGET_KEYS and isinstance(value, str)}


def registered_targets() -> tuple[AllowList, AllowList]:
    """Targets registered in Hydra's ConfigStore from Python: (the task's groups, ``hydra/``'s)."""
    store = ConfigStore.instance()
    own: set[str] = set()
    plugins: set[str] = set()

    def visit(path: str, into: set[str]) -> None:
        for item in store.list(path):
            child = f"{path}/{item}" if path else item
            if item.endswith(".yaml"):
                node = store.load(child).node
                if isinstance(node, (DictConfig, ListConfig)):
                    into.update(targets_in(node))
            elif item not in LOGGING_NODES:
                visit(child, plugins if child == "hydra" else into)

    visit("", own)
    return AllowList(frozenset(own)), AllowList(frozenset(plugins))


def registered_launchers() -> dict[str, tuple[dict[str, str], ...]]:
    """The configs installed plugins register in ``hydra/launcher``, flattened, by ``_target_``."""
    store = ConfigStore.instance()
    found: dict[str, tuple[dict[str, str], ...]] = {}
    for item in store.list("hydra/launcher"):  # Hydra itself registers `basic` there
        node = store.load(f"hydra/launcher/{item}").node
        written = OmegaConf.to_container(node, resolve=False) if isinstance(node, DictConfig) else None
        if isinstance(written, dict) and isinstance(written.get("_target_"), str):
            target = str(written["_target_"])
            found[target] = (*found.get(target, ()), flatten(written, ""))
    return found


def check_composed(cfg: DictConfig, rules: Rules) -> None:
    """Raise a one-line ``ConfigError`` for anything in ``cfg`` that could run code not allowed,
    or that would put a secret in a file's or directory's name."""
    composed = cfg.get(SETTING) if SETTING in cfg else None
    if composed is not None and AllowList.parse(composed) != rules.typed:
        raise ConfigError(
            f"{SETTING}={list(composed)} is set by a config file or a run directory; only the command "
            f"line (or launch()'s overrides) can extend the allow-list: type {SETTING}=[...] yourself "
            "if you trust what it names"
        )
    for field_key in RENDEZVOUS_DEFAULTS:
        field_value = OmegaConf.select(cfg, field_key, default=None, throw_on_resolution_failure=False)
        if field_value is not None:
            check_rendezvous(field_key, field_value, rules.typed_rendezvous)
    launcher_target = str(OmegaConf.select(cfg, f"{LAUNCHER}._target_", default=""))
    secrets = secrets_by_variable()
    for where, key, value, text in leaves(cfg, ""):
        refuse_secret_in_name(where, value, secrets)
        if where.startswith(f"{LAUNCHER}."):
            check_launcher_leaf(
                where.removeprefix(f"{LAUNCHER}."), value, text, target=launcher_target,
                typed=rules.typed_launcher, defaults=rules.launcher_defaults.get(launcher_target, ()),
            )
        if where.startswith("hydra."):
            check_hydra_leaf(where, key, value, text, rules)
        elif key in TARGET_KEYS or where.rpartition(".")[2].startswith(WRAPPER_KEY):
            check_target(value, rules.own, where, what="typedexp's own configs, specs registered from Python")


def check_target(value: object, allowed: AllowList, where: str, *, what: str) -> None:
    """Refuse ``value`` unless ``allowed`` permits both the name and the object it resolves to.

    Resolving imports the modules the permitted name runs through (Hydra would import them next,
    to build it) and calls nothing. A name that does not resolve is refused here, in one line,
    rather than by Hydra after it has set up the run.
    """
    refuse_unless_permitted(value, allowed, where, what=what)
    target = str(value)
    try:
        obj = _locate(target)
    except Exception as exc:  # ImportError, or whatever the module raised while it was imported
        cause = exc.__cause__ or exc  # _locate wraps the import's own error in three lines of its own
        reason = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        raise ConfigError(f"{where}={target}: cannot be imported ({reason})") from exc
    refuse_unless_defined_in_allowed(target, obj, allowed, where)


def check_hydra_leaf(where: str, key: object, value: object, text: object, rules: Rules) -> None:
    section = where.split(".")[1] if where.count(".") >= 1 else ""
    if section in LOGGING_NODES:
        check_logging_leaf(where, key, value, text, rules)
    elif key in TARGET_KEYS:
        check_target(
            value, rules.plugins, where, what="the launchers, sweepers and callbacks installed Hydra plugins register"
        )
    elif where.startswith("hydra.job.env_set.") and str(key) not in ENV_SETTABLE:
        raise ConfigError(
            f"{where}: refused, a config may only set {', '.join(sorted(ENV_SETTABLE))}; "
            "export other variables in your shell"
        )
    elif where.startswith("hydra.sweeper.params.") and (str(key).startswith("hydra") or str(key).lstrip("+~") == SETTING):
        raise ConfigError(f"{where}: refused, a sweep cannot vary Hydra's settings or {SETTING}")


def check_logging_leaf(where: str, key: object, value: object, text: object, rules: Rules) -> None:
    if key in LOGGING_CALLABLE_KEYS:
        check_target(value, LOGGING_CLASSES | rules.typed, where, what="logging's own handlers and formatters")
    elif isinstance(value, str) and value.startswith("ext://") and value not in LOG_STREAMS:
        raise ConfigError(f"{where}={value}: refused, a logging config may only name {' or '.join(LOG_STREAMS)}")
    elif key == "filename" and (  # as written: the run dir is only known when the job starts
        not isinstance(text, str) or not text.startswith(RUN_DIR_PREFIXES) or ".." in text.split("/")
    ):
        raise ConfigError(
            f"{where}={text}: refused, log files are written inside the run directory "
            f"(start the path with {RUN_DIR_PREFIXES[0]}, no ..)"
        )


def require_supported_hydra() -> None:
    if not hydra.__version__.startswith(SUPPORTED_HYDRA):
        raise ConfigError(
            f"hydra-core {hydra.__version__} is installed; typedexp checks configs before Hydra builds them "
            f"only on {SUPPORTED_HYDRA}x (pip install 'hydra-core>=1.3,<1.4')"
        )


GUARD_MARK = "__typedexp_checked__"  # set on the wrapper, so a process can tell it is guarded


class PackageConfigsChecked(ImportlibResourcesConfigSource):
    """Hydra's ``pkg://`` config source, refusing packages a user or a config file named.

    Reading configs from ``pkg://name`` imports the package ``name`` (its ``__init__`` runs), and
    ``python -m`` puts the working directory first on the import path: a ``hydra.searchpath`` in
    a shared YAML file could run a ``.py`` file lying beside it, before any config is composed.
    """

    def __init__(self, provider: str, path: str) -> None:
        if provider in USER_SEARCH_PATHS:
            raise ConfigError(
                f"{provider.replace(' in command-line', '').replace(' in main', '')}: {path} refused, "
                "reading configs from a package imports it; use file://<directory> (or --config-dir) instead"
            )
        super().__init__(provider, path)


# Job processes (joblib, submitit) restore the launching process's SourcesRegistry, which holds this
# class for `pkg`, and then Hydra registers its own plugins again: the registry refuses a class of
# another name for the same scheme ("pkg is already registered with a different class") and keeps
# one of the same name. So this class takes the name of the one it stands in for, and job
# processes keep it. (Pickling finds it by its qualified name, which is unchanged.)
PackageConfigsChecked.__name__ = ImportlibResourcesConfigSource.__name__


def checked_loader(
    original: Callable[..., DictConfig],
    typed: AllowList,
    typed_launcher: dict[str, str],
    typed_rendezvous: dict[str, str] | None = None,
) -> Callable[..., DictConfig]:
    """``original`` (Hydra's ``load_configuration``) with every config it returns checked."""
    found: list[Rules] = []  # plugins register while Hydra starts: read once, then

    # Any: the wrapper takes whatever Hydra's own method takes and passes it on unchanged.
    def load_checked(loader: ConfigLoaderImpl, *args: Any, **kwargs: Any) -> DictConfig:
        cfg = original(loader, *args, **kwargs)
        if not found:
            own, plugins = registered_targets()
            found.append(Rules(
                typed, own | typed, plugins | typed, dict(typed_launcher), registered_launchers(),
                dict(typed_rendezvous or {}),
            ))
        check_composed(cfg, found[0])
        check_task_fits_dataset(cfg)  # after: it builds the task node, whose target is now allowed
        return cfg

    setattr(load_checked, GUARD_MARK, True)
    return load_checked


def guarding() -> bool:
    """Whether this process checks the configs Hydra composes."""
    return bool(getattr(ConfigLoaderImpl.load_configuration, GUARD_MARK, False))


# Any: oc.env's own arguments (key, default), passed on unchanged.
def env_remembered(*args: Any) -> Any:
    value = oc.env(*args)
    remember_env_value(value)  # so that error lines can mask it (safety/secrets.py)
    return value


def install(
    typed: AllowList, typed_launcher: dict[str, str], typed_rendezvous: dict[str, str] | None = None
) -> Callable[[], None]:
    """Check every config this process composes from now on; returns what undoes it."""
    require_supported_hydra()
    original: Callable[..., DictConfig] = ConfigLoaderImpl.load_configuration
    Plugins.instance()  # registers Hydra's own config sources first, so that ours replaces one
    sources = SourcesRegistry.instance().types
    package_source = sources.get("pkg")
    setattr(ConfigLoaderImpl, "load_configuration", checked_loader(original, typed, typed_launcher, typed_rendezvous))
    OmegaConf.register_new_resolver("oc.env", env_remembered, replace=True)
    sources["pkg"] = PackageConfigsChecked

    def undo() -> None:
        if package_source is None:
            sources.pop("pkg", None)
        else:
            sources["pkg"] = package_source
        setattr(ConfigLoaderImpl, "load_configuration", original)
        OmegaConf.register_new_resolver("oc.env", oc.env, replace=True)  # as OmegaConf registers it

    return undo


@dataclass(frozen=True)
class JobProcessGuard:
    """The guard's rules, as they travel with the task to the processes that run sweep jobs.

    joblib's workers and submitit's jobs compose each job's config again in their own process
    (hydra_joblib_launcher's ``execute_job``, hydra_submitit_launcher's ``__call__``), where the
    wrapper this module put on Hydra's loader in the launching process does not exist. Hydra's
    sweeper has checked those configs in the launching process already, but files can change
    before a queued Slurm job starts. The task carries this object; unpickling it in the job
    process (which happens before the launcher composes the job's config) installs the same check
    there, and the CLI's masking of secrets in printed and logged text, for the life of that
    process; ``confirm`` refuses to run a job whose config was composed unchecked.
    """

    typed: tuple[str, ...]  # allowed_targets' entries, as typed
    typed_launcher: tuple[tuple[str, str], ...]  # hydra.launcher's leaves, as typed
    typed_rendezvous: tuple[tuple[str, str], ...] = ()  # trainer.master_addr / master_port, as typed

    # object: pickle's reduce value, a callable and its arguments.
    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return guard_job_process, (self.typed, self.typed_launcher, self.typed_rendezvous)

    def confirm(self) -> None:
        if not guarding():
            raise ConfigError("this job's config was composed without typedexp's config guard; refused")


def guard_job_process(
    typed: tuple[str, ...],
    typed_launcher: tuple[tuple[str, str], ...],
    typed_rendezvous: tuple[tuple[str, str], ...] = (),
) -> JobProcessGuard:
    """Check every config this process composes from now on (see ``JobProcessGuard``)."""
    if not guarding():
        # For the life of the job process.
        install(AllowList.parse(typed), dict(typed_launcher), dict(typed_rendezvous))
        mask_process_output()  # as the CLI does in its own process: a job's prints and logs too
    return JobProcessGuard(typed, typed_launcher, typed_rendezvous)


_ACTIVE: list[JobProcessGuard] = []  # the innermost config_guard block's rules


def active_job_guard() -> JobProcessGuard | None:
    """The rules of the ``config_guard`` block this runs in, for a task to carry to job processes."""
    return _ACTIVE[-1] if _ACTIVE else None


@contextmanager
def config_guard(
    typed: AllowList, typed_launcher: dict[str, str] | None = None, typed_rendezvous: dict[str, str] | None = None
) -> Iterator[None]:
    """Check every config Hydra composes inside this block (see the module's docstring).

    ``typed_launcher`` is ``hydra.launcher``'s leaves as the person typed them
    (``preflight.typed_launcher_settings``): the only source of a launcher field that runs commands.
    ``typed_rendezvous`` likewise for ``trainer.master_addr``/``master_port``
    (``preflight.typed_rendezvous_settings``).
    """
    undo = install(typed, dict(typed_launcher or {}), dict(typed_rendezvous or {}))
    _ACTIVE.append(JobProcessGuard(
        tuple(typed.entries()), tuple(sorted((typed_launcher or {}).items())),
        tuple(sorted((typed_rendezvous or {}).items())),
    ))
    try:
        yield
    finally:
        _ACTIVE.pop()
        undo()
