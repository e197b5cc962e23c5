"""The training engine: typed inputs only (no Hydra, no SwanLab), resident tensors, few host syncs."""

from typedexp.engine.loop import FitResult, evaluate, fit
from typedexp.engine.runtime import resolve_device, seed_everything
from typedexp.engine.settings import Device, TrainerSettings

__all__ = [
    "Device",
    "FitResult",
    "TrainerSettings",
    "evaluate",
    "fit",
    "resolve_device",
    "seed_everything",
]
