"""Where ``fit`` stands between two steps (``LoopPosition``): saved in every checkpoint, checked
by ``checkpoint_checks`` before a resume restores it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


@dataclass
class LoopPosition:
    """Where ``fit`` stands between two steps: what it needs to carry on exactly from there.

    ``epoch``/``batch`` name the next batch to train (1-based epoch, 0-based batch). ``order`` is
    that epoch's permutation once drawn (None at an epoch boundary, where the next epoch draws
    its own from the restored generator). ``window`` is the partial logging window: each step's
    loss times its batch size ((k,) float, in step order, so a resumed run sums exactly the same
    vector), the task's metric sums (classification: the correct count, () int64; float sums: one
    row per step) and the examples since the last logged point.
    """

    epoch: int
    batch: int
    step: int
    order: torch.Tensor | None = None  # (N_train,) int64, on the CPU in a checkpoint
    window: tuple[torch.Tensor, torch.Tensor, int] | None = None
    latest: dict[str, float] = field(default_factory=dict)  # last value of every logged metric
