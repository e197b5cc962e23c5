"""Faults that must not lose a run: a failing tracker, the `_target_` allow-list's edges, and a
signal at every stage of a run."""

from __future__ import annotations

import signal
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.helpers import QUICK, RecordingTracker, SignalServer, wait_for
from typedexp import ConfigError, launch
from typedexp.engine.checkpoint import read_checkpoint
from typedexp.core.errors import TrackerError
from typedexp.runs.record import JobState, read_result
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


# --- a signal at every stage of a run ----------------------------------------------------------
# fake data: 160 training examples, batch 64 -> 3 batches; one epoch; a checkpoint after each step.
STAGE_ARGS = ["tracker=disabled", "trainer.progress=off", "dataset=fake", "dataset.num_samples=200", "epochs=1",
              "trainer.media_every=0", "trainer.log_every=1", "trainer.checkpoint_every=1", "hydra.run.dir=run"]


def pid_gone(pid: int) -> bool:
    """No such process, or a zombie (ended, not yet reaped by whoever inherited it)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "zombie" in status


def check_stage(stage: str, name: str, run: Path, line: str) -> None:
    """What the stage must leave behind when a signal stopped it there, and nothing after it."""
    metrics = (run / "metrics.jsonl").read_text() if (run / "metrics.jsonl").exists() else ""
    last = run / "checkpoints" / "last.pt"
    saved = f"; saved {last}; continue with: typedexp resume={run}"
    if stage == "compose":  # before Hydra made anything
        assert not run.exists() and line == f"typedexp: interrupted by {name}"
        return
    state = read_result(run / "result.json")
    assert state is not None and state[0] is JobState.interrupted, state
    if stage == "load":
        assert line == f"typedexp: interrupted by {name}" and not metrics and not last.exists()
    elif stage == "spawn":  # the second rank never started; the first was stopped, as was every child
        assert line == f"typedexp: interrupted by {name} while the ranks were starting (nothing trained in this attempt)"
        children = [int(pid) for pid in (run.parent / "children.txt").read_text().split()]
        assert children  # multiprocessing's resource tracker ends once it reads the parent's exit
        wait_for(lambda: all(pid_gone(pid) for pid in children), timeout_s=10)
        assert not metrics
    elif stage == "train":
        assert line == f"typedexp: interrupted by {name} at epoch 1, step 1{saved}"
    elif stage == "validate":  # stopped before its first batch: no val point; saved after the last step
        assert line == f"typedexp: interrupted by {name} at epoch 1, step 3{saved}"
        assert '"val/' not in metrics and read_checkpoint(last).position.batch == 3
    elif stage == "checkpoint":  # the save under way completes, and the run stops there
        assert line == f"typedexp: interrupted by {name} at epoch 1, step 1{saved}"
        assert read_checkpoint(last).position.step == 1
    elif stage == "finish":  # the trackers close first; model.pt (what marks a finished run) is not written
        assert line == f"typedexp: interrupted by {name} while closing the tracker; kept {last}; continue with: typedexp resume={run}"
        assert read_checkpoint(last).position.epoch == 2 and not (run / "model.pt").exists()


@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("stage", ["compose", "load", "spawn", "train", "validate", "checkpoint", "finish"])
def test_a_signal_at_any_stage_stops_there_with_one_line_and_128_plus_n(
    workdir: Path, signalled: SignalServer, stage: str, name: str
) -> None:
    """SIGINT (Ctrl-C) and SIGTERM (timeout, Slurm, docker stop) at each stage: exit 130/143, one
    line, a resumable state where training began, no child left (tests/signal_run.py sends them;
    each case is a process forked from one that has imported torch: ``signalled``)."""
    step = {"train": "1", "validate": "val@1"}.get(stage, f"stage:{stage}")
    args = [*STAGE_ARGS, "trainer.devices=2", "trainer.device=cpu"] if stage == "spawn" else STAGE_ARGS
    stopped = signalled(step, name, args, workdir)
    assert stopped.returncode == 128 + signal.Signals[name], stopped.stderr
    assert len(stopped.stderr_lines) == 1, stopped.stderr
    check_stage(stage, name, workdir / "run", stopped.stderr_lines[0])
