"""Optimizer specs: typed configs that build a ``torch.optim.Optimizer`` for given parameters.

The engine receives one of these as its "optimizer factory": the model's parameters only exist
after the data has fixed the model's shape, so the optimizer is built last.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from typedexp.core.checks import require_finite
from typedexp.core.errors import ConfigError

if TYPE_CHECKING:
    import torch


class OptimizerSpec(Protocol):
    def build(self, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer: ...


def _check_non_negative(**values: float) -> None:
    for name, value in values.items():
        if value < 0:
            raise ConfigError(f"optim.{name}={value}: must be >= 0")


@dataclass(frozen=True)
class SGD:
    """SGD with momentum; the defaults are the seed lesson's (lr=0.01, momentum=0.9)."""

    lr: float = 0.01  # per step, for the mean loss of one batch
    momentum: float = 0.9
    weight_decay: float = 0.0  # L2 penalty added to the gradient
    nesterov: bool = False

    def __post_init__(self) -> None:
        require_finite(self, "optim")
        _check_non_negative(lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)
        if self.nesterov and self.momentum == 0:
            raise ConfigError("optim.nesterov=true needs optim.momentum > 0")

    def build(self, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
        import torch

        return torch.optim.SGD(
            params,
            lr=self.lr,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
            nesterov=self.nesterov,
        )


@dataclass(frozen=True)
class Adam:
    """Adam; ``weight_decay`` is the coupled L2 form (use AdamW for decoupled decay)."""

    lr: float = 1e-3
    beta1: float = 0.9  # decay of the gradient's running mean
    beta2: float = 0.999  # decay of the squared gradient's running mean
    eps: float = 1e-8
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        require_finite(self, "optim")
        _check_non_negative(lr=self.lr, eps=self.eps, weight_decay=self.weight_decay)
        for name, beta in (("beta1", self.beta1), ("beta2", self.beta2)):
            if not 0.0 <= beta < 1.0:
                raise ConfigError(f"optim.{name}={beta}: must be in [0, 1)")

    def build(self, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
        import torch

        return torch.optim.Adam(
            params,
            lr=self.lr,
            betas=(self.beta1, self.beta2),
            eps=self.eps,
            weight_decay=self.weight_decay,
        )


@dataclass(frozen=True)
class AdamW(Adam):
    """AdamW: Adam with decoupled weight decay (PyTorch's default decay 0.01)."""

    weight_decay: float = 0.01

    def build(self, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
        import torch

        return torch.optim.AdamW(
            params,
            lr=self.lr,
            betas=(self.beta1, self.beta2),
            eps=self.eps,
            weight_decay=self.weight_decay,
        )


# The `optim` group, default first: a new optimizer is a spec above plus one line here.
OPTIONS: dict[str, OptimizerSpec] = {"sgd": SGD(), "adam": Adam(), "adamw": AdamW()}
