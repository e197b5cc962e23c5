"""Type tests, checked by mypy in `make test` (never run): what mypy accepts and rejects.

Each expected error carries `# type: ignore[<code>]`. mypy --strict reports an unused ignore,
so if a bad config ever stopped being an error, mypy would fail on that line.
"""

from __future__ import annotations

from typing import assert_type

from hydra_zen import instantiate

from typedexp import RunResult, launch
from typedexp.configs import (
    AdamConf,
    DigitsConf,
    FakeDataConf,
    MLPConf,
    SGDConf,
    TrackerConf,
    TrainerConf,
)
from typedexp.data import Digits, FakeData
from typedexp.engine import Device, TrainerSettings
from typedexp.models import MLP, Activation
from typedexp.optim import SGD, Adam
from typedexp.tracking import SwanLabMode, SwanLabTracking


def wrong_field_types_are_errors() -> None:
    MLPConf(hidden="128")  # type: ignore[arg-type]
    MLPConf(activation="relu")  # type: ignore[arg-type]
    SGDConf(lr="fast")  # type: ignore[arg-type]
    TrainerConf(max_batches=1.5)  # type: ignore[arg-type]
    TrackerConf(mode="local")  # type: ignore[arg-type]


def unknown_fields_are_errors() -> None:
    MLPConf(hiden=(64,))  # type: ignore[call-arg]
    SGDConf(learning_rate=0.1)  # type: ignore[call-arg]
    TrainerConf(epochs=3)  # type: ignore[call-arg]
    DigitsConf(root="data")  # type: ignore[call-arg]


def correct_configs_are_accepted() -> None:
    MLPConf(hidden=(256, 128), activation=Activation.gelu, dropout=0.1)
    SGDConf(lr=0.1, momentum=0.0, nesterov=False)
    TrainerConf(device=Device.cpu, max_batches=5)
    TrackerConf(mode=SwanLabMode.offline, project="digits")
    FakeDataConf(num_samples=64, channels=3)


def building_gives_precise_types() -> None:
    assert_type(instantiate(MLPConf(hidden=(32,))), MLP)
    assert_type(instantiate(SGDConf()), SGD)
    assert_type(instantiate(AdamConf(lr=3e-4)), Adam)
    assert_type(instantiate(DigitsConf()), Digits)
    assert_type(instantiate(FakeDataConf()), FakeData)
    assert_type(instantiate(TrainerConf()), TrainerSettings)
    assert_type(instantiate(TrackerConf()), SwanLabTracking)


def launch_returns_a_typed_result() -> None:
    result = launch(["model=large"])
    assert_type(result, RunResult)
    assert_type(result.metrics["val/acc"], float)
