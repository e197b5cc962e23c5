"""Sweep throughput: a 4-job multirun of the default experiment through Hydra's basic launcher.

Reports jobs per minute and the share of each job spent outside training (imports, config
composition, data loading, tracker init and finish), from each job's own training time in its
summary line.

    python -m benchmarks.sweep [--tracker offline]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time

from benchmarks.common import machine, table

TRAINING_SECONDS = re.compile(r"steps, ([0-9.]+) s on ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracker", default="offline")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cwd:
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "typedexp", "-m", "seed=0,1,2,3", f"tracker={args.tracker}"],
            cwd=cwd, check=True, capture_output=True, text=True,
        )
        wall = time.perf_counter() - started
    training = [float(seconds) for seconds in TRAINING_SECONDS.findall(done.stdout)]
    assert len(training) == 4, done.stdout
    outside = 1 - sum(training) / wall
    print(f"machine: {machine()}")
    print(f"typedexp -m seed=0,1,2,3 tracker={args.tracker} (default experiment, 15 epochs each)\n")
    print(table(
        ["jobs", "wall s", "jobs / minute", "training s per job", "share outside training"],
        [["4", f"{wall:.1f}", f"{4 / wall * 60:.1f}", f"{sum(training) / 4:.2f}", f"{outside:.0%}"]],
    ))


if __name__ == "__main__":
    main()
