"""typedexp: typed PyTorch experiments.

The public API is small: an ``Experiment`` is a whole run as one typed value, built from specs
(``MLP``, ``Adam``, ``Digits``, ...); ``launch(experiment=..., overrides=[...])`` runs it exactly
as the ``typedexp`` command would and returns a typed ``RunResult``; ``launch_sweep`` runs a sweep
and returns one ``RunResult`` or ``JobFailure`` per job; ``register`` offers your own
spec as an option of a group; ``main`` is the command line.
"""

try:
    # Hydra loads here (about 1 s), and both `typedexp` and `python -m typedexp` import this
    # package before the CLI's own Ctrl-C handler is in place.
    from typedexp.cli import main
    from typedexp.data import CIFAR10, CIFAR100, MNIST, Digits, FakeData, FashionMNIST
    from typedexp.engine import TrainerSettings
    from typedexp.errors import ConfigError, TrackerError, TypedexpError
    from typedexp.experiment import Experiment
    from typedexp.launch import JobFailure, launch, launch_sweep
    from typedexp.models import CNN, LARGE, MLP, SMALL
    from typedexp.optim import SGD, Adam, AdamW
    from typedexp.schedules import Cosine, NoSchedule, OneCycle, StepDecay, WarmupCosine
    from typedexp.store import register
    from typedexp.task import RunResult
    from typedexp.tracking import SwanLabMode, SwanLabTracking
except KeyboardInterrupt:
    from typedexp.report import exit_if_interrupted_cli

    exit_if_interrupted_cli()
    raise

__all__ = [
    "CIFAR10",
    "CIFAR100",
    "CNN",
    "LARGE",
    "MLP",
    "MNIST",
    "SGD",
    "SMALL",
    "Adam",
    "AdamW",
    "ConfigError",
    "Cosine",
    "Digits",
    "Experiment",
    "FakeData",
    "FashionMNIST",
    "JobFailure",
    "NoSchedule",
    "OneCycle",
    "RunResult",
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
