"""SwanLab tracking, read back from SwanLab's own files and its own local dashboard."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from swanlab.proto.swanlab.record.v1.record_pb2 import Record
from swanlab.proto.swanlab.run.v1.run_pb2 import RUN_STATE_CRASHED, RUN_STATE_FINISHED
from swanlab.sdk.internal.core_python.store import DataStoreReader

import typedexp.app.pipeline
from typedexp import launch
from typedexp.tracking import FanOut, RunOutcome
from typedexp.tracking.jsonl import read_metrics

from tests.helpers import RecordingTracker

SHORT = ["epochs=2", "trainer.max_batches=3", "trainer.log_every=2", "trainer.progress=off"]


@dataclass
class RecordedRun:
    project: str = ""
    name: str = ""
    color: str = ""
    scalars: dict[str, dict[int, float]] = field(default_factory=dict)
    final_state: int | None = None


def read_offline_run(run_dir: Path) -> RecordedRun:
    """Parse SwanLab's record file the way `swanlab sync` does."""
    reader = DataStoreReader()
    reader.open(next(run_dir.glob("run-*.swanlab")))
    recorded = RecordedRun()
    for raw in reader:
        record = Record()
        record.ParseFromString(raw)
        kind = record.WhichOneof("record_type")
        if kind == "start":
            recorded.project, recorded.name = record.start.project, record.start.name
            recorded.color = record.start.color
        elif kind == "scalar":
            recorded.scalars.setdefault(record.scalar.key, {})[record.scalar.step] = record.scalar.value.number
        elif kind == "finish":
            recorded.final_state = record.finish.state
    reader.close()
    return recorded


def only_run(log_dir: Path) -> Path:
    runs = list(log_dir.glob("run-*"))
    assert len(runs) == 1, runs
    return runs[0]


def test_offline_run_records_config_and_every_metric(workdir: Path) -> None:
    result = launch(["tracker=offline", "tracker.log_dir=sl", "model=large", "optim.lr=0.05", *SHORT])
    swan_dir = only_run(workdir / "sl")
    config = OmegaConf.load(swan_dir / "files" / "config.yaml")
    assert set(config) == {"dataset", "model", "optim", "schedule", "task", "trainer", "epochs", "batch_size", "seed"}
    assert "_target_" not in OmegaConf.to_yaml(config)
    assert config.model.value.hidden == [256, 128]
    assert config.optim.value.lr == 0.05
    assert config.epochs.value == 2
    recorded = read_offline_run(swan_dir)
    assert recorded.project == "typedexp"
    assert recorded.name == "optim.lr=0.05,epochs=2,model=large,trainer.log_every=2,trainer.max_batches=3"
    assert recorded.final_state == RUN_STATE_FINISHED
    # Every metrics.jsonl point is in SwanLab at the same step with the same value.
    points = read_metrics(result.metrics_file)
    assert points
    for point in points:
        step = int(point["step"])
        for key, value in point.items():
            if key not in ("step", "epoch"):
                assert recorded.scalars[key][step] == pytest.approx(value)
    assert set(recorded.scalars) == {"train/loss", "train/acc", "val/loss", "val/acc"}


def test_a_crash_finishes_the_swanlab_run_as_crashed(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_fit(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom in training")

    monkeypatch.setattr(typedexp.app.pipeline, "fit", broken_fit)
    with pytest.raises(RuntimeError, match="boom in training"):
        launch(["tracker=offline", "tracker.log_dir=sl", *SHORT])
    assert read_offline_run(only_run(workdir / "sl")).final_state == RUN_STATE_CRASHED


def test_fan_out_finishes_every_tracker_even_if_one_fails() -> None:
    class Failing(RecordingTracker):
        def finish(self, outcome: RunOutcome, error: str | None = None) -> None:
            raise OSError("disk full")

    second = RecordingTracker()
    with pytest.raises(OSError, match="disk full"):
        FanOut([Failing(), second]).finish(RunOutcome.success)
    assert second.outcome is RunOutcome.success


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.load(response)
    assert isinstance(body, dict) and body.get("code") == 0, body
    data = body["data"]
    assert isinstance(data, dict)
    return data


@pytest.fixture
def dashboard(workdir: Path) -> Iterator[str]:
    """`swanlab watch sl` on a free port, as the README tells users to open it."""
    port = free_port()
    launch(["tracker=local", "tracker.log_dir=sl", *SHORT])
    server = subprocess.Popen(
        [Path(sys.executable).parent / "swanlab", "watch", "sl", "--host", "127.0.0.1", "--port", str(port)],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                get_json(f"{url}/api/v1/project")
                break
            except OSError:
                time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_local_run_shows_in_swanlab_dashboard(workdir: Path, dashboard: str) -> None:
    project = get_json(f"{dashboard}/api/v1/project")
    assert project["name"] == "typedexp"
    experiments = project["experiments"]
    assert isinstance(experiments, list) and len(experiments) == 1
    experiment = get_json(f"{dashboard}/api/v1/experiment/{experiments[0]['id']}")
    config = experiment["config"]
    assert isinstance(config, dict) and config["epochs"]["value"] == 2
    chart = get_json(f"{dashboard}/api/v1/experiment/{experiments[0]['id']}/tag/val/acc")
    values = chart["list"]
    assert isinstance(values, list)
    jsonl = read_metrics(next((workdir / "outputs").rglob("metrics.jsonl")))
    expected = [point["val/acc"] for point in jsonl if "val/acc" in point]
    assert [item["data"] for item in values] == pytest.approx(expected)
