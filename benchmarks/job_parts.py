"""What a sweep job's parts cost before and after the cheap-jobs changes, paired in one process.

Each row times the old way and the new way alternately (A B A B ...), in process CPU time and
wall time, median of ``--repeats``:
  environment snapshot: reading every package's metadata (what each ``swanlab.init`` did) vs the
                        snapshot kept for the process (``installed_requirements``)
  dataset:              ``spec.load()`` (the typedexp uint8 disk cache read, split, normalized)
                        vs ``load_shared`` handing out clones of the bundle an earlier job loaded;
                        digits, and MNIST/CIFAR-10 files of full size (random pixels, written here)

    python -m benchmarks.job_parts [--repeats 7] [--no-vision]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torchvision.datasets import cifar

from benchmarks.common import machine, table
from tests.dataset_files import write_cifar10, write_mnist
from typedexp.data import CIFAR10, MNIST, DatasetSpec, Digits
from typedexp.data.cache import forget, load_shared
from typedexp.tracking.swanlab_patches import installed_requirements, read_installed


def paired(old: Callable[[], object], new: Callable[[], object], repeats: int) -> list[str]:
    """Median CPU and wall milliseconds of ``old`` and ``new``, run alternately; and CPU old/new."""
    times: dict[str, list[tuple[float, float]]] = {"old": [], "new": []}
    for repeat in range(repeats):
        for name, run in (("old", old), ("new", new)) if repeat % 2 == 0 else (("new", new), ("old", old)):
            cpu, wall = time.process_time(), time.perf_counter()
            run()
            times[name].append((time.process_time() - cpu, time.perf_counter() - wall))
    old_cpu, old_wall = (statistics.median(t[i] for t in times["old"]) * 1000 for i in (0, 1))
    new_cpu, new_wall = (statistics.median(t[i] for t in times["new"]) * 1000 for i in (0, 1))
    return [f"{old_cpu:.1f} / {old_wall:.1f}", f"{new_cpu:.1f} / {new_wall:.1f}", f"{old_cpu / max(new_cpu, 1e-3):.1f}x"]


def dataset_row(name: str, spec: DatasetSpec, repeats: int) -> list[str]:
    forget()
    load_shared(spec)  # the first job's load, which the next jobs reuse
    return [f"dataset: {name}", *paired(spec.load, lambda: load_shared(spec), repeats)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-vision", action="store_true", help="skip the full-size MNIST and CIFAR-10 rows")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = [["environment snapshot (each swanlab.init)",
             *paired(read_installed, installed_requirements, args.repeats)]]
    rows.append(dataset_row("digits", Digits(), args.repeats))
    with tempfile.TemporaryDirectory() as root:
        if not args.no_vision:
            write_mnist(Path(root), train=60000, test=10000)
            write_cifar10(Path(root), per_batch=10000, test=10000)
            cifar.check_integrity = lambda fpath, md5=None: Path(fpath).is_file()  # random pixels: no MD5 match
            for name, spec in (("MNIST, 60k", MNIST(root=root)), ("CIFAR-10, 50k", CIFAR10(root=root))):
                spec.load()  # decode once with torchvision and write typedexp's uint8 cache
                rows.append(dataset_row(name, spec, args.repeats))
                forget()
    print(f"machine: {machine()}")
    print(f"torch threads 1; median of {args.repeats}, old and new alternating\n")
    print(table(["part of a job", "before: CPU / wall ms", "after: CPU / wall ms", "CPU before/after"], rows))


if __name__ == "__main__":
    main()
