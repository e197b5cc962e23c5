"""Engine overhead: what typedexp's loop costs per step beyond a hand-written loop, in µs.

The parity benchmark's ratios carry the VM's noise (±5%), which hides a few percent. Here the
model is one linear layer on 8x8 images, with one torch thread, so a step is mostly Python and
the loop's own work shows. Three variants, interleaved, best of the repeats:
the seed's loop (`loss.item()` each step), the engine at the default `log_every=10`, and the
engine at `log_every=1000` (metrics reduced only at epoch ends). A second table times the
metric window alone: 10 steps added, then drained.

    python -m benchmarks.engine_overhead [--repeats 9]
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from benchmarks.common import machine, table
from benchmarks.peers import engine_runner, raw_loop
from typedexp.data import FakeData
from typedexp.engine.loop import _Window
from typedexp.tracking import NullTracker


@dataclass(frozen=True)
class Linear:
    """A ModelSpec for the smallest model there is: flatten, one linear layer."""

    def build(self, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), num_classes))


def window_microseconds(repeats: int) -> float:
    """Median µs for one logging window: 10 steps' (loss, logits, labels) added, then drained."""
    window = _Window.zeros(torch.device("cpu"))
    losses = [torch.rand(()) for _ in range(10)]
    logits = [torch.randn(64, 10) for _ in range(10)]
    labels = [torch.randint(0, 10, (64,)) for _ in range(10)]
    times = []
    for _ in range(repeats):
        started = time.process_time()  # CPU: the VM's load moves it least
        for _ in range(100):
            for loss, logit, label in zip(losses, logits, labels, strict=True):
                window.add(loss, logit, label)
            window.drain("train")
        times.append((time.process_time() - started) / 100)
    return sorted(times)[len(times) // 2] * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = FakeData(num_samples=8192, height=8, width=8, val_fraction=0.05).load()
    steps = args.epochs * -(-len(data.train) // 64)
    spec = Linear()
    default_engine = engine_runner(NullTracker, lambda tracker: None)
    sparse_engine = engine_runner(NullTracker, lambda tracker: None, log_every=1000)
    variants: dict[str, Callable[[], object]] = {
        "hand-written loop": lambda: raw_loop(spec, data, args.epochs, 64),
        "engine, log_every=10 (default)": lambda: default_engine(spec, data, args.epochs, 64),
        "engine, log_every=1000": lambda: sparse_engine(spec, data, args.epochs, 64),
    }
    best = {name: float("inf") for name in variants}
    best_cpu = dict(best)  # process CPU time: what other people's work on the VM moves least
    for _ in range(args.repeats):
        for name, run in variants.items():
            started, cpu = time.perf_counter(), time.process_time()
            run()
            best[name] = min(best[name], time.perf_counter() - started)
            best_cpu[name] = min(best_cpu[name], time.process_time() - cpu)
    raw, raw_cpu = best["hand-written loop"] / steps * 1e6, best_cpu["hand-written loop"] / steps * 1e6
    rows = [
        [name, f"{seconds / steps * 1e6:.1f}", f"{seconds / steps * 1e6 - raw:+.1f}",
         f"{best_cpu[name] / steps * 1e6:.1f}", f"{best_cpu[name] / steps * 1e6 - raw_cpu:+.1f}"]
        for name, seconds in best.items()
    ]
    print(f"machine: {machine()}")
    print(f"one linear layer, 8x8 inputs, batch 64, {steps} steps, 1 torch thread, best of {args.repeats}\n")
    print(table(["loop", "wall µs / step", "vs hand-written", "CPU µs / step", "vs hand-written, CPU"], rows))
    print(f"\nmetric window, 10 steps added then drained: {window_microseconds(args.repeats):.0f} µs of CPU (median)")


if __name__ == "__main__":
    main()
