"""Tracking cost: time per training step with tracker=disabled vs offline vs local.

The `small` model on digits-shaped data at the default `trainer.log_every=10`, timed around
`fit` only; SwanLab's one-off init and finish are reported on their own (they run once per
run, and local mode's finish drains its queue). Target: <= 2% of step time.

    python -m benchmarks.tracking_cost [--epochs 20] [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import machine, table
from typedexp.data import Digits
from typedexp.engine import TrainerSettings, fit, seed_everything
from typedexp.engine.settings import Progress
from typedexp.models import MLP
from typedexp.tracking import FanOut, JsonlTracker, RunOutcome, SwanLabMode, SwanLabTracking


def one_run(mode: SwanLabMode, log_dir: Path, epochs: int) -> tuple[float, float, float, int]:
    """(init s, fit s, finish s, steps) for one tracked run."""
    data = Digits().load()
    generator = seed_everything(0)
    model = MLP().build(data.input_shape, data.num_classes)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    run_dir = Path(tempfile.mkdtemp(dir=log_dir))
    started = time.perf_counter()
    external = SwanLabTracking(mode=mode, log_dir=str(log_dir / "swanlog")).start(
        config={"benchmark": "tracking_cost"}, run_name=mode.value, run_dir=str(run_dir)
    )
    tracker = FanOut([JsonlTracker(run_dir / "metrics.jsonl"), external])
    initialised = time.perf_counter()
    fitted = fit(model, optimizer, data, epochs=epochs, batch_size=64,
                 settings=TrainerSettings(progress=Progress.off), tracker=tracker, generator=generator)
    trained = time.perf_counter()
    tracker.finish(RunOutcome.success)
    finished = time.perf_counter()
    return initialised - started, trained - initialised, finished - trained, fitted.steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    modes = [SwanLabMode.disabled, SwanLabMode.offline, SwanLabMode.local]
    results: dict[SwanLabMode, list[tuple[float, float, float, int]]] = {mode: [] for mode in modes}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):  # interleaved, so drifts in machine load hit every mode
            for mode in modes:
                results[mode].append(one_run(mode, Path(tmp), args.epochs))
    baseline = min(r[1] / r[3] for r in results[SwanLabMode.disabled])
    rows = []
    for mode in modes:
        per_step = min(r[1] / r[3] for r in results[mode])
        init = min(r[0] for r in results[mode])
        finish = min(r[2] for r in results[mode])
        rows.append([mode.value, f"{per_step * 1e6:.0f}", f"{(per_step / baseline - 1) * 100:+.1f}%",
                     f"{init:.2f}", f"{finish:.2f}"])
    steps = results[SwanLabMode.disabled][0][3]
    print(f"machine: {machine()}")
    print(f"`small` on digits, {steps} steps, log_every=10, best of {args.repeats} interleaved runs\n")
    print(table(["tracker", "µs / step", "vs disabled", "init s (once)", "finish s (once)"], rows))


if __name__ == "__main__":
    main()
