"""typedexp: typed PyTorch experiments.

The public API is small: an ``Experiment`` is a whole run as one typed value, built from specs
(``MLP``, ``Adam``, ``Digits``, ``Regression``, ...); ``launch(experiment=..., overrides=[...])`` runs it exactly
as the ``typedexp`` command would and returns a typed ``RunResult``; ``launch_sweep`` runs a sweep
and returns one ``RunResult`` or ``JobFailure`` per job; ``register`` offers your own
spec as an option of a group; ``main`` is the command line.
"""

try:
    # Hydra loads here (about 1 s), and both `typedexp` and `python -m typedexp` import this
    # package before the CLI's own Ctrl-C handler is in place.
    from typedexp.app.cli import main
    from typedexp.data import CIFAR10, CIFAR100, MNIST, Diabetes, Digits, FakeData, FashionMNIST
    from typedexp.engine import Classification, Regression, RegressionLoss, TrainerSettings
    from typedexp.engine.settings import Device, Precision, Progress
    from typedexp.core.errors import ConfigError, TrackerError, TypedexpError
    from typedexp.specs.experiment import Experiment
    from typedexp.app.launch import JobFailure, launch, launch_sweep
    from typedexp.specs.models import CNN, LARGE, MLP, SMALL, Activation, Norm
    from typedexp.specs.optim import SGD, Adam, AdamW
    from typedexp.specs.schedules import Cosine, NoSchedule, OneCycle, StepDecay, WarmupCosine
    from typedexp.app.store import register
    from typedexp.app.pipeline import RunResult
    from typedexp.tracking import SwanLabMode, SwanLabTracking
    # The option modules by their short names, as docs/tutorial-3 imports them.
    from typedexp.specs import models as models, optim as optim, schedules as schedules
except KeyboardInterrupt:
    from typedexp.core.report import exit_if_interrupted_cli

    exit_if_interrupted_cli()
    raise

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
