"""Steps per second with 1 and N processes (trainer.devices), the same global batches.

Each variant is a whole run through ``launch()`` in this process (N > 1: the task spawns the
ranks), with ``model=large`` on the digits data, batch 64, no tracking, no pictures; the rate is
optimizer steps / the run's training-and-validation seconds (rank 0's ``RunResult.seconds``, so
start-up and the ranks' torch imports are not in it). Variants alternate, ``--repeats`` times;
medians. The ratio is against one process with the torch threads of one rank (cores / N): on a
2-core CPU, expect no speed-up (the ranks share the cores and add a gradient all-reduce per step);
the row is there to catch regressions, and to be re-run on a machine with N GPUs
(``--device cuda``). One process at torch's default thread count is shown too: on a loaded VM its
OpenMP threads wait on each other, which is why its rate swings.

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
    import torch

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args()
    default_threads = torch.get_num_threads()
    per_rank = max(1, (os.cpu_count() or 1) // args.devices)  # what each spawned rank gets (docs/ddp.md)
    # (label, processes, torch threads of the one process); the baseline is one process with the
    # threads of one rank, so the ratio is the cost of N ranks, not of a thread count.
    variants = [
        (f"1 process, {per_rank} thread(s)", 1, per_rank),
        (f"1 process, {default_threads} threads (torch's default)", 1, default_threads),
        (f"{args.devices} processes, {per_rank} thread(s) each", args.devices, default_threads),
    ]
    rates: dict[str, list[float]] = {label: [] for label, _, _ in variants}
    with tempfile.TemporaryDirectory(prefix="bench-ddp") as temp:
        for repeat in range(args.repeats):
            for label, devices, threads in variants:  # alternate, so the VM's drift hits all
                torch.set_num_threads(threads)
                run_dir = os.path.join(temp, f"{len(rates[label])}-{devices}-{threads}-{repeat}")
                rates[label].append(steps_per_second(devices, args.epochs, args.device, run_dir))
    torch.set_num_threads(default_threads)
    base = statistics.median(rates[variants[0][0]])
    print(machine())
    print(f"model=large, digits, batch 64, {args.epochs} epochs, {args.device}, median of {args.repeats}")
    rows = []
    for label, _, _ in variants:
        rate = statistics.median(rates[label])
        rows.append([label, f"{rate:.0f}", f"{rate / base:.2f}"])
    print(table(["variant", "steps/s", "÷ 1 process, same threads"], rows))


if __name__ == "__main__":
    main()
