"""The tracker interface the engine talks to, plus the two trivial implementations."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol


class RunOutcome(enum.Enum):
    """How a run ended; the values are SwanLab's ``finish(state=...)`` names."""

    success = "success"
    crashed = "crashed"
    aborted = "aborted"  # interrupted by the user (Ctrl-C)


class Tracker(Protocol):
    def log(self, metrics: Mapping[str, float], *, step: int, epoch: int) -> None:
        """Record Python floats (never tensors: that would sync or be read later) at ``step``."""

    def finish(self, outcome: RunOutcome, error: str | None = None) -> None:
        """Close the run; called exactly once, from a ``finally`` block."""


class NullTracker:
    """Records nothing: ``tracker=disabled``."""

    def log(self, metrics: Mapping[str, float], *, step: int, epoch: int) -> None:
        pass

    def finish(self, outcome: RunOutcome, error: str | None = None) -> None:
        pass


class FanOut:
    """Sends every call to several trackers, e.g. metrics.jsonl and SwanLab together."""

    def __init__(self, trackers: Sequence[Tracker]) -> None:
        self.trackers = tuple(trackers)

    def log(self, metrics: Mapping[str, float], *, step: int, epoch: int) -> None:
        for tracker in self.trackers:
            tracker.log(metrics, step=step, epoch=epoch)

    def finish(self, outcome: RunOutcome, error: str | None = None) -> None:
        # Finish every tracker even if one raises, then re-raise the first failure.
        first_error: Exception | None = None
        for tracker in self.trackers:
            try:
                tracker.finish(outcome, error)
            except Exception as exc:
                first_error = first_error or exc
        if first_error is not None:
            raise first_error


class TrackerSpec(Protocol):
    def check_available(self) -> None: ...

    def pick_color(self, sweep_job: int | None) -> str: ...

    def start(
        self,
        *,
        config: Mapping[str, object],
        run_name: str,
        run_dir: str,
        resume_id: str | None = None,
        color: str | None = None,
        chatter: Path | None = None,
        group: str | None = None,
    ) -> Tracker: ...
