"""Type tests, checked by mypy --strict and by basedpyright (standard mode) in `make test`, never
run: what both checkers accept and reject, when a config is written and when it is read.

Each expected error carries `# type: ignore[<code>]`. Both checkers report an ignore that
suppresses nothing (mypy's warn_unused_ignores, pyright's reportUnnecessaryTypeIgnoreComment),
so if a mistake here ever stopped being an error, `make test` would fail on that line.
"""

from __future__ import annotations

from enum import Enum
from typing import assert_type

from typedexp import (
    LARGE,
    MLP,
    SGD,
    SMALL,
    Adam,
    Classification,
    Cosine,
    Digits,
    Experiment,
    FakeData,
    Regression,
    RunResult,
    SwanLabMode,
    SwanLabTracking,
    TrainerSettings,
    launch,
    register,
)
from typedexp.data import DatasetSpec
from typedexp.engine import Device
from typedexp.specs.models import Activation, ModelSpec
from typedexp.specs.optim import OptimizerSpec
from typedexp.specs.tasks import RegressionLoss, TaskSpec


def wrong_field_types_are_errors() -> None:
    MLP(hidden="128")  # type: ignore[arg-type]
    MLP(activation="relu")  # type: ignore[arg-type]
    SGD(lr="fast")  # type: ignore[arg-type]
    TrainerSettings(max_batches=1.5)  # type: ignore[arg-type]
    SwanLabTracking(mode="local")  # type: ignore[arg-type]
    Experiment(epochs="3")  # type: ignore[arg-type]
    Experiment(model=Adam())  # type: ignore[arg-type]
    Experiment(task=Adam())  # type: ignore[arg-type]
    Experiment(task="regression")  # type: ignore[arg-type]
    Regression(criterion="l1")  # type: ignore[arg-type]
    Classification(label_smoothing="0.1")  # type: ignore[arg-type]


def unknown_fields_are_errors() -> None:
    MLP(hiden=(64,))  # type: ignore[call-arg]
    SGD(learning_rate=0.1)  # type: ignore[call-arg]
    TrainerSettings(epochs=3)  # type: ignore[call-arg]
    Digits(root="data")  # type: ignore[call-arg]
    Regression(loss="mse")  # type: ignore[call-arg]
    Experiment(model=LARGE, epocs=3)  # type: ignore[call-arg]
    Experiment(resume=True)  # type: ignore[arg-type]


def option_names_are_enum_members_from_the_public_api() -> None:
    """What the command line takes as a name is an enum in Python, importable from ``typedexp``."""
    import typedexp

    MLP(activation=typedexp.Activation.gelu, norm=typedexp.Norm.batch)
    TrainerSettings(device=typedexp.Device.cpu, precision=typedexp.Precision.bf16, progress=typedexp.Progress.off)
    typedexp.Activation.GELU  # type: ignore[attr-defined]
    typedexp.Norm.BATCH  # type: ignore[attr-defined]
    MLP(norm="batch")  # type: ignore[arg-type]
    TrainerSettings(precision="bf16")  # type: ignore[arg-type]


def correct_configs_are_accepted() -> None:
    MLP(hidden=(256, 128), activation=Activation.gelu, dropout=0.1)
    SGD(lr=0.1, momentum=0.0, nesterov=False)
    TrainerSettings(device=Device.cpu, max_batches=5)
    SwanLabTracking(mode=SwanLabMode.offline, project="digits")
    FakeData(num_samples=64, channels=3)
    Experiment(model=MLP(hidden=(64,)), optim=Adam(lr=3e-3), schedule=Cosine(), epochs=3)


def fields_read_back_have_their_precise_types() -> None:
    assert_type(LARGE.hidden, tuple[int, ...])
    assert_type(SMALL.dropout, float)
    assert_type(Adam().lr, float)
    assert_type(Experiment().epochs, int)
    assert_type(Experiment().model, ModelSpec)
    assert_type(Experiment().task, TaskSpec)
    assert_type(Regression().criterion, RegressionLoss)
    assert_type(Experiment().trainer.max_batches, int | None)
    LARGE.hidden + [64]  # type: ignore[operator]
    LARGE.hiden  # type: ignore[attr-defined]
    Experiment().optim.lr  # type: ignore[attr-defined]


def an_enum_field_compared_to_a_string_is_an_error() -> None:
    # Always False at run time: MLP.activation is an Activation, never a str.
    if MLP().activation == "relu":  # type: ignore[comparison-overlap]
        pass
    assert isinstance(MLP().activation, Enum)


def specs_are_annotations() -> None:
    def widen(model: MLP) -> MLP:
        return MLP(hidden=tuple(2 * width for width in model.hidden))

    def pick(dataset: DatasetSpec, optim: OptimizerSpec) -> Experiment:
        return Experiment(dataset=dataset, optim=optim)

    assert_type(widen(SMALL), MLP)
    pick(Digits(), SGD())
    widen(Adam())  # type: ignore[arg-type]


def experiments_are_frozen() -> None:
    Experiment().epochs = 3  # type: ignore[misc]


def launch_returns_a_typed_result() -> None:
    result = launch(["model=large"], experiment=Experiment(epochs=1))
    assert_type(result, RunResult)
    assert_type(result.metrics["val/acc"], float)
    launch("model=large epochs=1")  # type: ignore[arg-type]
    launch(experiment=LARGE)  # type: ignore[arg-type]


def a_required_field_is_one_typed_line() -> None:
    # docs/extending.md: the seed lesson's required learning rate (argparse's required=True).
    register("optim", "sgd", SGD(), required=["lr"])
    register("optim", "sgd", SGD(), required=("lr", "momentum"))
    register("optim", "sgd", SGD(), required=[1])  # type: ignore[list-item]
