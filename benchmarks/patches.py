"""What each remaining patch of a third-party internal buys, against the library's own behaviour.

Every variant is the real CLI in a fresh process, with the named patches refused by their gates
(``patch_gates.allowed`` answers no, as it does on an unpinned version, so the library's own
code runs); the variants run interleaved, in an order that rotates with each repeat. Each row
gives the medians of wall time and of CPU time (the process and its children: SwanLab's ``pip
list`` included), and the median of the per-repeat differences to the shipped code (all patches
on), with that difference as a share of the run.

  a typical digits run: ``typedexp`` with its defaults (``small`` MLP, 15 epochs, ``tracker=local``)
  ``typedexp --help``

    python -m benchmarks.patches [--repeats 5]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import machine, table

# The CLI with the patches named in argv[1] (comma-separated) refused by their gates.
WITHOUT = """
import sys
import typedexp.patch_gates as gates
import typedexp.tracking.swanlab_patches as swanlab_patches
off, real = set(filter(None, sys.argv[1].split(","))), gates.allowed
def allowed(patch, shape_ok):
    return False if patch in off else real(patch, shape_ok)
gates.allowed = swanlab_patches.allowed = allowed  # cli.py and dashboard.py look it up in gates
from typedexp.cli import main
main(sys.argv[2:])
"""

SWANLAB_PATCHES = ("requirements_in_process", "dashboard_scalars_per_batch")
RUN_VARIANTS = {
    "all patches (as shipped)": (),
    "without requirements_in_process": ("requirements_in_process",),
    "without dashboard_scalars_per_batch": ("dashboard_scalars_per_batch",),
    "without any SwanLab patch": SWANLAB_PATCHES,
}
HELP_VARIANTS = {"--help, all patches (as shipped)": (), "--help without help_shares_repository": ("help_shares_repository",)}


def run_once(off: tuple[str, ...], args: list[str], cwd: Path) -> tuple[float, float]:
    """Wall and CPU seconds (this child and everything it waited for) of one CLI process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", WITHOUT, ",".join(off), *args], cwd=cwd, check=True, capture_output=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def measure(variants: dict[str, tuple[str, ...]], args: list[str], cwd: Path, repeats: int) -> list[list[str]]:
    names = list(variants)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    run_once((), args, cwd)  # warm the file cache
    for repeat in range(repeats):
        for name in names[repeat % len(names):] + names[: repeat % len(names)]:
            times[name].append(run_once(variants[name], args, cwd))
    base = names[0]
    rows = []
    for name in names:
        wall = statistics.median(t[0] for t in times[name])
        cpu = statistics.median(t[1] for t in times[name])
        extra_wall = statistics.median(t[0] - b[0] for t, b in zip(times[name], times[base], strict=True))
        extra_cpu = statistics.median(t[1] - b[1] for t, b in zip(times[name], times[base], strict=True))
        base_cpu = statistics.median(t[1] for t in times[base])
        rows.append([
            name, f"{wall:.2f}", f"{cpu:.2f}",
            "–" if name == base else f"{extra_wall * 1000:+.0f}",
            "–" if name == base else f"{extra_cpu * 1000:+.0f} ({extra_cpu / base_cpu:+.1%})",
        ])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        cwd = Path(temp)
        run = ["trainer.progress=off", f"hydra.run.dir={cwd / 'runs' / '${now:%H-%M-%S-%f}'}"]
        rows = measure(RUN_VARIANTS, run, cwd, args.repeats)
        rows += measure(HELP_VARIANTS, ["--help"], cwd, args.repeats)
    print(f"machine: {machine()}")
    print(f"median of {args.repeats} interleaved repeats, each a fresh process; difference: per-repeat pairs\n")
    print(table(["variant", "wall s", "CPU s", "vs shipped: wall ms", "vs shipped: CPU ms"], rows))


if __name__ == "__main__":
    main()
