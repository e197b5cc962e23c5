"""``typedexp runs --plot METRIC``: one curve per listed run, step on x, written to a PNG.

matplotlib is an optional extra (``pip install 'typedexp[plot]'``): it is imported here only, and
its absence is one ``typedexp: error:`` line. The figure is drawn on matplotlib's object API
(``Figure`` with its Agg canvas), not ``pyplot``, so no GUI backend or global figure state is
touched and a test can read the drawn lines back from the returned ``Figure``.
"""

from __future__ import annotations

import importlib.util
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from typedexp.runs import layout as rundir
from typedexp.core.errors import TypedexpError
from typedexp.runs.record import RunRecord, curve

if TYPE_CHECKING:
    from matplotlib.figure import Figure

INSTALL_HINT = "pip install 'typedexp[plot]'"
SIZE_INCHES = (8.0, 5.0)  # at DPI: an 800 x 500 pixel PNG
DPI = 100
# The legend below the axes: up to LEGEND_ROWS rows fit in SIZE_INCHES, each further row adds
# ROW_INCHES ("small" text is ~8 px wide a character at DPI 100; an entry's line and gaps ~45 px).
LEGEND_ROWS = 4
ROW_INCHES = 0.2
CHAR_PIXELS = 8
LABEL_CHARS = 80  # a legend label's longest line: one column of them fits in SIZE_INCHES' width
ENTRY_PIXELS = 45
MAX_LEGEND_COLUMNS = 4
# The drawn runs -> their legend names, in order (table.labels: what differs between them).
Labeller = Callable[[Sequence[RunRecord]], Sequence[str]]
# matplotlib's tick maths overflows (ValueError: arange: cannot compute length) on values near a
# float's maximum (1.7e308); points beyond this are not drawn. No real step or metric comes near it.
DRAWABLE = 1e300


def require_matplotlib() -> None:
    """Fail before any run is read when ``--plot`` cannot draw (no import: matplotlib takes ~0.3 s)."""
    if importlib.util.find_spec("matplotlib") is None:
        raise missing_matplotlib()


def missing_matplotlib() -> TypedexpError:
    return TypedexpError(f"runs: --plot needs matplotlib, an optional extra: {INSTALL_HINT}")


def figure(records: Sequence[RunRecord], metric: str, labels: Labeller) -> Figure:
    """The figure of ``metric`` against step: one line per run that logged it, in ``records`` order.

    Each line's data is exactly the run's ``metrics.jsonl`` points for ``metric`` (step, value).
    ``labels`` names the drawn runs only, so a label says what differs between the curves shown.
    The legend sits below the axes, never over a curve; the figure grows taller for a long one.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise missing_matplotlib() from None
    curves = [(record, drawable(record, metric)) for record in records]
    drawn_runs = [(record, points) for record, points in curves if points]
    names = [wrapped(plain(name)) for name in labels([record for record, _ in drawn_runs])] if drawn_runs else []
    columns = legend_columns(names)
    rows = -(-sum(name.count("\n") + 1 for name in names) // columns)  # text lines in a column, about
    width, height = SIZE_INCHES
    drawn = Figure(figsize=(width, height + max(0, rows - LEGEND_ROWS) * ROW_INCHES), dpi=DPI, layout="constrained")
    axes = drawn.subplots()
    for (_, points), name in zip(drawn_runs, names, strict=True):
        steps, values = zip(*points, strict=True)
        # marker: a run with one point (validation of a 1-epoch run) still shows
        axes.plot(steps, values, marker="o", markersize=3, label=name)
    axes.set_xlabel("step")
    axes.set_ylabel(plain(metric))
    axes.grid(True, alpha=0.3)
    if axes.lines:
        # "outside": constrained layout shrinks the axes to make room, so the legend covers no curve.
        drawn.legend(loc="outside lower center", ncols=columns, fontsize="small", frameon=False)
    return drawn


def drawable(record: RunRecord, metric: str) -> list[tuple[int, float]]:
    return [
        (step, value)
        for step, value in curve(record.run_dir / rundir.METRICS_FILE, metric)
        if abs(step) <= DRAWABLE and abs(value) <= DRAWABLE
    ]


def wrapped(name: str) -> str:
    """A long label on several lines, broken between its settings, so the legend stays within the figure."""
    return "\n".join(textwrap.wrap(name, LABEL_CHARS, break_on_hyphens=False)) or name


def legend_columns(names: Sequence[str]) -> int:
    """As many legend columns as labels of the longest one's length fit across the figure."""
    longest = max((len(line) for name in names for line in name.splitlines()), default=1)
    fits = int(SIZE_INCHES[0] * DPI) // (longest * CHAR_PIXELS + ENTRY_PIXELS)
    return max(1, min(len(names), fits, MAX_LEGEND_COLUMNS))


def plain(text: str) -> str:
    """``text`` as matplotlib shows it literally: labels come from run dirs (overrides, paths).

    A ``$`` would start mathtext (``$\\foo{$`` fails when the figure is drawn), so each is escaped;
    a label starting with ``_`` would be left out of the legend, so it gets a leading space.
    """
    escaped = text.replace("$", r"\$")
    return f" {escaped}" if escaped.startswith("_") else escaped


def plot_runs(records: Sequence[RunRecord], metric: str, out: Path, labels: Labeller) -> int:
    """Write the figure to ``out`` as a PNG; the number of runs drawn. None drawn is an error."""
    drawn = figure(records, metric, labels)
    lines = len(drawn.axes[0].lines)
    if lines == 0:
        raise TypedexpError(f"runs: --plot {metric}: none of the listed runs logged it in metrics.jsonl")
    drawn.savefig(out, format="png")
    return lines
