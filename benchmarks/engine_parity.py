"""Engine parity: typedexp's engine vs the seed lesson's hand-written loop, same tensors and seed.

For `small`, `large` and `cnn` on MNIST-shaped data held in memory, with tracking off and on
(SwanLab offline + metrics.jsonl, as `tracker=offline` runs it). Prints steps per second and the
ratio engine / raw (target >= 0.98 with tracking on), and checks that both trained the same
computation: identical weights after the same steps.

    python -m benchmarks.engine_parity [--epochs 6] [--samples 8192] [--repeats 7] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.common import machine, table, timed
from typedexp.data import DataBundle, FakeData
from typedexp.engine import TrainerSettings, fit, seed_everything
from typedexp.engine.settings import Progress
from typedexp.models import CNN, MLP, ModelSpec
from typedexp.tracking import (
    FanOut,
    JsonlTracker,
    NullTracker,
    RunOutcome,
    SwanLabMode,
    SwanLabTracking,
    Tracker,
)

MODELS: dict[str, ModelSpec] = {"small": MLP(hidden=(128,)), "large": MLP(hidden=(256, 128)), "cnn": CNN()}


def raw_loop(spec: ModelSpec, data: DataBundle, epochs: int, batch_size: int) -> nn.Module:
    """The seed's loop (zero_grad, forward, loss, backward, step, loss.item()) on resident
    tensors, plus the validation pass per epoch that the engine also does."""
    generator = seed_everything(0)
    model = spec.build(data.input_shape, data.num_classes)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    images, labels = data.train.images, data.train.labels
    for _ in range(epochs):
        model.train()
        running_loss = 0.0
        order = torch.randperm(len(labels), generator=generator)
        for start in range(0, len(labels), batch_size):
            index = order[start : start + batch_size]
            optimizer.zero_grad()
            loss = F.cross_entropy(model(images[index]), labels[index])
            torch.autograd.backward(loss)
            optimizer.step()
            running_loss += loss.item()
        model.eval()  # validation each epoch, as the engine does
        with torch.no_grad():
            logits = model(data.val.images)
            val_loss = F.cross_entropy(logits, data.val.labels).item()
            val_acc = (logits.argmax(1) == data.val.labels).float().mean().item()
        assert running_loss >= 0 and val_loss >= 0 and 0 <= val_acc <= 1
    return model


def engine_run(
    spec: ModelSpec, data: DataBundle, epochs: int, batch_size: int, tracker: Tracker,
    # Default log_every=10. No pictures: the raw loop draws none; benchmarks.media_cost prices them.
    settings: TrainerSettings = TrainerSettings(progress=Progress.off, media_every=0),
) -> nn.Module:
    generator = seed_everything(0)
    model = spec.build(data.input_shape, data.num_classes)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    fit(model, optimizer, data, epochs=epochs, batch_size=batch_size, settings=settings,
        tracker=tracker, generator=generator)
    return model


def offline_tracker(log_dir: Path) -> Tracker:
    swanlab = SwanLabTracking(mode=SwanLabMode.offline, log_dir=str(log_dir))
    run_dir = Path(tempfile.mkdtemp(dir=log_dir))
    external = swanlab.start(config={"benchmark": "engine_parity"}, run_name="parity", run_dir=str(run_dir))
    return FanOut([JsonlTracker(run_dir / "metrics.jsonl"), external])


def tracked_fit_seconds(spec: ModelSpec, data: DataBundle, epochs: int, batch_size: int, log_dir: Path) -> float:
    """Time of `fit` with offline tracking; SwanLab's init and finish are outside the timed part
    (they happen once per run; benchmarks.tracking_cost reports them)."""
    tracker = offline_tracker(log_dir)
    started = time.perf_counter()
    engine_run(spec, data, epochs, batch_size, tracker)
    seconds = time.perf_counter() - started
    tracker.finish(RunOutcome.success)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=6)  # ~730 steps: 1-6 s per run, past init transients
    parser.add_argument("--samples", type=int, default=8192)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)  # one thread: less exposed to the VM's noisy neighbours
    data = FakeData(num_samples=args.samples, height=28, width=28, val_fraction=0.05).load()
    steps = args.epochs * -(-len(data.train) // args.batch_size)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("SWANLAB_INTERACTIVE", "false")
        for name in args.models:
            spec = MODELS[name]
            # Paired, interleaved repeats: raw, engine and tracked engine run back to back, and the
            # ratio is taken within each repeat, so slow drifts in the shared VM's speed cancel.
            raw_times, off_times, on_times = [], [], []
            for _ in range(args.repeats):
                raw_times.append(timed(lambda: raw_loop(spec, data, args.epochs, args.batch_size), 1))
                off_times.append(timed(lambda: engine_run(spec, data, args.epochs, args.batch_size, NullTracker()), 1))
                on_times.append(tracked_fit_seconds(spec, data, args.epochs, args.batch_size, Path(tmp)))
            raw, off, on = min(raw_times), min(off_times), min(on_times)
            ratio_off = statistics.median(r / o for r, o in zip(raw_times, off_times, strict=True))
            ratio_on = statistics.median(r / o for r, o in zip(raw_times, on_times, strict=True))
            same = all(
                torch.equal(a, b)
                for a, b in zip(
                    raw_loop(spec, data, 1, args.batch_size).parameters(),
                    engine_run(spec, data, 1, args.batch_size, NullTracker()).parameters(),
                    strict=True,
                )
            )
            rows.append([
                name, f"{steps / raw:.0f}", f"{steps / off:.0f}", f"{steps / on:.0f}",
                f"{ratio_off:.3f}", f"{ratio_on:.3f}", "yes" if same else "NO",
            ])
    print(f"machine: {machine()}")
    print(f"{steps} steps ({args.epochs} epochs of {len(data.train)} MNIST-shaped examples, batch "
          f"{args.batch_size}), {args.repeats} paired repeats, {torch.get_num_threads()} torch "
          f"thread(s); steps/s of the best repeat; ratio = median over repeats of engine / raw\n")
    print(table(["model", "raw loop", "engine, no tracking", "engine, offline tracking",
                 "ratio (no tracking)", "ratio (tracking)", "same weights"], rows))


if __name__ == "__main__":
    main()
