"""The local dashboard's experiments (``tracker=local``): one per typedexp run, told apart by name.

**Names.** SwanLab's local dashboard keeps experiment names unique; for a name already taken,
SwanLab 0.10.3 glues ``-2`` (``-3``...) to it, so ``optim.lr=0.1`` becomes ``optim.lr=0.1-2``, which
reads as a learning rate. ``unique_name`` picks ``optim.lr=0.1 #2`` first: a space cannot end an
override's value, so ``#2`` is never read as part of one.

**Resume.** SwanLab resumes a run by its id (``swanlab.init(id=..., resume="allow")``) in the cloud
only: in ``offline`` mode the resumed run writes a new ``run-<time>-<id>`` folder with the same
id (``swanlab sync`` uploads both into the one cloud experiment of that id), and in ``local`` mode
its writer (``swanlab/deprecated/local.py``) adds a second experiment to the dashboard, named
``<name>-2``, whose charts start at the resumed step. ``continue_resumed_experiments`` makes the
writer continue the earlier experiment instead: when a resumed run starts, the earlier folder's
metric logs and pictures are copied into the new folder, the writer's record of which steps each
metric holds is rebuilt from them (SwanLab's own ``_MetricContext.add``), and the earlier experiment
is pointed at the new folder in place of the one just created. The dashboard then shows one
experiment whose curves go on where they were; the earlier folder stays on disk, untouched.
Installed only on the pinned SwanLab and where the writer has the shape it was written against
(``core.versions``); otherwise a resumed local run is a second experiment, as in SwanLab.
"""

from __future__ import annotations

import contextlib
import functools
import json
import shutil
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typedexp.core.versions as gates
from typedexp.core.versions import has_parameters

if TYPE_CHECKING:
    from swanlab.deprecated.local import LocalCallbacker

DATABASE = "runs.swanlab"  # SwanLab's local dashboard database, in the log directory
_PATCHED = "__typedexp_patched__"


def unique_name(log_dir: Path, name: str) -> str:
    """``name``, or ``name #2``, ``#3``... if the dashboard in ``log_dir`` already has it.

    Read from the dashboard's database (read-only); one that cannot be read leaves ``name`` to
    SwanLab's own numbering. Two runs that start at the same moment may still both see a name
    free: SwanLab then numbers the second its way.
    """
    taken = experiment_names(log_dir)
    if name not in taken:
        return name
    number = 2
    while f"{name} #{number}" in taken:
        number += 1
    return f"{name} #{number}"


def experiment_names(log_dir: Path) -> set[str]:
    """The names of the experiments in ``log_dir``'s dashboard database (empty if it has none)."""
    database = log_dir / DATABASE
    if not database.is_file():
        return set()
    try:
        with contextlib.closing(sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True)) as db:
            return {str(row[0]) for row in db.execute("SELECT name FROM experiment")}
    except sqlite3.Error:  # not SwanLab's database, or another schema: SwanLab numbers names its way
        return set()


def continue_resumed_experiments() -> bool:
    """Make SwanLab's local writer continue a resumed run's experiment (idempotent).

    False, and a resumed run is a second experiment as in SwanLab, off the pinned SwanLab or
    where the writer is not the one this was written against.
    """
    try:
        from swanlab.deprecated.local import LocalCallbacker, _MetricContext
    except ImportError:  # no local writer: nothing to continue
        return gates.allowed("dashboard_resume_continues", lambda: False)
    original = LocalCallbacker.__dict__.get("on_run_initialized")
    if getattr(original, _PATCHED, False):
        return True

    def shaped() -> bool:
        return (
            has_parameters(original, ("self", "run_dir", "path", "settings", "args", "kwargs"))
            and has_parameters(getattr(_MetricContext, "add", None), ("self", "step", "data", "create_time", "more"))
            and has_parameters(getattr(_MetricContext, "__init__", None), ("self", "key", "kid", "scalar"))
        )

    if original is None or not gates.allowed("dashboard_resume_continues", shaped):
        return False

    @functools.wraps(original)
    def on_run_initialized(self: LocalCallbacker, run_dir: Path, path: str, settings: Any, *args: Any, **kwargs: Any) -> None:
        original(self, run_dir, path, settings, *args, **kwargs)
        if settings.run.resume in ("allow", "must") and settings.run.id:
            continue_earlier(self, Path(run_dir), str(settings.run.id))

    setattr(on_run_initialized, _PATCHED, True)
    setattr(LocalCallbacker, "on_run_initialized", on_run_initialized)
    return True


def continue_earlier(writer: LocalCallbacker, run_dir: Path, run_id: str) -> bool:
    """Point the earlier experiment of ``run_id`` at ``run_dir`` and continue it (see the module's doc).

    False, and the experiment SwanLab just created stays, if there is no earlier one (a first
    run) or its folder is gone.
    """
    from swanboard.db.models import Experiment, Project
    from swanlab.deprecated.local import _MetricContext

    created = writer.exp
    if created is None or writer._swanlog_dir is None or writer._media_dir is None:
        return False
    earlier = [
        experiment for experiment in Experiment.select()
        if experiment.id != created.id and str(experiment.run_id).endswith(f"-{run_id}")
    ]
    if not earlier:
        return False
    previous = max(earlier, key=lambda experiment: experiment.sort)  # the latest, if resumed before
    folder = run_dir.parent / str(previous.run_id)
    if not folder.is_dir():
        return False
    if (folder / "logs").is_dir():
        shutil.copytree(folder / "logs", writer._swanlog_dir, dirs_exist_ok=True)
    contexts: dict[str, Any] = {}
    for tag in previous.tags:
        kid = str(tag.folder)
        scalar = tag.type == "line"
        if not scalar and (folder / "media" / kid).is_dir():  # the pictures, as files (not links into `folder`)
            shutil.copytree(folder / "media" / kid, writer._media_dir / kid, dirs_exist_ok=True)
        context = _MetricContext(str(tag.name), kid, scalar=scalar)
        for points in sorted((writer._swanlog_dir / kid).glob("*.log"), key=lambda file: int(file.stem)):
            for line in points.read_text(encoding="utf-8").splitlines():
                point = json.loads(line)
                context.add(step=int(point["index"]), data=point["data"], create_time=point["create_time"],
                            more=point.get("more"))
        contexts[str(tag.name)] = context
    writer._metrics.update(contexts)
    writer._created_columns.update(contexts)
    writer._next_kid = max([writer._next_kid, *(int(c.kid) + 1 for c in contexts.values())])
    # The experiment SwanLab just made (no charts yet) gives its folder to the earlier one.
    new_folder = str(created.run_id)
    created.delete_instance()
    Project.decrease_sum()
    previous.run_id = new_folder
    previous.status = Experiment.RUNNING_STATUS
    previous.finish_time = None
    previous.save()
    writer.exp = previous
    return True
