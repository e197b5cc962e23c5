"""Process-level set-up for a run: seeding every random source and choosing the device."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from typedexp.engine.settings import Device
from typedexp.errors import ConfigError

if TYPE_CHECKING:
    import torch


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
