"""What SwanLab records of a run, read back from SwanLab's own files: each group's option beside its
fields, names that lead with what differs, duplicates numbered ` #2`, a resumed run one experiment."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf
from swanlab.proto.swanlab.record.v1.record_pb2 import Record
from swanlab.sdk.internal.core_python.store import DataStoreReader

import typedexp.app.store as store
from tests.test_tracking import only_run, read_offline_run
from typedexp import RunResult, launch, launch_sweep, register
from typedexp.app.task import run_name, swept_keys
from typedexp.runs.record import read_run
from typedexp.specs.experiment import Experiment
from typedexp.specs.models import MLP
from typedexp.tracking.jsonl import read_metrics

SMALL_DATA = ["dataset=fake", "dataset.num_samples=200", "trainer.max_batches=3", "trainer.progress=off"]
OFFLINE = ["tracker=offline", "tracker.log_dir=sl", "epochs=1", *SMALL_DATA]
LOCAL = ["tracker=local", "tracker.log_dir=sl", "trainer.log_every=1", *SMALL_DATA]


def recorded_config(run_dir: Path) -> dict[str, object]:
    """SwanLab's config.yaml of one run, each key's value (SwanLab wraps each in {value: ...})."""
    loaded = OmegaConf.to_container(OmegaConf.load(run_dir / "files" / "config.yaml"))
    assert isinstance(loaded, dict)
    return {str(key): item["value"] for key, item in loaded.items()}


def choices(node: object) -> dict[str, object]:
    """The keys typedexp adds to a group's node (in round brackets, which no field name can hold)."""
    assert isinstance(node, dict)
    return {key: value for key, value in node.items() if key.startswith("(")}


def test_each_group_records_its_option_beside_its_fields(workdir: Path) -> None:
    result = launch([*OFFLINE, "model=large", "optim=adam", "optim.lr=0.01"])
    config = recorded_config(only_run(workdir / "sl"))
    assert choices(config["dataset"]) == {"(option)": "fake", "(changed)": ["num_samples"]}
    assert choices(config["model"]) == {"(option)": "large"}
    assert choices(config["optim"]) == {"(option)": "adam", "(changed)": ["lr"]}
    assert isinstance(config["optim"], dict) and config["optim"]["lr"] == 0.01  # the fields stay as they were
    assert config["schedule"] == {"(option)": "none"}  # an option without fields still says which
    assert "(preset)" not in config and "tracker" not in config  # no preset; the tracker is no experiment
    # `typedexp runs` reads the choices from the run's overrides: the same names.
    overrides = read_run(result.run_dir).overrides
    assert {"model=large", "optim=adam", "dataset=fake"} <= set(overrides)


def test_a_python_spec_a_registered_option_and_a_preset_are_recorded_honestly(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "_REGISTERED", {})  # register() below leaves no option to other tests
    # A spec given in Python that is no option as it is: the option of its class it starts from,
    # and the field that makes it differ.
    launch([*OFFLINE, "tracker.log_dir=sl1"], experiment=Experiment(model=MLP(hidden=(7,))))
    model = recorded_config(only_run(workdir / "sl1"))["model"]
    assert isinstance(model, dict) and (model["(option)"], model["(changed)"], model["hidden"]) == ("small", ["hidden"], [7])
    # Nor in Hydra's store, which the later tests' --help and "choose one of" lines read: the key
    # set here (absent before) is deleted again when the test ends; register() fills it.
    monkeypatch.setitem(ConfigStore.instance().repo["model"], "tiny.yaml", None)
    register("model", "tiny", MLP(hidden=(8,)))
    launch([*OFFLINE, "tracker.log_dir=sl2", "model=tiny"])
    model = recorded_config(only_run(workdir / "sl2"))["model"]
    assert isinstance(model, dict) and model["(option)"] == "tiny" and "(changed)" not in model
    launch([*OFFLINE, "tracker.log_dir=sl3", "+experiment=seed_cifar10", "dataset=fake", "batch_size=32"])
    config = recorded_config(only_run(workdir / "sl3"))
    assert config["(preset)"] == {"experiment": "seed_cifar10"}
    assert isinstance(config["model"], dict) and config["model"]["(option)"] == "cnn"  # the preset's choice


def test_a_run_name_leads_with_the_most_specific_setting() -> None:
    typed = ["+experiment=seed_cifar10", "model=large", "trainer.max_batches=2", "epochs=1", "optim.lr=0.1", "seed=3"]
    assert run_name(typed) == (
        "optim.lr=0.1,epochs=1,seed=3,model=large,trainer.max_batches=2,+experiment=seed_cifar10"
    )
    # In a sweep the swept keys come first, whatever they are.
    assert run_name(["seed=1", "optim.lr=0.1", "model=large"], swept=("seed",)).startswith("seed=1,optim.lr=0.1")
    assert swept_keys(["optim.lr=0.1,0.01", "seed=range(3)", "model=large", "hydra.sweeper.params.optim.wd=interval(0,1)"]) == (
        "optim.lr", "seed", "optim.wd"
    )


def test_a_sweep_job_s_swanlab_name_starts_with_what_the_sweep_varies(workdir: Path) -> None:
    results = launch_sweep([*OFFLINE, "optim.lr=0.05", "seed=0,1"], sweep_dir="sweep")
    assert all(isinstance(result, RunResult) for result in results)
    names = sorted(read_offline_run(run).name for run in (workdir / "sl").glob("run-*"))
    assert [name.split(",")[0] for name in names] == ["seed=0", "seed=1"]


def test_a_duplicate_name_is_numbered_apart_from_its_last_value(workdir: Path) -> None:
    for directory in ("outputs/a", "outputs/b"):
        launch([*LOCAL, "epochs=1", "optim.lr=0.1"], output_dir=directory)
    with sqlite3.connect(workdir / "sl" / "runs.swanlab") as db:
        names = [row[0] for row in db.execute("SELECT name FROM experiment ORDER BY sort")]
    first = run_name([*LOCAL, "epochs=1", "optim.lr=0.1"])
    assert names == [first, f"{first} #2"]  # SwanLab alone: ...trainer.max_batches=3-2


def start_record_id(run_dir: Path) -> str:
    reader = DataStoreReader()
    reader.open(next(run_dir.glob("run-*.swanlab")))
    try:
        for raw in reader:
            record = Record()
            record.ParseFromString(raw)
            if record.WhichOneof("record_type") == "start":
                return str(record.start.id)
    finally:
        reader.close()
    raise AssertionError(f"no start record in {run_dir}")


def test_a_resumed_local_run_continues_its_dashboard_experiment(workdir: Path) -> None:
    launch([*LOCAL, "epochs=1", "trainer.checkpoint_every=1"], output_dir="outputs/a")
    launch([*LOCAL, "epochs=1", "seed=1"], output_dir="outputs/b")  # another run between the two
    resumed = launch(["resume=outputs/a", "epochs=2"])
    with sqlite3.connect(workdir / "sl" / "runs.swanlab") as db:
        rows = db.execute("SELECT id, name, run_id, status FROM experiment ORDER BY sort").fetchall()
        folder = db.execute(
            "SELECT t.folder FROM tag t JOIN experiment e ON e.id = t.experiment_id WHERE e.id = ? AND t.name = 'val/acc'",
            (rows[0][0],),
        ).fetchone()[0]
    assert len(rows) == 2, rows  # SwanLab alone: a third experiment, named <name>-2
    (_, name, run_folder, status), _ = rows
    assert name == run_name([*LOCAL, "epochs=1", "trainer.checkpoint_every=1"]) and status == 1  # finished
    # The experiment's folder is the resumed run's, and its curve holds both epochs, as metrics.jsonl.
    folders = sorted((workdir / "sl").glob("run-*"), key=lambda path: path.name)
    assert run_folder == only_resumed(folders).name
    points = [json.loads(line) for file in sorted((workdir / "sl" / run_folder / "logs" / folder).glob("*.log"))
              for line in file.read_text().splitlines()]
    expected = [(int(p["step"]), p["val/acc"]) for p in read_metrics(resumed.metrics_file) if "val/acc" in p]
    assert [p["index"] for p in points] == [step for step, _ in expected] and len(expected) == 2
    assert [p["data"] for p in points] == pytest.approx([value for _, value in expected])


def only_resumed(folders: list[Path]) -> Path:
    """The folder of the resumed run: the last of the two that share a run id."""
    by_id: dict[str, list[Path]] = {}
    for folder in folders:
        by_id.setdefault(folder.name.rsplit("-", 1)[1], []).append(folder)
    (pair,) = [paths for paths in by_id.values() if len(paths) == 2]
    return pair[-1]


def test_a_resumed_offline_run_keeps_its_swanlab_id(workdir: Path) -> None:
    launch([*OFFLINE, "trainer.checkpoint_every=1"], output_dir="outputs/a")
    launch(["resume=outputs/a", "epochs=2"])
    first, second = sorted((workdir / "sl").glob("run-*"), key=lambda path: path.name)
    # `swanlab sync` uploads both folders into the one experiment of that id (resume="allow").
    assert start_record_id(first) == start_record_id(second)
