"""An allow-list for every ``_target_`` a config can reach, checked before anything is built.

Hydra instantiates whatever ``_target_`` names, so ``'model._target_=os.system'`` or a config
file naming ``subprocess.run`` would run code. Hydra 1.4 adds a similar check; this gives it to
Hydra 1.3. Two places check: the overrides, before Hydra starts (that covers ``hydra.callbacks``
too, which Hydra builds before our task runs), and the composed config, before
``zen(run_experiment)`` instantiates it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, ListConfig, ValueNode

from typedexp.errors import ConfigError

DEFAULT_ALLOWED = ("typedexp", "torch", "torchvision")  # the default of `allowed_targets`
ALWAYS_ALLOWED = ("typedexp",)  # the app's own configs must build whatever the list says
# Refused even if `allowed_targets` names them: each runs code or commands from its arguments.
ALWAYS_REFUSED = (
    "builtins", "os", "posix", "subprocess", "sys", "shutil", "importlib", "runpy", "pickle",
    "marshal", "ctypes", "code", "pty", "socket", "webbrowser",
    "torch.hub", "torch.package", "torch.utils.cpp_extension", "torch.load", "torch.jit.load",
)
# Keys whose string value names something to import and call, including hydra-zen's indirections.
TARGET_KEYS = ("_target_", "_zen_target")
SETTING = "allowed_targets"


def _within(target: str, prefix: str) -> bool:
    return target == prefix or target.startswith(prefix + ".")


def check_target(target: object, allowed: Iterable[str], where: str) -> None:
    prefixes = [*ALWAYS_ALLOWED, *allowed]
    name = str(target)
    refused = next((p for p in ALWAYS_REFUSED if _within(name, p)), None)
    if refused is not None or not any(_within(name, str(p)) for p in prefixes):
        why = f"{refused} is never allowed" if refused else f"allowed module prefixes: {', '.join(prefixes)}"
        raise ConfigError(
            f"{where}={name}: refused, configs may only build objects from allowed modules ({why}; "
            f"extend the list with {SETTING}=[...])"
        )


def check_config_targets(cfg: DictConfig | ListConfig, allowed: Sequence[str], path: str = "") -> None:
    """Walk a composed config (dicts and lists) and check every target-naming key."""
    items: Iterable[tuple[object, object]]
    if isinstance(cfg, DictConfig):
        items = ((key, cfg._get_node(str(key))) for key in cfg.keys())
    else:
        items = ((index, cfg._get_node(index)) for index in range(len(cfg)))
    for key, node in items:  # nodes, not values: reading a value would resolve interpolations
        where = f"{path}{key}" if isinstance(cfg, DictConfig) else f"{path.rstrip('.')}[{key}]"
        if isinstance(node, (DictConfig, ListConfig)):
            if not node._is_missing() and not node._is_none():
                check_config_targets(node, allowed, f"{where}.")
        elif key in TARGET_KEYS or (key == "path" and _names_get_obj(cfg)):
            check_target(node._value() if isinstance(node, ValueNode) else node, allowed, where)


def _names_get_obj(cfg: DictConfig | ListConfig) -> bool:
    # hydra_zen's just(obj) is {_target_: hydra_zen.funcs.get_obj, path: <obj's import path>}.
    return isinstance(cfg, DictConfig) and cfg.get("_target_") == "hydra_zen.funcs.get_obj"


def allowed_from(cfg: DictConfig) -> list[str]:
    value = cfg.get(SETTING, DEFAULT_ALLOWED)
    return [str(item) for item in value] if value is not None else list(DEFAULT_ALLOWED)


def check_override_targets(overrides: Sequence[str]) -> None:
    """Refuse ``key._target_=...`` overrides outside the allow-list, before Hydra starts."""
    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except HydraException:
        return  # Hydra reports the syntax error itself, in one line (cli._report_in_one_line)
    allowed: list[str] = list(DEFAULT_ALLOWED)
    for override in parsed:
        if override.key_or_group == SETTING and not override.is_sweep_override():
            value = override.value()
            allowed = [str(item) for item in value] if isinstance(value, list) else [str(value)]
    for override in parsed:
        if override.key_or_group.rpartition(".")[2] not in TARGET_KEYS or override.is_delete():
            continue
        values = list(override.sweep_string_iterator()) if override.is_sweep_override() else [override.value()]
        for value in values:
            check_target(value, allowed, override.key_or_group)
