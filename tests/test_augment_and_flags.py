"""Batched augmentation, the seed's CNN shapes, and the precision / layout / compile flags."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from tests.helpers import QUICK, run_cli
from typedexp import launch
from typedexp.data import Augmentation
from typedexp.specs.models import CNN


def test_crop_is_a_shifted_window_of_the_padded_image() -> None:
    images = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).reshape(2, 3, 6, 6) + 1
    cropped = Augmentation(crop_padding=2)(images, torch.Generator().manual_seed(0))
    padded = nn.functional.pad(images, (2, 2, 2, 2))
    for i in range(2):
        windows = [padded[i, :, top : top + 6, left : left + 6] for top in range(5) for left in range(5)]
        assert any(torch.equal(cropped[i], window) for window in windows)
    assert cropped.shape == images.shape


def test_flip_flips_some_images_and_keeps_the_others() -> None:
    images = torch.randn(64, 1, 4, 4)
    flipped = Augmentation(horizontal_flip=True)(images, torch.Generator().manual_seed(0))
    same = [torch.equal(flipped[i], images[i]) for i in range(64)]
    mirrored = [torch.equal(flipped[i], images[i].flip(2)) for i in range(64)]
    assert all(s or m for s, m in zip(same, mirrored, strict=True))
    assert 10 < sum(mirrored) < 54  # about half


@pytest.mark.parametrize(("padding", "flip"), [(2, True), (3, False), (0, True)])
def test_the_one_gather_equals_a_crop_then_a_flip_image_by_image(padding: int, flip: bool) -> None:
    """The batched gather against the plainest reading: the same draws (corners, then flip
    coins) applied to each image with slicing; the values must be the same, bit for bit."""
    images = torch.randn(32, 3, 5, 7)  # not square: rows and columns cannot be mixed up
    augmented = Augmentation(crop_padding=padding, horizontal_flip=flip)(images, torch.Generator().manual_seed(3))
    draws = torch.Generator().manual_seed(3)
    top = torch.randint(0, 2 * padding + 1, (32,), generator=draws) if padding else torch.zeros(32, dtype=torch.long)
    left = torch.randint(0, 2 * padding + 1, (32,), generator=draws) if padding else torch.zeros(32, dtype=torch.long)
    coins = torch.rand(32, generator=draws) < 0.5 if flip else torch.zeros(32, dtype=torch.bool)
    padded = nn.functional.pad(images, (padding,) * 4)
    for i in range(32):
        expected = padded[i, :, int(top[i]) : int(top[i]) + 5, int(left[i]) : int(left[i]) + 7]
        assert torch.equal(augmented[i], expected.flip(2) if coins[i] else expected)
    assert bool(coins.any()) is flip and bool((top + left).any()) is (padding > 0)


def test_augmentation_is_reproducible_and_off_by_default() -> None:
    images = torch.randn(16, 3, 8, 8)
    augment = Augmentation(crop_padding=3, horizontal_flip=True)
    first = augment(images, torch.Generator().manual_seed(7))
    assert torch.equal(first, augment(images, torch.Generator().manual_seed(7)))
    assert not torch.equal(first, augment(images, torch.Generator().manual_seed(8)))
    assert not Augmentation().enabled


def test_cnn_on_cifar_shapes_is_the_seed_net() -> None:
    layers = list(CNN().build((3, 32, 32), 10))
    convs = [(m.in_channels, m.out_channels, m.kernel_size) for m in layers if isinstance(m, nn.Conv2d)]
    linears = [(m.in_features, m.out_features) for m in layers if isinstance(m, nn.Linear)]
    assert convs == [(3, 6, (5, 5)), (6, 16, (5, 5))]
    assert linears == [(400, 120), (120, 84), (84, 10)]
    assert [(m.in_features, m.out_features) for m in CNN().build((1, 28, 28), 10) if isinstance(m, nn.Linear)][0] == (256, 120)


@pytest.mark.parametrize("flags", [["trainer.precision=bf16"], ["trainer.channels_last=true"]])
def test_precision_and_layout_flags_train_on_cpu(workdir: Path, flags: list[str]) -> None:
    result = launch(["model=cnn", "dataset=fake", "dataset.channels=3", "dataset.height=16",
                     "dataset.width=16", *flags, *QUICK])
    assert torch.isfinite(torch.tensor(result.metrics["train/loss"]))


def test_a_bad_norm_lists_the_valid_ones(workdir: Path) -> None:
    done = run_cli(["model.norm=weight", "tracker=disabled"], workdir)
    assert done.returncode == 2
    assert done.stderr_lines == [
        "typedexp: error: model.norm=weight: Invalid value 'weight', expected one of "
        "[none, batch, group, instance, layer]"
    ]


@pytest.mark.slow
def test_compile_flag_trains(workdir: Path) -> None:
    result = launch(["trainer.compile=true", *QUICK])
    assert torch.isfinite(torch.tensor(result.metrics["train/loss"]))
