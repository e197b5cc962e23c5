from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from numpy.typing import NDArray

class VisionDataset(Dataset[tuple[Any, int]]):
    root: str
    def __len__(self) -> int: ...
    # Items are (image, label); the image type depends on `transform` (PIL image without one).
    def __getitem__(self, index: int) -> tuple[Any, int]: ...

class MNIST(VisionDataset):
    data: torch.Tensor  # (N, 28, 28) uint8
    targets: torch.Tensor  # (N,) int64
    def __init__(
        self,
        root: str | Path,
        train: bool = True,
        transform: Callable[..., Any] | None = None,
        target_transform: Callable[..., Any] | None = None,
        download: bool = False,
    ) -> None: ...

class FashionMNIST(MNIST): ...

class CIFAR10(VisionDataset):
    base_folder: str
    data: NDArray[np.uint8]  # (N, 32, 32, 3)
    targets: list[int]
    def __init__(
        self,
        root: str | Path,
        train: bool = True,
        transform: Callable[..., Any] | None = None,
        target_transform: Callable[..., Any] | None = None,
        download: bool = False,
    ) -> None: ...
    def _check_integrity(self) -> bool: ...

class CIFAR100(CIFAR10): ...
