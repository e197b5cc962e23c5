"""The table at the end of every sweep: the jobs ranked, printed and saved in the sweep directory.

``SweepSummary`` is a Hydra callback (``hydra.callbacks.summary`` in ``store.HYDRA_SETTINGS``).
Hydra calls ``on_multirun_end`` in the launching process once every job has returned, whatever
the launcher, so the table is built from the sweep directory on disk (``runs.find_runs``): jobs
that ran in joblib workers or on other machines are read the same way as local ones. Hydra
instantiates the callback before the first job, so a bad ``metric`` or ``mode`` stops the sweep
before anything runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig
from rich.console import Console

from typedexp.runs import layout as rundir
from typedexp.engine.settings import BestMode
from typedexp.core.errors import ConfigError
from typedexp.core.report import warn
from typedexp.core.resources import naming_full_disk
from typedexp.runs.columns import (
    METRICS as METRICS, MISSING, count_states, known_metrics, csv_text, override_values, print_table, rank, shown, varying_keys, warn_unread, wide_console,
)
from typedexp.runs.record import JobState, RunRecord, find_runs, is_number, load_yaml
from typedexp.sweeps.ranking import built_task, ranking

SHOWN_METRICS = ("val/acc", "val/loss", "test/acc")  # columns, each where some job has it (with its task's)
CSV_FILE, MARKDOWN_FILE = "summary.csv", "summary.md"
BEST_FILE = "best.yaml"  # the optuna sweeper's best trial (hpo.py), noted in summary.md


@dataclass(frozen=True)
class Summary:
    """A sweep's jobs, ranked: best ``metric`` first, jobs without it last, in job order."""

    sweep_dir: Path
    metric: str
    mode: BestMode
    records: tuple[RunRecord, ...]  # ranked
    varying: tuple[str, ...]  # override keys whose values differ between the jobs

    @property
    def metric_columns(self) -> list[str]:
        # The jobs' tasks' headlines on val and test first (val/rmse, test/rmse for a regression).
        heads = [record.objective[0] for record in self.records if record.objective is not None]
        tasks = [name for head in dict.fromkeys(heads) for name in (head, "test/" + head.partition("/")[2])]
        wanted = list(dict.fromkeys([self.metric, *tasks, *SHOWN_METRICS]))
        return [name for name in wanted if name == self.metric or any(name in r.metrics for r in self.records)]

    def header(self) -> list[str]:
        return ["rank", "job", *map(shown, self.varying), *self.metric_columns, "steps", "seconds", "state"]

    def row(self, rank: int, record: RunRecord, missing: str) -> list[str]:
        values = override_values(record.overrides)
        ranked = str(rank) if self.metric in record.metrics else missing
        return [
            ranked,
            missing if record.job is None else str(record.job),
            *(shown(values.get(key, missing)) for key in self.varying),
            *(f"{record.metrics[name]:.4f}" if name in record.metrics else missing for name in self.metric_columns),
            str(record.steps),
            missing if record.seconds is None else f"{record.seconds:.1f}",
            record.state.value,
        ]

    def rows(self, missing: str) -> list[list[str]]:
        return [self.row(rank, record, missing) for rank, record in enumerate(self.records, 1)]

    def failed(self) -> bool:
        """Whether a job failed or was interrupted (the CLI then exits with 2)."""
        return any(r.state in (JobState.failed, JobState.interrupted) for r in self.records)

    def counts(self) -> str:
        return count_states(self.records, "job")


# The last summary this process printed. Hydra keeps its callback objects to itself, so this is
# how the CLI learns, after a sweep whose jobs ran elsewhere, whether any failed.
_printed: list[Summary] = []
# The sweep this process is running: Hydra skips on_multirun_end when Ctrl-C stops a sweep, so the
# CLI then prints the table of the jobs so far from here (report_interrupted_sweep).
_running: list[tuple[Path, str | None, BestMode | None]] = []


def last_summary() -> Summary | None:
    return _printed[-1] if _printed else None


def forget_last_summary() -> None:
    _printed.clear()
    _running.clear()


def report_interrupted_sweep() -> None:
    """After Ctrl-C stopped a sweep: the table of the jobs that started (the last one interrupted)."""
    if _running:
        sweep_dir, metric, mode = _running.pop()
        try:
            report(sweep_dir, metric, mode)
        except Exception as exc:  # the Ctrl-C line still follows
            warn(f"the sweep summary failed: {type(exc).__name__}: {exc}")


def summarize(sweep_dir: Path, metric: str | None = None, mode: BestMode | None = None) -> Summary:
    """The summary of the sweep in ``sweep_dir``, read from its job directories.

    Without ``metric``, ranked by the headline metric the jobs' task recorded (``val/acc`` for
    classification, ``val/rmse`` smallest first for regression); ``ranking.ranking`` says how."""
    records = find_runs(sweep_dir)
    metric, mode = ranking(metric, mode, records=records)
    return Summary(sweep_dir, metric, mode, tuple(rank(records, metric, mode)), varying_keys(records))


def to_csv(summary: Summary) -> str:
    rows = [
        [*values, shown(record.error or ""), shown(relative(record.run_dir, summary.sweep_dir))]
        for values, record in zip(summary.rows(""), summary.records, strict=True)
    ]
    return csv_text([*summary.header(), "error", "run_dir"], rows)


def to_markdown(summary: Summary) -> str:
    header = [*summary.header(), "error"]
    lines = [
        f"# Sweep {summary.sweep_dir}",
        "",
        f"{summary.counts()}, ranked by {summary.metric} ({summary.mode.value}).",
        "",
        *([best, ""] if (best := best_trial_note(summary.sweep_dir)) else []),
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    for values, record in zip(summary.rows(MISSING), summary.records, strict=True):
        cells = [*values, shown(record.error or "")]
        lines.append("| " + " | ".join(markdown_cell(cell) for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def best_trial_note(sweep_dir: Path) -> str | None:
    """The study's best trial from ``best.yaml``, as one Markdown line; None without a readable one."""
    best = load_yaml(sweep_dir / BEST_FILE)  # safe, size-limited; every field's type checked
    if not isinstance(best, dict) or not is_number(best.get("value")):
        return None
    listed = best.get("overrides")
    overrides = " ".join(o for o in listed if isinstance(o, str)) if isinstance(listed, list) else ""
    job, study, metric = best.get("job"), best.get("study"), best.get("metric")
    return markdown_cell(shown(
        f"Best trial of the Optuna study {study}: job {job}, {metric} {float(best['value']):.4f}, with "
        f"`{overrides}` (also in {BEST_FILE})."
    ))


def markdown_cell(text: str) -> str:
    """``text`` as one table cell: a ``|`` would end the cell and a newline the row."""
    return " ".join(text.splitlines()).replace("|", "\\|")


def relative(path: Path, start: Path) -> str:
    return str(path.relative_to(start)) if path.is_relative_to(start) else str(path)


def print_summary(summary: Summary, console: Console, saved: str | None) -> None:
    """The title line, the table, and each failed job's error line, on stdout."""
    where = f"; saved in {saved}" if saved else ""
    title = f"sweep summary: {summary.counts()}, ranked by {summary.metric} ({summary.mode.value}){where}"
    console.print(title, markup=False, highlight=False, soft_wrap=True)
    numeric = {"rank", "job", "steps", "seconds", *summary.metric_columns}
    print_table(console, summary.header(), summary.rows(MISSING), numeric)
    for record in summary.records:
        if record.error:
            job = "job" if record.job is None else f"job {record.job}"
            line = f"{job} {record.state.value}: {shown(record.error)}"
            console.print(line, markup=False, highlight=False, soft_wrap=True)


def save(summary: Summary) -> None:
    """``summary.csv`` and ``summary.md`` in the sweep dir, each written whole (never through a symlink)."""
    for name, text in ((CSV_FILE, to_csv(summary)), (MARKDOWN_FILE, to_markdown(summary))):
        path = summary.sweep_dir / name
        fd, temp = rundir.exclusive_temp(path)
        try:
            with naming_full_disk(summary.sweep_dir), os.fdopen(fd, "w", encoding="utf-8", newline="") as file:
                file.write(text)
            os.replace(temp, path)
        finally:
            temp.unlink(missing_ok=True)


def report(sweep_dir: Path, metric: str | None, mode: BestMode | None, console: Console | None = None) -> Summary:
    """Summarize the sweep, save both files (a failure to save is one warning) and print the table."""
    summary = summarize(sweep_dir, metric, mode)
    warn_unread(summary.records)
    saved: str | None = f"{sweep_dir / CSV_FILE} and {MARKDOWN_FILE}"
    try:
        save(summary)
    except (OSError, ConfigError) as exc:  # a read-only or full sweep dir: the table still prints
        warn(f"the sweep summary was not saved in {sweep_dir}: {exc}")
        saved = None
    print_summary(summary, console or wide_console(), saved)
    _printed[:] = [summary]
    return summary


def refresh_after_resume(run_dir: Path) -> None:
    """Save the summary of the sweep that ``run_dir`` is a job of again, after a resume of it.

    A sweep's ``summary.csv`` is written once, when the sweep ends; ``typedexp resume=<sweep>/<job>``
    changes that job's results afterwards. The ranking is the one the job ran under, read from its
    ``.hydra/hydra.yaml``. Nothing happens for a run outside a sweep (no summary beside it); a
    failure to save is one warning, as at the end of a sweep.
    """
    sweep_dir = run_dir.parent
    if not (sweep_dir / CSV_FILE).is_file():
        return
    saved = load_yaml(run_dir / ".hydra" / "hydra.yaml")
    hydra = saved.get("hydra") if isinstance(saved, dict) else None
    callbacks = hydra.get("callbacks") if isinstance(hydra, dict) else None
    chosen = callbacks.get("summary") if isinstance(callbacks, dict) else None
    chosen = chosen if isinstance(chosen, dict) else {}
    try:
        metric, mode = chosen.get("metric"), chosen.get("mode")
        ranked = SweepSummary(None if metric is None else str(metric), None if mode is None else str(mode))
        summary = summarize(sweep_dir, ranked.metric, ranked.mode)
        warn_unread(summary.records)
        save(summary)
    except (OSError, ConfigError) as exc:
        warn(f"the sweep summary in {sweep_dir} was not updated after this resume: {exc}")
    except Exception as exc:  # the resumed run itself succeeded: a summary must not turn it into a failure
        warn(f"the sweep summary in {sweep_dir} was not updated after this resume: {type(exc).__name__}: {exc}")


class SweepSummary(Callback):
    """Hydra callback: at the end of a multirun, print the ranked table and save it beside the jobs.

    ``metric`` is what to rank by (one the engine logs) and ``mode`` whether larger (``max``) or
    smaller (``min``) is better: ``hydra.callbacks.summary.metric=val/loss
    hydra.callbacks.summary.mode=min``. Unset, the task's headline metric and its direction
    (``val/acc``, largest first; ``val/rmse``, smallest first for regression; ``ranking.py``).
    """

    def __init__(self, metric: str | None = None, mode: BestMode | str | None = None) -> None:
        if metric is not None and metric not in known_metrics():
            raise ConfigError(
                f"hydra.callbacks.summary.metric={metric!r}: no such metric; choose one of: {', '.join(known_metrics())}"
            )
        if mode is not None and not isinstance(mode, BestMode):  # a name, from Python or the command line
            names = [m.value for m in BestMode]
            if mode not in names:
                raise ConfigError(f"hydra.callbacks.summary.mode={mode!r}: must be one of: {', '.join(names)}")
            mode = BestMode(mode)
        self.metric = metric
        self.mode = mode

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Any: Hydra's callback signature. ``config`` resolves the sweep dir as the launcher will."""
        _running[:] = [(Path(str(config.hydra.sweep.dir)), *self.ranked(config))]

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Any: Hydra's callback signature. Hydra turns a raised error into a multi-line warning."""
        _running.clear()
        try:
            report(Path(str(config.hydra.sweep.dir)), *self.ranked(config))
        except Exception as exc:
            warn(f"the sweep summary failed: {type(exc).__name__}: {exc}")

    def ranked(self, config: DictConfig) -> tuple[str, BestMode]:
        """The metric and direction to rank by: as set, else the sweep's task's (``ranking.py``)."""
        return ranking(self.metric, self.mode, task=built_task(config))
