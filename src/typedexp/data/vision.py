"""MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-100, read through torchvision's own dataset classes.

torchvision decodes the real files (IDX for MNIST, pickled batches for CIFAR) and checks them
(CIFAR against its checksums). typedexp then keeps the decoded uint8 tensors in
``<root>/typedexp-cache/``, keyed by the source files' sizes and modification times, so the next
run skips decoding and does not even import torchvision (about 4 s here).
"""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar

from typedexp.data.augment import Augmentation
from typedexp.data.tensors import DataBundle, RawImages, TargetKind, split_train_val
from typedexp.core.checks import require_finite
from typedexp.core.errors import ConfigError, DataError
from typedexp.core.report import warn

if TYPE_CHECKING:
    from torchvision import datasets

CACHE_FOLDER = "typedexp-cache"
CACHE_FORMAT = 1  # bump when the cached layout changes


@dataclass(frozen=True)
class TorchvisionImages:
    """Fields shared by every torchvision-backed dataset (the config under ``dataset.``)."""

    targets: ClassVar[TargetKind] = TargetKind.classes
    root: str = "data"  # torchvision's root: files live in <root>/MNIST/raw, <root>/cifar-10-batches-py, ...
    download: bool = False  # off by default: typedexp runs offline unless asked
    val_fraction: float = 0.1  # share of the training files held out for validation
    split_seed: int = 0  # fixed, so every run validates on the same images whatever its seed
    crop_padding: int = 0  # random-crop augmentation: pixels of padding (0: off)
    horizontal_flip: bool = False  # flip augmentation, probability 1/2
    cache: bool = True  # keep decoded tensors in <root>/typedexp-cache

    name: ClassVar[str]  # the config option, for messages
    folder: ClassVar[str]  # where torchvision keeps this dataset's files under `root`
    num_classes: ClassVar[int]
    files: ClassVar[str]  # what a user copies there by hand when offline

    def __post_init__(self) -> None:
        require_finite(self, "dataset")
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"dataset.val_fraction={self.val_fraction}: must be in (0, 1)")
        Augmentation(self.crop_padding, self.horizontal_flip)  # validates

    def load(self) -> DataBundle:
        # A failed cache write warns once and stops caching for this load; it is an optimisation.
        writable = [self.cache]
        train, test = self.decoded(train=True, writable=writable), self.decoded(train=False, writable=writable)
        return split_train_val(
            train,
            num_classes=self.num_classes,
            val_fraction=self.val_fraction,
            seed=self.split_seed,
            test=test,
            augmentation=Augmentation(self.crop_padding, self.horizontal_flip),
        )

    def check_available(self) -> None:
        """Fail in a millisecond, before torch and torchvision load, if there is nothing to read."""
        source = Path(self.root) / self.folder
        if not self.download and not source.exists():
            raise DataError(
                f"dataset={self.name}: no files in {source}; run once with "
                f"dataset.download=true (needs a network) or copy {self.files} there"
            )

    def cache_file(self, *, train: bool) -> Path:
        return Path(self.root) / CACHE_FOLDER / f"{self.name}-{'train' if train else 'test'}.pt"

    def decoded(self, *, train: bool, writable: list[bool] | None = None) -> RawImages:
        """The split as uint8 (N, C, H, W) images and int64 labels, from the cache if valid.

        ``writable`` holds one flag shared by the splits of a load: set to False when a cache
        write fails, so that the other split neither tries again nor repeats the warning.
        """
        import torch

        cache_file = self.cache_file(train=train)
        if self.cache and cache_file.exists():
            with contextlib.suppress(Exception):  # unreadable or stale: decode again
                cached = torch.load(cache_file, weights_only=True)
                if cached["format"] == CACHE_FORMAT and cached["fingerprint"] == self.fingerprint():
                    return RawImages(cached["images"], cached["labels"])
        self.check_available()
        raw = self.read_with_torchvision(train=train)
        writable = [self.cache] if writable is None else writable
        if writable[0]:
            writable[0] = self.write_cache(cache_file, raw)
        return raw

    def write_cache(self, cache_file: Path, raw: RawImages) -> bool:
        """Keep ``raw`` for the next run; a read-only or full ``root`` costs a warning, not the run."""
        import torch

        partial = cache_file.with_suffix(f".tmp{os.getpid()}")
        record = {"format": CACHE_FORMAT, "fingerprint": self.fingerprint(),
                  "images": raw.images, "labels": raw.labels}
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            with partial.open("wb") as file:  # an open file makes torch report OSErrors as such
                torch.save(record, file)
            partial.replace(cache_file)  # atomic: a reader never sees half a file
            return True
        except OSError as exc:
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
            reason = exc.strerror or type(exc).__name__
            warn(
                f"cannot write the dataset cache in {cache_file.parent} ({reason}); "
                "decoding the files on every run instead (dataset.cache=false silences this)"
            )
            return False

    def fingerprint(self) -> list[list[int | str]]:
        """(path, size, mtime) of every source file: changes whenever the files do."""
        source = Path(self.root) / self.folder
        files = sorted(path for path in source.rglob("*") if path.is_file()) if source.exists() else []
        return [[str(path.relative_to(source)), path.stat().st_size, path.stat().st_mtime_ns] for path in files]

    def read_with_torchvision(self, *, train: bool) -> RawImages:
        raise NotImplementedError  # each dataset below reads its own torchvision class


@contextlib.contextmanager
def torchvision_errors(spec: TorchvisionImages) -> Iterator[None]:
    """Turn torchvision's 'not found' and download failures into one ``DataError`` line.

    torchvision prints each failed mirror to stdout while downloading; that is swallowed here
    and replaced by the one line.
    """
    where = Path(spec.root) / spec.folder
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    except (RuntimeError, OSError) as exc:
        if spec.download:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DataError(
                f"dataset={spec.name}: could not download to {where} ({reason}); "
                f"without a network, copy {spec.files} into {where}"
            ) from exc
        raise DataError(
            f"dataset={spec.name}: files in {where} are incomplete or corrupt; run once with "
            f"dataset.download=true (needs a network) or copy {spec.files} there again"
        ) from exc


def read_mnist_family(
    spec: TorchvisionImages, source: type[datasets.MNIST], *, train: bool
) -> RawImages:
    with torchvision_errors(spec):
        dataset = source(spec.root, train=train, download=spec.download)
    # (N, 28, 28) uint8 -> (N, 1, 28, 28)
    return RawImages(dataset.data.unsqueeze(1).contiguous(), dataset.targets.long())


def read_cifar_family(
    spec: TorchvisionImages, source: type[datasets.CIFAR10], *, train: bool
) -> RawImages:
    import torch

    with torchvision_errors(spec):
        dataset = source(spec.root, train=train, download=spec.download)
    images = torch.from_numpy(dataset.data).permute(0, 3, 1, 2).contiguous()  # NHWC -> NCHW
    return RawImages(images, torch.tensor(dataset.targets, dtype=torch.int64))


MNIST_FILES = "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte"


@dataclass(frozen=True)
class MNIST(TorchvisionImages):
    name: ClassVar[str] = "mnist"
    folder: ClassVar[str] = "MNIST/raw"
    num_classes: ClassVar[int] = 10
    files: ClassVar[str] = MNIST_FILES

    def read_with_torchvision(self, *, train: bool) -> RawImages:
        from torchvision import datasets

        return read_mnist_family(self, datasets.MNIST, train=train)


@dataclass(frozen=True)
class FashionMNIST(TorchvisionImages):
    name: ClassVar[str] = "fashion_mnist"
    folder: ClassVar[str] = "FashionMNIST/raw"
    num_classes: ClassVar[int] = 10
    files: ClassVar[str] = MNIST_FILES

    def read_with_torchvision(self, *, train: bool) -> RawImages:
        from torchvision import datasets

        return read_mnist_family(self, datasets.FashionMNIST, train=train)


@dataclass(frozen=True)
class CIFAR10(TorchvisionImages):
    crop_padding: int = 4  # the standard CIFAR augmentation: pad 4, random 32x32 crop, flip
    horizontal_flip: bool = True
    name: ClassVar[str] = "cifar10"
    folder: ClassVar[str] = "cifar-10-batches-py"
    num_classes: ClassVar[int] = 10
    files: ClassVar[str] = "the extracted cifar-10-python.tar.gz (data_batch_1..5, test_batch, batches.meta)"

    def read_with_torchvision(self, *, train: bool) -> RawImages:
        from torchvision import datasets

        return read_cifar_family(self, datasets.CIFAR10, train=train)


@dataclass(frozen=True)
class CIFAR100(TorchvisionImages):
    crop_padding: int = 4
    horizontal_flip: bool = True
    name: ClassVar[str] = "cifar100"
    folder: ClassVar[str] = "cifar-100-python"
    num_classes: ClassVar[int] = 100
    files: ClassVar[str] = "the extracted cifar-100-python.tar.gz (train, test, meta)"

    def read_with_torchvision(self, *, train: bool) -> RawImages:
        from torchvision import datasets

        return read_cifar_family(self, datasets.CIFAR100, train=train)
