"""A rich progress bar over all training steps, shown only where a person can see it."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from typedexp.engine.settings import Progress as ProgressMode


def wants_progress(mode: ProgressMode, console: Console) -> bool:
    return mode is ProgressMode.on or (mode is ProgressMode.auto and console.is_terminal)


class TrainingProgress:
    """Context manager; ``advance`` is cheap (a counter under a lock; rich redraws on its thread)."""

    def __init__(self, total_steps: int, *, enabled: bool, console: Console | None = None) -> None:
        self._bar: Progress | None = None
        if enabled:
            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=console,
                transient=True,  # the summary line replaces the bar when training ends
            )
            self._task = self._bar.add_task("training", total=total_steps)

    def __enter__(self) -> TrainingProgress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.stop()

    def advance(self) -> None:
        if self._bar is not None:
            self._bar.advance(self._task)

    def describe(self, text: str) -> None:
        if self._bar is not None:
            self._bar.update(self._task, description=text)
