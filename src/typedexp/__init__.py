"""typedexp: typed PyTorch experiments.

The public API is small: an ``Experiment`` is a whole run as one typed value, built from specs
(``MLP``, ``Adam``, ``Digits``, ``Regression``, ...); ``launch(experiment=..., overrides=[...])`` runs it exactly
as the ``typedexp`` command would and returns a typed ``RunResult``; ``launch_sweep`` runs a sweep
and returns one ``RunResult`` or ``JobFailure`` per job; ``register`` offers your own
spec as an option of a group; ``main`` is the command line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the checkers and IDEs see every public name and its type from here
    from typedexp.app.cli import main
    from typedexp.app.launch import JobFailure, launch, launch_sweep
    from typedexp.app.pipeline import RunResult
    from typedexp.app.store import register
    from typedexp.core.errors import ConfigError, TrackerError, TypedexpError
    from typedexp.data import CIFAR10, CIFAR100, MNIST, Diabetes, Digits, FakeData, FashionMNIST
    from typedexp.engine import Classification, Regression, RegressionLoss, TrainerSettings
    from typedexp.engine.settings import Device, Precision, Progress
    from typedexp.specs import models as models, optim as optim, schedules as schedules
    from typedexp.specs.experiment import Experiment
    from typedexp.specs.models import CNN, LARGE, MLP, SMALL, Activation, Norm
    from typedexp.specs.optim import SGD, Adam, AdamW
    from typedexp.specs.schedules import Cosine, NoSchedule, OneCycle, StepDecay, WarmupCosine
    from typedexp.tracking import SwanLabMode, SwanLabTracking

# Each public name -> the module that defines it. Imported on first use (``__getattr__``), so
# that `typedexp --help`, tab completion and `typedexp runs` do not pay for Hydra, OmegaConf and
# torch (about 1 s) before they need them. tests/test_public_api.py keeps this table and the
# TYPE_CHECKING imports above equal.
_WHERE: dict[str, str] = {
    "main": "typedexp.app.cli",
    **dict.fromkeys(["JobFailure", "launch", "launch_sweep"], "typedexp.app.launch"),
    "RunResult": "typedexp.app.pipeline",
    "register": "typedexp.app.store",
    **dict.fromkeys(["ConfigError", "TrackerError", "TypedexpError"], "typedexp.core.errors"),
    **dict.fromkeys(["CIFAR10", "CIFAR100", "MNIST", "Diabetes", "Digits", "FakeData", "FashionMNIST"], "typedexp.data"),
    **dict.fromkeys(["Classification", "Regression", "RegressionLoss", "TrainerSettings"], "typedexp.engine"),
    **dict.fromkeys(["Device", "Precision", "Progress"], "typedexp.engine.settings"),
    "Experiment": "typedexp.specs.experiment",
    **dict.fromkeys(["CNN", "LARGE", "MLP", "SMALL", "Activation", "Norm"], "typedexp.specs.models"),
    **dict.fromkeys(["SGD", "Adam", "AdamW"], "typedexp.specs.optim"),
    **dict.fromkeys(["Cosine", "NoSchedule", "OneCycle", "StepDecay", "WarmupCosine"], "typedexp.specs.schedules"),
    **dict.fromkeys(["SwanLabMode", "SwanLabTracking"], "typedexp.tracking"),
}
# The option modules by their short names, as docs/tutorial-3 imports them.
_MODULES = {"models": "typedexp.specs.models", "optim": "typedexp.specs.optim", "schedules": "typedexp.specs.schedules"}


def __getattr__(name: str) -> object:
    import importlib

    if name in _MODULES:
        value: object = importlib.import_module(_MODULES[name])
    elif name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name]), name)
    else:
        raise AttributeError(f"module 'typedexp' has no attribute {name!r}")
    globals()[name] = value  # once: later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE, *_MODULES])


__all__ = [
    "Activation",
    "Adam",
    "AdamW",
    "CIFAR10",
    "CIFAR100",
    "CNN",
    "Classification",
    "ConfigError",
    "Cosine",
    "Device",
    "Diabetes",
    "Digits",
    "Experiment",
    "FakeData",
    "FashionMNIST",
    "JobFailure",
    "LARGE",
    "MLP",
    "MNIST",
    "NoSchedule",
    "Norm",
    "OneCycle",
    "Precision",
    "Progress",
    "Regression",
    "RegressionLoss",
    "RunResult",
    "SGD",
    "SMALL",
    "StepDecay",
    "SwanLabMode",
    "SwanLabTracking",
    "TrackerError",
    "TrainerSettings",
    "TypedexpError",
    "WarmupCosine",
    "launch",
    "launch_sweep",
    "main",
    "register",
]
