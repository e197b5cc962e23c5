"""Two narrow patches that make SwanLab 0.10 cheaper without changing what it records.

Each checks that SwanLab still has the shape it patches; if not, it patches nothing and SwanLab
runs unmodified. Both are tested against SwanLab's own output.

**The environment snapshot.** ``swanlab.init`` records the installed packages by running
``python -m pip list --format=freeze`` in a subprocess: 0.75 s of its 0.85 s on this project's
VM, paid by every run and every sweep job. ``installed_requirements`` reads the same list from
``importlib.metadata`` in about 0.1 s; the lines and their order are pip's.

**The local dashboard writer.** In ``tracker=local`` SwanLab's writer thread stores every logged value for ``swanlab watch``.
Before each value it queries the dashboard's SQLite database to see whether the user stopped
or deleted the experiment there (``LocalCallbacker._check_exp_status``): measured at 68% of the
writer's time, about 2 ms per value through peewee on this project's 2-core VM. The writer
receives values in batches (every 0.5 s or 100 records), so asking once at the start of each
batch gives the same answer at the same moments for a fraction of the work. (SwanLab 0.10
itself marks this writer as a transitional design.)
"""

from __future__ import annotations

import functools
import re
import site
import sys
import threading
from importlib import metadata
from pathlib import Path
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from swanlab.deprecated.local import LocalCallbacker

_FLUSH_METHODS = ("on_scalar_flush", "on_media_flush")
_PATCHED = "__typedexp_patched__"
_inside_flush = threading.local()  # .active: True while a wrapped flush runs on this thread


class Flush(Protocol):
    def __call__(self, callbacker: LocalCallbacker, records: Sequence[object], /, *args: object, **kwargs: object) -> None: ...


def installed_requirements() -> str:
    """``pip list --format=freeze`` of this interpreter's environment, without starting pip."""
    lines: dict[str, str] = {}  # pip's canonical name -> "Name==version"; the first on sys.path wins
    for distribution in metadata.distributions(path=_interpreter_paths()):
        name = distribution.metadata["Name"]
        if name:
            lines.setdefault(re.sub(r"[-_.]+", "-", name).lower(), f"{name}=={distribution.version}")
    return "".join(f"{lines[key]}\n" for key in sorted(lines))


def _interpreter_paths() -> list[str]:
    """``sys.path`` less the directories inside site-packages, as a fresh interpreter has it.

    Importing setuptools puts its ``setuptools/_vendor`` on ``sys.path``; pip, started afresh,
    does not see the packages vendored there, so neither does this list.
    """
    sites = [Path(directory).resolve() for directory in site.getsitepackages()]
    return [entry for entry in sys.path if not any(s in Path(entry or ".").resolve().parents for s in sites)]


def list_requirements_in_process() -> bool:
    """Make SwanLab's environment snapshot use ``installed_requirements`` (idempotent)."""
    try:
        from swanlab.sdk.internal.probe_python.environment import requirements
    except ImportError:
        return False
    if not callable(getattr(requirements, "get", None)):
        return False
    original = requirements.get
    if getattr(original, _PATCHED, False):
        return True

    def snapshot() -> str | None:
        try:
            return installed_requirements()
        except Exception:  # a broken package's metadata: let pip have a go, as before
            return original()

    setattr(snapshot, _PATCHED, True)
    requirements.get = snapshot  # looked up as `requirements.get()` at each init
    return True


def check_dashboard_once_per_flush() -> bool:
    """Patch swanlab's ``LocalCallbacker`` (idempotent); False if its shape is not the known one."""
    try:
        from swanlab.deprecated.local import LocalCallbacker
    except ImportError:  # swanlab without the local writer: nothing to make cheaper
        return False
    return check_once_per_flush(LocalCallbacker)


def check_once_per_flush(callbacker: type[LocalCallbacker]) -> bool:
    """Make ``callbacker``'s flushes check the experiment's status once per batch of records."""
    if callbacker.__dict__.get(_PATCHED, False):  # this class itself, not a patched base
        return True
    if not all(callable(getattr(callbacker, name, None)) for name in (*_FLUSH_METHODS, "_check_exp_status")):
        return False
    check = callbacker._check_exp_status

    def check_unless_checked(self: LocalCallbacker) -> None:
        if not getattr(_inside_flush, "active", False):
            check(self)

    def once_per_batch(flush: Flush) -> Flush:
        @functools.wraps(flush)
        def wrapper(self: LocalCallbacker, records: Sequence[object], /, *args: object, **kwargs: object) -> None:
            if records:
                check(self)  # raises, as before, if the experiment was stopped in the dashboard
            _inside_flush.active = True
            try:
                flush(self, records, *args, **kwargs)
            finally:
                _inside_flush.active = False

        return wrapper

    for name in _FLUSH_METHODS:
        setattr(callbacker, name, once_per_batch(getattr(callbacker, name)))
    setattr(callbacker, "_check_exp_status", check_unless_checked)
    setattr(callbacker, _PATCHED, True)
    return True
