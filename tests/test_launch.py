"""End-to-end runs through launch(), as the CLI would run them, in temp dirs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from tests.helpers import QUICK
from typedexp import ConfigError, RunResult, launch, launch_sweep
from typedexp.data import Digits
from typedexp.engine import evaluate
from typedexp.specs.models import MLP
from typedexp.tracking.jsonl import read_metrics


def test_default_experiment_trains_digits_to_95_percent(workdir: Path) -> None:
    result = launch(["tracker=disabled", "trainer.progress=off"])
    assert isinstance(result, RunResult)
    assert result.metrics["val/acc"] >= 0.95
    assert result.epochs == 15
    assert result.run_dir.parent.parent == workdir / "outputs"  # outputs/<date>/<time>


def test_run_dir_holds_config_metrics_and_weights(workdir: Path) -> None:
    result = launch(["model=large", "epochs=2", "seed=3", *QUICK[0:1]], output_dir=workdir / "run")
    assert result.run_dir == workdir / "run"
    saved = OmegaConf.load(result.run_dir / ".hydra" / "config.yaml")
    assert saved.model.hidden == [256, 128] and saved.epochs == 2 and saved.seed == 3
    assert "model=large" in OmegaConf.load(result.run_dir / ".hydra" / "overrides.yaml")
    assert result.metrics_file.exists() and result.weights_file.exists()


def test_metrics_file_matches_what_the_engine_computed(workdir: Path) -> None:
    result = launch(["epochs=3", "trainer.log_every=5", *QUICK[0:1]], output_dir=workdir / "run")
    records = read_metrics(result.metrics_file)
    val_records = [r for r in records if "val/acc" in r]
    assert [r["epoch"] for r in val_records] == [1.0, 2.0, 3.0]
    assert val_records[-1]["val/acc"] == result.metrics["val/acc"]
    assert val_records[-1]["step"] == result.steps
    # Recompute validation independently from the saved weights and the same data split.
    model = MLP(hidden=(128,)).build((1, 8, 8), 10)
    model.load_state_dict(torch.load(result.weights_file, weights_only=True))
    recomputed = evaluate(model, Digits().load().val, batch_size=97)
    assert recomputed["val/acc"] == pytest.approx(result.metrics["val/acc"], abs=1e-6)
    assert recomputed["val/loss"] == pytest.approx(result.metrics["val/loss"], rel=1e-4)
    # Training points: every 5 steps and at each epoch's end (23 batches/epoch for 1,437 images).
    train_steps = [int(r["step"]) for r in records if "train/loss" in r]
    assert train_steps[:6] == [5, 10, 15, 20, 23, 25]
    for line in result.metrics_file.read_text().splitlines():
        assert set(json.loads(line)) >= {"step", "epoch"}


@pytest.mark.parametrize(
    "overrides",
    [
        ["dataset=fake"],
        ["dataset=fake", "model=large", "dataset.channels=3", "dataset.height=5"],
        ["model=large"],
        ["optim=adam"],
        ["optim=adamw", "optim.weight_decay=0.1"],
        ["optim=sgd", "optim.nesterov=true"],
        ["model.dropout=0.5", "model.activation=tanh"],
        ["trainer.device=cpu", "batch_size=128", "seed=7"],
    ],
)
def test_every_option_trains(workdir: Path, overrides: list[str]) -> None:
    result = launch([*overrides, *QUICK])
    assert result.steps == 2  # 1 epoch capped at trainer.max_batches=2
    assert 0.0 <= result.metrics["val/acc"] <= 1.0
    assert torch.isfinite(torch.tensor(result.metrics["train/loss"]))


def test_same_seed_same_numbers_other_seed_other_numbers(workdir: Path) -> None:
    first = launch(["epochs=2", "seed=1", *QUICK[0:1]])
    again = launch(["epochs=2", "seed=1", *QUICK[0:1]])
    other = launch(["epochs=2", "seed=2", *QUICK[0:1]])
    assert first.metrics == again.metrics
    assert first.metrics != other.metrics
    assert first.run_dir != again.run_dir  # same second, still separate directories


def test_max_batches_caps_each_epoch(workdir: Path) -> None:
    result = launch(["tracker=disabled", "epochs=3", "trainer.max_batches=4"])
    assert result.steps == 12


def test_launch_refuses_a_directory_that_holds_a_run(workdir: Path) -> None:
    first = launch(QUICK, output_dir=workdir / "run")
    before = first.metrics_file.read_bytes()
    # The line names the argument the caller passed, not the hydra.run.dir it became.
    with pytest.raises(ConfigError, match=rf"^output_dir={workdir / 'run'} already holds a run \(metrics.jsonl\); "):
        launch(QUICK, output_dir=workdir / "run")
    assert first.metrics_file.read_bytes() == before
    with pytest.raises(ConfigError, match=rf"^hydra.run.dir={workdir / 'run'} already holds a run"):
        launch([*QUICK, f"hydra.run.dir={workdir / 'run'}"])  # typed as an override: named as typed
    launch_sweep(["seed=0,1", *QUICK], sweep_dir="sweep")
    with pytest.raises(ConfigError, match=rf"^sweep_dir={workdir / 'sweep' / '0'} already holds a run"):
        launch_sweep(["seed=0,1", *QUICK], sweep_dir="sweep")


def test_launch_wants_a_list_of_overrides(workdir: Path) -> None:
    with pytest.raises(TypeError, match=r"\['model=large'\]"):
        launch("model=large")  # type: ignore[arg-type]  # refused by both checkers, and at run time
