"""The last loaded dataset, kept for the next job of the same process (a sweep's jobs).

A multirun with Hydra's basic launcher runs every job in one process, and most sweeps vary the
model or the optimizer, not the data: each job used to read, split and normalize the same
files again (digits: 4 ms; CIFAR-10 from typedexp's uint8 cache: reading 150 MB and normalizing
45,000 images). ``load_shared`` keeps the last ``DataBundle`` and hands each job its own copy.

Correctness rules:
- The key is the spec itself (a frozen dataclass: its type and every field, seeds and
  ``val_fraction`` included, so the split is the same) plus, for datasets read from files, the
  files' sizes and mtimes (``TorchvisionImages.fingerprint``), so files replaced between two jobs
  are read again.
- Only typedexp's own specs are kept: their ``load`` is a function of the key. A user's spec
  (docs/extending.md) may read anything, so it is loaded afresh each time.
- Each caller gets clones of every tensor: a job that changes its data in place (a custom
  model, a hook, a normalisation done in place) cannot change what the next job gets.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable

from typedexp.data.sources import DatasetSpec, Diabetes, Digits, FakeData
from typedexp.data.tensors import DataBundle, Split
from typedexp.data.vision import CIFAR10, CIFAR100, MNIST, FashionMNIST, TorchvisionImages

# Bundles kept at once. One covers a sweep over anything but the dataset, and a sweep over
# datasets where the dataset varies slowest (Hydra's basic sweeper varies the first override
# slowest); each kept bundle costs the dataset's size in memory (CIFAR-10: ~700 MB float32).
KEEP = 1

_kept: list[tuple[Hashable, DataBundle]] = []  # newest last
_lock = threading.Lock()  # launchers that run jobs in threads share the process


def load_shared(spec: DatasetSpec) -> DataBundle:
    """``spec.load()``, reusing the last load of an equal spec in this process; the caller owns the result."""
    key = cache_key(spec)
    if key is None:
        return spec.load()
    with _lock:
        kept = next((bundle for kept_key, bundle in _kept if kept_key == key), None)
    if kept is None:
        kept = spec.load()
        with _lock:
            _kept[:] = [entry for entry in _kept if entry[0] != key]
            _kept.append((key, kept))
            del _kept[:-KEEP]  # the oldest go first
    return copied(kept)


def cache_key(spec: DatasetSpec) -> Hashable | None:
    """What ``spec.load()`` depends on, or None where that is not known (a user's spec)."""
    # Exact types: a subclass may override ``load`` with anything.
    if type(spec) in (Digits, FakeData, Diabetes):
        return (type(spec), spec)
    if type(spec) in (MNIST, FashionMNIST, CIFAR10, CIFAR100) and isinstance(spec, TorchvisionImages):
        files = tuple(tuple(entry) for entry in spec.fingerprint())  # (path, size, mtime) of each file
        return (type(spec), spec, files)
    return None


def copied(bundle: DataBundle) -> DataBundle:
    """``bundle`` with every tensor cloned: nothing the caller does reaches the kept one."""
    def split(part: Split) -> Split:
        return Split(part.images.clone(), part.labels.clone(), part.source_index.clone())

    test = split(bundle.test) if bundle.test is not None else None
    return DataBundle(
        split(bundle.train), split(bundle.val), bundle.num_classes, test, bundle.augmentation, bundle.mean, bundle.std
    )


def forget() -> None:
    """Drop the kept bundles (their memory goes back once no job holds a copy)."""
    with _lock:
        _kept.clear()
