"""The tracker interface the engine talks to, plus the two trivial implementations."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, Union, runtime_checkable

if TYPE_CHECKING:
    import torch


class RunOutcome(enum.Enum):
    """How a run ended; ``swanlab_state`` is SwanLab's ``finish(state=...)`` name for it."""

    success = "success"
    crashed = "crashed"
    aborted = "aborted"  # interrupted by the user (Ctrl-C)
    pruned = "pruned"  # stopped early by a hyper-parameter search's pruner

    @property
    def swanlab_state(self) -> Literal["success", "crashed", "aborted"]:
        """SwanLab's name for it: SwanLab has no "pruned"; "aborted" is its stopped-before-the-end."""
        if self is RunOutcome.success:
            return "success"
        return "crashed" if self is RunOutcome.crashed else "aborted"


class Tracker(Protocol):
    def log(self, metrics: Mapping[str, float], *, step: int, epoch: int) -> None:
        """Record Python floats (never tensors: that would sync or be read later) at ``step``."""

    def finish(self, outcome: RunOutcome, error: str | None = None) -> None:
        """Close the run; called exactly once, from a ``finally`` block."""


@dataclass(frozen=True)
class PredictionSamples:
    """A fixed sample of validation images with what the model predicted for each."""

    name: str  # the key trackers file it under, e.g. "val/samples"
    images: torch.Tensor  # (K, C, H, W) float32 in [0, 1] on the CPU: un-normalized for display
    labels: tuple[int, ...]  # (K,) true classes
    predicted: tuple[int, ...]  # (K,) the model's argmax


@dataclass(frozen=True)
class ConfusionMatrix:
    """Counts of (true class, predicted class) over a split, as plain ints."""

    name: str  # e.g. "val/confusion_matrix"
    counts: tuple[tuple[int, ...], ...]  # (num_classes, num_classes): counts[true][predicted]


Media = Union[PredictionSamples, ConfusionMatrix]


@runtime_checkable
class MediaTracker(Tracker, Protocol):
    """A tracker that also records images; the engine sends media only to those that are."""

    def log_media(self, media: Media, *, step: int, epoch: int) -> None:
        """Record ``media`` at ``step``; its tensors are already on the CPU and are not changed later."""


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

    def log_media(self, media: Media, *, step: int, epoch: int) -> None:
        for tracker in self.trackers:
            if isinstance(tracker, MediaTracker):
                tracker.log_media(media, step=step, epoch=epoch)

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
        tags: Sequence[str] = (),
        note: str = "",
    ) -> Tracker: ...
