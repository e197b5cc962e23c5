"""Dataset specs: the typed configs behind ``dataset=digits`` and ``dataset=fake``.

Each spec is torch-free until ``load()`` runs, so composing configs stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from typedexp.data.tensors import DataBundle, RawImages, split_train_val
from typedexp.core.checks import require_finite
from typedexp.core.errors import ConfigError, DataError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray


class DatasetSpec(Protocol):
    def check_available(self) -> None:
        """Raise DataError at once (before torch is imported) if ``load`` cannot succeed."""

    def load(self) -> DataBundle: ...


class BundledData:
    """Base of datasets that are always available (bundled or generated)."""

    def check_available(self) -> None:
        pass


def _check_val_fraction(val_fraction: float) -> None:
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"dataset.val_fraction={val_fraction}: must be in (0, 1)")


@dataclass(frozen=True)
class Digits(BundledData):
    """scikit-learn's bundled 8x8 handwritten digits: 1,797 images, 10 classes, no download."""

    val_fraction: float = 0.2  # share of the 1,797 images held out for validation
    split_seed: int = 0  # fixed, so every run validates on the same images whatever its seed

    def __post_init__(self) -> None:
        require_finite(self, "dataset")
        _check_val_fraction(self.val_fraction)

    def load(self) -> DataBundle:
        import torch

        table = torch.from_numpy(read_bundled_digits())  # (1797, 65): 64 pixels, then the label
        images = table[:, :64].reshape(-1, 1, 8, 8)  # values 0..16
        labels = table[:, 64].long()
        return split_train_val(
            RawImages(images, labels),
            num_classes=10,
            val_fraction=self.val_fraction,
            seed=self.split_seed,
        )


def read_bundled_digits() -> NDArray[np.float64]:
    """scikit-learn's ``digits.csv.gz``, read the way ``load_digits`` reads it.

    Importing ``sklearn.datasets`` costs about 1.6 s here (it pulls in scipy), a third of a
    run's start-up, so the file is located with ``find_spec`` (which does not import sklearn).
    """
    import gzip
    import importlib.util

    import numpy as np

    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("dataset=digits needs scikit-learn, which ships the digits file")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"
    with gzip.open(path, "rt") as rows:
        return np.loadtxt(rows, delimiter=",", dtype=np.float64)


@dataclass(frozen=True)
class FakeData(BundledData):
    """Synthetic, learnable images: each class is a fixed random template plus Gaussian noise.

    For trying models and sizes without any files; ``noise`` sets how hard it is (1.0 is about
    as separable as digits for the small MLP).
    """

    num_samples: int = 2048
    num_classes: int = 10
    channels: int = 1
    height: int = 8
    width: int = 8
    noise: float = 1.0  # std of the per-pixel noise around a template of std 1
    val_fraction: float = 0.2
    seed: int = 0  # seeds the templates, the noise and the split

    def __post_init__(self) -> None:
        require_finite(self, "dataset")
        _check_val_fraction(self.val_fraction)
        for name in ("num_samples", "channels", "height", "width"):
            if getattr(self, name) < 1:
                raise ConfigError(f"dataset.{name}={getattr(self, name)}: must be >= 1")
        if self.num_classes < 2:
            raise ConfigError(f"dataset.num_classes={self.num_classes}: must be >= 2")
        if self.noise < 0:
            raise ConfigError(f"dataset.noise={self.noise}: must be >= 0")

    def load(self) -> DataBundle:
        import torch

        generator = torch.Generator().manual_seed(self.seed)
        shape = (self.channels, self.height, self.width)
        templates = torch.randn((self.num_classes, *shape), generator=generator)
        labels = torch.randint(0, self.num_classes, (self.num_samples,), generator=generator)
        noise = torch.randn((self.num_samples, *shape), generator=generator) * self.noise
        images = templates[labels] + noise  # (num_samples, C, H, W)
        return split_train_val(
            RawImages(images, labels),
            num_classes=self.num_classes,
            val_fraction=self.val_fraction,
            seed=self.seed,
        )
