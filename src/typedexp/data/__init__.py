"""Datasets as resident tensors: specs (configs) that load a ``DataBundle`` of normalized inputs."""

from typedexp.data.augment import Augmentation
from typedexp.data.sources import DatasetSpec, Diabetes, Digits, FakeData
from typedexp.data.tensors import DataBundle, RawImages, Split, TargetKind
from typedexp.data.vision import CIFAR10, CIFAR100, MNIST, FashionMNIST

# The `dataset` group, default first: a new dataset is a spec plus one line here.
OPTIONS: dict[str, DatasetSpec] = {
    "digits": Digits(),
    "fake": FakeData(),
    "mnist": MNIST(),
    "fashion_mnist": FashionMNIST(),
    "cifar10": CIFAR10(),
    "cifar100": CIFAR100(),
    "diabetes": Diabetes(),
}

__all__ = [
    "CIFAR10",
    "CIFAR100",
    "MNIST",
    "Augmentation",
    "DataBundle",
    "DatasetSpec",
    "Diabetes",
    "Digits",
    "FakeData",
    "FashionMNIST",
    "OPTIONS",
    "RawImages",
    "Split",
    "TargetKind",
]
