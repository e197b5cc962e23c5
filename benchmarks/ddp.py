"""Steps per second with 1 and N processes (trainer.devices), the same global batches.

Each variant is a whole run through ``launch()`` in this process (N > 1: the task spawns the
ranks), with ``model=large`` on the digits data, batch 64, no tracking, no pictures; the rate is
optimizer steps / the run's training-and-validation seconds (rank 0's ``RunResult.seconds``, so
start-up and the ranks' torch imports are not in it). Variants alternate, ``--repeats`` times;
medians. The ratio is N processes ÷ 1 process: on a 2-core CPU, expect no speed-up (the two ranks
share the cores and add a gradient all-reduce per step); the row is there to catch regressions,
and to be re-run on a machine with N GPUs (``--device cuda``).

    python -m benchmarks.ddp [--devices 2] [--repeats 3] [--epochs 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import tempfile

from benchmarks.common import machine, table


def steps_per_second(devices: int, epochs: int, device: str, run_dir: str) -> float:
    from typedexp import launch

    overrides = [
        "model=large", "dataset=digits", "batch_size=64", f"epochs={epochs}", "tracker=disabled",
        "trainer.progress=off", "trainer.media_every=0", f"trainer.device={device}",
        f"trainer.devices={devices}", f"hydra.run.dir={run_dir}",
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        result = launch(overrides)
    return result.steps / result.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args()
    rates: dict[int, list[float]] = {1: [], args.devices: []}
    with tempfile.TemporaryDirectory(prefix="bench-ddp") as temp:
        for repeat in range(args.repeats):
            for devices in rates:  # alternate, so the VM's drift hits both
                run_dir = os.path.join(temp, f"{devices}-{repeat}")
                rates[devices].append(steps_per_second(devices, args.epochs, args.device, run_dir))
    one, many = statistics.median(rates[1]), statistics.median(rates[args.devices])
    print(machine())
    print(f"model=large, digits, batch 64, {args.epochs} epochs, {args.device}, median of {args.repeats}")
    print(table(
        ["processes", "steps/s", "÷ 1 process"],
        [["1", f"{one:.1f}", "1.00"], [str(args.devices), f"{many:.1f}", f"{many / one:.2f}"]],
    ))


if __name__ == "__main__":
    main()
