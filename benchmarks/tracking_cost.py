"""Tracking cost: time per training step with tracker=disabled vs offline vs local.

The `small` model on digits at the default `trainer.log_every=10`; metrics.jsonl is written in
every variant. Two numbers per variant:

- the wall time per step of training plus `finish` (which hands over the points still pending
  and, in local mode, drains SwanLab's queue: work moved there is still paid for), as the
  median over repeats of its ratio to the untracked run of the same repeat. The order of the
  variants rotates between repeats, so machine-load drifts hit each of them alike;
- the time the training thread spends inside the tracker per step (its `log` calls and
  `finish`): the tracker's own share, which the VM's noise does not blur.

Each SwanLab mode runs at the default `tracker.flush_every_s=1` (points handed over from a
thread of the tracker's own) and at 0 (handed over on the training thread, as before).
SwanLab's one-off `init` is reported on its own. Target: <= 2% of step time.

    python -m benchmarks.tracking_cost [--epochs 200] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmarks.common import machine, table
from typedexp.data import Digits
from typedexp.engine import TrainerSettings, fit, seed_everything
from typedexp.engine.settings import Progress
from typedexp.specs.models import MLP
from typedexp.tracking import FanOut, JsonlTracker, RunOutcome, SwanLabMode, SwanLabTracking, Tracker

Variant = tuple[SwanLabMode, float]  # (mode, flush_every_s)


class TimedTracker:
    """Adds up the wall time the training thread spends inside ``inner``."""

    def __init__(self, inner: Tracker) -> None:
        self.inner = inner
        self.seconds = 0.0

    def log(self, metrics: Mapping[str, float], *, step: int, epoch: int) -> None:
        started = time.perf_counter()
        self.inner.log(metrics, step=step, epoch=epoch)
        self.seconds += time.perf_counter() - started

    def finish(self, outcome: RunOutcome, error: str | None = None) -> None:
        started = time.perf_counter()
        self.inner.finish(outcome, error)
        self.seconds += time.perf_counter() - started


@dataclass(frozen=True)
class Measured:
    init: float  # s, SwanLab's init (once per run)
    per_step: float  # s, (training + finish) / steps
    in_tracker: float  # s per step spent inside the SwanLab tracker on the training thread
    steps: int


def one_run(variant: Variant, log_dir: Path, epochs: int) -> Measured:
    mode, flush_every_s = variant
    data = Digits().load()
    generator = seed_everything(0)
    model = MLP().build(data.input_shape, data.num_classes)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    run_dir = Path(tempfile.mkdtemp(dir=log_dir))
    started = time.perf_counter()
    tracking = SwanLabTracking(mode=mode, log_dir=str(log_dir / "swanlog"), flush_every_s=flush_every_s)
    external = TimedTracker(tracking.start(config={"benchmark": "tracking_cost"}, run_name=mode.value, run_dir=str(run_dir)))
    tracker = FanOut([JsonlTracker(run_dir / "metrics.jsonl"), external])
    initialised = time.perf_counter()
    fitted = fit(model, optimizer, data, epochs=epochs, batch_size=64,
                 # Scalars only; the pictures' cost is benchmarks.media_cost's.
                 settings=TrainerSettings(progress=Progress.off, media_every=0), tracker=tracker, generator=generator)
    tracker.finish(RunOutcome.success)
    finished = time.perf_counter()
    return Measured(initialised - started, (finished - initialised) / fitted.steps, external.seconds / fitted.steps, fitted.steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=200)  # ~4,600 steps: many hand-offs per run
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    untracked: Variant = (SwanLabMode.disabled, 0.0)
    variants = [untracked] + [(mode, every) for mode in (SwanLabMode.offline, SwanLabMode.local) for every in (1.0, 0.0)]
    results: dict[Variant, list[Measured]] = {variant: [] for variant in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            shift = repeat % len(variants)
            for variant in variants[shift:] + variants[:shift]:
                results[variant].append(one_run(variant, Path(tmp), args.epochs))
    rows = []
    for variant in variants:
        runs = results[variant]
        ratios = [run.per_step / base.per_step for run, base in zip(runs, results[untracked], strict=True)]
        median_step = statistics.median(run.per_step for run in runs)
        in_tracker = statistics.median(run.in_tracker for run in runs)
        name = "disabled" if variant == untracked else f"{variant[0].value}, flush_every_s={variant[1]:g}"
        rows.append([
            name,
            f"{(statistics.median(ratios) - 1) * 100:+.1f}%",
            f"{min(ratios) - 1:+.0%} .. {max(ratios) - 1:+.0%}",
            f"{median_step * 1e6:.0f}",
            f"{in_tracker * 1e6:.1f} ({in_tracker / median_step:.1%})",
            f"{statistics.median(run.init for run in runs):.2f}",
        ])
    steps = results[untracked][0].steps
    print(f"machine: {machine()}")
    print(f"`small` on digits, {steps} steps, log_every=10, {args.repeats} repeats, "
          "medians; metrics.jsonl written in every variant\n")
    print(table(["tracker", "vs disabled (median)", "range", "µs / step", "µs / step in tracker", "init s"], rows))


if __name__ == "__main__":
    main()
