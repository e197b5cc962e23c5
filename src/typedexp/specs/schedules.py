"""Learning-rate schedule specs: typed configs that build a ``torch.optim.lr_scheduler`` scheduler.

A schedule is stepped either after every optimizer step (``per_step``: cosine, one-cycle and
warm-up, whose curves are defined over the whole run) or after every epoch (step decay, defined
in epochs). The engine steps it, saves its state in every checkpoint and logs the learning rate
as ``train/lr``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from typedexp.core.checks import require_finite
from typedexp.engine.loop import LRSchedule
from typedexp.core.errors import ConfigError

if TYPE_CHECKING:
    import torch


class ScheduleSpec(Protocol):
    def build(self, optimizer: torch.optim.Optimizer, *, epochs: int, steps_per_epoch: int) -> LRSchedule | None: ...


def _check_fraction(name: str, value: float, *, low_open: bool = False) -> None:
    low_ok = value > 0 if low_open else value >= 0
    if not (math.isfinite(value) and low_ok and value < 1):
        raise ConfigError(f"schedule.{name}={value}: must be in {'(0' if low_open else '[0'}, 1)")


@dataclass(frozen=True)
class NoSchedule:
    """The optimizer's own learning rate throughout."""

    def build(self, optimizer: torch.optim.Optimizer, *, epochs: int, steps_per_epoch: int) -> LRSchedule | None:
        return None


@dataclass(frozen=True)
class StepDecay:
    """Multiply the learning rate by ``gamma`` every ``every_epochs`` epochs (``StepLR``)."""

    every_epochs: int = 10
    gamma: float = 0.1

    def __post_init__(self) -> None:
        require_finite(self, "schedule")
        if self.every_epochs < 1:
            raise ConfigError(f"schedule.every_epochs={self.every_epochs}: must be >= 1")
        if not (math.isfinite(self.gamma) and 0 < self.gamma <= 1):
            raise ConfigError(f"schedule.gamma={self.gamma}: must be in (0, 1]")

    def build(self, optimizer: torch.optim.Optimizer, *, epochs: int, steps_per_epoch: int) -> LRSchedule | None:
        import torch

        return LRSchedule(torch.optim.lr_scheduler.StepLR(optimizer, self.every_epochs, self.gamma), per_step=False)


@dataclass(frozen=True)
class Cosine:
    """Cosine decay over every step of the run, down to ``min_ratio`` of the optimizer's lr."""

    min_ratio: float = 0.0

    def __post_init__(self) -> None:
        require_finite(self, "schedule")
        _check_fraction("min_ratio", self.min_ratio)

    def build(self, optimizer: torch.optim.Optimizer, *, epochs: int, steps_per_epoch: int) -> LRSchedule | None:
        import torch

        eta_min = float(optimizer.param_groups[0]["lr"]) * self.min_ratio
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * steps_per_epoch, eta_min=eta_min)
        return LRSchedule(scheduler, per_step=True)


@dataclass(frozen=True)
class OneCycle:
    """Leslie Smith's one-cycle policy (``OneCycleLR``): up to ``max_lr``, then down, per step."""

    max_lr: float = 0.1
    warmup_fraction: float = 0.3  # share of the steps spent rising (OneCycleLR's pct_start)

    def __post_init__(self) -> None:
        require_finite(self, "schedule")
        if not (math.isfinite(self.max_lr) and self.max_lr > 0):
            raise ConfigError(f"schedule.max_lr={self.max_lr}: must be > 0")
        _check_fraction("warmup_fraction", self.warmup_fraction, low_open=True)

    def build(self, optimizer: torch.optim.Optimizer, *, epochs: int, steps_per_epoch: int) -> LRSchedule | None:
        import torch

        total = epochs * steps_per_epoch
        # OneCycleLR's rise ends at step pct_start * total - 1 and its fall starts there; it divides
        # by each phase's length, so a rise of exactly one step fails with ZeroDivisionError mid-run.
        if float(self.warmup_fraction * total) - 1 == 0:
            raise ConfigError(
                f"schedule=onecycle: schedule.warmup_fraction={self.warmup_fraction} of this run's {total} optimizer "
                f"steps (epochs={epochs} x {steps_per_epoch} per epoch) is a rise of exactly 1 step, which "
                "OneCycleLR cannot divide; change schedule.warmup_fraction, or train more steps"
            )
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=self.max_lr, total_steps=total, pct_start=self.warmup_fraction
        )
        return LRSchedule(scheduler, per_step=True)


@dataclass(frozen=True)
class WarmupCosine:
    """A linear warm-up from 0 over ``warmup_fraction`` of the steps, then cosine decay to
    ``min_ratio`` of the optimizer's lr, reached after the last step."""

    warmup_fraction: float = 0.05
    min_ratio: float = 0.0

    def __post_init__(self) -> None:
        require_finite(self, "schedule")
        _check_fraction("warmup_fraction", self.warmup_fraction)
        _check_fraction("min_ratio", self.min_ratio)

    def build(self, optimizer: torch.optim.Optimizer, *, epochs: int, steps_per_epoch: int) -> LRSchedule | None:
        import torch

        total = epochs * steps_per_epoch
        warmup = int(total * self.warmup_fraction)
        floor = self.min_ratio

        def factor(step: int) -> float:  # of the optimizer's lr, after `step` optimizer steps
            if step < warmup:
                return (step + 1) / (warmup + 1)
            # warmup < total (warmup_fraction < 1), so progress goes from 0 at the warm-up's end to
            # exactly 1 after the last step (a resumed run cannot take more): the lr then is
            # min_ratio of the optimizer's (cos(pi) = -1), the last train/lr logged, as `cosine` ends.
            progress = (step - warmup) / (total - warmup)
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

        return LRSchedule(torch.optim.lr_scheduler.LambdaLR(optimizer, factor), per_step=True)


# The `schedule` group, default first: a new schedule is a spec above plus one line here.
OPTIONS: dict[str, ScheduleSpec] = {
    "none": NoSchedule(),
    "step": StepDecay(),
    "cosine": Cosine(),
    "onecycle": OneCycle(),
    "warmup_cosine": WarmupCosine(),
}
