"""What a launcher costs: the same 4-job sweep of tiny jobs under each installed Hydra launcher.

Each job trains 2 batches of the digits data (milliseconds), so the wall time is start-up: the
launching process once, then per job (a new process imports torch and typedexp for joblib's
workers, each submitit job and each Ray worker; the basic launcher runs the jobs in the
launching process). Ratios are against the basic launcher, run in the same invocation.

    python -m benchmarks.launchers [--jobs 4] [--repeats 1] [--only ray]

Ray needs its own environment (pip install 'typedexp[ray]': its cloudpickle<3 pin breaks
joblib's workers), so run `--only ray` there; the basic launcher always runs, as the baseline.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time

from benchmarks.common import machine, table

TINY = ["dataset=digits", "tracker=disabled", "epochs=1", "trainer.max_batches=2", "trainer.progress=off"]
LAUNCHERS = {
    "basic": [],
    "joblib, n_jobs=1": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=1"],
    "joblib, n_jobs=2": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
    "submitit_local": ["hydra/launcher=submitit_local"],
    "ray (local)": ["hydra/launcher=ray", "+hydra.launcher.ray.init.num_cpus=2"],
}
PLUGIN = {"joblib": "hydra_joblib_launcher", "submitit_local": "hydra_submitit_launcher", "ray": "hydra_ray_launcher"}


def installed(name: str) -> bool:
    plugin = next((module for prefix, module in PLUGIN.items() if name.startswith(prefix)), None)
    return plugin is None or importlib.util.find_spec(f"hydra_plugins.{plugin}") is not None


def sweep_seconds(launcher: list[str], jobs: int) -> float:
    seeds = ",".join(str(seed) for seed in range(jobs))
    with tempfile.TemporaryDirectory(prefix="bench", dir="/tmp") as cwd:  # short: Ray's socket paths
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "typedexp", "-m", *launcher, *TINY, f"seed={seeds}"],
            cwd=cwd, capture_output=True, text=True,
        )
        wall = time.perf_counter() - started
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"exit {done.returncode}: {last}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--only", default="", help="run only the launchers whose name starts with this (and basic)")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"typedexp -m <launcher> {' '.join(TINY)} seed=0..{args.jobs - 1}  (best of {args.repeats})\n")
    rows: list[list[str]] = []
    basic = 0.0
    for name, launcher in LAUNCHERS.items():
        if name != "basic" and not name.startswith(args.only):
            continue
        if not installed(name):
            rows.append([name, "not installed", "", ""])
            continue
        try:
            wall = min(sweep_seconds(launcher, args.jobs) for _ in range(args.repeats))
        except RuntimeError as exc:
            rows.append([name, f"failed ({exc})", "", ""])
            continue
        basic = basic or wall
        rows.append([name, f"{wall:.1f}", f"{wall / basic:.2f}", f"{(wall - basic) / args.jobs:+.2f}"])
    print(table(["launcher", "wall s", "vs basic", "extra s per job"], rows))


if __name__ == "__main__":
    main()
