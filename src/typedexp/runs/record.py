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
whatever does not parse is skipped rather than trusted.
"""

from __future__ import annotations

import enum
import json
import math
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from typedexp.runs import layout as rundir
from typedexp.core.errors import ConfigError
from typedexp.core.resources import naming_full_disk

RESULT_FILE = "result.json"
RESULT_VERSION = 1
STEP_KEYS = ("step", "epoch")  # the bookkeeping columns of a metrics.jsonl line, not metrics
MAX_YAML_BYTES = 1_000_000  # Hydra's files are ~10 kB; a larger one is not a job's, and is not parsed
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


def write_result(
    run_dir: Path,
    state: JobState,
    *,
    seconds: float,
    error: str | None = None,
    metrics: Mapping[str, float] | None = None,
    steps: int | None = None,
    traceback: str | None = None,
) -> None:
    """Write ``result.json`` atomically (never through a symlink: ``rundir.exclusive_temp``).

    ``metrics``/``steps`` default to the last values in ``metrics.jsonl``, which is what a job
    that failed part-way got to. ``traceback`` (secrets masked by the caller) is kept for a crash,
    whose printed line cannot hold it.
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
        **({"traceback": traceback} if traceback else {}),
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


def last_logged(metrics_file: Path) -> tuple[dict[str, float], int]:
    """(last value of each metric, last step) in a ``metrics.jsonl``; ``({}, 0)`` if there is none.

    A job killed while writing leaves a partial last line; it and any other line that is not a
    JSON object of numbers is skipped.
    """
    metrics: dict[str, float] = {}
    step = 0
    for numbers in logged_points(metrics_file):
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


def logged_points(metrics_file: Path) -> list[dict[str, float]]:
    """The finite numbers of each line of a ``metrics.jsonl``: ``[{"step": 10.0, "train/loss": 2.2}, ...]``.

    A job killed while writing leaves a partial last line; it and any other line that is not a
    JSON object is skipped. A symlink is read as no file (a run dir from elsewhere could point
    it at any file of yours).
    """
    text = read_no_follow(metrics_file)
    points = []
    for line in (text or "").splitlines():
        try:
            point = json.loads(line)
        except ValueError:
            continue
        if isinstance(point, dict):
            points.append({str(key): float(value) for key, value in point.items() if is_number(value)})
    return points


def read_no_follow(path: Path) -> str | None:
    """The text of ``path``; None if it is absent, not a regular file, or a symlink."""
    try:
        fd = rundir.open_no_follow(path, os.O_RDONLY | os.O_NONBLOCK)  # NONBLOCK: a FIFO is not waited on
    except (OSError, ConfigError):
        return None
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return file.read().decode("utf-8", errors="replace")


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_run(run_dir: Path) -> RunRecord:
    """The record of the job in ``run_dir``, from whatever part of its files exists."""
    job, overrides = hydra_files(run_dir)
    logged, last_step = last_logged(run_dir / rundir.METRICS_FILE)
    result = read_result(run_dir / RESULT_FILE)
    if result is None:
        # No record: still running (its lock is held), or killed before it could write one.
        if lock_held(run_dir):
            state = JobState.running
        elif (run_dir / rundir.WEIGHTS_FILE).is_file():  # finished, by a typedexp without result.json
            state = JobState.done
        else:
            state = JobState.interrupted
        return RunRecord(run_dir, state, job, overrides, logged, last_step)
    state, error, steps, seconds, metrics = result
    return RunRecord(run_dir, state, job, overrides, {**logged, **metrics}, steps, seconds, error)


def lock_held(run_dir: Path) -> bool:
    try:
        return rundir.lock_holder(run_dir) is not None
    except (OSError, ConfigError):  # a symlinked or unreadable .lock: no run of ours holds it
        return False


def read_result(path: Path) -> tuple[JobState, str | None, int, float | None, dict[str, float]] | None:
    """The fields of a ``result.json``, each checked; None if it is missing or not one of ours."""
    try:
        data = json.loads(read_no_follow(path) or "")
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("state") not in {state.value for state in JobState}:
        return None
    error, steps, seconds, metrics = data.get("error"), data.get("steps"), data.get("seconds"), data.get("metrics")
    return (
        JobState(data["state"]),
        error if isinstance(error, str) else None,
        int(steps) if is_number(steps) and isinstance(steps, int) else 0,
        float(seconds) if is_number(seconds) and isinstance(seconds, (int, float)) else None,
        {str(k): float(v) for k, v in metrics.items() if is_number(v)} if isinstance(metrics, dict) else {},
    )


def hydra_files(run_dir: Path) -> tuple[int | None, tuple[str, ...]]:
    """(the job's number in its sweep, its overrides) from Hydra's ``.hydra/`` files, if readable.

    Read as plain YAML, interpolations unresolved: a value is taken only where it is already plain.
    """
    hydra_dir = run_dir / rundir.HYDRA_DIR
    if hydra_dir.is_symlink():  # its files would be read from wherever it points
        return None, ()
    loaded = load_yaml(hydra_dir / "overrides.yaml")
    overrides = tuple(item for item in loaded if isinstance(item, str)) if isinstance(loaded, list) else ()
    config = load_yaml(hydra_dir / "hydra.yaml")
    hydra = config.get("hydra") if isinstance(config, dict) else None
    job = hydra.get("job") if isinstance(hydra, dict) else None
    number = job.get("num") if isinstance(job, dict) else None  # a single run's is "???" (missing)
    return (number if isinstance(number, int) and not isinstance(number, bool) else None), overrides


def load_yaml(path: Path) -> object:
    """The YAML document in ``path``; None if it is absent, a symlink, too large or not YAML."""
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_YAML_BYTES:
            return None
        return yaml.load(path.read_bytes(), Loader=LOADER)
    except (OSError, yaml.YAMLError):
        return None


def find_runs(directory: Path) -> list[RunRecord]:
    """Every run directory under ``directory`` (those holding ``.hydra/``), in job order.

    Job dirs may nest (``hydra.sweep.subdir`` can hold slashes); symlinked folders are not
    followed. Runs without a job number come after the numbered ones, by path.
    """
    found: list[RunRecord] = []
    for parent, dirs, _ in os.walk(directory, followlinks=False):
        if rundir.HYDRA_DIR in dirs:
            found.append(read_run(Path(parent)))
        dirs[:] = sorted(name for name in dirs if name != rundir.HYDRA_DIR)
    return sorted(found, key=lambda record: (record.job is None, record.job or 0, str(record.run_dir)))
