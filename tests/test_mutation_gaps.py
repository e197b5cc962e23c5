"""Tests written to kill surviving mutants (``make mutation``): each one pins a behaviour that
a mutation of models, optim, data or engine code changed without any other test noticing."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from typedexp import ConfigError
from typedexp.models import CNN, MLP, Norm

# --- models: ranges, their messages, and the CNN's shape arithmetic on small images ----------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: MLP(dropout=1.0), r"model.dropout=1.0: must be in \[0, 1\)"),
        (lambda: MLP(dropout=-0.1), r"model.dropout=-0.1: must be in \[0, 1\)"),
        (lambda: MLP(norm_groups=0), r"model.norm_groups=0: must be >= 1"),
        (lambda: MLP(hidden=()), r"model.hidden=\[\]: needs at least one width, each >= 1"),
        (lambda: MLP(hidden=(4, 0)), r"model.hidden=\[4, 0\]: needs at least one width, each >= 1"),
        (lambda: CNN(channels=()), r"model.channels=\[\]: needs at least one width"),
        (lambda: CNN(channels=(0,)), r"model.channels=\[0\]: needs at least one width"),
        (lambda: CNN(hidden=(0,)), r"model.hidden=\[0\]: needs at least one width"),
        (lambda: CNN(kernel_size=0), r"model.kernel_size=0: must be odd and >= 1"),
        (lambda: CNN(kernel_size=-1), r"model.kernel_size=-1: must be odd and >= 1"),
        (lambda: CNN(kernel_size=4), r"model.kernel_size=4: must be odd and >= 1"),
        (lambda: CNN(dropout=1.0), r"model.dropout=1.0: must be in \[0, 1\)"),
        (lambda: CNN().build((64,), 10), r"model=cnn needs images \(C, H, W\), the dataset gives \(64,\)"),
        (lambda: CNN(norm=Norm.instance).build((1, 2, 2), 10),
         r"model.norm=instance needs feature maps larger than 1x1; images of \(1, 2, 2\) shrink to 1x1"),
    ],
)
def test_out_of_range_model_fields_name_the_field_and_the_range(make: Callable[[], object], message: str) -> None:
    with pytest.raises(ConfigError, match=f"^{message}"):
        make()


def test_the_edges_of_each_range_are_accepted() -> None:
    MLP(dropout=0.0), MLP(dropout=0.99), MLP(norm_groups=1), MLP(hidden=(1,))
    CNN(kernel_size=1), CNN(kernel_size=3), CNN(channels=(1,))
    # A CNN without hidden Linears: the conv stages, then the classifier.
    layers = list(CNN(hidden=()).build((3, 16, 16), 10))
    assert [type(m) for m in layers if isinstance(m, nn.Linear)] == [nn.Linear]


def test_widths_from_hydra_lists_become_tuples() -> None:
    # Hydra hands over ListConfig; the spec keeps a plain, hashable tuple of ints.
    spec, cnn = MLP(hidden=[64, 32]), CNN(channels=[4, 8], hidden=[16])  # type: ignore[arg-type]
    assert (spec.hidden, cnn.channels, cnn.hidden) == ((64, 32), (4, 8), (16,))
    assert hash(spec) == hash(MLP(hidden=(64, 32))) and hash(cnn) == hash(CNN(channels=(4, 8), hidden=(16,)))


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_dropout_follows_each_hidden_activation_only_when_asked(dropout: float) -> None:
    for model in (MLP(hidden=(8, 4), dropout=dropout).build((1, 4, 4), 3), CNN(dropout=dropout).build((1, 8, 8), 3)):
        layers = list(model)
        drops = [m for m in layers if isinstance(m, nn.Dropout)]
        hidden_linears = sum(isinstance(m, nn.Linear) for m in layers) - 1
        assert [m.p for m in drops] == ([dropout] * hidden_linears if dropout else [])
        for i, layer in enumerate(layers):
            if isinstance(layer, nn.Dropout):
                assert isinstance(layers[i - 1], nn.ReLU)


def convs_and_linears(spec: CNN, shape: tuple[int, int, int]) -> tuple[list[object], int]:
    layers = list(spec.build(shape, 10))
    convs: list[object] = [m.padding for m in layers if isinstance(m, nn.Conv2d)]
    first_linear = next(m for m in layers if isinstance(m, nn.Linear))
    return convs, first_linear.in_features


@pytest.mark.parametrize(
    ("shape", "kernel", "paddings", "flat"),
    [
        # 8x8, k=5: 8-4=4 >= 2, unpadded -> 4x4 -> pool 2x2; 2-4 < 2, 'same' (2) -> 2x2 -> pool 1x1.
        ((1, 8, 8), 5, [(0, 0), (2, 2)], 16),
        # 4x4, k=3: 4-2=2, just enough to stay unpadded -> 2x2 -> pool 1x1; then 'same' (1).
        ((1, 4, 4), 3, [(0, 0), (1, 1)], 16),
        # 5x5, k=5: 5-4=1 < 2, 'same' -> 5x5 -> pool (ceil) 3x3; 3-4 < 2, 'same' -> 3x3 -> pool 2x2.
        ((1, 5, 5), 5, [(2, 2), (2, 2)], 64),
        # 6x6, k=5: 6-4=2, unpadded -> 2x2 -> pool 1x1; then 'same'.
        ((1, 6, 6), 5, [(0, 0), (2, 2)], 16),
        # 7x7, k=1: unpadded all the way; 7 -> pool (ceil) 4 -> pool 2.
        ((3, 7, 7), 1, [(0, 0), (0, 0)], 64),
    ],
)
def test_cnn_pads_only_small_maps_and_sizes_its_first_linear(
    shape: tuple[int, int, int], kernel: int, paddings: list[tuple[int, ...]], flat: int
) -> None:
    assert convs_and_linears(CNN(kernel_size=kernel), shape) == (paddings, flat)


def test_cnn_pools_by_two_rounding_up() -> None:
    layers = list(CNN().build((1, 8, 8), 10))
    pools = [(m.kernel_size, m.stride, m.ceil_mode) for m in layers if isinstance(m, nn.MaxPool2d)]
    assert pools == [(2, 2, True), (2, 2, True)]


def test_a_one_pixel_map_is_fine_for_every_norm_but_instance() -> None:
    for norm in (Norm.none, Norm.batch, Norm.group, Norm.layer):
        model = CNN(norm=norm).build((1, 2, 2), 10)
        assert model(torch.zeros(3, 1, 2, 2)).shape == (3, 10)
