# The part of lightning's API that benchmarks/peers.py uses (the optional `bench` extra). A stub
# rather than lightning's own annotations so that the type checks pass where it is not installed.
from collections.abc import Iterable

import torch

__version__: str

class LightningModule(torch.nn.Module):
    def log(self, name: str, value: torch.Tensor | float) -> None: ...

class Trainer:
    def __init__(
        self,
        *,
        max_epochs: int,
        accelerator: str,
        devices: int,
        logger: bool,
        enable_checkpointing: bool,
        enable_progress_bar: bool,
        enable_model_summary: bool,
        num_sanity_val_steps: int,
    ) -> None: ...
    def fit(
        self,
        model: LightningModule,
        train_dataloaders: Iterable[object] | None = ...,
        val_dataloaders: Iterable[object] | None = ...,
    ) -> None: ...
