"""Tests written to kill surviving mutants (``make mutation``): each one pins a behaviour that
a mutation of models, optim, data or engine code changed without any other test noticing."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
import torch
from torch import nn

from typedexp import ConfigError
from typedexp.specs.models import CNN, MLP, Norm

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
        # What mypy refuses, from a script without it: the same one line as a bad override.
        (lambda: MLP(dropout=float("nan")), r"model.dropout=nan: must be a finite number$"),
        (lambda: CNN(dropout=float("inf")), r"model.dropout=inf: must be a finite number$"),
        (lambda: MLP(hidden=(64, 2.5)), r"model.hidden=\[64, 2.5\]: needs a list of whole numbers, e.g. \[128, 64\]$"),  # type: ignore[arg-type]
        (lambda: CNN(channels=(True,)), r"model.channels=\[True\]: needs a list of whole numbers"),  # a bool is no width
        (lambda: CNN().build((64,), 10), r"model=cnn needs images \(C, H, W\), the dataset gives \(64,\)"),
        (lambda: CNN(norm=Norm.instance).build((1, 2, 2), 10),
         r"model.norm=instance needs feature maps larger than 1x1; images of \(1, 2, 2\) shrink to 1x1"),
    ],
)
def test_out_of_range_model_fields_name_the_field_and_the_range(make: Callable[[], object], message: str) -> None:
    with pytest.raises(ConfigError, match=f"^{message}"):
        make()


def test_the_edges_of_each_range_are_accepted() -> None:
    accepted: list[object] = [MLP(dropout=0.0), MLP(dropout=0.99), MLP(norm_groups=1), MLP(hidden=(1,))]
    accepted += [CNN(kernel_size=1), CNN(kernel_size=3), CNN(channels=(1,))]
    assert len(accepted) == 7  # each constructed without a ConfigError
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


# --- data: the split, its normalization, moving it; augmentation draw by draw ---------------

from typedexp.data import Augmentation, DataBundle, RawImages  # noqa: E402
from typedexp.data.augment import crop_and_flip  # noqa: E402
from typedexp.data.tensors import pixel_statistics, split_train_val, take  # noqa: E402


def raw(n: int, channels: int = 2) -> RawImages:
    images = torch.arange(n * channels * 3 * 3, dtype=torch.uint8).reshape(n, channels, 3, 3) % 251
    return RawImages(images, torch.arange(n, dtype=torch.int32) % 3)


@pytest.mark.parametrize(("n", "fraction", "num_val"), [(10, 0.2, 2), (10, 0.01, 1), (10, 0.0, 1), (20, 0.5, 10)])
def test_the_validation_share_is_rounded_and_never_empty(n: int, fraction: float, num_val: int) -> None:
    bundle = split_train_val(raw(n), num_classes=3, val_fraction=fraction, seed=0)
    assert (len(bundle.val), len(bundle.train)) == (num_val, n - num_val)
    assert sorted(bundle.val.source_index.tolist() + bundle.train.source_index.tolist()) == list(range(n))


def test_every_split_is_normalized_with_the_training_statistics_only() -> None:
    data, test = raw(40), raw(6)
    bundle = split_train_val(data, num_classes=3, val_fraction=0.25, seed=3, test=test)
    expected_order = torch.randperm(40, generator=torch.Generator().manual_seed(3))
    assert torch.equal(bundle.val.source_index, expected_order[:10])
    assert torch.equal(bundle.train.source_index, expected_order[10:])
    pixels = data.images[bundle.train.source_index].float()
    mean, std = pixels.mean(dim=(0, 2, 3)), pixels.std(dim=(0, 2, 3))
    assert bundle.mean == pytest.approx(mean.tolist()) and bundle.std == pytest.approx(std.tolist())
    assert len(bundle.mean) == 2 and bundle.mean != pytest.approx(data.images.float().mean(dim=(0, 2, 3)).tolist())
    for split, source, index in [(bundle.train, data, bundle.train.source_index), (bundle.val, data, bundle.val.source_index),
                                 (bundle.test, test, torch.arange(6))]:
        assert split is not None
        expected = (source.images[index].float() - mean[None, :, None, None]) / std[None, :, None, None]
        assert torch.allclose(split.images, expected)
        assert split.images.dtype == torch.float32 and split.labels.dtype == torch.int64
        assert torch.equal(split.labels, source.labels[index].long())
        assert torch.equal(split.source_index, index)
    assert bundle.num_classes == 3 and bundle.input_shape == (2, 3, 3)


def test_a_split_without_training_examples_or_an_empty_test_file_is_one_clear_error() -> None:
    with pytest.raises(ConfigError) as raised:
        split_train_val(raw(4), num_classes=3, val_fraction=1.0, seed=0)
    assert str(raised.value) == ("dataset.val_fraction=1.0: leaves 0 of the dataset's 4 examples for training and "
                                 "needs at least one in each split; lower it or use more examples")
    assert len(split_train_val(raw(4), num_classes=3, val_fraction=0.75, seed=0).train) == 1  # 3 of 4: one left
    empty = RawImages(torch.zeros(0, 2, 3, 3, dtype=torch.uint8), torch.zeros(0, dtype=torch.int64))
    with pytest.raises(ConfigError) as raised:
        split_train_val(raw(4), num_classes=3, val_fraction=0.25, seed=0, test=empty)
    assert str(raised.value) == "the dataset's test files hold no examples; check the files under dataset.root"
    one = split_train_val(raw(4), num_classes=3, val_fraction=0.25, seed=0, test=raw(1))
    assert one.test is not None and len(one.test) == 1


def test_first_train_keeps_the_first_examples_and_every_other_field() -> None:
    bundle = split_train_val(raw(12), num_classes=3, val_fraction=0.25, seed=0, test=raw(3),
                             augmentation=Augmentation(horizontal_flip=True))
    first = bundle.first_train(4)
    assert torch.equal(first.train.images, bundle.train.images[:4]) and torch.equal(first.train.labels, bundle.train.labels[:4])
    assert torch.equal(first.train.source_index, bundle.train.source_index[:4])
    assert (first.val, first.test, first.num_classes, first.augmentation, first.mean, first.std) == (
        bundle.val, bundle.test, 3, bundle.augmentation, bundle.mean, bundle.std)


@pytest.mark.parametrize("channels", [1, 3])
def test_pixel_statistics_are_the_exact_mean_and_std_of_each_channel(channels: int) -> None:
    images = torch.randint(0, 256, (50, channels, 7, 5), generator=torch.Generator().manual_seed(channels), dtype=torch.uint8)
    images[0, 0, 0, 0], images[1, -1, 0, 0] = 0, 255  # both ends of the histogram
    mean, std = pixel_statistics(images)
    exact = images.double()
    assert mean.shape == std.shape == (1, channels, 1, 1) and mean.dtype == std.dtype == torch.float32
    assert torch.equal(mean, exact.mean(dim=(0, 2, 3), keepdim=True).float())
    assert torch.allclose(std.double(), exact.std(dim=(0, 2, 3), keepdim=True), rtol=1e-7, atol=0)


def test_float_images_are_normalized_per_channel_with_the_training_statistics() -> None:
    # Synthetic data (FakeData, the digits) comes as floats: no histogram, the same per-channel rule.
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(30, 3, 4, 5, generator=generator) * torch.tensor([1.0, 5.0, 20.0])[None, :, None, None]
    data = RawImages(images + torch.tensor([0.0, 3.0, -7.0])[None, :, None, None], torch.arange(30) % 3)
    bundle = split_train_val(data, num_classes=3, val_fraction=0.2, seed=1)
    pixels = data.images[bundle.train.source_index]
    mean, std = pixels.mean(dim=(0, 2, 3), keepdim=True), pixels.std(dim=(0, 2, 3), keepdim=True)
    assert bundle.mean == pytest.approx(mean.flatten().tolist()) and bundle.std == pytest.approx(std.flatten().tolist())
    assert torch.allclose(bundle.train.images, (pixels - mean) / std, atol=1e-6)
    assert torch.allclose(bundle.val.images, (data.images[bundle.val.source_index] - mean) / std, atol=1e-6)


def test_take_gives_the_rows_of_advanced_indexing_in_the_same_memory_format() -> None:
    nhwc = torch.channels_last
    images = torch.randn(10, 3, 4, 5, generator=torch.Generator().manual_seed(0))
    index = torch.tensor([7, 2, 2, 9])
    for source in (images, images.contiguous(memory_format=nhwc)):
        taken = take(source, index)
        assert torch.equal(taken, images[index])
        assert taken.is_contiguous(memory_format=nhwc) == source.is_contiguous(memory_format=nhwc)
        assert taken.is_contiguous() == source.is_contiguous()
    assert not take(images.contiguous(memory_format=nhwc), index).is_contiguous()
    transposed = torch.arange(12.0).reshape(3, 4).t()  # (4, 3), neither layout above
    assert torch.equal(take(transposed, torch.tensor([3, 0])), transposed[torch.tensor([3, 0])])
    assert torch.equal(take(torch.arange(10), index), index)


def test_take_gathers_channels_last_batches_with_index_select_too(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, ...]] = []
    real = torch.index_select

    def spy(tensor: torch.Tensor, dim: int, index: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(tensor.shape))
        return real(tensor, dim, index)

    monkeypatch.setattr(torch, "index_select", spy)
    nhwc = torch.randn(10, 3, 4, 5).contiguous(memory_format=torch.channels_last)
    take(nhwc, torch.tensor([1, 2]))
    assert calls == [(10, 4, 5, 3)]  # the (N, H, W, C) view, not advanced indexing's slower path


def test_crop_and_flip_keeps_a_channels_last_batch_channels_last_with_the_same_values() -> None:
    images = torch.randn(6, 3, 5, 5, generator=torch.Generator().manual_seed(1))
    plain = crop_and_flip(images, 2, True, torch.Generator().manual_seed(2))
    nhwc = crop_and_flip(images.contiguous(memory_format=torch.channels_last), 2, True, torch.Generator().manual_seed(2))
    assert torch.equal(plain, nhwc) and plain.is_contiguous()
    assert nhwc.is_contiguous(memory_format=torch.channels_last) and not nhwc.is_contiguous()


def test_a_constant_channel_normalizes_to_zeros_not_nan() -> None:
    images = torch.full((8, 1, 2, 2), 7, dtype=torch.uint8)
    bundle = split_train_val(RawImages(images, torch.zeros(8, dtype=torch.int64)), num_classes=1, val_fraction=0.25, seed=0)
    assert torch.equal(bundle.train.images, torch.zeros(6, 1, 2, 2))
    assert bundle.std == pytest.approx((1e-8,))


def test_moving_a_bundle_keeps_every_field() -> None:
    augmentation = Augmentation(crop_padding=1)
    bundle = split_train_val(raw(12, channels=3), num_classes=3, val_fraction=0.25, seed=0, test=raw(4, channels=3),
                             augmentation=augmentation)
    for moved in (bundle.to(torch.device("cpu")), bundle.to_memory_format(torch.channels_last)):
        assert (moved.num_classes, moved.augmentation, moved.mean, moved.std) == (3, augmentation, bundle.mean, bundle.std)
        assert moved.test is not None and bundle.test is not None
        for before, after in [(bundle.train, moved.train), (bundle.val, moved.val), (bundle.test, moved.test)]:
            assert torch.equal(before.images, after.images) and torch.equal(before.labels, after.labels)
            assert torch.equal(before.source_index, after.source_index) and len(after) == len(before)
    assert split_train_val(raw(4), num_classes=3, val_fraction=0.25, seed=0).to(torch.device("cpu")).test is None


def test_augmentation_is_enabled_by_either_part_and_checks_its_padding() -> None:
    assert [Augmentation(crop_padding=1).enabled, Augmentation(horizontal_flip=True).enabled] == [True, True]
    assert not Augmentation(crop_padding=0).enabled
    with pytest.raises(ConfigError, match=r"^dataset.crop_padding=-1: must be >= 0$"):
        Augmentation(crop_padding=-1)


def test_a_non_finite_padding_from_python_is_refused_naming_the_field() -> None:
    # mypy refuses a float here; a script without it gets the same one line as a bad override.
    with pytest.raises(ConfigError, match=r"^dataset\.crop_padding=nan: must be a finite number$"):
        Augmentation(crop_padding=float("nan"))  # type: ignore[arg-type]


def test_crop_takes_the_window_at_the_drawn_offsets_and_can_reach_every_one() -> None:
    images = torch.randn(200, 2, 5, 6)
    padding = 2
    cropped = Augmentation(crop_padding=padding)(images, torch.Generator().manual_seed(1))
    draws = torch.Generator().manual_seed(1)
    top = torch.randint(0, 2 * padding + 1, (200,), generator=draws)
    left = torch.randint(0, 2 * padding + 1, (200,), generator=draws)
    padded = torch.nn.functional.pad(images, (padding,) * 4)
    for i in range(200):
        t, l = int(top[i]), int(left[i])
        assert torch.equal(cropped[i], padded[i, :, t : t + 5, l : l + 6])
    assert set(top.tolist()) == set(left.tolist()) == set(range(5))  # all offsets, 0..2p


def test_flip_mirrors_exactly_the_images_whose_draw_is_below_one_half() -> None:
    images = torch.randn(100, 1, 3, 4)
    flipped = Augmentation(horizontal_flip=True)(images, torch.Generator().manual_seed(5))
    chosen = torch.rand(100, generator=torch.Generator().manual_seed(5)) < 0.5
    for i in range(100):
        assert torch.equal(flipped[i], images[i].flip(2) if chosen[i] else images[i])


def test_crop_alone_does_not_flip_and_flip_alone_does_not_crop() -> None:
    images = torch.randn(50, 1, 4, 4)
    only_flip = Augmentation(horizontal_flip=True)(images, torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) or torch.equal(a, b.flip(2)) for a, b in zip(only_flip, images, strict=True))
    only_crop = Augmentation(crop_padding=1)(images, torch.Generator().manual_seed(0))
    assert not torch.equal(only_crop, images)
    assert torch.equal(Augmentation()(images, torch.Generator()), images)


# --- optimizers: every range check at construction, with its message ------------------------

from typedexp.specs.optim import SGD, Adam, AdamW  # noqa: E402


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: SGD(lr=-1.0), r"optim.lr=-1.0: must be >= 0"),
        (lambda: SGD(momentum=-0.5), r"optim.momentum=-0.5: must be >= 0"),
        (lambda: SGD(weight_decay=-0.1), r"optim.weight_decay=-0.1: must be >= 0"),
        (lambda: SGD(momentum=0.0, nesterov=True), r"optim.nesterov=true needs optim.momentum > 0"),
        (lambda: Adam(lr=-1.0), r"optim.lr=-1.0: must be >= 0"),
        (lambda: Adam(eps=-1e-8), r"optim.eps=-1e-08: must be >= 0"),
        (lambda: Adam(weight_decay=-0.1), r"optim.weight_decay=-0.1: must be >= 0"),
        (lambda: Adam(beta1=1.0), r"optim.beta1=1.0: must be in \[0, 1\)"),
        (lambda: Adam(beta1=-0.1), r"optim.beta1=-0.1: must be in \[0, 1\)"),
        (lambda: Adam(beta2=1.0), r"optim.beta2=1.0: must be in \[0, 1\)"),
        (lambda: AdamW(beta2=1.5), r"optim.beta2=1.5: must be in \[0, 1\)"),
        (lambda: AdamW(lr=-2.0), r"optim.lr=-2.0: must be >= 0"),
        (lambda: SGD(lr=float("nan")), r"optim.lr=nan: must be a finite number$"),
        (lambda: Adam(eps=float("inf")), r"optim.eps=inf: must be a finite number$"),
        (lambda: AdamW(weight_decay=float("-inf")), r"optim.weight_decay=-inf: must be a finite number$"),
    ],
)
def test_out_of_range_optimizer_fields_name_the_field_and_the_range(make: Callable[[], object], message: str) -> None:
    with pytest.raises(ConfigError, match=f"^{message}$"):
        make()


def test_the_edges_of_each_optimizer_range_are_accepted() -> None:
    accepted: list[object] = [SGD(lr=0.0, momentum=0.0, weight_decay=0.0), SGD(momentum=1.0, nesterov=True)]
    accepted += [Adam(lr=0.0, beta1=0.0, beta2=0.0, eps=0.0, weight_decay=0.0), AdamW(beta1=0.999999)]
    assert len(accepted) == 4  # each constructed without a ConfigError


def test_augmentation_keeps_every_draw_on_the_images_device() -> None:
    # The "meta" device stands in for a GPU: mixing it with CPU tensors raises, as CUDA would.
    images = torch.randn(4, 3, 5, 5, device="meta")
    for augmentation in (Augmentation(crop_padding=2), Augmentation(horizontal_flip=True)):
        out = augmentation(images, torch.Generator().manual_seed(0))
        assert (out.device.type, out.shape) == ("meta", images.shape)


def test_moving_a_bundle_moves_images_and_labels_of_every_split() -> None:
    bundle = split_train_val(raw(12), num_classes=3, val_fraction=0.25, seed=0, test=raw(4))
    moved = bundle.to(torch.device("meta"))  # stands in for a GPU
    assert moved.test is not None
    for split in (moved.train, moved.val, moved.test):
        assert (split.images.device.type, split.labels.device.type) == ("meta", "meta")
        assert split.source_index.device.type == "cpu"  # only used on the host, by tests


# --- checkpoints: every refusal names the file and the reason; what a save writes -----------

import signal  # noqa: E402
from pathlib import Path  # noqa: E402

from typedexp.data import FakeData  # noqa: E402
from typedexp.engine import TrainerSettings, seed_everything  # noqa: E402
from typedexp.engine.checkpoint import (  # noqa: E402
    FORMAT,
    Checkpointer,
    LoopPosition,
    model_difference,
    read_checkpoint,
    restore_rng_states,
    rng_states,
)
from typedexp.engine.settings import BestMode, Precision, Progress  # noqa: E402
from typedexp.core.errors import CheckpointError, Interrupted, TrainingDiverged  # noqa: E402


def checkpointer(directory: Path, hidden: tuple[int, ...] = (8,), **settings: object) -> Checkpointer:
    data = FakeData(num_samples=40).load()
    generator = seed_everything(0)
    model = MLP(hidden=hidden).build(data.input_shape, data.num_classes)
    optimizer = SGD().build(model.parameters())
    return Checkpointer(directory, model=model, optimizer=optimizer, generator=generator,
                        settings=TrainerSettings(progress=Progress.off, **settings),  # type: ignore[arg-type]
                        config={"seed": 0}, metrics_file=directory / "metrics.jsonl")


def test_a_saved_checkpoint_reads_back_field_by_field(tmp_path: Path) -> None:
    saver = checkpointer(tmp_path)
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n')
    saver.extra["tracker_run_id"] = "abc"
    window = (torch.tensor([1.5, 2.5]), torch.tensor(3), 7)
    order = torch.randperm(32)
    saver.save(LoopPosition(2, 3, 9, order, window, {"val/acc": 0.25}))
    loaded = read_checkpoint(saver.last)
    assert (loaded.position.epoch, loaded.position.batch, loaded.position.step) == (2, 3, 9)
    assert loaded.position.order is not None and torch.equal(loaded.position.order, order)
    assert loaded.position.window is not None
    assert torch.equal(loaded.position.window[0], window[0]) and int(loaded.position.window[1]) == 3
    assert loaded.position.window[2] == 7 and loaded.position.latest == {"val/acc": 0.25}
    assert loaded.config == {"seed": 0} and loaded.best_value is None  # not an epoch's end
    assert loaded.extra == {"tracker_run_id": "abc", "metrics_bytes": 12}
    assert loaded.model.keys() == saver.model.state_dict().keys()
    assert all(torch.equal(loaded.model[k], v) for k, v in saver.model.state_dict().items())
    assert loaded.optimizer["param_groups"] == saver.optimizer.state_dict()["param_groups"]
    assert not saver.best.exists() and saver.saved == saver.last
    raw = torch.load(saver.last, weights_only=True)
    assert raw["format"] == FORMAT and raw["scheduler"] is None
    saver.save(LoopPosition(3, 0, 12, latest={"val/acc": 0.5}), epoch_end=True)
    assert read_checkpoint(saver.best).best_value == 0.5 and read_checkpoint(saver.last).position.order is None


def test_no_metrics_file_records_zero_bytes(tmp_path: Path) -> None:
    saver = checkpointer(tmp_path)
    saver.save(LoopPosition(1, 0, 0))
    assert read_checkpoint(saver.last).extra["metrics_bytes"] == 0


def test_restore_puts_back_the_model_the_optimizer_and_the_random_states(tmp_path: Path) -> None:
    saver = checkpointer(tmp_path)
    saver.save(LoopPosition(2, 0, 5, latest={"val/acc": 0.5}), epoch_end=True)
    expected_draw = torch.rand(3, generator=saver.generator)
    other = checkpointer(tmp_path / "other")
    with torch.no_grad():
        for p in other.model.parameters():
            p.add_(1.0)
    other.generator.manual_seed(99)
    position = other.restore(read_checkpoint(saver.last))
    assert (position.epoch, position.step) == (2, 5) and other.best_value == 0.5 and other.saved == saver.last
    assert all(torch.equal(a, b) for a, b in zip(other.model.parameters(), saver.model.parameters(), strict=True))
    assert torch.equal(torch.rand(3, generator=other.generator), expected_draw)


def test_rng_states_round_trip_every_source(tmp_path: Path) -> None:
    import random

    import numpy as np

    generator = torch.Generator().manual_seed(1)
    states = rng_states(generator)
    draws = (random.random(), float(np.random.rand()), float(torch.rand(1)), float(torch.rand(1, generator=generator)))
    restore_rng_states(states, generator)
    assert draws == (random.random(), float(np.random.rand()), float(torch.rand(1)), float(torch.rand(1, generator=generator)))
    with pytest.raises(CheckpointError, match="^the checkpoint's random states are missing or malformed$"):
        restore_rng_states({**states, "python": [1, 2]}, generator)
    with pytest.raises(CheckpointError, match="random states"):
        restore_rng_states({k: v for k, v in states.items() if k != "data"}, generator)


def write(path: Path, payload: object) -> Path:
    torch.save(payload, path)
    return path


def test_each_unusable_checkpoint_is_refused_with_its_reason(tmp_path: Path) -> None:
    saver = checkpointer(tmp_path)
    saver.save(LoopPosition(1, 0, 0))
    good = torch.load(saver.last, weights_only=True)
    cases: list[tuple[Path, str]] = [
        (tmp_path / "nowhere.pt", "no such checkpoint file"),
        (write(tmp_path / "list.pt", [1, 2]), f"not a typedexp checkpoint \\(no '{FORMAT}' marker\\)"),
        (write(tmp_path / "noformat.pt", {**good, "format": "other"}), "not a typedexp checkpoint"),
        (write(tmp_path / "nomodel.pt", {k: v for k, v in good.items() if k != "model"}),
         "the checkpoint's 'model' is missing or malformed"),
        (write(tmp_path / "badrng.pt", {**good, "rng": [1]}), "the checkpoint's 'rng' is missing or malformed"),
        (write(tmp_path / "noextra.pt", {k: v for k, v in good.items() if k != "extra"}),
         "the checkpoint's 'extra' is missing or malformed"),
        (write(tmp_path / "noopt.pt", {k: v for k, v in good.items() if k != "optimizer"}),
         "the checkpoint's 'optimizer' is missing or malformed"),
        (write(tmp_path / "noconfig.pt", {k: v for k, v in good.items() if k != "config"}),
         "the checkpoint's 'config' is missing or malformed"),
        (write(tmp_path / "nopos.pt", {**good, "position": {"epoch": 1}}), "the checkpoint's 'position' is malformed"),
        (write(tmp_path / "notensor.pt", {**good, "model": {**good["model"], "0.weight": [1.0]}}),
         r"a malformed checkpoint \(the model state holds values that are not tensors\)"),
        (write(tmp_path / "schedlist.pt", {**good, "scheduler": [1]}),
         r"a malformed checkpoint \(the scheduler state is not a mapping\)"),
    ]
    bad_extras: list[dict[str, object]] = [
        {"metrics_bytes": -1}, {"metrics_bytes": "12"}, {"metrics_bytes": None}, {"tracker_id": 5},
        {"tracker_id": ["run"]},
    ]
    for number, extra in enumerate(bad_extras):
        cases.append((write(tmp_path / f"extra{number}.pt", {**good, "extra": extra}),
                      r"a malformed checkpoint \(extra.metrics_bytes or extra.tracker_id is malformed\)"))
    (tmp_path / "garbage.pt").write_bytes(b"\x00" * 10)
    cases.append((tmp_path / "garbage.pt", r"not a readable checkpoint \(truncated or corrupt: "))
    for path, reason in cases:
        with pytest.raises(CheckpointError, match=f"^resume={re.escape(str(path))}: {reason}"):
            read_checkpoint(path)


def test_extra_may_leave_out_the_metrics_size_and_the_tracker_run(tmp_path: Path) -> None:
    saver = checkpointer(tmp_path)
    saver.save(LoopPosition(1, 0, 0))
    good = torch.load(saver.last, weights_only=True)
    for extra in ({}, {"tracker_id": None}, {"metrics_bytes": 0, "tracker_id": "run-1"}):
        assert read_checkpoint(write(tmp_path / "extra.pt", {**good, "extra": extra})).extra == extra


def test_optimizer_parameter_ids_must_be_distinct_ints_one_per_parameter(tmp_path: Path) -> None:
    saver = checkpointer(tmp_path)
    saver.save(LoopPosition(1, 0, 0))
    good = torch.load(saver.last, weights_only=True)
    count = len(good["optimizer"]["param_groups"][0]["params"])
    wrong = "optimizer.param_groups' parameter lists do not match this model"
    for ids in ([[0]] * count, [0] * count, [str(i) for i in range(count)], list(range(count - 1)), [True, *range(1, count)]):
        optimizer = {**good["optimizer"], "param_groups": [{**good["optimizer"]["param_groups"][0], "params": ids}]}
        path = write(tmp_path / "ids.pt", {**good, "optimizer": optimizer})
        with pytest.raises(CheckpointError, match=f"a malformed checkpoint \\({re.escape(wrong)}\\)"):
            checkpointer(tmp_path / "other").restore(read_checkpoint(path))
    # Two groups that name the same parameter: each list alone is fine, together they are not.
    other = checkpointer(tmp_path / "groups")
    first, second, *rest = other.model.parameters()
    other.optimizer = torch.optim.SGD([{"params": [first, second]}, {"params": rest}], lr=0.1)
    groups = other.optimizer.state_dict()["param_groups"]
    shared = [{**groups[0], "params": [0, 1]}, {**groups[1], "params": list(range(1, 1 + len(rest)))}]
    path = write(tmp_path / "shared.pt", {**good, "optimizer": {"state": {}, "param_groups": shared}})
    with pytest.raises(CheckpointError, match=re.escape(wrong)):
        other.restore(read_checkpoint(path))


def test_an_optimizer_that_refuses_its_state_is_named_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    saver = checkpointer(tmp_path)
    saver.save(LoopPosition(1, 0, 0))
    other = checkpointer(tmp_path / "other")

    def refuse(state: object) -> None:
        raise ValueError("loaded state dict has a different number of parameter groups")

    monkeypatch.setattr(other.optimizer, "load_state_dict", refuse)
    expected = (f"resume={saver.last}: the checkpoint's optimizer state does not fit "
                "(loaded state dict has a different number of parameter groups)")
    with pytest.raises(CheckpointError, match=f"^{re.escape(expected)}$"):
        other.restore(read_checkpoint(saver.last))


def test_a_best_value_is_read_back_as_a_float(tmp_path: Path) -> None:
    saver = checkpointer(tmp_path)
    saver.save(LoopPosition(1, 0, 0))
    good = torch.load(saver.last, weights_only=True)
    assert read_checkpoint(write(tmp_path / "int.pt", {**good, "best_value": 2})).best_value == 2.0
    with pytest.raises(CheckpointError, match=r"a malformed checkpoint \(best_value='x' is not a number\)"):
        read_checkpoint(write(tmp_path / "str.pt", {**good, "best_value": "x"}))


def test_model_difference_names_the_layers_or_the_shapes() -> None:
    a = {"0.weight": torch.zeros(2, 3), "0.bias": torch.zeros(2)}
    assert model_difference(a, dict(a)) is None
    assert model_difference(a, {"0.weight": torch.zeros(2, 3), "1.bias": torch.zeros(2)}) == (
        "the checkpoint's model has other layers (only here: 1.bias; only in the checkpoint: 0.bias)"
    )
    assert model_difference({"0.weight": a["0.weight"]}, a) == (
        "the checkpoint's model has other layers (only here: 0.bias; only in the checkpoint: -)"
    )
    assert model_difference(a, {**a, "0.bias": torch.zeros(4)}) == (
        "the checkpoint's 0.bias has shape (2,), this model's has (4,)"
    )


def test_restore_refuses_another_model_or_optimizer_naming_the_file(tmp_path: Path) -> None:
    saver = checkpointer(tmp_path)
    saver.save(LoopPosition(1, 0, 0))
    with pytest.raises(CheckpointError, match=f"^resume={re.escape(str(saver.last))}: the checkpoint's 1.weight has shape"):
        checkpointer(tmp_path / "wide", hidden=(9,)).restore(read_checkpoint(saver.last))
    other = checkpointer(tmp_path / "groups")
    first, *rest = other.model.parameters()
    other.optimizer = torch.optim.SGD([{"params": [first]}, {"params": rest}], lr=0.1)  # two groups, not one
    expected = "a malformed checkpoint \\(the optimizer has 1 parameter groups, this run's 2\\)"
    with pytest.raises(CheckpointError, match=f"^resume={re.escape(str(saver.last))}: {expected}"):
        other.restore(read_checkpoint(saver.last))


def test_due_every_n_steps_or_when_a_signal_asks(tmp_path: Path) -> None:
    assert [checkpointer(tmp_path, checkpoint_every=3).due(step) for step in range(1, 7)] == [
        False, False, True, False, False, True]
    never = checkpointer(tmp_path)
    assert not any(never.due(step) for step in range(1, 50))
    never.stop_signal = signal.SIGTERM
    assert never.due(1)


def test_a_stop_signal_saves_then_raises_with_the_way_back(tmp_path: Path) -> None:
    saver = checkpointer(tmp_path / "checkpoints")
    saver.stop_signal = signal.SIGINT
    with pytest.raises(Interrupted, match=(
        f"^interrupted by SIGINT at epoch 2, step 7; saved {re.escape(str(saver.last))}; "
        f"continue with: typedexp resume={re.escape(str(tmp_path))}$")) as stopped:
        saver.save(LoopPosition(2, 1, 7))
    assert stopped.value.exit_code == 130 and saver.last.exists()


def test_non_finite_weights_or_window_are_never_saved(tmp_path: Path) -> None:
    saver = checkpointer(tmp_path)
    bad_window = (torch.tensor([1.0, float("inf")]), torch.tensor(0), 2)
    with pytest.raises(TrainingDiverged, match=(
            "^train/loss became non-finite by epoch 1, step 4; no checkpoint was saved yet; "
            "lower optim.lr or set trainer.clip_grad_norm$")):
        saver.save(LoopPosition(1, 2, 4, window=bad_window))
    saver.save(LoopPosition(1, 2, 4, window=(torch.tensor([1.0]), torch.tensor(0), 1)))
    with torch.no_grad():
        next(saver.model.parameters())[0, 0] = float("nan")
    with pytest.raises(TrainingDiverged, match=(
            f"^the weights became non-finite by epoch 1, step 5; kept the last good checkpoint "
            f"{re.escape(str(saver.last))}; lower optim.lr")):
        saver.save(LoopPosition(1, 3, 5))
    assert read_checkpoint(saver.last).position.step == 4
    assert str(saver.diverged("val/loss", float("nan"), epoch=3, step=9)) == (
        f"val/loss became nan at epoch 3, step 9 (checked every trainer.log_every=10 steps); "
        f"kept the last good checkpoint {saver.last}; lower optim.lr or set trainer.clip_grad_norm")


def test_best_needs_a_known_metric_and_compares_by_mode(tmp_path: Path) -> None:
    saver = checkpointer(tmp_path, best_metric="val/loss", best_mode=BestMode.min)
    with pytest.raises(ConfigError, match=r"^trainer.best_metric=val/loss: no such metric; choose one of: a, b$"):
        saver.save(LoopPosition(2, 0, 1, latest={"b": 1.0, "a": 2.0}), epoch_end=True)
    for value, best in [(2.0, 2.0), (3.0, 2.0), (1.0, 1.0), (1.0, 1.0)]:
        saver.save(LoopPosition(2, 0, 1, latest={"val/loss": value}), epoch_end=True)
        assert saver.best_value == best and read_checkpoint(saver.best).best_value == best


# --- the training loop: mid-epoch resume in process, windows, augmentation, test split --------

import dataclasses  # noqa: E402
import io  # noqa: E402
from collections.abc import Mapping  # noqa: E402

from rich.console import Console  # noqa: E402

from tests.helpers import RecordingTracker  # noqa: E402
from typedexp.engine import fit  # noqa: E402
from typedexp.engine import loop as engine_loop  # noqa: E402
from typedexp.engine.loop import _Window  # noqa: E402


class CrashingTracker(RecordingTracker):
    """Records points, and dies (as a SIGKILL would) when asked to log ``crash_at``."""

    def __init__(self, crash_at: int | None = None) -> None:
        super().__init__()
        self.crash_at = crash_at

    def log(self, metrics: Mapping[str, float], *, step: int, epoch: int) -> None:
        if step == self.crash_at:
            raise RuntimeError("killed")
        super().log(metrics, step=step, epoch=epoch)


def training(directory: Path, tracker: RecordingTracker, *, resume: bool = False, checkpoint_every: int | None = 3,
             log_every: int = 2, epochs: int = 2, data: DataBundle | None = None) -> tuple[nn.Module, float]:
    """A small run: 320 training images in batches of 64 (5 a epoch); returns the model and loss."""
    data = data or FakeData(num_samples=400, noise=2.0).load()
    generator = seed_everything(0)
    model = MLP(hidden=(16,), dropout=0.2).build(data.input_shape, data.num_classes)
    optimizer = Adam(lr=0.01).build(model.parameters())
    settings = TrainerSettings(progress=Progress.off, log_every=log_every, checkpoint_every=checkpoint_every)
    checkpoints = Checkpointer(directory, model=model, optimizer=optimizer, generator=generator,
                               settings=settings, config={})
    start = checkpoints.restore(read_checkpoint(checkpoints.last)) if resume else None
    result = fit(model, optimizer, data, epochs=epochs, batch_size=64, settings=settings, tracker=tracker,
                 generator=generator, checkpoints=checkpoints, resume_from=start)
    return model, result.metrics["train/loss"]


def test_a_run_killed_mid_epoch_resumes_in_process_to_the_same_weights_and_points(tmp_path: Path) -> None:
    reference = RecordingTracker()
    expected, _ = training(tmp_path / "reference", reference)
    # Dies logging step 4: last.pt is step 3's, mid-epoch (batch 3 of 5) with step 3 in its window.
    with pytest.raises(RuntimeError, match="killed"):
        training(tmp_path / "run", CrashingTracker(crash_at=4))
    saved = read_checkpoint(tmp_path / "run" / "last.pt").position
    assert (saved.epoch, saved.batch, saved.step) == (1, 3, 3) and saved.window is not None and saved.window[2] == 64
    assert saved.latest == reference.points[0][2]  # the step-2 point, the last logged before it
    resumed = RecordingTracker()
    model, _ = training(tmp_path / "run", resumed, resume=True)
    assert resumed.points == [point for point in reference.points if point[0] > 3]
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), expected.state_dict().values(), strict=True))


@pytest.mark.parametrize("checkpoint_every", [3, 1])
def test_checkpoints_between_logged_points_change_no_logged_value(tmp_path: Path, checkpoint_every: int) -> None:
    plain, saving = RecordingTracker(), RecordingTracker()
    training(tmp_path / "plain", plain, checkpoint_every=None, log_every=4)
    training(tmp_path / "saving", saving, checkpoint_every=checkpoint_every, log_every=4)
    assert saving.points == plain.points


def test_unequal_batches_in_one_window_are_weighted_by_their_size(tmp_path: Path) -> None:
    # 336 training images in batches of 64: the epoch's last batch has 16; all 6 in one window.
    data = FakeData(num_samples=420, noise=2.0).load()
    tracker = RecordingTracker()
    training(tmp_path, tracker, checkpoint_every=None, log_every=100, epochs=1, data=data)
    (step, _, metrics), _ = tracker.points
    assert step == 6 and len(data.train) == 336

    generator = seed_everything(0)  # the same run by hand, per example
    model = MLP(hidden=(16,), dropout=0.2).build(data.input_shape, data.num_classes)
    optimizer = Adam(lr=0.01).build(model.parameters())
    order = torch.randperm(336, generator=generator)
    total, correct = 0.0, 0
    for start in range(0, 336, 64):
        index = order[start : start + 64]
        logits = model(data.train.images[index])
        loss = torch.nn.functional.cross_entropy(logits, data.train.labels[index], reduction="sum")
        total += float(loss.detach())
        correct += int((logits.argmax(1) == data.train.labels[index]).sum())
        optimizer.zero_grad()
        torch.autograd.backward(loss / len(index))
        optimizer.step()
    assert metrics["train/loss"] == pytest.approx(total / 336, rel=1e-5)
    assert metrics["train/acc"] == correct / 336


def test_a_window_lives_on_its_device_and_counts_in_int64() -> None:
    meta = torch.device("meta")  # stands in for a GPU: mixing it with CPU tensors raises
    window = _Window.zeros(meta)
    assert (window.device, window.weighted.device, window.correct.device) == (meta, meta, meta)
    assert window.correct.dtype == torch.int64 and _Window.zeros(torch.device("cpu")).correct.dtype == torch.int64
    for size in (4, 2):  # unequal sizes: the size vector must be moved to the device too
        window.add(torch.zeros((), device=meta), torch.zeros(size, 3, device=meta), torch.zeros(size, dtype=torch.int64, device=meta))
    weighted, correct, count = window.totals()
    assert (weighted.device, weighted.shape, correct.device, count) == (meta, (2,), meta, 6)
    restored = _Window.restored((torch.tensor([1.0, 2.0]), torch.tensor(3), 9), meta)
    assert (restored.device, restored.weighted.device, restored.correct.device, restored.count) == (meta, meta, meta, 9)


def test_a_restored_window_resets_to_empty_after_its_first_drain() -> None:
    window = _Window.restored((torch.tensor([8.0, 16.0]), torch.tensor(5), 16), torch.device("cpu"))
    window.add(torch.tensor(1.0), torch.eye(4)[:4, :3], torch.tensor([0, 1, 2, 0]))
    assert window.drain("train") == {"train/loss": (8 + 16 + 4) / 20, "train/acc": (5 + 4) / 20}
    window.add(torch.tensor(2.0), torch.eye(4)[:4, :3], torch.tensor([1, 1, 1, 1]))
    assert window.drain("train") == {"train/loss": 2.0, "train/acc": 0.25}


def test_training_batches_are_augmented_only_when_the_data_asks(tmp_path: Path) -> None:
    data = FakeData(num_samples=200, channels=1, height=6, width=6).load()
    plain_model, _ = training(tmp_path / "a", RecordingTracker(), checkpoint_every=None, data=data, epochs=1)
    augmented = dataclasses.replace(data, augmentation=Augmentation(crop_padding=2, horizontal_flip=True))
    seen: list[torch.Tensor] = []
    original = Augmentation.__call__

    def recording(self: Augmentation, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        assert isinstance(generator, torch.Generator)  # the run's data generator, not the global RNG
        out = original(self, images, generator)
        seen.append(out)
        return out

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Augmentation, "__call__", recording)
        augmented_model, _ = training(tmp_path / "b", RecordingTracker(), checkpoint_every=None, data=augmented, epochs=1)
        assert len(seen) == 3 and all(batch.shape[1:] == (1, 6, 6) for batch in seen)
        training(tmp_path / "c", RecordingTracker(), checkpoint_every=None, data=data, epochs=1)
        assert len(seen) == 3  # not called when nothing is enabled
    assert any(not torch.equal(a, b) for a, b in zip(plain_model.parameters(), augmented_model.parameters(), strict=True))


def test_the_test_split_is_evaluated_once_at_the_end_and_logged(tmp_path: Path) -> None:
    data = FakeData(num_samples=200).load()
    with_test = dataclasses.replace(data, test=data.val)
    tracker = RecordingTracker()
    model, _ = training(tmp_path, tracker, checkpoint_every=None, data=with_test, epochs=2)
    step, epoch, metrics = tracker.points[-1]
    assert (step, epoch, set(metrics)) == (tracker.points[-2][0], 2, {"test/loss", "test/acc"})
    assert metrics == engine_loop.evaluate(model, data.val, batch_size=1024, prefix="test")
    assert sum("test/acc" in point[2] for point in tracker.points) == 1


def test_fit_reports_its_steps_epochs_and_a_plausible_time() -> None:
    data = FakeData(num_samples=100).load()
    model = MLP(hidden=(4,)).build(data.input_shape, data.num_classes)
    result = fit(model, SGD().build(model.parameters()), data, epochs=2, batch_size=40,
                 settings=TrainerSettings(progress=Progress.off), tracker=RecordingTracker(),
                 generator=torch.Generator().manual_seed(0))
    assert (result.steps, result.epochs) == (4, 2) and 0 < result.seconds < 600
    assert set(result.metrics) == {"train/loss", "train/acc", "val/loss", "val/acc"}


def test_the_progress_bar_counts_every_step_and_shows_the_loss() -> None:
    data = FakeData(num_samples=100).load()
    model = MLP(hidden=(4,)).build(data.input_shape, data.num_classes)
    screen = io.StringIO()
    fit(model, SGD().build(model.parameters()), data, epochs=2, batch_size=40,
        settings=TrainerSettings(progress=Progress.on, log_every=1), tracker=RecordingTracker(),
        generator=torch.Generator().manual_seed(0), console=Console(file=screen, force_terminal=True, width=120))
    shown = screen.getvalue()
    assert re.search(r"(?<![\d.])4/4(?![\d.])", shown) and re.search(r"epoch 2/2 loss \d\.\d{4}", shown)
    screen = io.StringIO()  # auto: shown because this console is a terminal
    fit(model, SGD().build(model.parameters()), data, epochs=1, batch_size=40,
        settings=TrainerSettings(progress=Progress.auto, log_every=1), tracker=RecordingTracker(),
        generator=torch.Generator().manual_seed(0), console=Console(file=screen, force_terminal=True, width=120))
    assert re.search(r"(?<![\d.])2/2(?![\d.])", screen.getvalue())
    # A resumed run's bar counts only the steps left: here 2 epochs of 3 batches, from step 3.
    screen = io.StringIO()
    fit(model, SGD().build(model.parameters()), data, epochs=2, batch_size=30,
        settings=TrainerSettings(progress=Progress.on, log_every=1), tracker=RecordingTracker(),
        generator=torch.Generator().manual_seed(0), console=Console(file=screen, force_terminal=True, width=120),
        resume_from=LoopPosition(2, 0, 3))
    assert re.search(r"(?<![\d.])3/3(?![\d.])", screen.getvalue())


@pytest.mark.parametrize("with_checkpoints", [False, True])
def test_a_non_finite_validation_loss_stops_training_naming_epoch_and_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, with_checkpoints: bool
) -> None:
    values = iter([0.5, float("nan")])
    monkeypatch.setattr(engine_loop, "evaluate", lambda *a, **k: {"val/loss": next(values), "val/acc": 0.1})
    data = FakeData(num_samples=100).load()
    model = MLP(hidden=(4,)).build(data.input_shape, data.num_classes)
    optimizer = SGD().build(model.parameters())
    settings = TrainerSettings(progress=Progress.off, log_every=3)
    generator = torch.Generator().manual_seed(0)
    checkpoints = Checkpointer(tmp_path, model=model, optimizer=optimizer, generator=generator, settings=settings,
                               config={}) if with_checkpoints else None
    kept = f"kept the last good checkpoint {tmp_path / 'last.pt'}; " if with_checkpoints else ""
    with pytest.raises(TrainingDiverged, match=re.escape(
            f"val/loss became nan at epoch 2, step 4 (checked every trainer.log_every=3 steps); {kept}"
            "lower optim.lr or set trainer.clip_grad_norm")):
        fit(model, optimizer, data, epochs=3, batch_size=40, settings=settings, tracker=RecordingTracker(),
            generator=generator, checkpoints=checkpoints)


def test_a_non_finite_training_loss_without_checkpoints_names_the_setting() -> None:
    data = FakeData(num_samples=100).load()
    model = MLP(hidden=(4,)).build(data.input_shape, data.num_classes)
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match=re.escape(
            "train/loss became nan at epoch 1, step 2 (checked every trainer.log_every=2 steps); "
            "lower optim.lr or set trainer.clip_grad_norm")):
        fit(model, SGD().build(model.parameters()), data, epochs=1, batch_size=40,
            settings=TrainerSettings(progress=Progress.off, log_every=2), tracker=RecordingTracker(),
            generator=torch.Generator().manual_seed(0))


def test_write_atomically_makes_missing_parent_directories(tmp_path: Path) -> None:
    from typedexp.engine.checkpoint import write_atomically

    target = tmp_path / "a" / "b" / "last.pt"
    write_atomically({"format": FORMAT}, target)
    assert torch.load(target, weights_only=True) == {"format": FORMAT}


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (RuntimeError("first words. then more\nsecond line"), "first words"),
        (RuntimeError("x" * 150 + ". tail"), "x" * 100),
        (RuntimeError(""), "RuntimeError"),
        (EOFError("  \n"), "EOFError"),
    ],
)
def test_an_unreadable_checkpoint_gives_the_first_sentence_of_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: Exception, reason: str
) -> None:
    path = tmp_path / "last.pt"
    path.write_bytes(b"anything")

    def fails(*args: object, **kwargs: object) -> object:
        raise error

    monkeypatch.setattr(torch, "load", fails)
    with pytest.raises(CheckpointError) as refused:
        read_checkpoint(path)
    assert str(refused.value) == f"resume={path}: not a readable checkpoint (truncated or corrupt: {reason})"


def test_a_position_order_that_is_not_a_tensor_reads_back_as_none(tmp_path: Path) -> None:
    saver = checkpointer(tmp_path)
    saver.save(LoopPosition(1, 2, 2, torch.arange(4)))
    raw = torch.load(saver.last, weights_only=True)
    raw["position"]["order"] = [3, 1, 2, 0]
    assert read_checkpoint(write(tmp_path / "list-order.pt", raw)).position.order is None


def test_model_difference_lists_every_name_on_each_side() -> None:
    a = {"0.weight": torch.zeros(1), "0.bias": torch.zeros(1)}
    assert model_difference({**a, "1.weight": torch.zeros(1), "1.bias": torch.zeros(1)}, a) == (
        "the checkpoint's model has other layers (only here: -; only in the checkpoint: 1.weight, 1.bias)"
    )
    assert model_difference({}, a) == (
        "the checkpoint's model has other layers (only here: 0.weight, 0.bias; only in the checkpoint: -)"
    )


def test_a_mid_epoch_position_without_a_window_starts_an_empty_one() -> None:
    data = FakeData(num_samples=100).load()  # 80 training images: 2 batches of 40
    model = MLP(hidden=(4,)).build(data.input_shape, data.num_classes)
    tracker = RecordingTracker()
    result = fit(model, SGD().build(model.parameters()), data, epochs=1, batch_size=40,
                 settings=TrainerSettings(progress=Progress.off), tracker=tracker,
                 generator=torch.Generator().manual_seed(0),
                 resume_from=LoopPosition(1, 1, 1, order=torch.randperm(80)))
    assert result.steps == 2 and tracker.points[0][0] == 2  # only the second batch was trained


def test_bf16_steps_clip_the_gradient_norm_too() -> None:
    data = FakeData(num_samples=64, noise=5.0).load()

    def first_update(clip: float | None) -> float:
        seed_everything(0)
        model = MLP(hidden=(32,)).build(data.input_shape, data.num_classes)
        before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
        settings = TrainerSettings(progress=Progress.off, max_batches=1, clip_grad_norm=clip,
                                   precision=Precision.bf16)
        fit(model, SGD(lr=1.0, momentum=0.0).build(model.parameters()), data, epochs=1, batch_size=64,
            settings=settings, tracker=RecordingTracker(), generator=torch.Generator().manual_seed(0))
        return float((torch.cat([p.detach().flatten() for p in model.parameters()]) - before).norm())

    assert first_update(None) > 0.01
    assert first_update(0.01) == pytest.approx(0.01, rel=1e-3)


from typedexp.tracking.base import ConfusionMatrix, Media, PredictionSamples  # noqa: E402


@dataclasses.dataclass
class MediaRecorder(RecordingTracker):
    """A MediaTracker: keeps (kind of media, step, epoch) for each picture the engine sends."""

    media: list[tuple[str, int, int]] = dataclasses.field(default_factory=list)

    def log_media(self, media: Media, *, step: int, epoch: int) -> None:
        self.media.append((type(media).__name__, step, epoch))


def short_fit(tracker: RecordingTracker, *, epochs: int, settings: TrainerSettings,
              should_stop: engine_loop.EpochCheck | None = None) -> engine_loop.FitResult:
    """100 fake images, 80 to train in batches of 40: 2 steps an epoch unless capped."""
    data = FakeData(num_samples=100).load()
    model = MLP(hidden=(4,)).build(data.input_shape, data.num_classes)
    return fit(model, SGD().build(model.parameters()), data, epochs=epochs, batch_size=40, settings=settings,
               tracker=tracker, generator=torch.Generator().manual_seed(0), should_stop=should_stop)


def test_max_batches_caps_the_steps_of_every_epoch() -> None:
    tracker = RecordingTracker()
    result = short_fit(tracker, epochs=3, settings=TrainerSettings(progress=Progress.off, max_batches=1))
    assert result.steps == 3 and [step for step, _, metrics in tracker.points if "val/loss" in metrics] == [1, 2, 3]
    assert short_fit(RecordingTracker(), epochs=1, settings=TrainerSettings(progress=Progress.off, max_batches=9)).steps == 2


def test_the_sample_grid_comes_every_n_epochs_and_after_the_last_then_the_confusion_matrix() -> None:
    tracker = MediaRecorder()
    short_fit(tracker, epochs=3, settings=TrainerSettings(progress=Progress.off, media_every=2))
    grid, matrix = PredictionSamples.__name__, ConfusionMatrix.__name__
    assert tracker.media == [(grid, 4, 2), (grid, 6, 3), (matrix, 6, 3)]
    tracker = MediaRecorder()  # media_every beyond the run: the last epoch still gets its grid
    short_fit(tracker, epochs=2, settings=TrainerSettings(progress=Progress.off, media_every=5))
    assert tracker.media == [(grid, 4, 2), (matrix, 4, 2)]
    tracker = MediaRecorder()
    short_fit(tracker, epochs=2, settings=TrainerSettings(progress=Progress.off, media_every=0))
    assert tracker.media == []


def test_should_stop_is_asked_each_epoch_and_ends_the_run_where_it_says() -> None:
    asked: list[tuple[int, dict[str, float]]] = []

    def stop_after_two(epoch: int, latest: Mapping[str, float]) -> bool:
        asked.append((epoch, dict(latest)))
        return epoch == 2

    tracker = MediaRecorder()
    result = short_fit(tracker, epochs=4, settings=TrainerSettings(progress=Progress.off), should_stop=stop_after_two)
    assert [epoch for epoch, _ in asked] == [1, 2]
    assert asked[-1][1]["val/acc"] == tracker.points[-1][2]["val/acc"] and "train/loss" in asked[-1][1]
    assert (result.steps, result.epochs, result.stopped_early) == (4, 2, True)
    assert result.metrics == asked[-1][1] and 0 < result.seconds < 600
    assert all(kind != ConfusionMatrix.__name__ for kind, _, _ in tracker.media)  # the end-of-run media skipped
    never = short_fit(RecordingTracker(), epochs=2, settings=TrainerSettings(progress=Progress.off),
                      should_stop=lambda epoch, latest: False)
    assert (never.steps, never.epochs, never.stopped_early) == (4, 2, False)


from typedexp.engine.distributed import World  # noqa: E402


@dataclasses.dataclass
class WithAnotherRank(World):
    """Rank 0 of a stand-in group whose other rank always adds the same sums: no process group."""

    other: tuple[float, float, float] = (30.0, 6.0, 40.0)  # loss x count, correct, count
    steps_built: int = 0

    def sum(self, values: list[float]) -> list[float]:
        return [mine + theirs for mine, theirs in zip(values, self.other, strict=True)]

    def training_step(self, model: nn.Module, optimizer: torch.optim.Optimizer,
                      settings: TrainerSettings) -> engine_loop.StepFunction:
        self.steps_built += 1
        return super().training_step(model, optimizer, settings)


@pytest.mark.parametrize("augmented", [False, True])
def test_fit_in_a_group_trains_through_the_world_and_logs_the_sums_of_every_rank(augmented: bool) -> None:
    data = FakeData(num_samples=100).load()  # 80 to train: 2 global batches of 40 an epoch
    if augmented:  # the world augments the global batch with fit's generator, as one process does
        data = dataclasses.replace(data, augmentation=Augmentation(crop_padding=1, horizontal_flip=True))
    world = WithAnotherRank(rank=0, size=1, local_rank=0, device=torch.device("cpu"), handles_signals=False)
    runs = []
    for group in (None, world):
        generator = seed_everything(0)  # the same initial weights and order for both
        model = MLP(hidden=(4,)).build(data.input_shape, data.num_classes)
        tracker = RecordingTracker()
        fit(model, SGD().build(model.parameters()), data, epochs=1, batch_size=40,
            settings=TrainerSettings(progress=Progress.off, log_every=2), tracker=tracker,
            generator=generator, world=group)
        runs.append(tracker.points[0][2])
    alone, together = runs  # one logged window of both steps: 80 examples of this rank's own
    assert world.steps_built == 1
    assert together["train/loss"] == pytest.approx((alone["train/loss"] * 80 + 30) / 120)
    assert together["train/acc"] == pytest.approx((alone["train/acc"] * 80 + 6) / 120)
