"""Epoch time: the seed lesson's DataLoader pipeline vs typedexp's resident-tensor data path.

Both train the same model with the same batch size for one epoch over files in the real
formats (written here, random pixels, full dataset sizes), in one process:
  seed:     torchvision dataset + ToTensor + Normalize (+ RandomCrop/Flip on CIFAR),
            DataLoader(shuffle=True, num_workers=2), the seed's training loop
  typedexp: the same files decoded once (cached), normalized once, batches by index, batched
            augmentation on the device, typedexp's engine
Decoding (first run) and loading the cache (later runs) are reported on their own rows; they
happen once per run, not once per epoch.

    python -m benchmarks.data_path               # MNIST and CIFAR shapes, 1 epoch each
    python -m benchmarks.data_path --samples 10000 --repeats 3
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torchvision import datasets, transforms
from torchvision.datasets import cifar

from benchmarks.common import machine, table, timed
from tests.dataset_files import write_cifar10, write_mnist
from typedexp.data import CIFAR10, MNIST, DataBundle
from typedexp.data.vision import TorchvisionImages
from typedexp.engine import TrainerSettings, fit, seed_everything
from typedexp.engine.settings import Progress
from typedexp.models import MLP
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
    settings = TrainerSettings(progress=Progress.off, log_every=50)
    fit(model, optimizer, bundle, epochs=1, batch_size=batch_size, settings=settings,
        tracker=NullTracker(), generator=generator)


def seed_transform(bundle: DataBundle, augment: bool) -> transforms.Compose:
    scale = 255.0
    steps: list[object] = [transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip()] if augment else []
    steps += [transforms.ToTensor(),
              transforms.Normalize([m / scale for m in bundle.mean], [s / scale for s in bundle.std])]
    return transforms.Compose(steps)


def measure(
    name: str,
    spec: TorchvisionImages,
    seed_dataset: Callable[[transforms.Compose], datasets.VisionDataset],
    batch_size: int,
    repeats: int,
) -> list[list[str]]:
    started = time.perf_counter()
    bundle = spec.load()  # first load: torchvision decodes, typedexp writes its cache
    decode = time.perf_counter() - started
    cached = timed(spec.load, 1)
    augment = bundle.augmentation.enabled
    dataset = seed_dataset(seed_transform(bundle, augment))
    seed = timed(lambda: seed_epoch(dataset, bundle, batch_size), repeats)
    ours = timed(lambda: typedexp_epoch(bundle, batch_size), repeats)
    shape = "x".join(map(str, bundle.input_shape)) + (" + crop/flip" if augment else "")
    return [
        [name, shape, "seed DataLoader", f"{seed:.2f}", "1.0x"],
        [name, shape, "typedexp resident", f"{ours:.2f}", f"{seed / ours:.1f}x"],
        [name, "", "(once) decode (torchvision), cache, normalize", f"{decode:.2f}", ""],
        [name, "", "(each run) load cache, normalize", f"{cached:.2f}", ""],
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=None, help="training images (default: full size)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=1, help="epochs timed per pipeline (median)")
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
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
    print(f"one epoch of the `small` MLP, batch {args.batch_size}, median of {args.repeats} run(s)\n")
    print(table(["data", "shape", "pipeline", "seconds", "speed-up"], rows))


if __name__ == "__main__":
    main()
