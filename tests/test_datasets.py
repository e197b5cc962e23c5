"""Datasets through torchvision's real loaders on tiny files in the real formats."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch
from torchvision import datasets, transforms

from tests.dataset_files import trust_fake_cifar, write_cifar10, write_mnist
from tests.helpers import run_cli
from typedexp import launch
from typedexp.data import CIFAR10, CIFAR100, MNIST, DataBundle, Digits, FashionMNIST
from typedexp.data.vision import CACHE_FOLDER, TorchvisionImages
from typedexp.engine import epoch_order
from typedexp.core.errors import DataError
from typedexp.tracking.jsonl import read_metrics

__all__ = ["trust_fake_cifar"]  # a fixture, used by name below


def matches_torchvision(bundle: DataBundle, source: datasets.VisionDataset, split: str) -> None:
    """Each sampled example equals torchvision's item after ToTensor + Normalize(our stats)."""
    scale = 255.0  # ToTensor maps uint8 pixels to [0, 1]; our stats are in pixel units
    to_tensor = transforms.Compose([
        transforms.ToTensor(),
        transforms.Normalize([m / scale for m in bundle.mean], [s / scale for s in bundle.std]),
    ])
    ours = {"train": bundle.train, "val": bundle.val, "test": bundle.test}[split]
    assert ours is not None
    for position in range(0, len(ours), 3):
        image, label = source[int(ours.source_index[position])]
        assert torch.allclose(to_tensor(image), ours.images[position], atol=1e-5)
        assert label == int(ours.labels[position])


@pytest.mark.parametrize("spec_type", [MNIST, FashionMNIST])
def test_mnist_family_matches_torchvision(tmp_path: Path, spec_type: type[TorchvisionImages]) -> None:
    write_mnist(tmp_path, "MNIST" if spec_type is MNIST else "FashionMNIST")
    bundle = spec_type(root=str(tmp_path), val_fraction=0.25).load()
    assert (len(bundle.train), len(bundle.val), bundle.input_shape) == (36, 12, (1, 28, 28))
    source_type = datasets.MNIST if spec_type is MNIST else datasets.FashionMNIST
    matches_torchvision(bundle, source_type(tmp_path, train=True), "train")
    matches_torchvision(bundle, source_type(tmp_path, train=True), "val")
    matches_torchvision(bundle, source_type(tmp_path, train=False), "test")


@pytest.mark.usefixtures("trust_fake_cifar")
def test_cifar10_matches_torchvision(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    bundle = CIFAR10(root=str(tmp_path)).load()
    assert bundle.input_shape == (3, 32, 32) and len(bundle.train) + len(bundle.val) == 40
    assert bundle.augmentation.crop_padding == 4 and bundle.augmentation.horizontal_flip
    matches_torchvision(bundle, datasets.CIFAR10(tmp_path, train=True), "train")
    matches_torchvision(bundle, datasets.CIFAR10(tmp_path, train=False), "test")


def test_decoded_tensors_are_cached_and_refreshed_when_files_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_mnist(tmp_path)
    first = MNIST(root=str(tmp_path)).load()
    assert sorted(p.name for p in (tmp_path / CACHE_FOLDER).iterdir()) == ["mnist-test.pt", "mnist-train.pt"]

    def no_torchvision(self: MNIST, *, train: bool) -> None:
        raise AssertionError("decoded again although the cache is valid")

    with monkeypatch.context() as patch:
        patch.setattr(MNIST, "read_with_torchvision", no_torchvision)
        cached = MNIST(root=str(tmp_path)).load()
    assert torch.equal(cached.train.images, first.train.images)
    write_mnist(tmp_path, seed=5)  # new files: the cache must not be used
    os.utime(tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte", ns=(1, 1))
    assert not torch.equal(MNIST(root=str(tmp_path)).load().train.images, first.train.images)


def test_training_on_mnist_logs_the_official_test_split(workdir: Path) -> None:
    write_mnist(workdir / "data")
    result = launch(["dataset=mnist", "epochs=2", "tracker=disabled", "batch_size=16"])
    assert {"test/acc", "test/loss"} <= set(result.metrics)
    test_points = [p for p in read_metrics(result.metrics_file) if "test/acc" in p]
    assert len(test_points) == 1 and test_points[0]["step"] == result.steps


def test_missing_dataset_is_one_line_and_fast(workdir: Path) -> None:
    done = run_cli(["dataset=cifar10", "tracker=disabled"], workdir)
    assert done.returncode == 2
    assert done.stderr_lines == [
        "typedexp: error: dataset=cifar10: no files in data/cifar-10-batches-py; run once with "
        "dataset.download=true (needs a network) or copy the extracted cifar-10-python.tar.gz "
        "(data_batch_1..5, test_batch, batches.meta) there"
    ]


def test_corrupt_cifar_is_refused_by_torchvision_checksums(workdir: Path) -> None:
    write_cifar10(workdir / "data")  # real layout, but not the real bytes: checksums fail
    done = run_cli(["dataset=cifar10", "tracker=disabled"], workdir)
    assert done.returncode == 2
    assert len(done.stderr_lines) == 1
    assert "data/cifar-10-batches-py are incomplete or corrupt" in done.stderr_lines[0]


@pytest.mark.parametrize("spec", [MNIST(root="nowhere", download=True), CIFAR100(root="nowhere", download=True)])
def test_download_without_network_is_one_clear_error(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, spec: TorchvisionImages
) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("no network in this test")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DataError, match=f"dataset={spec.name}: could not download to nowhere/"):
        spec.load()


def test_same_seed_same_split_and_batch_order() -> None:
    assert torch.equal(Digits().load().val.source_index, Digits().load().val.source_index)
    assert not torch.equal(Digits().load().val.source_index, Digits(split_seed=1).load().val.source_index)

    def order(seed: int) -> torch.Tensor:
        return epoch_order(100, torch.Generator().manual_seed(seed))

    assert torch.equal(order(3), order(3))
    assert not torch.equal(order(3), order(4))
    assert sorted(order(3).tolist()) == list(range(100))  # every example once per epoch


def test_digits_are_scikit_learns_digits() -> None:
    from sklearn.datasets import load_digits

    reference = load_digits()
    bundle = Digits().load()
    assert bundle.input_shape == (1, 8, 8) and len(bundle.train) + len(bundle.val) == 1797
    images = torch.from_numpy(reference.images).float()
    labels = torch.from_numpy(reference.target)
    for split in (bundle.train, bundle.val):
        restored = split.images[:, 0] * bundle.std[0] + bundle.mean[0]  # undo the normalization
        assert torch.allclose(restored, images[split.source_index], atol=1e-4)
        assert torch.equal(split.labels, labels[split.source_index])
