"""A set of runs as a table: ranking, the override columns that differ, safe cells, CSV and the
rich table. Shared by ``typedexp runs`` (runs/table.py) and the sweep summary (sweeps/summary.py).

Cells come from run dirs that may have been made elsewhere: control characters are shown as
``?`` and CSV cells that a spreadsheet would run as formulas are quoted.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from typedexp.core.report import warn
from typedexp.engine.settings import BestMode
from typedexp.runs.record import JobState, RunRecord
from typedexp.specs.tasks import known_tasks, logged_metrics

# Every metric the engine logs for the built-in tasks (engine/tasks.py): classification's, then
# regression's; a table can rank by any of them, and by those of a task registered from Python.
METRICS = (
    "val/acc", "val/loss", "train/acc", "train/loss", "train/lr", "test/acc", "test/loss",
    "val/rmse", "val/mae", "val/r2", "train/rmse", "train/mae", "train/r2", "test/rmse", "test/mae", "test/r2",
)


def known_metrics() -> tuple[str, ...]:
    """``METRICS`` and the metrics of every task registered with ``typedexp.register("task", ...)``."""
    return tuple(dict.fromkeys([*METRICS, *(name for task in known_tasks() for name in logged_metrics(task))]))
MISSING = "-"  # a value a run does not have, in the printed and Markdown tables
# Control characters (ESC starts a terminal escape sequence): a run dir from elsewhere could hold
# them in its error line or overrides, so they are shown as "?" in the table and the files. So are
# lone surrogates (a directory name that is not UTF-8, a "\udcff" escape in a JSON string), which
# no UTF-8 file or terminal can take.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def shown(text: str) -> str:
    return CONTROL.sub("?", text)


def say(console: Console, line: str) -> None:
    """One line of text from run dirs: control characters shown as '?', never read as markup."""
    console.print(shown(line), markup=False, highlight=False, soft_wrap=True)


def warn_unread(records: Sequence[RunRecord]) -> None:
    """One warning per file of a run dir that was not read (a FIFO, too large, not JSON...), naming it."""
    for record in records:
        for line in record.unread:
            warn(shown(line))


def count_states(records: Sequence[RunRecord], noun: str) -> str:
    """``"3 jobs (2 done, 1 failed)"``: how many records, and how many in each state."""
    by_state = {state: sum(r.state is state for r in records) for state in JobState}
    parts = [f"{count} {state.value}" for state, count in by_state.items() if count]
    counted = f"1 {noun}" if len(records) == 1 else f"{len(records)} {noun}s"
    return f"{counted} ({', '.join(parts) or 'none found'})"


def rank(records: Sequence[RunRecord], metric: str, mode: BestMode) -> list[RunRecord]:
    """Best first; jobs without ``metric`` (failed, killed) last, each group in job order (stable sort)."""
    sign = -1.0 if mode is BestMode.max else 1.0
    with_metric = sorted((r for r in records if metric in r.metrics), key=lambda r: sign * r.metrics[metric])
    return [*with_metric, *(r for r in records if metric not in r.metrics)]


def override_values(overrides: Sequence[str]) -> dict[str, str]:
    """``{"optim.lr": "0.1", ...}``: each override's key (without ``+``/``~``/``++``) and value."""
    values: dict[str, str] = {}
    for override in overrides:
        key, _, value = override.partition("=")
        values[key.lstrip("+~")] = value
    return values


def varying_keys(records: Sequence[RunRecord]) -> tuple[str, ...]:
    """The override keys whose values differ between the jobs (or that some jobs lack), in order."""
    per_job = [override_values(record.overrides) for record in records]
    keys = dict.fromkeys(key for values in per_job for key in values)
    return tuple(key for key in keys if len({values.get(key) for values in per_job}) > 1)


def csv_text(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """The header and rows as CSV, every cell through ``csv_cell``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for row in (header, *rows):
        writer.writerow(map(csv_cell, row))
    return buffer.getvalue()


def csv_cell(text: str) -> str:
    """``text``, with a leading quote where a spreadsheet would read it as a formula.

    Override values and error lines can come from a run dir made elsewhere: ``=HYPERLINK(...)``
    or ``@SUM(...)`` in a cell runs when the CSV is opened in a spreadsheet. A number (``-1``,
    ``-0.5``) is left as it is.
    """
    if text[:1] not in ("=", "+", "-", "@", "\t", "\r"):
        return text
    try:
        float(text)
    except ValueError:
        return "'" + text
    return text


def print_table(console: Console, header: Sequence[str], rows: Sequence[Sequence[str]], numeric: set[str]) -> int:
    """A plain rich table (numbers right-aligned), each cell printed as text, never as markup; its width.

    No cell is ever cut: rich shrinks a table wider than the console by cutting cells ("0.0…" for
    0.001), so a table that does not fit first folds its column names after a "." "/" or "_"
    (``optim.`` over ``lr``), and one that still does not fit is printed whole, each row one line
    that the terminal wraps; the caller can say so.
    """
    cells = [max((cell_len(row[index]) for row in rows), default=0) for index in range(len(header))]
    names = list(header)
    if table_width(names, cells) > console.width:
        names = [folded(name, width) for name, width in zip(header, cells, strict=True)]
    width = table_width(names, cells)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for name, plain_name in zip(names, header, strict=True):
        table.add_column(Text(name), justify="right" if plain_name in numeric else "left", no_wrap=True)
    for values in rows:
        table.add_row(*(Text(value) for value in values))  # Text: an override's "[red]" is not markup
    # Laid out at its own width, on a console of that width: rich would cut cells to fit a narrower one.
    layout = Console(width=max(width, 1), file=io.StringIO(), color_system=None, force_terminal=False, legacy_windows=False)
    with layout.capture() as captured:  # rich pads the last column: trim each line's right end
        layout.print(table, markup=False, highlight=False)
    for line in captured.get().splitlines():
        console.out(line.rstrip(), highlight=False)
    return width


COLUMN_GAP = 3  # between two columns of SIMPLE_HEAD without edges: padding, divider, padding
FOLD_AFTER = re.compile(r"(?<=[./_])")  # where a column name may go on to its next line


def table_width(names: Sequence[str], cells: Sequence[int]) -> int:
    widths = [max(max(map(cell_len, name.split("\n"))), cell) for name, cell in zip(names, cells, strict=True)]
    return sum(widths) + COLUMN_GAP * max(len(widths) - 1, 0)


def folded(name: str, width: int) -> str:
    """``name`` on as many lines as keep it within ``width`` (or its longest part), broken after . / _"""
    lines: list[str] = []
    for part in FOLD_AFTER.split(name):
        if lines and cell_len(lines[-1] + part) <= width:
            lines[-1] += part
        else:
            lines.append(part)
    return "\n".join(line for line in lines if line)


def wide_console() -> Console:
    console = Console()
    if not console.is_terminal:
        console.width = 10_000  # a log or a pipe: one table row per line, never folded at 80 columns
    return console
