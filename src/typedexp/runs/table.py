"""``typedexp runs [DIR]``: every run under an outputs or multirun directory, as one table.

Dispatched by ``cli.py`` before Hydra starts, like ``typedexp dashboard``. It reads only the files
a run leaves (``runs.find_runs``: ``.hydra/``, ``metrics.jsonl``, ``result.json``, the lock), so it
lists runs of every tracker mode, ``disabled`` included, and runs that crashed or are still going.

Run directories may come from elsewhere, so they are read as data: no symlinked folder is walked
into, no symlinked file, FIFO or device is read, and each file only up to a cap (``runs.py``; each
file not read is one warning line, and the run is listed with the rest), control characters in overrides and error lines
are shown as ``?`` (``summary.shown``), and a CSV cell a spreadsheet would run as a formula gets a
leading quote (``summary.csv_cell``). The table and the CSV are the sweep summary's
(``columns.py``), so both read the same way. Which columns show, ``--columns`` and the plot's
labels: ``selection.py``; a run's value of a setting, read from its ``.hydra/``: ``settings.py``;
``--group-by``: ``groups.py``; ``--diff``: ``diff.py``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from typedexp.engine.settings import BestMode
from typedexp.core.errors import TypedexpError
from typedexp.core.report import print_error
from typedexp.runs.record import RunRecord, find_runs
from typedexp.specs.tasks import goal_of
from typedexp.runs.columns import (
    METRICS as METRICS,
    known_metrics,
    MISSING,
    count_states,
    csv_text,
    override_values,
    print_table,
    rank,
    say,
    shown,
    warn_unread,
    wide_console,
)
from typedexp.runs.selection import Column, Kind, catalog, choose, default_columns, metric_names, plot_labels
from typedexp.runs.settings import saved, same_value, setting, tags_of
from typedexp.runs import diff, groups
from typedexp.runs.groups import TAG

if TYPE_CHECKING:
    from rich.console import Console

EXIT_ERROR = 2  # as every other user mistake of the CLI
DEFAULT_DIRS = ("outputs", "multirun")  # where Hydra puts single runs and sweeps
SHOWN = ("val/acc", "test/acc")  # metric columns, each where some listed run has it, after the runs' tasks' own
# Setting columns printed (and named in a plot's labels); the CSV has all. More is no table to read,
# and a run dir from elsewhere can hold 70,000 overrides: rich takes minutes to lay out such a table.
MAX_SETTINGS = 40

DESCRIPTION = (
    "List the runs under DIR (default: outputs/ and multirun/ here) as a table: the overrides that "
    "differ between them, final val/acc and test/acc (or their task's own metric: val/rmse, test/rmse), steps, seconds and state (done, pruned, failed, "
    "interrupted, running). Reads each run's .hydra/, metrics.jsonl and result.json, whatever the tracker."
)
EPILOG = (
    "examples: typedexp runs multirun --sort val/loss --where model=large; "
    "typedexp runs --columns run,model.*,val/*; "
    "typedexp runs multirun/seeds --group-by model,optim.lr; typedexp runs --diff outputs/a outputs/b; "
    "typedexp runs --where tag=baseline; "
    "typedexp runs --csv runs.csv; typedexp runs --plot val/acc --out val-acc.png"
)
# What --diff compares is two runs, named: none of the options that pick or arrange many runs.
NOT_WITH_DIFF = ("dir", "sort", "where", "columns", "group_by", "plot")


class RunsError(TypedexpError):
    """A bad argument of ``typedexp runs``: one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one ``typedexp: error:`` line (argparse prints usage + 2 lines)."""

    def error(self, message: str) -> NoReturn:
        raise RunsError(f"runs: {message}; see typedexp runs --help")


def parser() -> argparse.ArgumentParser:
    cli = _Parser(prog="typedexp runs", description=DESCRIPTION, epilog=EPILOG)
    cli.add_argument("dir", nargs="?", metavar="DIR", help="a directory of runs (default: outputs/ and multirun/)")
    cli.add_argument("--sort", metavar="METRIC", help="order by this metric's final value (runs without it last)")
    order = cli.add_mutually_exclusive_group()
    order.add_argument("--desc", dest="order", action="store_const", const="desc", help="largest first")
    order.add_argument("--asc", dest="order", action="store_const", const="asc", help="smallest first")
    cli.add_argument(
        "--where",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="only runs with this setting (repeatable: all must hold), e.g. model=large or optim.lr=0.1; "
        "tag=baseline: runs with that tag",
    )
    cli.add_argument(
        "--group-by",
        metavar="KEYS",
        help="one row per distinct value of these settings (comma-separated; tag: each of a run's tags), "
        "with the count of runs and each metric's mean ± std over the done runs, e.g. over seeds",
    )
    cli.add_argument(
        "--diff",
        nargs=2,
        metavar=("RUN_A", "RUN_B"),
        help="only the config fields and final metrics that differ between two run directories",
    )
    cli.add_argument(
        "--columns",
        metavar="NAMES",
        help="the columns to show, comma-separated, in this order: names (run, optim.lr, val/acc, steps, state, "
        "error...) or patterns (model.*, val/*); any setting of the runs' configs, differing or not",
    )
    cli.add_argument("--csv", metavar="FILE", help="also write the table to FILE as CSV, with error lines and run dirs")
    cli.add_argument("--plot", metavar="METRIC", help="draw METRIC against step for the listed runs into a PNG")
    cli.add_argument("--out", metavar="FILE", help="the PNG --plot writes (default: the metric's name, e.g. val-acc.png)")
    return cli


@dataclass(frozen=True)
class Where:
    """One ``--where KEY=VALUE``."""

    key: str
    value: str

    def __str__(self) -> str:
        return f"{self.key}={self.value}"


@dataclass(frozen=True)
class RunsArgs:
    dirs: tuple[Path, ...]  # as typed (relative stays relative: it is what the table shows)
    sort: str | None
    descending: bool | None  # None: decided by the metric's name (larger_is_better)
    where: tuple[Where, ...]
    columns: tuple[str, ...]  # --columns: names and patterns, as given; () for the default columns
    csv: Path | None
    plot: str | None
    out: Path | None
    group_by: tuple[str, ...] = ()  # --group-by: setting names, as given; () for one row per run
    diff: tuple[str, str] | None = None  # --diff: the two run dirs, as typed


def parse(args: Sequence[str]) -> RunsArgs:
    namespace = parser().parse_args(list(args))
    values = vars(namespace)  # argparse's Namespace is untyped: each value is checked here
    texts = {key: values[key] for key in ("dir", "sort", "columns", "csv", "plot", "out", "order", "group_by")}
    if not all(value is None or isinstance(value, str) for value in texts.values()):
        raise TypeError("argparse returned unexpected types")
    wheres, pair = values["where"], values["diff"]
    if not isinstance(wheres, list) or not all(isinstance(item, str) for item in wheres):
        raise TypeError("argparse returned unexpected types")
    if pair is not None and not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(item, str) for item in pair)):
        raise TypeError("argparse returned unexpected types")
    if pair is not None:
        given = [key for key in NOT_WITH_DIFF if (wheres if key == "where" else texts[key])]
        if given:
            shown_as = "DIR" if given[0] == "dir" else "--" + given[0].replace("_", "-")
            raise RunsError(f"runs: --diff compares the two runs it names; leave out {shown_as}")
        return RunsArgs(
            (), None, None, (), (), None if texts["csv"] is None else output_file("--csv", texts["csv"]), None, None,
            diff=(pair[0], pair[1]),
        )
    if texts["group_by"] is not None and texts["plot"] is not None:
        raise RunsError("runs: --plot draws runs, not groups; leave out --group-by")
    order = texts["order"]
    if order is not None and texts["sort"] is None:
        raise RunsError(f"runs: --{order} orders by a metric; add --sort METRIC")
    if texts["out"] is not None and texts["plot"] is None:
        raise RunsError("runs: --out names the PNG of --plot; add --plot METRIC")
    if texts["plot"] is not None:
        from typedexp.runs.plot import require_matplotlib

        require_matplotlib()
    return RunsArgs(
        dirs=run_dirs(texts["dir"]),
        sort=texts["sort"],
        descending=None if order is None else order == "desc",
        where=tuple(map(parse_where, wheres)),
        columns=() if texts["columns"] is None else parse_columns(texts["columns"]),
        csv=None if texts["csv"] is None else output_file("--csv", texts["csv"]),
        plot=texts["plot"],
        out=None if texts["out"] is None else output_file("--out", texts["out"]),
        group_by=() if texts["group_by"] is None else names_of("--group-by", texts["group_by"], "model,optim.lr"),
    )


def output_file(option: str, text: str) -> Path:
    """A file to write: checked before the runs are read, so a typo costs no wait and no half output."""
    path = Path(text)
    if path.is_dir():
        raise RunsError(f"runs: {option} {text}: is a directory; name a file")
    if not path.parent.is_dir():
        raise RunsError(f"runs: {option} {text}: no such directory {path.parent}")
    return path


def run_dirs(text: str | None) -> tuple[Path, ...]:
    """DIR, or those of ``outputs/`` and ``multirun/`` that exist here."""
    if text is None:
        found = tuple(Path(name) for name in DEFAULT_DIRS if Path(name).is_dir())
        if not found:
            raise RunsError(f"runs: no outputs/ or multirun/ in {Path.cwd()}; name the directory: typedexp runs DIR")
        return found
    path = Path(text)
    if not path.exists():
        raise RunsError(f"runs: {text}: no such directory")
    if not path.is_dir():
        raise RunsError(f"runs: {text}: not a directory")
    return (path,)


def parse_columns(text: str) -> tuple[str, ...]:
    return names_of("--columns", text, "run,optim.lr,val/acc")


def names_of(option: str, text: str, example: str) -> tuple[str, ...]:
    """The comma-separated names of ``--columns`` or ``--group-by``, each once."""
    names = tuple(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    if not names:
        what = "column" if option == "--columns" else "setting"
        raise RunsError(f"runs: {option}: name at least one {what}, e.g. {option} {example}")
    return names


def parse_where(text: str) -> Where:
    key, equals, value = text.partition("=")
    key = key.strip().lstrip("+~")
    if not equals or not key or " " in key:
        raise RunsError(f"runs: --where {text!r}: expected KEY=VALUE, e.g. --where model=large")
    return Where(key, value.strip())


def main(args: Sequence[str]) -> None:
    """``typedexp runs ...``: print the table; a mistake is one line and exit code 2."""
    try:
        show(parse(args))
    except TypedexpError as exc:
        print_error(str(exc))
        sys.exit(EXIT_ERROR)
    except OSError as exc:  # an unreadable directory, a CSV or PNG path that cannot be written
        print_error(f"runs: {exc.filename or ''}: {exc.strerror or exc}")
        sys.exit(EXIT_ERROR)


def show(args: RunsArgs, console: Console | None = None) -> list[RunRecord]:
    """Read, filter and sort the runs, then print the table (and write the CSV and the plot)."""
    console = console or wide_console()
    if args.diff is not None:
        saved.cache_clear()  # a process that compares twice (tests, a notebook) reads the files again
        return list(diff.show_diff(console, args.diff, args.csv))
    places = " and ".join(map(str, args.dirs))
    found = read_runs(args)
    warn_unread(found)  # a FIFO, a 20 GiB file, JSON nested too deeply: named, and the run shown without it
    if not found:
        console.print(f"no runs under {places} (a run directory holds .hydra/)", markup=False, highlight=False)
        return []
    listed = [record for record in found if all(matches(record, test) for test in args.where)]
    if args.where and not listed:
        check_keys(found, args.where)
    title = f"{count_states(listed, 'run')} under {places}"
    if args.where:
        title += f" where {' and '.join(map(str, args.where))}"
    descending = None
    if args.sort is not None:
        descending = larger_is_better(args.sort) if args.descending is None else args.descending
    if args.group_by:
        by = groups.Options(args.group_by, args.columns, args.sort, descending, SHOWN)
        groups.show_groups(console, title, listed, found, by, args.csv)
        return listed
    if args.sort is not None and descending is not None:
        listed = rank(listed, args.sort, BestMode.max if descending else BestMode.min)
        title += f", sorted by {args.sort} ({'largest' if descending else 'smallest'} first)"
    table = RunsTable.of(listed, args.sort, args.columns, found)
    if args.plot is None:  # with --plot, the picture is the answer: only where it is, not the table again
        print_runs(console, title, table)
    if args.csv is not None:
        columns = table.columns if args.columns else (*table.columns, Column("error", Kind.error))
        rows = [[table.cell(record, values, column, "") for column in columns] for record, values in table.runs()]
        args.csv.write_text(csv_text([shown(column.name) for column in columns], rows), encoding="utf-8", newline="")
        say(console, f"saved {len(listed)} rows in {args.csv}")
    if args.plot is not None:
        from typedexp.runs.plot import plot_runs

        out = args.out or Path(args.plot.replace("/", "-") + ".png")
        drawn = plot_runs(listed, args.plot, out, labels)
        more = f" ({len(listed) - drawn} more listed runs logged no {args.plot})" if drawn < len(listed) else ""
        say(console, f"plotted {args.plot} of {drawn} runs in {out}{more}")
    return listed


def print_runs(console: Console, title: str, table: RunsTable) -> None:
    """The title, the table (at most MAX_SETTINGS settings), what it leaves out, and the error lines."""
    printed = table.printed()
    say(console, title)
    if table.records:
        numeric = {column.name for column in printed.columns if column.kind in (Kind.metric, Kind.steps, Kind.seconds)}
        header = [shown(column.name) for column in printed.columns]
        rows = [[printed.cell(record, values, column, MISSING) for column in printed.columns] for record, values in printed.runs()]
        width = print_table(console, header, rows, numeric)
        if width > console.width:
            say(console, f"the table is {width} characters wide, the terminal {console.width}: --columns NAME,... picks columns")
    hidden = sum(column.kind is Kind.setting for column in table.columns) - MAX_SETTINGS
    if hidden > 0:
        say(console, f"{hidden} more settings differ between these runs (--csv FILE writes every one)")
    if table.same:
        say(console, same_line(table.same, len(table.records)))
    for record in table.records:
        if record.error:
            say(console, f"{record.run_dir} {record.state.value}: {record.error}")


def same_line(same: Mapping[str, str], count: int) -> str:
    """``same in all 8 runs: epochs=1 tracker=disabled``: the overridden settings left out of the columns."""
    pairs = [f"{key}={value}" for key, value in same.items()]
    more = f" and {len(pairs) - MAX_SETTINGS} more" if len(pairs) > MAX_SETTINGS else ""
    who = "settings" if count == 1 else f"same in all {count} runs"
    return f"{who}: {' '.join(pairs[:MAX_SETTINGS])}{more}"


def labels(records: Sequence[RunRecord]) -> list[str]:
    """The plot's legend: what differs between the plotted runs (selection.plot_labels)."""
    return plot_labels(records, [override_values(record.overrides) for record in records], MAX_SETTINGS)


def read_runs(args: RunsArgs) -> list[RunRecord]:
    """Every run under the directories, in path order; a ``--sort``/``--plot`` metric none of them has is an error."""
    saved.cache_clear()  # a process that lists twice (tests, a notebook) reads the files again
    found = sorted(
        (record for directory in args.dirs for record in find_runs(directory)),
        key=lambda record: path_order(record.run_dir),
    )
    known = sorted(set(metric_names(found)) | set(known_metrics()))
    for option, metric in (("--sort", args.sort), ("--plot", args.plot)):
        if found and metric is not None and metric not in known:
            names = ", ".join(map(shown, known))  # metric names come from the runs' files: no escape sequences
            raise RunsError(f"runs: {option} {metric}: no listed run has this metric; choose one of: {names}")
    return found


@dataclass(frozen=True)
class RunsTable:
    """The listed runs, in order, and the columns they get."""

    records: tuple[RunRecord, ...]
    typed: tuple[Mapping[str, str], ...]  # each run's overrides by key, split once: a run may hold 10,000s
    columns: tuple[Column, ...]
    same: Mapping[str, str]  # the default table's overridden settings that every run shares: no column

    @classmethod
    def of(
        cls, records: Sequence[RunRecord], sort: str | None, patterns: Sequence[str] = (), found: Sequence[RunRecord] = ()
    ) -> RunsTable:
        """The default columns, or those ``patterns`` (--columns) name among what ``found`` (every run read) has."""
        typed = tuple(override_values(record.overrides) for record in records)
        if not patterns:
            # Each run's task's headline on val and test (val/rmse, test/rmse for a regression); the
            # first (val/acc where no run recorded one) is a column even where no run has it yet.
            heads = list(dict.fromkeys(r.objective[0] for r in records if r.objective is not None)) or ["val/acc"]
            tasks = [name for head in heads for name in (head, "test/" + head.partition("/")[2])]
            columns, same = default_columns(records, typed, sort, [*tasks, *SHOWN], heads[0])
            return cls(tuple(records), typed, columns, same)
        pool = found or records
        available = catalog(pool, [override_values(record.overrides) for record in pool])
        return cls(tuple(records), typed, choose(patterns, available), {})

    def runs(self) -> zip[tuple[RunRecord, Mapping[str, str]]]:
        return zip(self.records, self.typed, strict=True)

    def printed(self) -> RunsTable:
        """This table with its first MAX_SETTINGS settings only: more is no table to read, and rich
        takes minutes to lay out 70,000 columns (a run dir from elsewhere)."""
        kept: list[Column] = []
        settings = 0
        for column in self.columns:
            settings += column.kind is Kind.setting
            if column.kind is not Kind.setting or settings <= MAX_SETTINGS:
                kept.append(column)
        return replace(self, columns=tuple(kept))

    @staticmethod
    def cell(record: RunRecord, typed: Mapping[str, str], column: Column, missing: str) -> str:
        """The text of one cell; ``missing`` where the run has no value."""
        kind = column.kind
        if kind is Kind.setting:
            value = setting(record, column.name, typed)  # a run without the override: its saved value
            return missing if value is None else shown(value)
        if kind is Kind.metric:
            return f"{record.metrics[column.name]:.4f}" if column.name in record.metrics else missing
        if kind is Kind.seconds:
            return missing if record.seconds is None else f"{record.seconds:.1f}"
        if kind is Kind.error:
            return shown(record.error) if record.error else missing
        texts = {Kind.run: str(record.run_dir), Kind.steps: str(record.steps), Kind.state: record.state.value}
        return shown(texts[kind])


def path_order(path: Path) -> tuple[tuple[int, int, str], ...]:
    """Paths in order, with numbered parts as numbers: job 10 after job 9."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in path.parts)


def matches(record: RunRecord, test: Where) -> bool:
    if test.key == TAG:  # one of the run's tags (--where tags=[a,b] compares the whole list)
        return test.value in tags_of(record)
    value = setting(record, test.key)
    return value is not None and same_value(value, test.value)


def check_keys(records: Sequence[RunRecord], tests: Sequence[Where]) -> None:
    """A ``--where`` key no run has is a typo, not an empty answer: say which keys exist."""
    for test in tests:
        if test.key == TAG:
            if not any(tags_of(record) for record in records):
                raise RunsError(f"runs: --where {test}: no listed run has tags (set them with tags=[{test.value}])")
            continue
        if all(setting(record, test.key) is None for record in records):
            keys = sorted({key for record in records for key in override_values(record.overrides)})
            hint = f"; overrides the runs have: {', '.join(map(shown, keys))}" if keys else ""
            raise RunsError(f"runs: --where {test}: no listed run has a setting {test.key}{hint}")


def larger_is_better(metric: str) -> bool:
    """As the tasks say (``acc``, ``r2`` largest first; losses, ``rmse``, ``mae`` smallest first);
    a metric no known task logs: accuracy-like names largest first, others (``train/lr``) smallest."""
    mode = goal_of(metric)
    return mode is BestMode.max if mode is not None else "acc" in metric.rpartition("/")[2]

