"""The typed surface at run time: Experiment values run as the command line would, presets and
debug modes compose and do what they say, and every option comes from the store."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from omegaconf import DictConfig, OmegaConf

from tests.helpers import QUICK, run_cli
from typedexp import LARGE, SGD, Adam, ConfigError, Experiment, MLP, launch
from typedexp.specs.experiment import DEBUG, EXPERIMENTS
from typedexp.app.launch import experiment_overrides
from typedexp.app.store import GROUPS, options
from typedexp.tracking.jsonl import read_metrics

def test_an_experiment_value_runs_and_is_recorded_as_overrides(workdir: Path) -> None:
    experiment = Experiment(model=MLP(hidden=(16,)), optim=Adam(lr=3e-3), epochs=2)
    result = launch(["tracker=disabled", "trainer.progress=off"], experiment=experiment)
    saved = OmegaConf.load(result.run_dir / ".hydra" / "overrides.yaml")
    assert list(saved) == ["optim=adam", "model.hidden=[16]", "optim.lr=0.003", "epochs=2",
                           "tracker=disabled", "trainer.progress=off"]
    config = OmegaConf.load(result.run_dir / ".hydra" / "config.yaml")
    assert config.model.hidden == [16] and config.optim.lr == 0.003 and config.epochs == 2
    assert result.epochs == 2


def test_overrides_apply_on_top_and_a_group_override_replaces_the_experiment_s_choice() -> None:
    experiment = Experiment(model=MLP(hidden=(16,)), optim=SGD(lr=0.5), epochs=3)
    assert experiment_overrides(experiment, ["optim=adam", "epochs=1"]) == [
        "model.hidden=[16]", "optim=adam", "epochs=1"
    ]
    assert experiment_overrides(Experiment(model=LARGE), []) == ["model=large"]
    assert experiment_overrides(Experiment(), []) == []


def test_an_experiment_s_own_range_check_is_one_error(workdir: Path) -> None:
    with pytest.raises(ConfigError, match=r"^epochs=0: must be an integer >= 1$"):
        Experiment(epochs=0)
    with pytest.raises(ConfigError, match=r"^batch_size=0"):
        launch([*QUICK[1:], "batch_size=0"])


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_each_preset_composes_to_its_typed_value(tmp_path: Path, name: str) -> None:
    done = run_cli(["--cfg", "job", f"+experiment={name}"], tmp_path)
    assert done.returncode == 0, done.stderr
    composed = OmegaConf.create(done.stdout)
    assert isinstance(composed, DictConfig)
    preset = EXPERIMENTS[name]
    for field in dataclasses.fields(Experiment):
        value = getattr(preset, field.name)
        node = composed[field.name]
        if dataclasses.is_dataclass(value):
            assert node._target_ == f"{type(value).__module__}.{type(value).__qualname__}"
            for inner in dataclasses.fields(value):
                expected = getattr(value, inner.name)
                expected = expected.name if hasattr(expected, "name") and not isinstance(expected, str) else expected
                assert node[inner.name] == (list(expected) if isinstance(expected, tuple) else expected), (field.name, inner.name)
        else:
            assert node == (list(value) if isinstance(value, tuple) else value), field.name


def test_the_seed_preset_is_the_seed_lesson() -> None:
    seed = EXPERIMENTS["seed_cifar10"]
    assert (seed.batch_size, seed.epochs) == (4, 2)
    assert seed.optim == SGD(lr=0.001, momentum=0.9)
    assert type(seed.dataset).__name__ == "CIFAR10" and type(seed.model).__name__ == "CNN"


def test_debug_fast_is_one_short_untracked_epoch(tmp_path: Path) -> None:
    done = run_cli(["+experiment=digits_large", "debug=fast", "trainer.progress=off"], tmp_path)
    assert done.returncode == 0, done.stderr
    points = read_metrics(next(tmp_path.rglob("metrics.jsonl")))
    assert max(int(point["step"]) for point in points) == DEBUG["fast"].trainer.max_batches
    assert not (tmp_path / "swanlog").exists()
    assert "(1 epoch, 5 steps" in done.stdout


@pytest.mark.slow
def test_debug_overfit_drives_the_loss_of_two_batches_near_zero(workdir: Path) -> None:
    result = launch(["debug=overfit", "trainer.progress=off"])
    assert result.metrics["train/loss"] < 0.05
    first = read_metrics(result.metrics_file)[0]
    assert first["train/loss"] > 1.0  # it started from an untrained model


def test_every_group_s_options_come_from_the_store(tmp_path: Path) -> None:
    done = run_cli(["--help"], tmp_path)
    for group in GROUPS:
        listed = next(line for line in done.stdout.splitlines() if line.startswith(f"{group}: "))
        assert listed == f"{group}: {', '.join(sorted(options(group)))}"


def test_the_readme_group_table_lists_the_store_s_options_default_first() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for group in GROUPS:
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{group}` |"))
        listed = row.split("|")[2]
        assert listed.strip() == ", ".join(f"`{name}`" for name in options(group)), group
