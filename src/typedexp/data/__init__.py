"""Datasets as resident tensors: specs (configs) that load a ``DataBundle`` of normalized images."""

from typedexp.data.sources import DatasetSpec, Digits, FakeData
from typedexp.data.tensors import DataBundle, Split

__all__ = ["DataBundle", "DatasetSpec", "Digits", "FakeData", "Split"]
