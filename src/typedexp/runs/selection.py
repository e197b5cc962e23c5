"""Which columns ``typedexp runs`` shows, and how the plot names its curves.

A column is named as the user types it: ``run``, a setting (``model``, ``optim.lr``, any field of
the runs' configs), a metric (``val/acc``) or ``steps``, ``seconds``, ``state``, ``error``. Without
``--columns`` the table shows the settings that differ between the listed runs; ``--columns`` picks
any of them by name or by a shell-style pattern (``val/*``, ``model.*``), in the order given.
``--group-by`` (groups.py) picks its keys among the settings and its averaged numbers among the
metrics, steps and seconds the same way.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from typedexp.core.errors import TypedexpError
from typedexp.runs.columns import METRICS, shown
from typedexp.runs.record import RunRecord
from typedexp.runs.settings import config_keys, differing, setting


class Kind(enum.Enum):
    """Where a column's cells come from."""

    run = "run"  # the run dir
    setting = "setting"  # settings.setting: the override as typed, else the saved config
    metric = "metric"  # the final value
    steps = "steps"
    seconds = "seconds"
    state = "state"
    error = "error"  # the one line of a failed or interrupted run


INFO = (Kind.steps, Kind.seconds, Kind.state)  # after the metrics in the default table
FIXED = {kind.value: kind for kind in Kind if kind not in (Kind.setting, Kind.metric)}


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind


def metric_names(records: Sequence[RunRecord]) -> list[str]:
    """The metrics a column or ``--sort`` may name: the engine's (METRICS) and any a listed run logged."""
    logged = sorted({name for record in records for name in record.metrics} - set(METRICS))
    return [*METRICS, *logged]


def catalog(records: Sequence[RunRecord], typed: Sequence[Mapping[str, str]]) -> list[Column]:
    """Every column the runs can show, in the order ``--columns *`` would print them."""
    keys = dict.fromkeys(key for record in records for key in config_keys(record))
    keys.update(dict.fromkeys(key for values in typed for key in values))  # +ticket=...: no config field
    # The metrics the runs logged (a pattern such as val/* should not offer a regression's val/rmse
    # for classification runs); every known name only where no run logged any yet.
    logged = {name for record in records for name in record.metrics}
    metrics = [name for name in metric_names(records) if name in logged] or metric_names(records)
    tops = {top: order for order, top in enumerate(dict.fromkeys(key.partition(".")[0] for key in keys))}
    # A group's fields together, whichever run named them first (adam's betas beside sgd's momentum).
    settings = sorted((key for key in keys if key not in FIXED and key not in metrics), key=lambda key: tops[key.partition(".")[0]])
    return [
        Column("run", Kind.run),
        *(Column(key, Kind.setting) for key in settings),
        *(Column(name, Kind.metric) for name in metrics),
        *(Column(kind.value, kind) for kind in (*INFO, Kind.error)),
    ]


def choose(
    patterns: Sequence[str], available: Sequence[Column], option: str = "--columns", noun: str = "column"
) -> tuple[Column, ...]:
    """The columns ``patterns`` name, in their order (a pattern's matches in catalog order), each once.

    A name or pattern that matches no column is a mistake: one line listing those there are.
    """
    chosen: dict[str, Column] = {}
    for pattern in patterns:
        matched = [column for column in available if fnmatchcase(column.name, pattern)]
        if not matched:
            raise TypedexpError(f"runs: {option} {shown(pattern)}: no such {noun}; available: {listing(available)}")
        chosen.update((column.name, column) for column in matched if column.name not in chosen)
    return tuple(chosen.values())


def listing(available: Sequence[Column]) -> str:
    """The column names, short enough for one line: a config group's fields after its first as
    ``.field`` (``model, model.hidden, .dropout``), each group a ``; ``-separated part."""
    parts: list[tuple[str, list[str]]] = []  # (what the names share, the names)
    groups = {column.name.partition(".")[0] for column in available if "." in column.name}
    for column in available:
        name = shown(column.name)
        top = name.partition(".")[0] if column.kind is Kind.setting else column.kind.value
        shared = "info" if column.kind in (*INFO, Kind.error) else top
        if parts and parts[-1][0] == shared:
            names = parts[-1][1]
            dotted = column.kind is Kind.setting and any("." in earlier for earlier in names)
            names.append("." + name.partition(".")[2] if dotted else name)
        # A top-level field with no fields under it (epochs, seed): they share one part.
        elif column.kind is Kind.setting and "." not in name and column.name not in groups:
            if parts and parts[-1][0] == "plain":
                parts[-1][1].append(name)
            else:
                parts.append(("plain", [name]))
        else:
            parts.append((shared, [name]))
    return "; ".join(", ".join(names) for _, names in parts) + "; or a pattern of them (model.*, val/*)"


def default_columns(
    records: Sequence[RunRecord],
    typed: Sequence[Mapping[str, str]],
    sort: str | None,
    shown_metrics: Sequence[str],
    headline: str = "val/acc",
) -> tuple[tuple[Column, ...], dict[str, str]]:
    """(the default table's columns, {setting: value} of the overridden settings every run shares).

    Columns: the run, each overridden setting whose value differs between the runs, the sorting
    metric, then each of ``shown_metrics`` that some run has (``headline``, the runs' task's own
    metric, always), steps, seconds, state.
    """
    overridden = list(dict.fromkeys(key for values in typed for key in values))
    varying, same = differing(records, typed, overridden)
    wanted: dict[str, None] = dict.fromkeys([*([sort] if sort else []), *shown_metrics])
    metrics = [name for name in wanted if name in (sort, headline) or any(name in r.metrics for r in records)]
    columns = (
        Column("run", Kind.run),
        *(Column(key, Kind.setting) for key in varying),
        *(Column(name, Kind.metric) for name in metrics),
        *(Column(kind.value, kind) for kind in INFO),
    )
    return columns, same


def plot_labels(records: Sequence[RunRecord], typed: Sequence[Mapping[str, str]], limit: int) -> list[str]:
    """Each run's name in a plot's legend: the settings that differ between ``records`` (at most
    ``limit``), as ``key=value``. Runs whose labels would be equal (the same settings, or no setting
    that differs) also get the shortest end of their run dir's path that tells them apart."""
    overridden = list(dict.fromkeys(key for values in typed for key in values))
    varying, _ = differing(records, typed, overridden)
    labels = []
    for record, values in zip(records, typed, strict=True):
        pairs = ((key, setting(record, key, values)) for key in varying[:limit])
        labels.append(" ".join(f"{key}={value}" for key, value in pairs if value is not None))
    groups: dict[str, list[int]] = {}
    for index, label in enumerate(labels):
        groups.setdefault(label, []).append(index)
    for label, members in groups.items():
        if len(members) > 1 or not label:
            tails = distinct_tails([records[index].run_dir for index in members])
            for index, tail in zip(members, tails, strict=True):
                labels[index] = f"{label} ({tail})" if label else tail
    return [shown(label) for label in labels]


def distinct_tails(paths: Sequence[Path]) -> list[str]:
    """The fewest last parts of each path that tell ``paths`` apart: ``0``, ``1``; ``a/0``, ``b/0``."""
    for depth in range(1, max((len(path.parts) for path in paths), default=0) + 1):
        tails = ["/".join(path.parts[-depth:]) for path in paths]
        if len(set(tails)) == len(tails):
            return tails
    return [str(path) for path in paths]  # the same path twice: nothing tells them apart
