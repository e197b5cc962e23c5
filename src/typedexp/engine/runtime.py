"""Process-level set-up for a run: seeding every random source and choosing the device."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from typedexp.engine.settings import Device, Precision, TrainerSettings
from typedexp.core.errors import ConfigError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from typedexp.data.tensors import DataBundle


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a CPU generator for the data order.

    The data order has its own generator so that it does not shift when a model consumes a
    different number of random draws at initialisation (e.g. with dropout on or off).
    """
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def resolve_device(device: Device) -> torch.device:
    import torch

    cuda_ok = torch.cuda.is_available()
    mps_ok = torch.backends.mps.is_available()
    if device is Device.auto:
        return torch.device("cuda" if cuda_ok else "mps" if mps_ok else "cpu")
    if (device is Device.cuda and not cuda_ok) or (device is Device.mps and not mps_ok):
        available = ["auto", "cpu"] + (["cuda"] if cuda_ok else []) + (["mps"] if mps_ok else [])
        raise ConfigError(
            f"trainer.device={device.value}: not available on this machine; "
            f"choose one of: {', '.join(available)}"
        )
    return torch.device(device.value)


def check_precision(settings: TrainerSettings, device: torch.device) -> None:
    if settings.precision is Precision.fp16 and device.type != "cuda":
        raise ConfigError(
            f"trainer.precision=fp16 needs CUDA, this run is on {device.type}; use bf16 or fp32"
        )


def prepare(
    model: nn.Module, data: DataBundle, settings: TrainerSettings, device: torch.device
) -> tuple[nn.Module, DataBundle]:
    """Move model and data to ``device`` in the layout the settings ask for; compile if asked.

    Returns the module to train: with ``trainer.compile`` it is the compiled wrapper, which
    shares its parameters (and state_dict keys, under ``_orig_mod.``) with ``model``.
    """
    import torch

    check_precision(settings, device)
    model = model.to(device)
    data = data.to(device)
    if settings.channels_last and len(data.input_shape) == 3:
        model = model.to(memory_format=torch.channels_last)
        data = data.to_memory_format(torch.channels_last)
    if settings.compile:
        compiled: nn.Module = torch.compile(model)  # type: ignore[assignment]  # returns a callable union
        return compiled, data
    return model, data
