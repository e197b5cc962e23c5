"""Narrow patches that make SwanLab 0.10 cheaper without changing what it records.

Each is installed only on the pinned SwanLab (``patch_gates.PINS``) and only if the internal still
has the shape it patches; otherwise it patches nothing, SwanLab runs unmodified, and a debug record
says why (``patch_gates.allowed``). Each is tested against SwanLab's own output. SwanLab 0.10.3 has
no public hook for any of them: ``Settings(probe=...)`` can only switch the environment snapshot
off (``requirements=False``), which drops the list from the run instead of making it cheaper.

**The environment snapshot.** ``swanlab.init`` records the installed packages by running
``python -m pip list --format=freeze`` in a subprocess: 0.75 s of its 0.85 s on this project's
VM, paid by every run and every sweep job. ``installed_requirements`` reads the same list from
``importlib.metadata`` in about 0.1 s; the lines and their order are pip's. The list is kept for
the process (until a package is installed or removed), so later sweep jobs do not read it again.

**The local dashboard writer** (``tracker=local``). SwanLab's writer thread stores every
logged value for ``swanlab watch``. It receives values in batches (every 0.5 s or 100 records)
but handles them one by one, and for each value it queries the dashboard's SQLite database to
see whether the user stopped or deleted the experiment there (``_check_exp_status``, about 2 ms
per value through peewee on this project's 2-core VM), then opens two files. ``write_scalars``
asks the database once per batch, which gives the same answer at the same moments, and writes
each file once per batch. Pictures (a few per run) keep SwanLab's own per-record path: a
separate patch that checked once per media batch too bought nothing measurable and was dropped
(benchmarks/README.md). (SwanLab 0.10 itself marks this writer as a transitional design.)
"""

from __future__ import annotations

import functools
import json
import re
import site
import sys
import threading
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import typedexp.core.versions as gates  # gates.allowed looked up at each call: a benchmark may refuse a patch
from typedexp.core.versions import has_parameters

if TYPE_CHECKING:
    from swanlab.deprecated.local import LocalCallbacker, _MetricContext
    from swanlab.proto.swanlab.metric.data.v1.data_pb2 import ScalarRecord

_PATCHED = "__typedexp_patched__"

# The last snapshot and what it was read from: each path entry with its directory's mtime (ns).
_snapshot: tuple[tuple[tuple[str, int], ...], str] | None = None
_snapshot_lock = threading.Lock()


def installed_requirements() -> str:
    """``pip list --format=freeze`` of this interpreter's environment, without starting pip.

    Reading every package's metadata costs about 30 ms of CPU here, at every ``swanlab.init``:
    about a third of what starting SwanLab costs a sweep job. The list is kept for the process
    and read again when ``sys.path`` or the mtime of one of its directories changes, which
    installing, upgrading or removing a package does (pip adds or removes a ``*.dist-info``
    directory, or a ``.pth`` file for an editable install).
    """
    global _snapshot
    paths = _interpreter_paths()
    key = tuple((entry, _mtime_ns(entry)) for entry in paths)
    with _snapshot_lock:
        if _snapshot is None or _snapshot[0] != key:
            _snapshot = (key, read_installed(paths))
        return _snapshot[1]


def _mtime_ns(entry: str) -> int:
    try:
        return Path(entry or ".").stat().st_mtime_ns
    except OSError:  # a sys.path entry that does not exist (yet): nothing is installed there
        return -1


def read_installed(paths: list[str] | None = None) -> str:
    """The list read afresh (``installed_requirements`` keeps it); ``paths`` default to this interpreter's."""
    lines: dict[str, str] = {}  # pip's canonical name -> "Name==version"; the first on sys.path wins
    for distribution in metadata.distributions(path=_interpreter_paths() if paths is None else paths):
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
    """Make SwanLab's environment snapshot use ``installed_requirements`` (idempotent).

    False (SwanLab's own ``pip list`` runs) off the pinned SwanLab or if ``requirements.get``
    is not the argument-less function SwanLab 0.10.3 calls at each init.
    """
    try:
        from swanlab.sdk.internal.probe_python.environment import requirements
    except ImportError:  # moved: SwanLab's own snapshot runs, wherever it lives now
        return gates.allowed("requirements_in_process", lambda: False)
    if getattr(getattr(requirements, "get", None), _PATCHED, False):
        return True
    if not gates.allowed("requirements_in_process", lambda: has_parameters(getattr(requirements, "get", None), ())):
        return False
    original = requirements.get

    @functools.wraps(original)  # __wrapped__: SwanLab's own, for the tests and for a reader
    def snapshot() -> str | None:
        try:
            return installed_requirements()
        except Exception:  # a broken package's metadata: let pip have a go, as before
            return original()

    setattr(snapshot, _PATCHED, True)
    requirements.get = snapshot  # looked up as `requirements.get()` at each init
    return True


def write_scalars_per_batch() -> bool:
    """Make SwanLab's ``LocalCallbacker`` write scalars with ``write_scalars`` (idempotent).

    False, and SwanLab's per-value writer runs as it is, off the pinned SwanLab or where the
    writer's methods are not the ones ``write_scalars`` was written against.
    """
    try:
        from swanlab.deprecated.local import LocalCallbacker, _MetricContext
    except ImportError:  # swanlab without the local writer: nothing to make cheaper
        return gates.allowed("dashboard_scalars_per_batch", lambda: False)
    if writes_scalars(LocalCallbacker):
        return True
    return gates.allowed(
        "dashboard_scalars_per_batch", lambda: writer_has_its_shape(LocalCallbacker, _MetricContext)
    ) and write_scalars_once_per_file(LocalCallbacker)


# SwanLab 0.10.3's writer methods that write_scalars calls, with their parameters.
_WRITER_PARTS = {
    "on_scalar_flush": ("self", "scalar_records", "args", "kwargs"),  # the one replaced
    "_check_exp_status": ("self",),
    "_get_metric_context": ("self", "record", "scalar"),
    "_create_column": ("self", "record", "ctx"),
    "_record_time": ("record",),  # a staticmethod
    "_require_swanlog_dir": ("self",),
    "_rewrite_metric_file": ("metric_path", "metric"),  # a staticmethod
}


def writer_has_its_shape(callbacker: type[LocalCallbacker], context: type[_MetricContext]) -> bool:
    """``callbacker`` and its metric context are the ones ``write_scalars`` was written against."""
    return all(has_parameters(getattr(callbacker, name, None), names) for name, names in _WRITER_PARTS.items()) and (
        has_parameters(getattr(context, "add", None), ("self", "step", "data", "create_time", "more"))
    )


def writes_scalars(callbacker: type[LocalCallbacker]) -> bool:
    """Whether ``write_scalars`` is installed on ``callbacker`` itself."""
    return callbacker.__dict__.get("on_scalar_flush") is write_scalars


def write_scalars_once_per_file(callbacker: type[LocalCallbacker]) -> bool:
    """Replace ``callbacker.on_scalar_flush`` with ``write_scalars`` (no version gate: for tests)."""
    if writes_scalars(callbacker):
        return True
    if not all(callable(getattr(callbacker, name, None)) for name in _WRITER_PARTS):
        return False
    setattr(callbacker, "on_scalar_flush", write_scalars)
    return True


def write_scalars(self: LocalCallbacker, records: Sequence[ScalarRecord], /, *args: object, **kwargs: object) -> None:
    """SwanLab's ``_handle_metric`` for a batch of scalars: one status query, each file written once.

    SwanLab queries the dashboard's database and opens two files per value (the metric's log, appended, and its ``_summary.json``,
    rewritten). Here each metric's new lines are appended in one write and its summary is
    written once, with the same content. The step bookkeeping, the dashboard's columns and the
    rewrite of a repeated step are SwanLab's own methods.
    """
    if not records:
        return
    self._check_exp_status()  # raises, as SwanLab's does per value, if the run was stopped in the dashboard
    swanlog = self._require_swanlog_dir()
    # Keyed by strings: building and hashing a Path per value cost more than the rest together.
    lines: dict[str, list[str]] = {}  # metric log, relative to logs/ -> its new JSON lines, in order
    summaries: dict[str, _MetricContext] = {}  # metric folder -> the metric, whose summary is written at the end

    def append_pending(relative: str) -> None:
        pending = lines.pop(relative, None)
        if pending:
            path = swanlog / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as file:
                file.writelines(pending)

    try:
        for record in records:
            context = self._get_metric_context(record, scalar=True)
            if record.key not in self._created_columns:
                self._create_column(record, context)
                self._created_columns.add(record.key)
            metric, overwrite, relative = context.add(
                step=int(record.step), data=record.value.number, create_time=self._record_time(record)
            )
            if overwrite:  # a repeated step: SwanLab rewrites the file, so it must hold every earlier line
                append_pending(str(relative))
                self._rewrite_metric_file(swanlog / relative, metric)
            else:
                lines.setdefault(str(relative), []).append(json.dumps(metric, ensure_ascii=False) + "\n")
            summaries[context.kid] = context
    finally:  # whatever was accepted before a failure is still written
        for relative_name in list(lines):
            append_pending(relative_name)
        for kid, context in summaries.items():
            folder = swanlog / kid
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "_summary.json").write_text(json.dumps(context.summary, ensure_ascii=False), encoding="utf-8")
