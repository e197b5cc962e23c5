"""Faults that must not lose a run: a failing tracker, and the `_target_` allow-list's edges."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.helpers import QUICK, RecordingTracker
from typedexp import ConfigError, launch
from typedexp.core.errors import TrackerError
from typedexp.tracking import RunOutcome
from typedexp.tracking.guarded import GuardedTracker
from typedexp.tracking.jsonl import read_metrics
from typedexp.tracking.swanlab_tracker import SwanLabTracker


class BrokenLog(RecordingTracker):
    def log(self, metrics: Mapping[str, float], *, step: int, epoch: int) -> None:
        raise OSError("No space left on device")


def test_a_tracker_that_fails_to_log_is_dropped_after_one_warning() -> None:
    warnings: list[str] = []
    broken = BrokenLog()
    guarded = GuardedTracker(broken, warn=warnings.append)
    for step in range(3):
        guarded.log({"train/loss": 1.0}, step=step, epoch=1)
    guarded.finish(RunOutcome.success)
    assert len(warnings) == 1 and "log: OSError: No space left on device" in warnings[0]
    assert guarded.failure == "log: OSError: No space left on device"
    assert broken.outcome is RunOutcome.crashed  # the broken run is closed, not left open


def test_a_tracker_that_fails_to_start_is_a_warning_but_a_config_mistake_is_an_error() -> None:
    warnings: list[str] = []

    def cannot_start() -> RecordingTracker:
        raise PermissionError("swanlog is read-only")

    guarded = GuardedTracker.start(cannot_start, warn=warnings.append)
    guarded.log({"x": 1.0}, step=1, epoch=1)
    assert guarded.failure == "start: PermissionError: swanlog is read-only" and len(warnings) == 1

    def no_key() -> RecordingTracker:
        raise TrackerError("tracker=cloud needs SWANLAB_API_KEY")

    with pytest.raises(TrackerError):
        GuardedTracker.start(no_key, warn=warnings.append)


def test_swanlab_log_failure_mid_run_keeps_training_and_metrics_jsonl(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fails(self: SwanLabTracker, metrics: Mapping[str, float], *, step: int, epoch: int) -> None:
        raise OSError("No space left on device")

    monkeypatch.setattr(SwanLabTracker, "log", fails)
    result = launch(["tracker=offline", "tracker.log_dir=sl", "epochs=2", *QUICK[2:]])
    assert result.tracking_error == "log: OSError: No space left on device"
    assert len(read_metrics(result.metrics_file)) == 4  # per epoch: one train point, one val point
    captured = capsys.readouterr()
    assert captured.err.count("typedexp: warning: tracking failed") == 1
    assert "tracking failed (log: OSError: No space left on device)" in captured.out  # the summary
