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

from typedexp.core.checks import require_finite
from typedexp.core.errors import ConfigError

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


class Norm(enum.Enum):
    """Normalization after each hidden layer, before its activation (``model.norm=batch``)."""

    none = "none"
    batch = "batch"  # statistics over the batch (BatchNorm1d / BatchNorm2d)
    group = "group"  # over groups of channels per example (GroupNorm, `norm_groups` groups)
    instance = "instance"  # per example and channel over space; for a vector, over its features
    layer = "layer"  # per example over all features (and all channels and pixels in a CNN)

    def build(self, channels: int, *, spatial: bool, groups: int) -> nn.Module | None:
        """The norm layer for ``channels`` features, (B, C) or, if ``spatial``, (B, C, H, W)."""
        from torch import nn

        if self is Norm.none:
            return None
        if self is Norm.batch:
            return nn.BatchNorm2d(channels) if spatial else nn.BatchNorm1d(channels)
        if self is Norm.group:
            # The largest divisor of `channels` not above `groups`, so every width is valid.
            count = max(d for d in range(1, min(groups, channels) + 1) if channels % d == 0)
            return nn.GroupNorm(count, channels)
        if self is Norm.instance:
            if spatial:
                return nn.InstanceNorm2d(channels, affine=True)
            # A feature vector has no spatial extent: normalize the example's features, no affine.
            return nn.LayerNorm(channels, elementwise_affine=False)
        return nn.GroupNorm(1, channels) if spatial else nn.LayerNorm(channels)


class ModelSpec(Protocol):
    """What the task needs from any model config."""

    def build(self, input_shape: tuple[int, ...], num_classes: int) -> nn.Module: ...


def _check_common(dropout: float, norm_groups: int) -> None:
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"model.dropout={dropout}: must be in [0, 1)")
    if norm_groups < 1:
        raise ConfigError(f"model.norm_groups={norm_groups}: must be >= 1")


def _widths(name: str, widths: tuple[int, ...], *, allow_empty: bool = False) -> tuple[int, ...]:
    # Hydra hands lists over as ListConfig; keep a real tuple so the spec is plain and hashable.
    if not all(isinstance(width, int) and not isinstance(width, bool) for width in widths):
        raise ConfigError(f"model.{name}={list(widths)}: needs a list of whole numbers, e.g. [128, 64]")
    values = tuple(widths)
    if (not values and not allow_empty) or any(width < 1 for width in values):
        raise ConfigError(f"model.{name}={list(values)}: needs at least one width, each >= 1")
    return values


def hidden_block(
    width_in: int, width: int, activation: Activation, norm: Norm, groups: int, dropout: float
) -> list[nn.Module]:
    """Linear -> norm -> activation -> dropout, on (B, width_in) -> (B, width)."""
    from torch import nn

    layers: list[nn.Module] = [nn.Linear(width_in, width)]
    norm_layer = norm.build(width, spatial=False, groups=groups)
    layers += [norm_layer] if norm_layer is not None else []
    layers.append(activation.build())
    layers += [nn.Dropout(dropout)] if dropout > 0 else []
    return layers


@dataclass(frozen=True)
class MLP:
    """An ``nn.Sequential``: Flatten, then one hidden block per width, then the classifier Linear.

    ``hidden=(128,)`` gives the seed's 2-Linear "small" model, ``hidden=(256, 128)`` its 3-Linear
    "large" one. A hidden block is Linear, the optional norm, the activation, optional Dropout.
    """

    hidden: tuple[int, ...] = (128,)  # widths of the hidden layers, one Linear each
    activation: Activation = Activation.relu
    norm: Norm = Norm.none
    norm_groups: int = 8  # upper bound on GroupNorm groups (norm=group)
    dropout: float = 0.0  # probability of zeroing a hidden unit during training; 0 disables

    def __post_init__(self) -> None:
        require_finite(self, "model")
        object.__setattr__(self, "hidden", _widths("hidden", self.hidden))
        _check_common(self.dropout, self.norm_groups)

    def build(self, input_shape: tuple[int, ...], num_classes: int) -> nn.Sequential:
        from torch import nn

        layers: list[nn.Module] = [nn.Flatten()]  # (B, *input_shape) -> (B, prod(input_shape))
        width_in = math.prod(input_shape)
        for width in self.hidden:
            layers += hidden_block(
                width_in, width, self.activation, self.norm, self.norm_groups, self.dropout
            )
            width_in = width
        layers.append(nn.Linear(width_in, num_classes))  # (B, num_classes) logits
        return nn.Sequential(*layers)


@dataclass(frozen=True)
class CNN:
    """The seed lesson's CIFAR-10 ``Net``, sized from the data: conv-pool twice, then three Linears.

    With the defaults on CIFAR (3x32x32) this is exactly the seed's Net: Conv2d(3, 6, 5),
    MaxPool(2), Conv2d(6, 16, 5), MaxPool(2), Linear(400, 120), Linear(120, 84), Linear(84, 10).
    Input channels and the flattened size come from the dataset. An image too small for an
    unpadded convolution (e.g. 8x8 digits) gets 'same' padding, so every dataset works.
    """

    channels: tuple[int, ...] = (6, 16)  # output channels of each conv + pool stage
    hidden: tuple[int, ...] = (120, 84)  # widths of the Linear layers before the classifier
    kernel_size: int = 5
    activation: Activation = Activation.relu
    norm: Norm = Norm.none
    norm_groups: int = 8
    dropout: float = 0.0  # after each hidden Linear

    def __post_init__(self) -> None:
        require_finite(self, "model")
        object.__setattr__(self, "channels", _widths("channels", self.channels))
        object.__setattr__(self, "hidden", _widths("hidden", self.hidden, allow_empty=True))
        _check_common(self.dropout, self.norm_groups)
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ConfigError(f"model.kernel_size={self.kernel_size}: must be odd and >= 1")

    def build(self, input_shape: tuple[int, ...], num_classes: int) -> nn.Sequential:
        import torch
        from torch import nn

        if len(input_shape) != 3:
            raise ConfigError(f"model=cnn needs images (C, H, W), the dataset gives {input_shape}")
        channels_in, height, width = input_shape
        features: list[nn.Module] = []
        for channels in self.channels:
            # Unpadded as in the seed while the map stays >= 2 pixels after the conv; else 'same'.
            padding = 0 if min(height, width) - (self.kernel_size - 1) >= 2 else self.kernel_size // 2
            features.append(nn.Conv2d(channels_in, channels, self.kernel_size, padding=padding))
            conv_height = height + 2 * padding - self.kernel_size + 1
            conv_width = width + 2 * padding - self.kernel_size + 1
            if self.norm is Norm.instance and conv_height * conv_width == 1:
                raise ConfigError(
                    f"model.norm=instance needs feature maps larger than 1x1; images of "
                    f"{input_shape} shrink to 1x1 (use another norm or larger images)"
                )
            norm_layer = self.norm.build(channels, spatial=True, groups=self.norm_groups)
            features += [norm_layer] if norm_layer is not None else []
            # ceil_mode keeps a 1-pixel map at 1 pixel instead of 0.
            features += [self.activation.build(), nn.MaxPool2d(2, 2, ceil_mode=True)]
            height, width = math.ceil(conv_height / 2), math.ceil(conv_width / 2)
            channels_in = channels
        layers = [*features, nn.Flatten()]  # (B, C_last * H_last * W_last)
        width_in = channels_in * height * width
        for hidden in self.hidden:
            layers += hidden_block(
                width_in, hidden, self.activation, self.norm, self.norm_groups, self.dropout
            )
            width_in = hidden
        layers.append(nn.Linear(width_in, num_classes))
        model = nn.Sequential(*layers)
        with torch.no_grad():  # the shape arithmetic above must agree with the real layers
            model.eval()
            model(torch.zeros(2, *input_shape))
            model.train()
        return model


# The seed lesson's two nn.Sequential models, as typed values (`model=small`, `model=large`).
SMALL = MLP(hidden=(128,))  # 2 Linear layers
LARGE = MLP(hidden=(256, 128))  # 3 Linear layers

# The `model` group, default first: a new model is a spec above plus one line here.
OPTIONS: dict[str, ModelSpec] = {"small": SMALL, "large": LARGE, "cnn": CNN()}
