"""Datasets as resident tensors: specs (configs) that load a ``DataBundle`` of normalized images."""

from typedexp.data.augment import Augmentation
from typedexp.data.sources import DatasetSpec, Digits, FakeData
from typedexp.data.tensors import DataBundle, RawImages, Split
from typedexp.data.vision import CIFAR10, CIFAR100, MNIST, FashionMNIST

__all__ = [
    "CIFAR10",
    "CIFAR100",
    "MNIST",
    "Augmentation",
    "DataBundle",
    "DatasetSpec",
    "Digits",
    "FakeData",
    "FashionMNIST",
    "RawImages",
    "Split",
]
