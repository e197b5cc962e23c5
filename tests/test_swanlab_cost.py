"""What makes SwanLab cheap, checked against what SwanLab records: points handed over off the
training thread (in order, nothing lost at finish), the environment snapshot read in-process,
and the local dashboard writer asking its database once per batch."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Literal

import pytest
from swanlab.deprecated.local import LocalCallbacker
from swanlab.proto.swanlab.metric.data.v1.data_pb2 import ScalarRecord, ScalarValue

from typedexp import ConfigError, launch
from typedexp.tracking import RunOutcome, SwanLabTracking
from typedexp.tracking.guarded import GuardedTracker
from typedexp.tracking.swanlab_patches import installed_requirements, write_scalars_once_per_file
from typedexp.tracking.swanlab_tracker import LogValue, SwanLabTracker

from tests.test_tracking import SHORT, only_run


@dataclass
class FakeRun:
    """Stands in for ``swanlab.Run``: records each call and the thread it came from."""

    fail_with: Exception | None = None
    logged: list[tuple[int, dict[str, float], str]] = field(default_factory=list)  # (step, metrics, thread)
    finished: list[tuple[str, int]] = field(default_factory=list)  # (state, points logged by then)
    attempts: int = 0

    @property
    def id(self) -> str:
        return "fake-run"

    def log(self, data: Mapping[str, LogValue], step: int | None = None) -> None:
        self.attempts += 1
        if self.fail_with is not None:
            raise self.fail_with
        assert step is not None
        scalars = {key: value for key, value in data.items() if isinstance(value, float)}
        self.logged.append((step, scalars, threading.current_thread().name))

    def finish(self, state: Literal["success", "crashed", "aborted"] = "success", error: str | None = None) -> None:
        self.finished.append((state, len(self.logged)))


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


POINTS = [({"train/loss": 1.0 / step, "train/acc": step / 100}, step) for step in range(1, 41)]


def test_points_reach_swanlab_in_order_from_another_thread() -> None:
    run = FakeRun()
    tracker = SwanLabTracker(run, flush_every_s=0.01)
    for metrics, step in POINTS:
        tracker.log(metrics, step=step, epoch=1)
    wait_until(lambda: len(run.logged) == len(POINTS))
    assert [(step, metrics) for step, metrics, _ in run.logged] == [(step, metrics) for metrics, step in POINTS]
    assert {thread for _, _, thread in run.logged} == {"typedexp-swanlab"}
    tracker.finish(RunOutcome.success)
    assert run.finished == [("success", len(POINTS))]


def test_finish_hands_over_every_pending_point_before_closing_the_run() -> None:
    run = FakeRun()
    tracker = SwanLabTracker(run, flush_every_s=3600)  # the thread never wakes on its own
    for metrics, step in POINTS[:5]:
        tracker.log(metrics, step=step, epoch=1)
    assert run.logged == []  # nothing to wait for: only finish can hand these over now
    tracker.finish(RunOutcome.aborted, "interrupted")
    assert [step for step, _, _ in run.logged] == [1, 2, 3, 4, 5]
    assert run.finished == [("aborted", 5)]


def test_zero_interval_hands_each_point_over_at_once_on_the_calling_thread() -> None:
    run = FakeRun()
    tracker = SwanLabTracker(run, flush_every_s=0)
    tracker.log({"train/loss": 0.5}, step=7, epoch=1)
    assert run.logged == [(7, {"train/loss": 0.5}, threading.current_thread().name)]
    tracker.finish(RunOutcome.success)
    assert run.finished == [("success", 1)]


def test_a_hand_off_failure_becomes_one_warning_on_the_next_log() -> None:
    run = FakeRun(fail_with=OSError("No space left on device"))
    warnings: list[str] = []
    tracker = SwanLabTracker(run, flush_every_s=0.01)
    guarded = GuardedTracker(tracker, warn=warnings.append)
    guarded.log({"train/loss": 1.0}, step=1, epoch=1)
    wait_until(lambda: tracker._failure is not None)  # recorded by the thread right after the attempt
    guarded.log({"train/loss": 0.9}, step=2, epoch=1)
    guarded.log({"train/loss": 0.8}, step=3, epoch=1)
    guarded.finish(RunOutcome.success)
    assert warnings and len(warnings) == 1 and "log: OSError: No space left on device" in warnings[0]
    assert run.finished == [("crashed", 0)]  # the broken run is closed once, as crashed
    assert run.attempts == 1  # nothing more is pushed into a broken run


def test_a_hand_off_failure_after_the_last_log_is_reported_by_finish() -> None:
    run = FakeRun(fail_with=OSError("disk full"))
    tracker = SwanLabTracker(run, flush_every_s=0.01)
    tracker.log({"train/loss": 1.0}, step=1, epoch=1)
    wait_until(lambda: run.attempts == 1)
    with pytest.raises(OSError, match="disk full"):
        tracker.finish(RunOutcome.success)
    assert run.finished == [("success", 0)]


@pytest.mark.parametrize("seconds", [-1.0, float("nan")])
def test_flush_interval_must_be_a_non_negative_number(seconds: float) -> None:
    with pytest.raises(ConfigError, match="tracker.flush_every_s"):
        SwanLabTracking(flush_every_s=seconds)


class CountingCallbacker(LocalCallbacker):
    """SwanLab's local writer, writing under ``logs``, with its dashboard status query counted."""

    def __init__(self, logs: Path, stopped_in_dashboard: bool = False) -> None:
        super().__init__()
        self._swanlog_dir = logs  # a writer without a dashboard database
        self.stopped_in_dashboard = stopped_in_dashboard
        self.status_queries = 0

    def _check_exp_status(self) -> None:
        self.status_queries += 1
        if self.stopped_in_dashboard:
            raise KeyboardInterrupt("The experiment has been stopped by the user")


def patched_writer_class() -> type[CountingCallbacker]:
    class Patched(CountingCallbacker):
        pass

    assert write_scalars_once_per_file(Patched)
    return Patched


def test_local_dashboard_writer_queries_its_database_once_per_batch(tmp_path: Path) -> None:
    records = [scalar("train/loss", step, 0.5) for step in range(1, 101)]
    writer = patched_writer_class()(tmp_path / "patched")
    writer.on_scalar_flush(records[:60])
    writer.on_scalar_flush(records[60:])
    assert writer.status_queries == 2  # one per batch

    swanlab_way = CountingCallbacker(tmp_path / "swanlab")
    for record in records:
        swanlab_way._handle_metric(record, scalar=True)
    assert swanlab_way.status_queries == 100  # one per value
    assert files_under(tmp_path / "patched") == files_under(tmp_path / "swanlab")


def test_stopping_the_run_in_the_dashboard_still_stops_the_writer(tmp_path: Path) -> None:
    writer = patched_writer_class()(tmp_path, stopped_in_dashboard=True)
    with pytest.raises(KeyboardInterrupt):
        writer.on_scalar_flush([scalar("train/loss", step, 0.5) for step in (1, 2, 3)])
    assert files_under(tmp_path) == {}


def test_the_environment_snapshot_in_a_run_is_what_pip_lists(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    setuptools = importlib.util.find_spec("setuptools")
    if setuptools is not None and setuptools.origin is not None:  # what `import setuptools` does
        monkeypatch.syspath_prepend(str(Path(setuptools.origin).parent / "_vendor"))
    launch(["tracker=offline", "tracker.log_dir=sl", *SHORT])
    recorded = (only_run(workdir / "sl") / "files" / "requirements.txt").read_text(encoding="utf-8")
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "list", "--format=freeze", "--disable-pip-version-check"],
        capture_output=True, text=True, check=True,
    ).stdout
    assert recorded == pip == installed_requirements()
    assert "torch==" in recorded and "swanlab==" in recorded


def test_the_snapshot_is_read_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[object] = []
    real = metadata.distributions

    def counted(*, path: list[str]) -> Iterable[metadata.Distribution]:
        reads.append(path)
        return real(path=path)

    installed_requirements()  # whatever an earlier test left, the snapshot is now current
    monkeypatch.setattr(metadata, "distributions", counted)
    first, second = installed_requirements(), installed_requirements()
    assert reads == [] and first == second and "torch==" in first


def test_installing_a_package_refreshes_the_snapshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    before = installed_requirements()
    assert "typedexp-probe-package" not in before
    # What pip leaves behind: a *.dist-info directory with the package's METADATA.
    info = tmp_path / "typedexp_probe_package-1.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: typedexp-probe-package\nVersion: 1.2\n")
    assert "typedexp-probe-package==1.2\n" in installed_requirements()
    (info / "METADATA").unlink()
    info.rmdir()  # and uninstalling removes it again
    assert installed_requirements() == before


def scalar(key: str, step: int, number: float) -> ScalarRecord:
    return ScalarRecord(key=key, step=step, type=1, value=ScalarValue(number=number))


def files_under(root: Path) -> dict[str, str]:
    return {str(path.relative_to(root)): path.read_text() for path in sorted(root.rglob("*")) if path.is_file()}


def test_local_writer_batches_write_the_same_files_as_swanlab(tmp_path: Path) -> None:
    first = [scalar(key, step, step / 7) for step in range(1, 31) for key in ("train/loss", "train/acc")]
    # The second batch repeats step 5 (SwanLab rewrites that line) and brings a new metric.
    second = [scalar("train/loss", 5, 9.5), scalar("val/acc", 30, 0.5), scalar("train/loss", 31, 0.1)]
    swanlab_way, batched = CountingCallbacker(tmp_path / "swanlab"), patched_writer_class()(tmp_path / "batched")
    for batch in (first, second):
        for record in batch:  # SwanLab's own per-value path
            swanlab_way._handle_metric(record, scalar=True)
        batched.on_scalar_flush(batch)
    written = {name: files_under(tmp_path / name) for name in ("swanlab", "batched")}
    assert len(written["swanlab"]) == 6  # three metrics: a log and a _summary.json each
    assert written["batched"] == written["swanlab"]
    logs = [text for path, text in written["swanlab"].items() if path.endswith(".log")]
    assert any('"index": 5, "data": 9.5' in text for text in logs)  # the repeated step was rewritten
