"""The names a config may ask Hydra to import and call (``_target_`` and its kin).

Hydra instantiates whatever a ``_target_`` names, so the list is the whole of what a config file,
a preset or a run directory received from someone else can make this program call. An entry
means exactly what it names:

- ``mylib.models.ResNet`` allows that one name (not ``mylib.models.ResNet.load``);
- ``mylib.models.*`` allows the classes and functions *defined* directly in module
  ``mylib.models``: ``mylib.models.ResNet``, not ``mylib.models.helpers.run``, and not what
  ``mylib.models`` merely imported (``from shutil import copyfile as f`` makes ``mylib.models.f``
  reachable, but it is ``shutil.copyfile``).

So a target is checked twice: the name as written, and the object it resolves to, by where that
object is defined (its ``__module__`` and ``__qualname__``), as Hydra 1.3.8's own target policy
does for its blocklist (advisory GHSA-37p2-j732-x8pj). A name listed exactly is trusted for the
object it resolves to (``torch.nn.Linear`` is defined in ``torch.nn.modules.linear``), unless that
object is defined in a never-allowed module. Nothing is matched by prefix: ``torch`` on the list
would have admitted ``torch.utils.collect_env.run``, which hands its argument to a shell.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from types import ModuleType

from typedexp.core.errors import ConfigError

SETTING = "allowed_targets"  # the experiment field (and override) that extends the list
WILDCARD = ".*"
# Refused even when listed: each of these runs code, commands or files named by its arguments.
ALWAYS_REFUSED = (
    "builtins", "os", "posix", "nt", "subprocess", "sys", "shutil", "importlib", "runpy", "pickle",
    "marshal", "ctypes", "code", "codeop", "pty", "socket", "webbrowser", "eval", "exec",
    "torch.hub", "torch.package", "torch.utils.cpp_extension", "torch.utils.collect_env",
    "torch.load", "torch.jit.load", "numpy.load", "pdb", "multiprocessing",
    "io", "_io", "_sitebuiltins",  # builtins.open is io.open (truncates what it opens with "w")
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


def defined_as(obj: object) -> str:
    """Where ``obj`` is defined, ``module.qualname``, whatever name it was reached by.

    The shape of Hydra 1.3.8's ``_get_resolved_target_name_for_check``: a ``functools.partial``
    is what it wraps; a method of a builtin type (``str.join``) is its owner's; a module is its
    own name; an object with no qualified name of its own (an instance, ``{}.get``) is its type's,
    whose code is what calling it runs.
    """
    seen: set[int] = set()
    while isinstance(obj, functools.partial) and id(obj) not in seen:  # a partial could hold itself
        seen.add(id(obj))
        obj = obj.func
    if isinstance(obj, ModuleType):
        return obj.__name__
    owner, name = getattr(obj, "__objclass__", None), getattr(obj, "__name__", None)
    if isinstance(owner, type) and isinstance(name, str):
        return f"{owner.__module__}.{owner.__qualname__}.{name}"
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str):
        return f"{module}.{qualname}"
    kind = type(obj)
    return f"{kind.__module__}.{kind.__qualname__}"


def refuse_unless_defined_in_allowed(target: str, obj: object, allowed: AllowList, where: str) -> None:
    """Raise a one-line ``ConfigError`` unless ``obj``, what the permitted name ``target`` resolves
    to, is defined where ``allowed`` permits: a name listed exactly may be defined anywhere but in a
    never-allowed module; a module's ``*`` admits only what is defined in that module."""
    site = defined_as(obj)
    prefix = f"{where}={target}: refused, configs may only build allowed objects"
    if isinstance(obj, ModuleType):
        raise ConfigError(f"{prefix} (it is the module {site}, not a class or function)")
    refused = never_allowed(site)
    if refused is not None:
        raise ConfigError(f"{prefix} (it is {site}, and {refused} is never allowed)")
    if target in allowed.names or allowed.permits(site):
        return
    module = target.rpartition(".")[0]
    raise ConfigError(
        f"{prefix} (it is {site}, which {module}{WILDCARD} does not cover: a module's {WILDCARD} allows the "
        f"classes and functions defined in it, not what it imports; add {SETTING}=[{site}] to allow it)"
    )
