"""Engine parity: typedexp's engine, Lightning and the seed's DataLoader loop vs a hand-written loop.

Every row trains the same `nn.Sequential` (Flatten + Linear/ReLU: the `small` and `large` MLPs)
on the same resident MNIST-shaped tensors with the same seed, batch size, SGD and per-epoch
validation (benchmarks/peers.py). How the shared VM's noise is kept out of the ratios:
- each repeat runs every row once, back to back, in an order that rotates between repeats;
- the ratio is taken within a repeat (the raw run ÷ the same repeat's run of the row), and the
  table gives the median of those paired ratios;
- it is given for process CPU time (`time.process_time`, all threads) next to wall time: other
  people's work slows this process's wall clock much more than its CPU time;
- each run takes >= --min-seconds of CPU (epochs are raised until the raw loop's run does);
- torch at 1 thread and at its default, in the same process.
Before timing, a check run of 2 epochs compares every row with the raw loop: weights equal
(`torch.equal`) and the largest difference of the training loss at the same step (the engine
logs a window's mean every `log_every` steps; it is compared with the raw losses' mean over the
same steps).

    python -m benchmarks.engine_parity [--repeats 5] [--models small large] [--threads 1 0]

Lightning is a row where the `bench` extra is installed (`lightning`), else it is skipped with
the reason printed.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from benchmarks.common import machine, table
from benchmarks.peers import (
    LossRecorder,
    Runner,
    Trained,
    dataloader_loop,
    engine_runner,
    lightning_runner,
    raw_loop,
    raw_loop_index_select,
)
from typedexp.data import DataBundle, FakeData
from typedexp.specs.models import MLP, ModelSpec
from typedexp.tracking import FanOut, JsonlTracker, NullTracker, RunOutcome, SwanLabMode, SwanLabTracking, Tracker

MODELS: dict[str, ModelSpec] = {"small": MLP(hidden=(128,)), "large": MLP(hidden=(256, 128))}
LOG_EVERY = 10  # the engine's default


def offline_tracker(log_dir: Path) -> Callable[[], Tracker]:
    """`tracker=offline` as the CLI runs it: SwanLab offline plus metrics.jsonl."""
    def make() -> Tracker:
        swanlab = SwanLabTracking(mode=SwanLabMode.offline, log_dir=str(log_dir))
        run_dir = Path(tempfile.mkdtemp(dir=log_dir))
        external = swanlab.start(config={"benchmark": "engine_parity"}, run_name="parity", run_dir=str(run_dir))
        return FanOut([JsonlTracker(run_dir / "metrics.jsonl"), external])

    return make


def finish(tracker: Tracker) -> None:
    tracker.finish(RunOutcome.success)


def window_means(losses: list[float], train_size: int, batch_size: int) -> list[float]:
    """The raw loop's per-step losses averaged the way the engine logs them: a point every
    LOG_EVERY steps and at each epoch's end, each step weighted by its batch's size."""
    steps_per_epoch = math.ceil(train_size / batch_size)
    last = train_size - (steps_per_epoch - 1) * batch_size  # the epoch's last, smaller batch
    means, total, count = [], 0.0, 0
    for step, loss in enumerate(losses, start=1):
        size = last if step % steps_per_epoch == 0 else batch_size
        total, count = total + loss * size, count + size
        if step % LOG_EVERY == 0 or step % steps_per_epoch == 0:
            means.append(total / count)
            total, count = 0.0, 0
    return means


def check(rows: dict[str, Runner], spec: ModelSpec, data: DataBundle, batch_size: int) -> dict[str, str]:
    """Each row against the raw loop: weights after training, and the largest difference of the
    training loss at the same step, over 2 epochs."""
    epochs = 2
    reference = raw_loop(spec, data, epochs, batch_size)
    verdicts = {}
    for name, run in rows.items():
        trained = run(spec, data, epochs, batch_size)
        expected = reference.losses
        if name.startswith("engine"):
            expected = window_means(reference.losses, len(data.train), batch_size)
        same = all(torch.equal(a, b) for a, b in zip(reference.model.parameters(), trained.model.parameters(), strict=True))
        if len(trained.losses) == len(expected):
            delta = f"max Δloss {max(abs(a - b) for a, b in zip(trained.losses, expected, strict=True)):.0e}"
        else:
            delta = f"{len(trained.losses)} losses vs {len(expected)}"
        verdicts[name] = f"{'same' if same else 'DIFFERENT'} weights, {delta}"
    return verdicts


def measure(
    rows: dict[str, Runner], spec: ModelSpec, data: DataBundle, epochs: int, batch_size: int, repeats: int
) -> dict[str, list[Trained]]:
    """Every row once per repeat, the order rotated each repeat; the raw loop is a row."""
    runs: dict[str, list[Trained]] = {name: [] for name in rows}
    names = list(rows)
    for repeat in range(repeats):
        for name in names[repeat % len(names):] + names[: repeat % len(names)]:
            runs[name].append(rows[name](spec, data, epochs, batch_size))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--min-seconds", type=float, default=1.0, help="each raw run at least this much CPU time")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 0], help="torch threads; 0: torch's default")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    args = parser.parse_args()
    default_threads = torch.get_num_threads()
    os.environ.setdefault("SWANLAB_INTERACTIVE", "false")
    data = FakeData(num_samples=args.samples, height=28, width=28, val_fraction=0.05).load()
    steps_per_epoch = math.ceil(len(data.train) / args.batch_size)
    lightning, lightning_note = lightning_runner()
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f} at start")
    with tempfile.TemporaryDirectory() as tmp:
        rows: dict[str, Runner] = {
            "raw loop (baseline)": raw_loop,
            "raw loop, index_select batches": raw_loop_index_select,
            "typedexp fit, no tracking": engine_runner(NullTracker, finish),
            "typedexp fit, offline tracking": engine_runner(offline_tracker(Path(tmp)), finish),
            "seed's DataLoader loop": dataloader_loop,
        }
        if lightning is not None:
            rows[f"Lightning {lightning_note} Trainer"] = lightning
        else:
            print(f"Lightning row skipped: {lightning_note}")
        check_rows = {name: run for name, run in rows.items() if "offline" not in name}
        check_rows["engine (check)"] = engine_runner(LossRecorder, finish)
        del check_rows["typedexp fit, no tracking"]
        for threads in args.threads:
            torch.set_num_threads(threads or default_threads)
            for model in args.models:
                spec = MODELS[model]
                verdicts = check(check_rows, spec, data, args.batch_size)
                verdicts["typedexp fit, no tracking"] = verdicts["typedexp fit, offline tracking"] = verdicts.pop("engine (check)")
                # CPU time: on a loaded VM a wall-clock second may hold a fraction of a second of work.
                one_epoch = raw_loop(spec, data, 1, args.batch_size).clock.cpu
                epochs = max(2, math.ceil(args.min_seconds / one_epoch))
                runs = measure(rows, spec, data, epochs, args.batch_size, args.repeats)
                raw = runs["raw loop (baseline)"]
                lines = []
                for name, trained in runs.items():
                    wall = statistics.median(r.clock.wall / t.clock.wall for r, t in zip(raw, trained, strict=True))
                    cpu = statistics.median(r.clock.cpu / t.clock.cpu for r, t in zip(raw, trained, strict=True))
                    lines.append([
                        name, f"{statistics.median(t.clock.wall for t in trained):.2f}",
                        f"{statistics.median(t.clock.cpu for t in trained):.2f}", f"{wall:.3f}", f"**{cpu:.3f}**",
                        verdicts.get(name, "(the reference)"),
                    ])
                print(f"\n`{model}`, {torch.get_num_threads()} torch thread(s): {epochs} epochs x {steps_per_epoch} "
                      f"steps of batch {args.batch_size} per run, {args.repeats} repeats; load average "
                      f"{os.getloadavg()[0]:.1f}\n")
                print(table(["runner", "wall s", "CPU s", "raw ÷ this, wall", "raw ÷ this, CPU", "same computation as the raw loop"],
                            lines))


if __name__ == "__main__":
    main()
