"""``typedexp runs --group-by KEY[,KEY]``: one row per distinct value of the keys, each metric as
mean ± std over the group's finished runs (over seeds, say), with how many runs each holds.

Only ``done`` runs are averaged: a failed, pruned, interrupted or still running run stopped
before its last epoch, so its final numbers are not comparable; such runs are counted in the
``excluded`` column instead. The std is the sample standard deviation (n - 1): the spread a
reader would expect from a new seed; a group of one run has none.

A key is any setting a column can name (``model``, ``optim.lr``, ``tags``; a pattern such as
``optim.*`` names each setting it matches), or ``tag``: a run then counts in the group of each of
its tags.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from typedexp.runs.columns import MISSING, csv_text, override_values, print_table, say, shown
from typedexp.runs.record import JobState, RunRecord
from typedexp.runs.selection import Column, Kind, catalog, choose
from typedexp.runs.settings import canonical, differing, setting, tags_of

if TYPE_CHECKING:
    from rich.console import Console

TAG = "tag"  # --group-by tag (and --where tag=x): one of a run's tags
# Numbers a group averages besides the metrics (the rest of a run's cells are not numbers).
AVERAGED = (Kind.metric, Kind.steps, Kind.seconds)
COUNTS = ("runs", "excluded")  # the group's done runs (averaged) and the others (not averaged)


@dataclass(frozen=True)
class Stats:
    """One metric over a group's done runs."""

    count: int  # the done runs that have it
    mean: float | None
    std: float | None  # sample std (n - 1); None for fewer than 2 values

    @classmethod
    def of(cls, values: Sequence[float]) -> Stats:
        if not values:
            return cls(0, None, None)
        std = statistics.stdev(values) if len(values) > 1 else None
        return cls(len(values), statistics.fmean(values), std)

    def text(self) -> str:
        """``0.9612 ± 0.0031``; a single run's value alone; ``-`` without any."""
        if self.mean is None:
            return MISSING
        return f"{self.mean:.4f}" if self.std is None else f"{self.mean:.4f} ± {self.std:.4f}"


@dataclass(frozen=True)
class Group:
    values: tuple[str | None, ...]  # each key's value, as the group's first run has it
    records: tuple[RunRecord, ...]

    @property
    def done(self) -> tuple[RunRecord, ...]:
        return tuple(record for record in self.records if record.state is JobState.done)

    def stats(self, column: Column) -> Stats:
        return Stats.of([value for record in self.done if (value := number(record, column)) is not None])


def number(record: RunRecord, column: Column) -> float | None:
    if column.kind is Kind.metric:
        return record.metrics.get(column.name)
    if column.kind is Kind.steps:
        return float(record.steps)
    return record.seconds


def chosen_keys(patterns: Sequence[str], records: Sequence[RunRecord], typed: Sequence[Mapping[str, str]]) -> tuple[str, ...]:
    """The settings ``--group-by`` names (names or patterns, as ``--columns`` takes them), and ``tag``.

    One that is no setting of any run (a typo) is one line listing the settings there are.
    """
    settings = [Column(TAG, Kind.setting), *(column for column in catalog(records, typed) if column.kind is Kind.setting)]
    return tuple(column.name for column in choose(patterns, settings, "--group-by", "setting"))


def group_runs(records: Sequence[RunRecord], typed: Sequence[Mapping[str, str]], keys: Sequence[str]) -> list[Group]:
    """The runs by the values of ``keys``, groups in the order their first run is listed.

    Values compare as settings do (``0.10`` == ``1e-1``); a run without a value is in the group of
    those without (shown ``-``).
    """
    members: dict[tuple[str | None, ...], list[RunRecord]] = {}
    shown_as: dict[tuple[str | None, ...], tuple[str | None, ...]] = {}
    for record, values in zip(records, typed, strict=True):
        options = [key_values(record, values, key) for key in keys]
        for combination in itertools.product(*options):
            found = tuple(canonical(value) for value in combination)
            members.setdefault(found, []).append(record)
            shown_as.setdefault(found, combination)
    return [Group(shown_as[found], tuple(runs)) for found, runs in members.items()]


def key_values(record: RunRecord, typed: Mapping[str, str], key: str) -> list[str | None]:
    if key == TAG:
        return list(tags_of(record, typed)) or [None]
    return [setting(record, key, typed)]


def averaged_columns(
    records: Sequence[RunRecord], typed: Sequence[Mapping[str, str]], patterns: Sequence[str], sort: str | None, shown_metrics: Sequence[str]
) -> tuple[Column, ...]:
    """The numbers each group row averages: ``--columns`` among the metrics, steps and seconds, or
    the sorting metric and ``shown_metrics`` that some run has (``val/acc`` always)."""
    available = [column for column in catalog(records, typed) if column.kind in AVERAGED]
    if patterns:
        return choose(patterns, available)
    wanted = [*([sort] if sort else []), *(name for name in shown_metrics if name != sort)]
    return tuple(
        Column(name, Kind.metric)
        for name in wanted
        if name in (sort, "val/acc") or any(name in record.metrics for record in records)
    )


def rank_groups(groups: Sequence[Group], metric: str, descending: bool) -> list[Group]:
    """Best mean first; groups without the metric last, in their order (a stable sort)."""
    column = Column(metric, Kind.metric)
    means = [(group, group.stats(column).mean) for group in groups]
    sign = -1.0 if descending else 1.0
    ranked = sorted(((group, mean) for group, mean in means if mean is not None), key=lambda item: sign * item[1])
    return [*(group for group, _ in ranked), *(group for group, mean in means if mean is None)]


def varying_within(
    groups: Sequence[Group], records: Sequence[RunRecord], typed: Sequence[Mapping[str, str]], keys: Sequence[str]
) -> tuple[str, ...]:
    """The overridden settings (not ``keys``) whose values differ inside some group: what the
    means are taken over (``seed``)."""
    by_run = {id(record): values for record, values in zip(records, typed, strict=True)}
    overridden = [key for key in dict.fromkeys(key for values in typed for key in values) if key not in keys]
    varying: dict[str, None] = {}
    for group in groups:
        inside = [by_run[id(record)] for record in group.records]
        found, _ = differing(group.records, inside, overridden)
        varying.update(dict.fromkeys(found))
    return tuple(key for key in overridden if key in varying)


def printed_rows(groups: Sequence[Group], keys: Sequence[str], columns: Sequence[Column]) -> tuple[list[str], list[list[str]]]:
    """The header and rows of the printed table: the keys, the counts, ``mean ± std`` per column."""
    header = [*keys, *COUNTS, *(column.name for column in columns)]
    rows = [
        [
            *(MISSING if value is None else value for value in group.values),
            str(len(group.done)),
            str(len(group.records) - len(group.done)),
            *(group.stats(column).text() for column in columns),
        ]
        for group in groups
    ]
    return [shown(name) for name in header], [[shown(cell) for cell in row] for row in rows]


def csv_rows(groups: Sequence[Group], keys: Sequence[str], columns: Sequence[Column]) -> tuple[list[str], list[list[str]]]:
    """The CSV's header and rows: each column's mean, std and count in columns of their own, full precision."""
    header = [*keys, *COUNTS, *(f"{column.name} {part}" for column in columns for part in ("mean", "std", "count"))]
    rows = []
    for group in groups:
        cells = [*("" if value is None else value for value in group.values), str(len(group.done)), str(len(group.records) - len(group.done))]
        for column in columns:
            stats = group.stats(column)
            cells += ["" if stats.mean is None else repr(stats.mean), "" if stats.std is None else repr(stats.std), str(stats.count)]
        rows.append(cells)
    return [shown(name) for name in header], [[shown(cell) for cell in row] for row in rows]


@dataclass(frozen=True)
class Options:
    """What ``typedexp runs`` was asked for, as far as the groups need it."""

    keys: tuple[str, ...]  # --group-by: names or patterns, as given
    columns: tuple[str, ...]  # --columns: the averaged numbers; () for the default ones
    sort: str | None
    descending: bool | None  # decided by table.py (larger_is_better); None without --sort
    shown_metrics: Sequence[str]  # the default metrics, where some run has them


def show_groups(
    console: Console, title: str, listed: Sequence[RunRecord], found: Sequence[RunRecord], options: Options, csv: Path | None
) -> None:
    """Print one row per group of ``listed`` (``found``: every run read, for the names a key may take)."""
    typed = [override_values(record.overrides) for record in listed]
    every = [override_values(record.overrides) for record in found]
    keys = chosen_keys(options.keys, found, every)
    columns = averaged_columns(found, every, options.columns, options.sort, options.shown_metrics)
    grouped = group_runs(listed, typed, keys)
    title = f"{len(grouped)} group{'' if len(grouped) == 1 else 's'} of {title}, by {', '.join(keys)}"
    if options.sort is not None and options.descending is not None:
        grouped = rank_groups(grouped, options.sort, options.descending)
        title += f", sorted by the mean {options.sort} ({'largest' if options.descending else 'smallest'} first)"
    say(console, title)
    if grouped:
        header, rows = printed_rows(grouped, keys, columns)
        print_table(console, header, rows, {*COUNTS, *(column.name for column in columns)})
        say(console, "mean ± std (sample) over each group's done runs; excluded: failed, pruned, interrupted or running runs")
    over = varying_within(grouped, listed, typed, keys)
    if over:
        say(console, f"each group's runs differ in: {', '.join(over)}")
    if csv is not None:
        header, rows = csv_rows(grouped, keys, columns)
        csv.write_text(csv_text(header, rows), encoding="utf-8", newline="")
        say(console, f"saved {len(grouped)} rows in {csv}")
