"""Model specs: typed, torch-free descriptions that build ``nn.Module``s once the data is known.

A spec's constructor is its config (hydra-zen ``builds(MLP, populate_full_signature=True)``), so
composing configs and printing ``--help`` never imports torch. Input shape and class count are
not config fields: they come from the selected dataset when ``build`` is called, so any model
runs on any dataset and nobody types ``in_features``.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from typedexp.errors import ConfigError

if TYPE_CHECKING:
    from torch import nn


class Activation(enum.Enum):
    """Non-linearity between hidden layers (the CLI takes the name: ``model.activation=gelu``)."""

    relu = "relu"
    gelu = "gelu"
    tanh = "tanh"
    silu = "silu"

    def build(self) -> nn.Module:
        from torch import nn

        layers: dict[Activation, type[nn.Module]] = {
            Activation.relu: nn.ReLU,
            Activation.gelu: nn.GELU,
            Activation.tanh: nn.Tanh,
            Activation.silu: nn.SiLU,
        }
        return layers[self]()


class ModelSpec(Protocol):
    """What the task needs from any model config."""

    def build(self, input_shape: tuple[int, ...], num_classes: int) -> nn.Module: ...


@dataclass(frozen=True)
class MLP:
    """An ``nn.Sequential``: Flatten, then one Linear per hidden width, then the classifier Linear.

    ``hidden=(128,)`` gives the seed's 2-Linear "small" model, ``hidden=(256, 128)`` its 3-Linear
    "large" one. Each hidden Linear is followed by the activation and, if ``dropout > 0``, Dropout.
    """

    hidden: tuple[int, ...] = (128,)  # widths of the hidden layers, one Linear each
    activation: Activation = Activation.relu
    dropout: float = 0.0  # probability of zeroing a hidden unit during training; 0 disables

    def __post_init__(self) -> None:
        # Hydra hands lists over as ListConfig; store a real tuple so the spec is hashable and plain.
        object.__setattr__(self, "hidden", tuple(int(width) for width in self.hidden))
        if not self.hidden or any(width < 1 for width in self.hidden):
            raise ConfigError(
                f"model.hidden={list(self.hidden)}: needs at least one width, each >= 1"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.dropout={self.dropout}: must be in [0, 1)")

    def build(self, input_shape: tuple[int, ...], num_classes: int) -> nn.Sequential:
        from torch import nn

        layers: list[nn.Module] = [nn.Flatten()]  # (B, *input_shape) -> (B, prod(input_shape))
        width_in = math.prod(input_shape)
        for width in self.hidden:
            layers += [nn.Linear(width_in, width), self.activation.build()]
            if self.dropout > 0:
                layers.append(nn.Dropout(self.dropout))
            width_in = width
        layers.append(nn.Linear(width_in, num_classes))  # (B, num_classes) logits
        return nn.Sequential(*layers)
