"""The names a config may ask Hydra to import and call (``_target_`` and its kin).

Hydra instantiates whatever a ``_target_`` names, so the list is the whole of what a config file,
a preset or a run directory received from someone else can make this program call. An entry
means exactly what it names:

- ``mylib.models.ResNet`` allows that one name (not ``mylib.models.ResNet.load``);
- ``mylib.models.*`` allows the names defined (or imported) directly in module ``mylib.models``:
  ``mylib.models.ResNet``, not ``mylib.models.helpers.run``.

Nothing is matched by prefix: ``torch`` on the list would have admitted
``torch.utils.collect_env.run``, which hands its argument to a shell.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from typedexp.core.errors import ConfigError

SETTING = "allowed_targets"  # the experiment field (and override) that extends the list
WILDCARD = ".*"
# Refused even when listed: each of these runs code, commands or files named by its arguments.
ALWAYS_REFUSED = (
    "builtins", "os", "posix", "nt", "subprocess", "sys", "shutil", "importlib", "runpy", "pickle",
    "marshal", "ctypes", "code", "codeop", "pty", "socket", "webbrowser", "eval", "exec",
    "torch.hub", "torch.package", "torch.utils.cpp_extension", "torch.utils.collect_env",
    "torch.load", "torch.jit.load", "numpy.load", "pdb", "multiprocessing",
)
_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def _within(name: str, module: str) -> bool:
    return name == module or name.startswith(module + ".")


def never_allowed(name: str) -> str | None:
    """The refused module ``name`` lies in, if any."""
    return next((module for module in ALWAYS_REFUSED if _within(name, module)), None)


@dataclass(frozen=True)
class AllowList:
    names: frozenset[str] = frozenset()  # exact qualified names
    modules: frozenset[str] = frozenset()  # modules whose direct members are allowed

    @classmethod
    def parse(cls, entries: Iterable[object], *, setting: str = SETTING) -> AllowList:
        """An allow-list from user entries; a malformed or never-allowed entry is refused."""
        names: set[str] = set()
        modules: set[str] = set()
        for entry in entries:
            text = str(entry)
            module = text[: -len(WILDCARD)] if text.endswith(WILDCARD) else None
            if not _DOTTED.match(module if module is not None else text):
                raise ConfigError(
                    f"{setting}: {text!r} is not a qualified name (mylib.models.ResNet) or a module "
                    f"with {WILDCARD} (mylib.models.*)"
                )
            refused = never_allowed(module if module is not None else text)
            if refused is not None:
                raise ConfigError(f"{setting}: {text} is refused ({refused} is never allowed)")
            (modules if module is not None else names).add(module if module is not None else text)
        return cls(frozenset(names), frozenset(modules))

    def __or__(self, other: AllowList) -> AllowList:
        return AllowList(self.names | other.names, self.modules | other.modules)

    def permits(self, target: str) -> bool:
        if never_allowed(target) is not None:
            return False
        module, _, _ = target.rpartition(".")
        return target in self.names or module in self.modules

    def entries(self) -> list[str]:
        return sorted(self.names) + sorted(module + WILDCARD for module in self.modules)


def refuse_unless_permitted(target: object, allowed: AllowList, where: str, *, what: str) -> None:
    """Raise a one-line ``ConfigError`` unless ``allowed`` permits the string ``target``.

    ``what`` says what the list holds at this place (e.g. "typedexp's own configs").
    """
    name = str(target)
    if isinstance(target, str) and allowed.permits(name):
        return
    refused = never_allowed(name)
    if refused is not None:
        why = f"{refused} is never allowed"
    elif not isinstance(target, str) or not _DOTTED.match(name):
        why = "a target must be a qualified name written out, not an interpolation or a value"
    else:
        why = f"{what} and what {SETTING}=[...] names on the command line; add {SETTING}=[{name}] to allow it"
    raise ConfigError(f"{where}={name}: refused, configs may only build allowed objects ({why})")
