"""``typedexp runs [DIR]``: every run under an outputs or multirun directory, as one table.

Dispatched by ``cli.py`` before Hydra starts, like ``typedexp dashboard``. It reads only the files
a run leaves (``runs.find_runs``: ``.hydra/``, ``metrics.jsonl``, ``result.json``, the lock), so it
lists runs of every tracker mode, ``disabled`` included, and runs that crashed or are still going.

Run directories may come from elsewhere, so they are read as data: no symlinked folder is walked
into, no symlinked file, FIFO or device is read, and each file only up to a cap (``runs.py``; each
file not read is one warning line, and the run is listed with the rest), control characters in overrides and error lines
are shown as ``?`` (``summary.shown``), and a CSV cell a spreadsheet would run as a formula gets a
leading quote (``summary.csv_cell``). The table, the CSV and the columns that vary are the sweep
summary's (``summary.py``), so both read the same way.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from typedexp.runs import layout as rundir
from typedexp.engine.settings import BestMode
from typedexp.core.errors import TypedexpError
from typedexp.core.report import print_error, warn
from typedexp.runs.record import RunRecord, find_runs, load_yaml
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
    shown,
    varying_keys,
    warn_unread,
    wide_console,
)

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
    "typedexp runs --csv runs.csv; typedexp runs --plot val/acc --out val-acc.png"
)


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
        help="only runs with this setting (repeatable: all must hold), e.g. model=large or optim.lr=0.1",
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
    csv: Path | None
    plot: str | None
    out: Path | None


def parse(args: Sequence[str]) -> RunsArgs:
    namespace = parser().parse_args(list(args))
    values = vars(namespace)  # argparse's Namespace is untyped: each value is checked here
    texts = {key: values[key] for key in ("dir", "sort", "csv", "plot", "out", "order")}
    if not all(value is None or isinstance(value, str) for value in texts.values()):
        raise TypeError("argparse returned unexpected types")
    wheres = values["where"]
    if not isinstance(wheres, list) or not all(isinstance(item, str) for item in wheres):
        raise TypeError("argparse returned unexpected types")
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
        csv=None if texts["csv"] is None else output_file("--csv", texts["csv"]),
        plot=texts["plot"],
        out=None if texts["out"] is None else output_file("--out", texts["out"]),
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
    if args.sort is not None:
        descending = larger_is_better(args.sort) if args.descending is None else args.descending
        listed = rank(listed, args.sort, BestMode.max if descending else BestMode.min)
        title += f", sorted by {args.sort} ({'largest' if descending else 'smallest'} first)"
    table = RunsTable.of(listed, args.sort)
    printed = replace(table, varying=table.varying[:MAX_SETTINGS])
    say(console, title)
    if listed:
        print_table(console, printed.header(), printed.rows(MISSING), {"steps", "seconds", *table.metrics})
    if len(table.varying) > MAX_SETTINGS:
        say(console, f"{len(table.varying) - MAX_SETTINGS} more settings differ between these runs (--csv FILE writes every one)")
    for record in listed:
        if record.error:
            say(console, f"{record.run_dir} {record.state.value}: {record.error}")
    if args.csv is not None:
        rows = [[*row, shown(record.error or "")] for row, record in zip(table.rows(""), listed, strict=True)]
        args.csv.write_text(csv_text([*table.header(), "error"], rows), encoding="utf-8", newline="")
        say(console, f"saved {len(listed)} rows in {args.csv}")
    if args.plot is not None:
        from typedexp.runs.plot import plot_runs

        out = args.out or Path(args.plot.replace("/", "-") + ".png")
        drawn = plot_runs(listed, args.plot, out, printed.label)
        say(console, f"plotted {args.plot} of {drawn} runs in {out}")
    return listed


def read_runs(args: RunsArgs) -> list[RunRecord]:
    """Every run under the directories, in path order; a ``--sort``/``--plot`` metric none of them has is an error."""
    saved.cache_clear()  # a process that lists twice (tests, a notebook) reads the files again
    found = sorted(
        (record for directory in args.dirs for record in find_runs(directory)),
        key=lambda record: path_order(record.run_dir),
    )
    known = sorted({name for record in found for name in record.metrics} | set(known_metrics()))
    for option, metric in (("--sort", args.sort), ("--plot", args.plot)):
        if found and metric is not None and metric not in known:
            names = ", ".join(map(shown, known))  # metric names come from the runs' files: no escape sequences
            raise RunsError(f"runs: {option} {metric}: no listed run has this metric; choose one of: {names}")
    return found


def say(console: Console, line: str) -> None:
    """One line of text from run dirs: control characters shown as '?', never read as markup."""
    console.print(shown(line), markup=False, highlight=False, soft_wrap=True)


@dataclass(frozen=True)
class RunsTable:
    """The listed runs, in order, and the columns they get."""

    records: tuple[RunRecord, ...]
    varying: tuple[str, ...]  # override keys whose values differ between the listed runs
    metrics: tuple[str, ...]  # metric columns: the sorting metric first, then SHOWN where some run has it

    @classmethod
    def of(cls, records: Sequence[RunRecord], sort: str | None) -> RunsTable:
        # Each run's task's headline on val and test (val/rmse, test/rmse for a regression); the
        # first (val/acc where no run recorded one) is a column even where no run has it yet.
        heads = list(dict.fromkeys(r.objective[0] for r in records if r.objective is not None)) or ["val/acc"]
        tasks = [name for head in heads for name in (head, "test/" + head.partition("/")[2])]
        wanted: dict[str, None] = dict.fromkeys([*([sort] if sort else []), *tasks, *SHOWN])
        metrics = tuple(name for name in wanted if name in (sort, heads[0]) or any(name in r.metrics for r in records))
        return cls(tuple(records), varying_keys(records), metrics)

    def header(self) -> list[str]:
        return ["run", *map(shown, self.varying), *map(shown, self.metrics), "steps", "seconds", "state"]

    def rows(self, missing: str) -> list[list[str]]:
        return [self.row(record, missing) for record in self.records]

    def row(self, record: RunRecord, missing: str) -> list[str]:
        typed = override_values(record.overrides)  # once per run: a run dir may hold 10,000s of overrides
        values = [setting(record, key, typed) for key in self.varying]  # a run without the override: its saved value
        return [
            shown(str(record.run_dir)),
            *(missing if value is None else shown(value) for value in values),
            *(f"{record.metrics[name]:.4f}" if name in record.metrics else missing for name in self.metrics),
            str(record.steps),
            missing if record.seconds is None else f"{record.seconds:.1f}",
            record.state.value,
        ]

    def label(self, record: RunRecord) -> str:
        """A plot legend's name for ``record``: its varying overrides, else its run dir."""
        typed = override_values(record.overrides)
        values = {key: setting(record, key, typed) for key in self.varying}
        named = " ".join(f"{key}={value}" for key, value in values.items() if value is not None)
        return shown(named or str(record.run_dir))


def path_order(path: Path) -> tuple[tuple[int, int, str], ...]:
    """Paths in order, with numbered parts as numbers: job 10 after job 9."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in path.parts)


def matches(record: RunRecord, test: Where) -> bool:
    value = setting(record, test.key)
    return value is not None and same_value(value, test.value)


def setting(record: RunRecord, key: str, typed: Mapping[str, str] | None = None) -> str | None:
    """The run's value of ``key``: from its overrides as typed, else the config Hydra saved.

    ``model`` is the chosen option (``hydra.runtime.choices`` in ``.hydra/hydra.yaml``), so a run
    that kept the default model matches ``model=small``; ``optim.lr`` is read from
    ``.hydra/config.yaml``. Only plain values count: a sub-config or a list is not a value.
    ``typed`` is ``override_values(record.overrides)`` where the caller has it already.
    """
    values = override_values(record.overrides) if typed is None else typed
    if key in values:
        return values[key]
    value = lookup(saved(record.run_dir, "config.yaml"), key.split("."))
    if value is None or isinstance(value, dict):  # a config group (or `debug`): the option's name is in hydra.yaml
        choices = lookup(saved(record.run_dir, "hydra.yaml"), ["hydra", "runtime", "choices"])
        chosen = choices.get(key) if isinstance(choices, dict) else None
        return chosen if isinstance(chosen, str) else None
    if isinstance(value, bool):
        return str(value).lower()
    return str(value) if isinstance(value, (str, int, float)) else None


@functools.lru_cache(maxsize=4096)
def saved(run_dir: Path, name: str) -> object:
    """A YAML file of a run's ``.hydra/`` (``config.yaml``, ``hydra.yaml``); None if unreadable."""
    if (run_dir / rundir.HYDRA_DIR).is_symlink():  # its files would be read from wherever it points
        return None
    unread: list[str] = []
    document = load_yaml(run_dir / rundir.HYDRA_DIR / name, unread)
    if name != "hydra.yaml":  # runs.read_run reads hydra.yaml too, and has said why it could not
        for line in unread:
            warn(shown(line))
    return document


def lookup(document: object, keys: Sequence[str]) -> object:
    for key in keys:
        if not isinstance(document, dict):
            return None
        document = document.get(key)
    return document


def check_keys(records: Sequence[RunRecord], tests: Sequence[Where]) -> None:
    """A ``--where`` key no run has is a typo, not an empty answer: say which keys exist."""
    for test in tests:
        if all(setting(record, test.key) is None for record in records):
            keys = sorted({key for record in records for key in override_values(record.overrides)})
            hint = f"; overrides the runs have: {', '.join(map(shown, keys))}" if keys else ""
            raise RunsError(f"runs: --where {test}: no listed run has a setting {test.key}{hint}")


def larger_is_better(metric: str) -> bool:
    """As the tasks say (``acc``, ``r2`` largest first; losses, ``rmse``, ``mae`` smallest first);
    a metric no known task logs: accuracy-like names largest first, others (``train/lr``) smallest."""
    mode = goal_of(metric)
    return mode is BestMode.max if mode is not None else "acc" in metric.rpartition("/")[2]


def same_value(value: str, wanted: str) -> bool:
    """``wanted`` equals a setting as typed (``0.1``), unquoted, or as a number (``1e-1``, ``0.10``)."""
    if value.strip("'\"") == wanted.strip("'\""):
        return True
    try:
        return float(value) == float(wanted)
    except ValueError:
        return False
