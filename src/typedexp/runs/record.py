"""What a run directory says about its job: a typed ``RunRecord``, read from the files on disk.

Plain Python (no Hydra, no torch). A sweep's summary is built from these records in the launching
process, whatever launcher ran the jobs (in this process, in joblib workers, on a cluster's
nodes), because the files are the one thing every launcher leaves in the same place.
``typedexp runs`` (runs_table.py) lists runs with the same reader.

What a job leaves:
- ``.hydra/overrides.yaml`` and ``.hydra/hydra.yaml`` (Hydra, before the task starts): the
  overrides and the job's number in its sweep;
- ``metrics.jsonl`` (the task, one flushed line per logged point): the last value of each metric;
- ``result.json`` (the task, at the end of every job, success or failure): its state, the one
  error line (secrets already masked), steps, wall seconds and final metrics. A job killed hard
  (SIGKILL, a node lost) leaves none: it reads as ``running`` while its run-dir lock is held and
  as ``interrupted`` once it is not.

Files from elsewhere are read as data only: JSON and YAML, every field checked for its type, and
whatever does not parse is skipped rather than trusted. Nothing in them can make the reader wait
or exhaust memory: only regular files are opened (``rundir.open_regular``: a FIFO named
``result.json`` or ``.lock`` is not waited on), each is read up to a cap (``metrics.jsonl`` line
by line, only its last ``MAX_METRICS_BYTES``), and JSON nested too deeply, numbers beyond a float
and YAML that no constructor accepts count as unreadable. A file that exists but is not read
becomes one line in the record's ``unread`` (``typedexp runs`` and the sweep summary print it as
a warning); the record holds what the other files say.
"""

from __future__ import annotations

import enum
import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import yaml

from typedexp.engine.settings import BestMode
from typedexp.runs import layout as rundir
from typedexp.core.resources import naming_full_disk

RESULT_FILE = "result.json"
RESULT_VERSION = 1
STEP_KEYS = ("step", "epoch")  # the bookkeeping columns of a metrics.jsonl line, not metrics
MAX_YAML_BYTES = 1_000_000  # Hydra's files are ~10 kB; a larger one is not a job's, and is not parsed
MAX_RESULT_BYTES = 4_000_000  # result.json: ~1 kB, a crash's masked traceback ~10-100 kB
# metrics.jsonl is read line by line, only its last 64 MiB (~500,000 logged points of ~130 bytes):
# the final values are right however long the run, and a 20 GiB sparse file costs 64 MiB of reads.
MAX_METRICS_BYTES = 64 * 2**20
MAX_LINE_BYTES = 64 * 2**10  # a logged point is ~130 bytes; a longer line is skipped unparsed
# libyaml's safe loader: 1 ms for a job's hydra.yaml where OmegaConf.load takes 15 ms (a 200-job
# sweep: 0.2 s instead of 4.7 s). Safe: it builds only plain Python values.
LOADER = yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader


class JobState(enum.Enum):
    """How a job ended, as the summary shows it."""

    done = "done"  # trained to the end; model.pt written
    pruned = "pruned"  # stopped early by a hyper-parameter search's pruner (hpo.py); kept, not failed
    failed = "failed"  # raised: a config mistake or a crash, with its error line
    interrupted = "interrupted"  # Ctrl-C / SIGTERM, or killed hard (no result.json, lock free)
    running = "running"  # no result.json yet and a live process holds its run-dir lock


@dataclass(frozen=True)
class RunRecord:
    """One job as its run directory records it."""

    run_dir: Path
    state: JobState
    job: int | None = None  # hydra.job.num in its sweep; None for a single run
    overrides: tuple[str, ...] = ()  # as typed, from .hydra/overrides.yaml
    metrics: dict[str, float] = field(default_factory=dict)  # last value of each, e.g. "val/acc"
    steps: int = 0  # optimizer steps taken (the last logged step for a job without result.json)
    seconds: float | None = None  # the job's wall time, set-up included; None if it left no record
    error: str | None = None  # the one line a failed or interrupted job printed
    # One line per file of the run dir that exists but was not read (or only in part), naming it
    # and saying why: a FIFO, a symlink, too large, not JSON. The other fields hold the rest.
    unread: tuple[str, ...] = ()
    # What ranks this run by default, from its task: ("val/acc", max), ("val/rmse", min); None for
    # a run that did not record it (it failed before training, or an older typedexp made it).
    objective: tuple[str, BestMode] | None = None


def write_result(
    run_dir: Path,
    state: JobState,
    *,
    seconds: float,
    error: str | None = None,
    metrics: Mapping[str, float] | None = None,
    steps: int | None = None,
    traceback: str | None = None,
    tags: Sequence[str] = (),
    note: str = "",
    objective: tuple[str, BestMode] | None = None,
) -> None:
    """Write ``result.json`` atomically (never through a symlink: ``rundir.exclusive_temp``).

    ``metrics``/``steps`` default to the last values in ``metrics.jsonl``, which is what a job
    that failed part-way got to. ``traceback`` (secrets masked by the caller) is kept for a crash,
    whose printed line cannot hold it. ``tags`` and ``note`` are the run's own (``Experiment``):
    what it was for, beside how it ended.
    """
    if metrics is None or steps is None:
        logged, last_step = last_logged(run_dir / rundir.METRICS_FILE)
        metrics = logged if metrics is None else metrics
        steps = last_step if steps is None else steps
    record = {
        "version": RESULT_VERSION,
        "state": state.value,
        "error": error,
        "steps": steps,
        "seconds": round(seconds, 3),
        "metrics": {key: value for key, value in metrics.items() if math.isfinite(value)},
        "tags": list(tags),
        "note": note,
        **({"traceback": traceback} if traceback else {}),
        **({"objective": {"metric": objective[0], "mode": objective[1].value}} if objective else {}),
    }
    path = run_dir / RESULT_FILE
    fd, temp = rundir.exclusive_temp(path)
    try:
        with naming_full_disk(run_dir), os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(record, file, indent=1)
            file.write("\n")
        os.replace(temp, path)  # readers see no file or a whole one
    finally:
        temp.unlink(missing_ok=True)


def last_logged(metrics_file: Path, unread: list[str] | None = None) -> tuple[dict[str, float], int]:
    """(last value of each metric, last step) in a ``metrics.jsonl``; ``({}, 0)`` if there is none.

    A job killed while writing leaves a partial last line; it and any other line that is not a
    JSON object of numbers is skipped. Why the file was not read (or only its end) goes to ``unread``.
    """
    metrics: dict[str, float] = {}
    step = 0
    for numbers in logged_points(metrics_file, unread):
        step = int(numbers.get("step", step))
        metrics.update({key: value for key, value in numbers.items() if key not in STEP_KEYS})
    return metrics, step


def curve(metrics_file: Path, metric: str) -> list[tuple[int, float]]:
    """``[(step, value), ...]`` of every logged point of ``metric`` in a ``metrics.jsonl``, in file order."""
    return [
        (int(point["step"]), point[metric])
        for point in logged_points(metrics_file)
        if metric in point and "step" in point
    ]


def logged_points(metrics_file: Path, unread: list[str] | None = None) -> Iterator[dict[str, float]]:
    """The finite numbers of each line of a ``metrics.jsonl``: ``{"step": 10.0, "train/loss": 2.2}``, ...

    A job killed while writing leaves a partial last line; it and any other line that is not a
    JSON object is skipped. A symlink or a file that is not a regular one is read as no file (a
    run dir from elsewhere could point it at any file of yours, or make it a FIFO), and a file
    larger than ``MAX_METRICS_BYTES`` is read from that far before its end; either is noted in
    ``unread``.
    """
    try:
        fd = rundir.open_regular(metrics_file)
    except FileNotFoundError:
        return
    except rundir.UnreadableFile as exc:
        _note(unread, f"{exc}; not read")
        return
    with os.fdopen(fd, "rb") as file:
        size = os.fstat(fd).st_size
        if size > MAX_METRICS_BYTES:
            _note(unread, (
                f"{metrics_file}: {rundir.size_text(size)}; only its last "
                f"{rundir.size_text(MAX_METRICS_BYTES)} read"
            ))
            file.seek(size - MAX_METRICS_BYTES - 1)  # - 1: a newline there ends the line before
            file.readline(MAX_LINE_BYTES + 1)  # the rest of the line cut in two
        for line in _lines(file, MAX_METRICS_BYTES + 1):
            try:
                point = json.loads(line)
            except (ValueError, RecursionError):  # RecursionError: [[[[... nested past the parser's depth
                continue
            if isinstance(point, dict):
                yield {str(key): float(value) for key, value in point.items() if is_number(value)}


def _lines(file: BinaryIO, budget: int) -> Iterator[bytes]:
    """The lines of ``file`` from where it stands, until EOF or ``budget`` bytes were read.

    A line longer than ``MAX_LINE_BYTES`` is skipped without being held in memory whole (a file of
    zeros is one endless line); the last line may lack its newline.
    """
    while budget > 0:
        line = file.readline(min(MAX_LINE_BYTES + 1, budget))
        if not line:
            return
        budget -= len(line)
        if len(line) <= MAX_LINE_BYTES:
            yield line
            continue
        while budget > 0 and not line.endswith(b"\n"):  # skip to the end of the long line
            line = file.readline(min(MAX_LINE_BYTES + 1, budget))
            if not line:
                return
            budget -= len(line)


def _note(unread: list[str] | None, line: str) -> None:
    if unread is not None:
        unread.append(line)


def is_number(value: object) -> bool:
    """A finite int or float (not a bool, not an int beyond a float's range: 10**400)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large to be a float
        return False


def read_run(run_dir: Path) -> RunRecord:
    """The record of the job in ``run_dir``, from whatever part of its files can be read."""
    unread: list[str] = []
    job, overrides = hydra_files(run_dir, unread)
    logged, last_step = last_logged(run_dir / rundir.METRICS_FILE, unread)
    result = read_result(run_dir / RESULT_FILE, unread)
    if result is None:
        # No record: still running (its lock is held), or killed before it could write one.
        if lock_held(run_dir, unread):
            state = JobState.running
        elif (run_dir / rundir.WEIGHTS_FILE).is_file():  # finished, by a typedexp without result.json
            state = JobState.done
        else:
            state = JobState.interrupted
        return RunRecord(run_dir, state, job, overrides, logged, last_step, unread=tuple(unread))
    state, error, steps, seconds, metrics = result
    return RunRecord(
        run_dir, state, job, overrides, {**logged, **metrics}, steps, seconds, error, tuple(unread),
        read_objective(run_dir / RESULT_FILE),
    )


def read_objective(path: Path) -> tuple[str, BestMode] | None:
    """The ``objective`` a ``result.json`` records (its metric and direction), each checked; None if absent."""
    try:
        data = json.loads(rundir.read_capped(path, MAX_RESULT_BYTES) or b"null")
    except (rundir.UnreadableFile, ValueError, RecursionError):  # read_result has said why
        return None
    objective = data.get("objective") if isinstance(data, dict) else None
    metric, mode = (objective.get("metric"), objective.get("mode")) if isinstance(objective, dict) else (None, None)
    if not isinstance(metric, str) or mode not in {m.value for m in BestMode}:
        return None
    return metric, BestMode(mode)


def lock_held(run_dir: Path, unread: list[str] | None = None) -> bool:
    try:
        return rundir.lock_holder(run_dir) is not None
    except rundir.UnreadableFile as exc:  # a symlinked .lock, a FIFO: no run of ours holds it
        _note(unread, f"{exc}; not read, so the run is not shown as running")
        return False
    except OSError:
        return False


def read_result(
    path: Path, unread: list[str] | None = None
) -> tuple[JobState, str | None, int, float | None, dict[str, float]] | None:
    """The fields of a ``result.json``, each checked; None if it is missing or not one of ours."""
    try:
        data = json.loads(rundir.read_capped(path, MAX_RESULT_BYTES) or b"null")
    except rundir.UnreadableFile as exc:
        _note(unread, f"{exc}; not read")
        return None
    except (ValueError, RecursionError) as exc:  # not JSON (UnicodeDecodeError included), or nested too deeply
        _note(unread, f"{path}: not JSON ({'nested too deeply' if isinstance(exc, RecursionError) else 'unparsable'}); not read")
        return None
    state = data.get("state") if isinstance(data, dict) else None
    if not isinstance(data, dict) or not isinstance(state, str) or state not in {s.value for s in JobState}:
        if data is not None:
            _note(unread, f"{path}: not a typedexp result (no known state); not read")
        return None
    error, steps, seconds, metrics = data.get("error"), data.get("steps"), data.get("seconds"), data.get("metrics")
    return (
        JobState(state),
        error if isinstance(error, str) else None,
        int(steps) if is_number(steps) and isinstance(steps, int) else 0,
        float(seconds) if is_number(seconds) and isinstance(seconds, (int, float)) else None,
        {str(k): float(v) for k, v in metrics.items() if is_number(v)} if isinstance(metrics, dict) else {},
    )


def hydra_files(run_dir: Path, unread: list[str] | None = None) -> tuple[int | None, tuple[str, ...]]:
    """(the job's number in its sweep, its overrides) from Hydra's ``.hydra/`` files, if readable.

    Read as plain YAML, interpolations unresolved: a value is taken only where it is already plain.
    """
    hydra_dir = run_dir / rundir.HYDRA_DIR
    if hydra_dir.is_symlink():  # its files would be read from wherever it points
        _note(unread, f"{hydra_dir}: a symlink, not followed; not read")
        return None, ()
    loaded = load_yaml(hydra_dir / "overrides.yaml", unread)
    overrides = tuple(item for item in loaded if isinstance(item, str)) if isinstance(loaded, list) else ()
    config = load_yaml(hydra_dir / "hydra.yaml", unread)
    hydra = config.get("hydra") if isinstance(config, dict) else None
    job = hydra.get("job") if isinstance(hydra, dict) else None
    number = job.get("num") if isinstance(job, dict) else None  # a single run's is "???" (missing)
    return (number if isinstance(number, int) and not isinstance(number, bool) else None), overrides


def load_yaml(path: Path, unread: list[str] | None = None) -> object:
    """The YAML document in ``path``; None if it is absent, a symlink, not a regular file, too large or not YAML.

    Why a file that exists was not read goes to ``unread``. Anchors and aliases load as shared
    references (no copies), so a "billion laughs" document costs what its text does.
    """
    try:
        data = rundir.read_capped(path, MAX_YAML_BYTES)
    except rundir.UnreadableFile as exc:
        _note(unread, f"{exc}; not read")
        return None
    if data is None:
        return None
    try:
        return yaml.load(data, Loader=LOADER)
    # Not only YAMLError: PyYAML's constructors raise ValueError (a timestamp in month 13, an int
    # of 5,000 digits), AttributeError (``!!timestamp x``) and others on text that is valid YAML.
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        _note(unread, f"{path}: not YAML typedexp can read ({reason[:120]}); not read")
        return None


def walk_runs(directory: Path) -> Iterator[Path]:
    """Every directory under ``directory`` that holds ``.hydra/``, in path order.

    A loop, not recursion (``os.walk`` recurses: a tree 1,000 folders deep raises RecursionError);
    symlinked folders are not followed and unreadable ones are skipped.
    """
    pending = [directory]
    while pending:
        folder = pending.pop()
        try:
            with os.scandir(folder) as entries:
                names = sorted(entry.name for entry in entries if entry.is_dir(follow_symlinks=False))
        except OSError:  # unreadable, or a path too long for the OS
            continue
        if rundir.HYDRA_DIR in names or (folder / rundir.HYDRA_DIR).is_symlink():  # read_run names a symlink
            yield folder
        pending.extend(folder / name for name in reversed(names) if name != rundir.HYDRA_DIR)


def find_runs(directory: Path) -> list[RunRecord]:
    """Every run directory under ``directory`` (those holding ``.hydra/``), in job order.

    Job dirs may nest (``hydra.sweep.subdir`` can hold slashes); symlinked folders are not
    followed. Runs without a job number come after the numbered ones, by path.
    """
    found = [read_run(run_dir) for run_dir in walk_runs(directory)]
    return sorted(found, key=lambda record: (record.job is None, record.job or 0, str(record.run_dir)))
