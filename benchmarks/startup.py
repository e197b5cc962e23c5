"""Start-up: wall time of `typedexp --help`, `--cfg job`, launch to first training step, and a
whole 1-step run, against `python -c "import torch"` and against a hand-written script that
reaches the same point, on the same machine. Targets: --help <= 1.0 s (no torch import), launch
to first optimizer step <= 1.05x the hand-written script (issue 15; the earlier <= 1.5x the torch
import is out of reach for any PyTorch script, see benchmarks/README.md).

"Launch to first step" runs the real CLI with the engine's step function wrapped so that the
process exits (`os._exit`) as soon as the first optimizer step returns. Its baseline is the
same point in a hand-written script: import torch, build the `small` MLP and a
`torch.optim.SGD`, take one step. torch imports `torch._dynamo` (about 2.5 s here) inside the
first `torch.optim` call, so every PyTorch training script pays that.

    python -m benchmarks.startup [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import machine, table

TYPEDEXP = [sys.executable, "-m", "typedexp"]
HAND_WRITTEN_FIRST_STEP = """
import torch
from torch import nn
model = nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
images, labels = torch.randn(64, 1, 8, 8), torch.randint(0, 10, (64,))
loss = nn.functional.cross_entropy(model(images), labels)
optimizer.zero_grad()
loss.backward()
optimizer.step()
"""
# The CLI, stopped right after its first optimizer step.
TYPEDEXP_FIRST_STEP = """
import os, sys
import typedexp.engine.loop as loop
build_step = loop.training_step
def exit_after_first_step(*args, **kwargs):
    step = build_step(*args, **kwargs)
    def first(images, labels):
        step(images, labels)
        os._exit(0)
    return first
loop.training_step = exit_after_first_step
from typedexp.app.cli import main
main(sys.argv[1:])
"""


def run_once(command: list[str], cwd: str) -> tuple[float, float]:
    """Wall seconds and CPU seconds (the process and what it waited for) of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, capture_output=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


HAND_WRITTEN = "hand-written script: import torch .. first SGD step"
FIRST_STEP = "typedexp launch to first step, tracker=disabled"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cwd:
        run_dir = f"hydra.run.dir={Path(cwd) / 'runs' / '${now:%H-%M-%S-%f}'}"
        first_step = [sys.executable, "-c", TYPEDEXP_FIRST_STEP, run_dir]
        cases = {
            "python -c 'import torch'": [sys.executable, "-c", "import torch"],
            HAND_WRITTEN: [sys.executable, "-c", HAND_WRITTEN_FIRST_STEP],
            "typedexp --help": [*TYPEDEXP, "--help"],
            "typedexp --cfg job": [*TYPEDEXP, "--cfg", "job"],
            FIRST_STEP: [*first_step, "tracker=disabled"],
            "typedexp launch to first step, tracker=local (default)": first_step,
            "typedexp whole 1-step run, tracker=disabled": [
                *TYPEDEXP, "epochs=1", "trainer.max_batches=1", "tracker=disabled", run_dir,
            ],
        }
        names = list(cases)
        for name in names:
            run_once(cases[name], cwd)  # warm the file cache
        # Interleaved, in an order that rotates each repeat, so that the VM's drift hits every row.
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
        for repeat in range(args.repeats):
            for name in names[repeat % len(names):] + names[: repeat % len(names)]:
                times[name].append(run_once(cases[name], cwd))
    wall = {name: statistics.median(t[0] for t in runs) for name, runs in times.items()}
    cpu = {name: statistics.median(t[1] for t in runs) for name, runs in times.items()}
    # The target's ratio, also per repeat (each repeat's typedexp run over its hand-written run).
    paired = statistics.median(t[0] / h[0] for t, h in zip(times[FIRST_STEP], times[HAND_WRITTEN], strict=True))
    rows = [[name, f"{wall[name]:.2f}", f"{cpu[name]:.2f}", f"{wall[name] / wall[names[0]]:.2f}x",
             f"{wall[name] / wall[HAND_WRITTEN]:.2f}x", f"{cpu[name] / cpu[HAND_WRITTEN]:.2f}x"] for name in names]
    print(f"machine: {machine()}")
    print(f"median of {args.repeats} interleaved warm runs; SWANLAB/HYDRA env: "
          f"{sorted(k for k in os.environ if k.startswith(('SWANLAB', 'HYDRA')))}\n")
    print(table(["command", "wall s", "CPU s", "wall vs import torch", "wall vs hand-written", "CPU vs hand-written"], rows))
    print(f"\nlaunch to first step (tracker=disabled) / hand-written, median of per-repeat wall ratios: {paired:.3f}x")


if __name__ == "__main__":
    main()
