"""Epoch time: the seed lesson's DataLoader pipeline vs typedexp's resident-tensor data path.

Both train the same model with the same batch size for one epoch over files in the real
formats (written here, random pixels, full dataset sizes), in one process:
  seed:     torchvision dataset + ToTensor + Normalize (+ RandomCrop/Flip on CIFAR),
            DataLoader(shuffle=True, num_workers=2), the seed's training loop
  typedexp: the same files decoded once (cached), normalized once, batches by index, batched
            augmentation on the device, typedexp's engine
Decoding (first run) and loading the cache (later runs) are reported on their own rows; they
happen once per run, not once per epoch. Times are wall and CPU seconds; CPU counts this process
and the DataLoader's worker processes (reaped children), so the seed's workers are not free.
The seed and typedexp epochs alternate, and each speed-up is the median of the paired ratios.

For augmented data a last pair of rows prices the other layout the issue asked about: the
data part of an epoch alone (batch by index, crop/flip), from float32 images normalized once
vs from uint8 images normalized per batch (a quarter of the memory, 150 MB for CIFAR-10).

    python -m benchmarks.data_path               # MNIST and CIFAR shapes, 1 epoch each
    python -m benchmarks.data_path --samples 20000 --repeats 1 --threads 1
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torchvision import datasets, transforms
from torchvision.datasets import cifar

from benchmarks.common import machine, table
from tests.dataset_files import write_cifar10, write_mnist
from typedexp.data import CIFAR10, MNIST, DataBundle
from typedexp.data.tensors import take
from typedexp.data.vision import TorchvisionImages
from typedexp.engine import TrainerSettings, fit, seed_everything
from typedexp.engine.settings import Progress
from typedexp.specs.models import MLP
from typedexp.tracking import NullTracker


def seed_epoch(dataset: datasets.VisionDataset, bundle: DataBundle, batch_size: int) -> None:
    torch.manual_seed(0)
    model = MLP().build(bundle.input_shape, bundle.num_classes)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=2)
    for images, labels in loader:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(images), labels)
        torch.autograd.backward(loss)
        optimizer.step()


def typedexp_epoch(bundle: DataBundle, batch_size: int) -> None:
    generator = seed_everything(0)
    model = MLP().build(bundle.input_shape, bundle.num_classes)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    # No pictures: the seed draws none (benchmarks.media_cost prices them).
    settings = TrainerSettings(progress=Progress.off, log_every=50, media_every=0)
    fit(model, optimizer, bundle, epochs=1, batch_size=batch_size, settings=settings,
        tracker=NullTracker(), generator=generator)


def seed_transform(bundle: DataBundle, augment: bool) -> transforms.Compose:
    scale = 255.0
    steps: list[object] = [transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip()] if augment else []
    steps += [transforms.ToTensor(),
              transforms.Normalize([m / scale for m in bundle.mean], [s / scale for s in bundle.std])]
    return transforms.Compose(steps)


def clocked(run: Callable[[], object]) -> tuple[float, float]:
    """(wall, CPU) seconds of ``run()``; CPU includes child processes that ended meanwhile."""
    def cpu() -> float:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.process_time() + children.ru_utime + children.ru_stime

    wall, started = time.perf_counter(), cpu()
    run()
    return time.perf_counter() - wall, cpu() - started


def data_only(bundle: DataBundle, batch_size: int, resident_uint8: bool) -> Callable[[], None]:
    """An epoch's batches without a model: index, (normalize), crop/flip."""
    augment = bundle.augmentation
    mean = torch.tensor(bundle.mean).view(1, -1, 1, 1)  # (1, C, 1, 1), pixel units
    std = torch.tensor(bundle.std).view(1, -1, 1, 1)
    # What a uint8 cache holds: the pixels themselves (recovered exactly from the normalized split).
    pixels = (bundle.train.images * std + mean).round().to(torch.uint8) if resident_uint8 else bundle.train.images
    generator = torch.Generator().manual_seed(0)

    def run() -> None:
        order = torch.randperm(len(pixels), generator=generator)
        for start in range(0, len(pixels), batch_size):
            images = take(pixels, order[start : start + batch_size])  # as the engine does
            if resident_uint8:  # normalize, then pad with zeros = the mean colour, as typedexp does
                images = (images.float() - mean) / std
            augment(images, generator)

    return run


def measure(
    name: str,
    spec: TorchvisionImages,
    seed_dataset: Callable[[transforms.Compose], datasets.VisionDataset],
    batch_size: int,
    repeats: int,
) -> list[list[str]]:
    decode = clocked(spec.load)  # first load: torchvision decodes, typedexp writes its cache
    bundle = spec.load()
    cached = min(clocked(spec.load) for _ in range(repeats))
    augment = bundle.augmentation.enabled
    dataset = seed_dataset(seed_transform(bundle, augment))
    seed, ours = [], []
    for _ in range(repeats):  # alternating, so a slow spell of the shared VM hits both
        seed.append(clocked(lambda: seed_epoch(dataset, bundle, batch_size)))
        ours.append(clocked(lambda: typedexp_epoch(bundle, batch_size)))
    shape = "x".join(map(str, bundle.input_shape)) + (" + crop/flip" if augment else "")

    def cells(times: list[tuple[float, float]]) -> list[str]:
        return [f"{statistics.median(t[0] for t in times):.2f}", f"{statistics.median(t[1] for t in times):.2f}"]

    def ratio(index: int) -> str:
        return f"{statistics.median(s[index] / o[index] for s, o in zip(seed, ours, strict=True)):.1f}x"

    rows = [
        [name, shape, "seed DataLoader", *cells(seed), "1.0x", "1.0x"],
        [name, shape, "typedexp resident", *cells(ours), ratio(0), ratio(1)],
        [name, "", "(once) decode (torchvision), cache, normalize", f"{decode[0]:.2f}", f"{decode[1]:.2f}", "", ""],
        [name, "", "(each run) load cache, normalize", f"{cached[0]:.2f}", f"{cached[1]:.2f}", "", ""],
    ]
    if augment:
        for layout, uint8 in (("float32 normalized once", False), ("uint8, normalized per batch", True)):
            run = data_only(bundle, batch_size, uint8)
            times = [clocked(run) for _ in range(repeats)]
            rows.append([name, "", f"data only, {layout}", *cells(times), "", ""])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=None, help="training images (default: full size)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=3, help="epochs timed per pipeline (median)")
    args = parser.parse_args()
    if args.threads is not None:
        # One thread: on an oversubscribed VM two torch threads spin-wait and inflate CPU time 5-10x.
        torch.set_num_threads(args.threads)
    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        mnist_train = args.samples or 60_000
        write_mnist(root, train=mnist_train, test=1000)
        cifar_batch = (args.samples or 50_000) // 5
        write_cifar10(root, per_batch=cifar_batch, test=1000)
        # Random files fail CIFAR's published checksums; skip that check for these files only.
        cifar.check_integrity = lambda fpath, md5=None: Path(fpath).is_file()
        cases: list[tuple[str, TorchvisionImages, Callable[[transforms.Compose], datasets.VisionDataset]]] = [
            ("MNIST", MNIST(root=str(root)), lambda t: datasets.MNIST(root, train=True, transform=t)),
            ("CIFAR-10", CIFAR10(root=str(root)), lambda t: datasets.CIFAR10(root, train=True, transform=t)),
        ]
        for name, spec, seed_dataset in cases:
            rows += measure(name, spec, seed_dataset, args.batch_size, args.repeats)
    print(f"machine: {machine()}")
    print(f"one epoch of the `small` MLP, batch {args.batch_size}, median of {args.repeats} run(s), "
          f"{torch.get_num_threads()} torch threads\n")
    print(table(["data", "shape", "pipeline", "wall s", "CPU s", "speed-up, wall", "speed-up, CPU"], rows))


if __name__ == "__main__":
    main()
