"""Tiny dataset files in the real on-disk formats, for loading through torchvision's classes."""

from __future__ import annotations

import pickle
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from torchvision.datasets import cifar


def write_idx(path: Path, array: NDArray[np.uint8]) -> None:
    """MNIST's IDX format: magic (0x0000080<ndim>), big-endian int32 dims, then the bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(f">I{array.ndim}I", 0x0800 + array.ndim, *array.shape)
    path.write_bytes(header + array.tobytes())


def write_mnist(root: Path, folder: str = "MNIST", *, train: int = 48, test: int = 16, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    raw = root / folder / "raw"
    for prefix, count in (("train", train), ("t10k", test)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (count, 28, 28), dtype=np.uint8))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, (count,), dtype=np.uint8))


def _pickle(path: Path, entry: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(entry))


def write_cifar10(root: Path, *, per_batch: int = 8, test: int = 16, seed: int = 0) -> None:
    """cifar-10-batches-py: five training batches, a test batch, batches.meta (all pickles)."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        count = test if name == "test_batch" else per_batch
        data = rng.integers(0, 256, (count, 3 * 32 * 32), dtype=np.uint8)  # rows of R, G, B planes
        _pickle(folder / name, {"data": data, "labels": rng.integers(0, 10, count).tolist()})
    _pickle(folder / "batches.meta", {"label_names": [f"class{i}" for i in range(10)]})


def write_cifar100(root: Path, *, train: int = 40, test: int = 16, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    for name, count in (("train", train), ("test", test)):
        data = rng.integers(0, 256, (count, 3 * 32 * 32), dtype=np.uint8)
        _pickle(folder / name, {"data": data, "fine_labels": rng.integers(0, 100, count).tolist()})
    _pickle(folder / "meta", {"fine_label_names": [f"class{i}" for i in range(100)]})


def write_all(root: Path) -> None:
    write_mnist(root, "MNIST")
    write_mnist(root, "FashionMNIST", seed=1)
    write_cifar10(root)
    write_cifar100(root)


@pytest.fixture
def trust_fake_cifar(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Accept our fake CIFAR files: torchvision checks the real files' MD5 sums, ours differ.

    Only tests do this, for files they wrote themselves; the product never skips the check.
    """
    monkeypatch.setattr(cifar, "check_integrity", lambda fpath, md5=None: Path(fpath).is_file())
    yield
