"""Start-up: wall time of `typedexp --help`, `--cfg job`, launch to first training step, and a
whole 1-step run, against `python -c "import torch"` on the same machine. Targets: --help
<= 1.0 s (no torch import), launch to first training step <= 1.5x the torch import.

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
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import machine, table, timed

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
from typedexp.cli import main
main(sys.argv[1:])
"""


def command_time(command: list[str], cwd: str, repeats: int) -> float:
    def run() -> None:
        subprocess.run(command, cwd=cwd, check=True, capture_output=True)

    run()  # warm the file cache
    return timed(run, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cwd:
        torch_import = command_time([sys.executable, "-c", "import torch"], cwd, args.repeats)
        run_dir = f"hydra.run.dir={Path(cwd) / 'runs' / '${now:%H-%M-%S-%f}'}"
        first_step = [sys.executable, "-c", TYPEDEXP_FIRST_STEP, run_dir]
        cases = {
            "hand-written script: import torch .. first SGD step": [sys.executable, "-c", HAND_WRITTEN_FIRST_STEP],
            "typedexp --help": [*TYPEDEXP, "--help"],
            "typedexp --cfg job": [*TYPEDEXP, "--cfg", "job"],
            "typedexp launch to first step, tracker=disabled": [*first_step, "tracker=disabled"],
            "typedexp launch to first step, tracker=local (default)": first_step,
            "typedexp whole 1-step run, tracker=disabled": [
                *TYPEDEXP, "epochs=1", "trainer.max_batches=1", "tracker=disabled", run_dir,
            ],
        }
        rows = [["python -c 'import torch'", f"{torch_import:.2f}", "1.00x"]]
        for name, command in cases.items():
            seconds = command_time(command, cwd, args.repeats)
            rows.append([name, f"{seconds:.2f}", f"{seconds / torch_import:.2f}x"])
    print(f"machine: {machine()}")
    print(f"median of {args.repeats} warm runs; SWANLAB/HYDRA env: {sorted(k for k in os.environ if k.startswith(('SWANLAB', 'HYDRA')))}\n")
    print(table(["command", "seconds", "vs import torch"], rows))


if __name__ == "__main__":
    main()
