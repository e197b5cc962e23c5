"""``typedexp runs --diff RUN_A RUN_B``: only what differs between two runs, their config fields
(every field of the saved config, not only the overrides), their final metrics and their state.

Settings compare as the runs table compares them (``settings.canonical``: ``0.10`` == ``1e-1``);
a metric differs when its final value does or one run lacks it, and its row says by how much.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from typedexp.core.errors import TypedexpError
from typedexp.runs import layout as rundir
from typedexp.runs.columns import MISSING, csv_text, override_values, print_table, say, shown, warn_unread
from typedexp.runs.record import RunRecord, read_run
from typedexp.runs.selection import Kind, metric_names
from typedexp.runs.settings import canonical, config_keys, setting

if TYPE_CHECKING:
    from rich.console import Console

HEADER = ("field", "change")  # the first and last column; the middle two are the runs' paths


@dataclass(frozen=True)
class Difference:
    kind: Kind  # setting, metric or state
    field: str  # optim.lr, val/acc, state
    a: str | None
    b: str | None
    change: str  # B - A for a metric both runs have; "" otherwise


def read_pair(texts: tuple[str, str]) -> tuple[RunRecord, RunRecord]:
    """The two run dirs as given; a path that is no run dir is one line saying so."""
    first, second = (read_one(text) for text in texts)
    return first, second


def read_one(text: str) -> RunRecord:
    path = Path(text)
    if not path.exists():
        raise TypedexpError(f"runs: --diff {text}: no such run directory")
    if not path.is_dir() or not (path / rundir.HYDRA_DIR).is_dir() or (path / rundir.HYDRA_DIR).is_symlink():
        raise TypedexpError(f"runs: --diff {text}: not a run directory (a run directory holds .hydra/)")
    return read_run(path)


def differences(a: RunRecord, b: RunRecord) -> list[Difference]:
    """The settings, then the final metrics, then the state, each only where the runs differ."""
    typed_a, typed_b = override_values(a.overrides), override_values(b.overrides)
    keys = dict.fromkeys([*config_keys(a), *config_keys(b), *typed_a, *typed_b])
    found = []
    for key in keys:
        value_a, value_b = setting(a, key, typed_a), setting(b, key, typed_b)
        if canonical(value_a) != canonical(value_b):
            found.append(Difference(Kind.setting, key, value_a, value_b, ""))
    for name in metric_names([a, b]):
        metric_a, metric_b = a.metrics.get(name), b.metrics.get(name)
        if metric_a != metric_b:
            change = f"{metric_b - metric_a:+.4f}" if metric_a is not None and metric_b is not None else ""
            found.append(Difference(Kind.metric, name, number(metric_a), number(metric_b), change))
    if a.state is not b.state:
        found.append(Difference(Kind.state, "state", a.state.value, b.state.value, ""))
    return found


def number(value: float | None) -> str | None:
    return None if value is None else f"{value:.4f}"


def title(texts: tuple[str, str], found: list[Difference]) -> str:
    """``outputs/a vs outputs/b: 2 settings and 1 metric differ``."""
    if not found:
        return shown(f"{texts[0]} vs {texts[1]}: the same settings, final metrics and state")
    counts = {kind: sum(difference.kind is kind for difference in found) for kind in (Kind.setting, Kind.metric)}
    parts = [plural(count, kind.value) for kind, count in counts.items() if count]
    if any(difference.kind is Kind.state for difference in found):
        parts.append("the state")
    return shown(f"{texts[0]} vs {texts[1]}: {' and '.join(parts)} differ")


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def rows(found: list[Difference], missing: str = MISSING) -> list[list[str]]:
    return [
        [shown(difference.field), *(missing if value is None else shown(value) for value in (difference.a, difference.b)), difference.change]
        for difference in found
    ]


def show_diff(console: Console, texts: tuple[str, str], csv: Path | None) -> tuple[RunRecord, RunRecord]:
    """Print the settings, final metrics and state that differ between the two runs, one row each."""
    pair = read_pair(texts)
    warn_unread(pair)
    found = differences(*pair)
    say(console, title(texts, found))
    header = [HEADER[0], *map(shown, texts), HEADER[1]]
    if found:
        print_table(console, header, rows(found), {HEADER[1]})
    if csv is not None:
        csv.write_text(csv_text(header, rows(found, "")), encoding="utf-8", newline="")
        say(console, f"saved {len(found)} rows in {csv}")
    return pair
