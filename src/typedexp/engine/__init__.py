"""The training engine: typed inputs only (no Hydra, no SwanLab), resident tensors, few host syncs."""

from typedexp.engine.loop import EpochCheck, FitResult, LRSchedule, count_batches, epoch_order, evaluate, fit
from typedexp.engine.runtime import prepare, resolve_device, seed_everything
from typedexp.engine.settings import Device, Precision, TrainerSettings
from typedexp.engine.tasks import Classification, Regression, RegressionLoss, Task

__all__ = [
    "Classification",
    "Device",
    "EpochCheck",
    "FitResult",
    "LRSchedule",
    "Precision",
    "Regression",
    "RegressionLoss",
    "Task",
    "TrainerSettings",
    "count_batches",
    "epoch_order",
    "evaluate",
    "fit",
    "prepare",
    "resolve_device",
    "seed_everything",
]
