"""``typedexp runs --plot METRIC``: one curve per listed run, step on x, written to a PNG.

matplotlib is an optional extra (``pip install 'typedexp[plot]'``): it is imported here only, and
its absence is one ``typedexp: error:`` line. The figure is drawn on matplotlib's object API
(``Figure`` with its Agg canvas), not ``pyplot``, so no GUI backend or global figure state is
touched and a test can read the drawn lines back from the returned ``Figure``.
"""

from __future__ import annotations

import importlib.util
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
# matplotlib's tick maths overflows (ValueError: arange: cannot compute length) on values near a
# float's maximum (1.7e308); points beyond this are not drawn. No real step or metric comes near it.
DRAWABLE = 1e300


def require_matplotlib() -> None:
    """Fail before any run is read when ``--plot`` cannot draw (no import: matplotlib takes ~0.3 s)."""
    if importlib.util.find_spec("matplotlib") is None:
        raise missing_matplotlib()


def missing_matplotlib() -> TypedexpError:
    return TypedexpError(f"runs: --plot needs matplotlib, an optional extra: {INSTALL_HINT}")


def figure(records: Sequence[RunRecord], metric: str, label: Callable[[RunRecord], str]) -> Figure:
    """The figure of ``metric`` against step: one line per run that logged it, in ``records`` order.

    Each line's data is exactly the run's ``metrics.jsonl`` points for ``metric`` (step, value).
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise missing_matplotlib() from None
    drawn = Figure(figsize=SIZE_INCHES, dpi=DPI)
    axes = drawn.subplots()
    for record in records:
        points = [
            (step, value)
            for step, value in curve(record.run_dir / rundir.METRICS_FILE, metric)
            if abs(step) <= DRAWABLE and abs(value) <= DRAWABLE
        ]
        if points:
            steps, values = zip(*points, strict=True)
            # marker: a run with one point (validation of a 1-epoch run) still shows
            axes.plot(steps, values, marker="o", markersize=3, label=plain(label(record)))
    axes.set_xlabel("step")
    axes.set_ylabel(plain(metric))
    axes.grid(True, alpha=0.3)
    if axes.lines:
        axes.legend(fontsize="small")
    return drawn


def plain(text: str) -> str:
    """``text`` as matplotlib shows it literally: labels come from run dirs (overrides, paths).

    A ``$`` would start mathtext (``$\\foo{$`` fails when the figure is drawn), so each is escaped;
    a label starting with ``_`` would be left out of the legend, so it gets a leading space.
    """
    escaped = text.replace("$", r"\$")
    return f" {escaped}" if escaped.startswith("_") else escaped


def plot_runs(records: Sequence[RunRecord], metric: str, out: Path, label: Callable[[RunRecord], str]) -> int:
    """Write the figure to ``out`` as a PNG; the number of runs drawn. None drawn is an error."""
    drawn = figure(records, metric, label)
    lines = len(drawn.axes[0].lines)
    if lines == 0:
        raise TypedexpError(f"runs: --plot {metric}: none of the listed runs logged it in metrics.jsonl")
    drawn.savefig(out, format="png")
    return lines
