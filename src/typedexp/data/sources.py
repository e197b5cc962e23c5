"""Dataset specs: the typed configs behind ``dataset=digits`` and ``dataset=fake``.

Each spec is torch-free until ``load()`` runs, so composing configs stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol

from typedexp.data.tensors import DataBundle, RawImages, TargetKind, split_rows, split_train_val
from typedexp.core.checks import require_finite
from typedexp.core.errors import ConfigError, DataError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray


class DatasetSpec(Protocol):
    """A dataset's config. It may also declare ``targets: ClassVar[TargetKind]`` (what its labels
    are), so that a task of the other kind is refused before anything loads (app/fits.py)."""

    def check_available(self) -> None:
        """Raise DataError at once (before torch is imported) if ``load`` cannot succeed."""

    def load(self) -> DataBundle: ...


class BundledData:
    """Base of datasets that are always available (bundled or generated)."""

    targets: ClassVar[TargetKind] = TargetKind.classes

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
    """scikit-learn's ``digits.csv.gz``, read the way ``load_digits`` reads it."""
    return read_sklearn_file("digits", "digits.csv.gz", delimiter=",")


def read_sklearn_file(dataset: str, name: str, delimiter: str | None = None) -> NDArray[np.float64]:
    """One of scikit-learn's bundled data files, read as ``sklearn.datasets`` reads it.

    Importing ``sklearn.datasets`` costs about 1.6 s here (it pulls in scipy), a third of a
    run's start-up, so the file is located with ``find_spec`` (which does not import sklearn).
    """
    import gzip
    import importlib.util

    import numpy as np

    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"dataset={dataset} needs scikit-learn, which ships its file")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / name
    with gzip.open(path, "rt") as rows:
        return np.loadtxt(rows, delimiter=delimiter, dtype=np.float64)


@dataclass(frozen=True)
class Diabetes(BundledData):
    """scikit-learn's bundled diabetes table (``load_diabetes``): a regression, no download.

    442 patients, 10 features each (age, sex, body mass index, mean blood pressure and six blood
    serum measurements), every column standardized with the training rows' mean and std. The
    target is one number per patient: a quantitative measure of disease progression one year
    after baseline (a unitless score, 25-346 in the file, mean 152, std 77). With
    ``scale_target`` (the default) it is standardized the same way, so ``rmse`` and ``mae`` are in
    standard deviations of the training targets (multiply by ~77 for score points; ``r2`` has no
    unit); without, they are in score points, and SGD at its default rate diverges on them.
    """

    targets: ClassVar[TargetKind] = TargetKind.values
    val_fraction: float = 0.2  # share of the 442 rows held out for validation (88)
    split_seed: int = 0  # fixed, so every run validates on the same rows whatever its seed
    scale_target: bool = True  # standardize the target with the training rows' mean and std

    def __post_init__(self) -> None:
        require_finite(self, "dataset")
        _check_val_fraction(self.val_fraction)

    def load(self) -> DataBundle:
        import torch

        features = torch.from_numpy(read_sklearn_file("diabetes", "diabetes_data_raw.csv.gz"))  # (442, 10)
        target = torch.from_numpy(read_sklearn_file("diabetes", "diabetes_target.csv.gz"))  # (442,)
        return split_rows(
            features, target[:, None], val_fraction=self.val_fraction, seed=self.split_seed,
            scale_targets=self.scale_target,
        )


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
