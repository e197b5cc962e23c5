"""Start-up: wall time of `typedexp --help`, `--cfg job`, and a whole 1-step run, against
`python -c "import torch"` on the same machine. Targets: --help <= 1.0 s (no torch import),
launch to first training step <= 1.5x the torch import.

The 1-step run (`epochs=1 trainer.max_batches=1 tracker=disabled`) covers start-up, data
loading, model building, the first step, the checkpoint and the exit, so it bounds "launch to
first step" from above. A second baseline builds one `torch.optim.SGD`: torch imports
`torch._dynamo` (about 2.5 s here) on the first optimizer call, so every training script pays it.

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
FIRST_OPTIMIZER = "import torch; torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)"


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
        # Any script that trains pays this too: the first torch.optim call imports torch._dynamo.
        optimizer_floor = command_time([sys.executable, "-c", FIRST_OPTIMIZER], cwd, args.repeats)
        cases = {
            "typedexp --help": [*TYPEDEXP, "--help"],
            "typedexp --cfg job": [*TYPEDEXP, "--cfg", "job"],
            "typedexp, 1-step run (digits, small)": [
                *TYPEDEXP, "epochs=1", "trainer.max_batches=1", "tracker=disabled",
                f"hydra.run.dir={Path(cwd) / 'runs' / '${now:%H-%M-%S-%f}'}",
            ],
        }
        rows = [
            ["python -c 'import torch'", f"{torch_import:.2f}", "1.00x"],
            ["import torch + build one torch.optim.SGD", f"{optimizer_floor:.2f}", f"{optimizer_floor / torch_import:.2f}x"],
        ]
        for name, command in cases.items():
            seconds = command_time(command, cwd, args.repeats)
            rows.append([name, f"{seconds:.2f}", f"{seconds / torch_import:.2f}x"])
    print(f"machine: {machine()}")
    print(f"median of {args.repeats} warm runs; SWANLAB/HYDRA env: {sorted(k for k in os.environ if k.startswith(('SWANLAB', 'HYDRA')))}\n")
    print(table(["command", "seconds", "vs import torch"], rows))


if __name__ == "__main__":
    main()
