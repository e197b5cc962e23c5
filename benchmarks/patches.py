"""What each remaining patch of a third-party internal buys, against the library's own behaviour.

The library's own behaviour is what runs when a patch's gate says no (``patch_gates.allowed``,
as on an unpinned version). Variants alternate, in an order that rotates with each repeat; each
row gives medians of wall time and of CPU time, and the median of the per-repeat differences to
the shipped code (all patches on), also as a share of the shipped run's CPU time.

- The SwanLab patches, on a typical digits run: ``launch()`` with the defaults (``small`` MLP,
  15 epochs, ``tracker=local``), torch at 1 thread, all runs in this one process, so torch's import and other
  start-up noise stay out of the pairs. CPU is this process's (all threads: SwanLab's writer
  included) plus its children's (SwanLab's own ``pip list``). The environment snapshot that a
  fresh process reads once is dropped before each run, so every run pays it as a single run
  does.
- Hydra's ``--help``: the real CLI in a fresh process per run (the patch is per process).

    python -m benchmarks.patches [--repeats 7]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from benchmarks.common import machine, table

# The CLI with the patches named in argv[1] (comma-separated) refused by their gates.
WITHOUT = """
import sys
import typedexp.core.versions as gates
off, real = set(filter(None, sys.argv[1].split(","))), gates.allowed
def allowed(patch, shape_ok):
    return False if patch in off else real(patch, shape_ok)
gates.allowed = allowed  # cli.py looks it up there when --help starts
from typedexp.app.cli import main
main(sys.argv[2:])
"""

RUN_VARIANTS: dict[str, tuple[str, ...]] = {
    "all patches (as shipped)": (),
    "without requirements_in_process": ("requirements_in_process",),
    "without dashboard_scalars_per_batch": ("dashboard_scalars_per_batch",),
    "without either SwanLab patch": ("requirements_in_process", "dashboard_scalars_per_batch"),
}
HELP_VARIANTS: dict[str, tuple[str, ...]] = {
    "--help, all patches (as shipped)": (),
    "--help without help_shares_repository": ("help_shares_repository",),
}


def cpu_seconds() -> float:
    """This process's CPU time (all threads) plus that of the children it waited for."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def paired(variants: dict[str, tuple[str, ...]], run: Callable[[tuple[str, ...]], None], repeats: int) -> list[list[str]]:
    names = list(variants)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    for repeat in range(repeats):
        for name in names[repeat % len(names):] + names[: repeat % len(names)]:
            cpu, wall = cpu_seconds(), time.perf_counter()
            run(variants[name])
            times[name].append((time.perf_counter() - wall, cpu_seconds() - cpu))
    base = names[0]
    base_cpu = statistics.median(t[1] for t in times[base])
    rows = []
    for name in names:
        extra_wall = statistics.median(t[0] - b[0] for t, b in zip(times[name], times[base], strict=True))
        extra_cpu = statistics.median(t[1] - b[1] for t, b in zip(times[name], times[base], strict=True))
        rows.append([
            name,
            f"{statistics.median(t[0] for t in times[name]):.2f}",
            f"{statistics.median(t[1] for t in times[name]):.2f}",
            "–" if name == base else f"{extra_wall * 1000:+.0f}",
            "–" if name == base else f"{extra_cpu * 1000:+.0f} ({extra_cpu / base_cpu:+.1%})",
        ])
    return rows


@contextlib.contextmanager
def refused(off: tuple[str, ...]) -> Iterator[None]:
    """The named SwanLab patches refused by their gates and SwanLab's own functions in place."""
    from swanlab.deprecated.local import LocalCallbacker
    from swanlab.sdk.internal.probe_python.environment import requirements

    import typedexp.core.versions as gates
    import typedexp.tracking.swanlab_patches as patches

    real = gates.allowed
    get = requirements.get
    flush = LocalCallbacker.__dict__["on_scalar_flush"]
    gates.allowed = lambda patch, shape_ok: False if patch in off else real(patch, shape_ok)
    if "requirements_in_process" in off and getattr(get, "__typedexp_patched__", False):
        requirements.get = vars(get)["__wrapped__"]  # SwanLab's own (functools.wraps keeps it there)
    if "dashboard_scalars_per_batch" in off and flush is patches.write_scalars:
        setattr(LocalCallbacker, "on_scalar_flush", SWANLAB_SCALAR_FLUSH)
    patches._snapshot = None  # a fresh process's first run reads the package metadata once
    try:
        yield
    finally:
        gates.allowed = real


def digits_run(temp: Path) -> Callable[[tuple[str, ...]], None]:
    from typedexp import launch

    def run(off: tuple[str, ...]) -> None:
        with refused(off), contextlib.redirect_stdout(io.StringIO()):
            # Each run in a log dir of its own, as a first run: SwanLab's local database starts
            # empty, and no earlier run of the same name makes it retry.
            run_dir = Path(tempfile.mkdtemp(dir=temp))
            launch(["trainer.progress=off", f"tracker.log_dir={run_dir / 'swanlog'}"], output_dir=run_dir / "run")

    return run


def help_run(temp: Path) -> Callable[[tuple[str, ...]], None]:
    def run(off: tuple[str, ...]) -> None:
        subprocess.run([sys.executable, "-c", WITHOUT, ",".join(off), "--help"], cwd=temp, check=True,
                       capture_output=True)

    return run


def main() -> None:
    global SWANLAB_SCALAR_FLUSH
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    from swanlab.deprecated.local import LocalCallbacker

    SWANLAB_SCALAR_FLUSH = LocalCallbacker.__dict__["on_scalar_flush"]  # before any run installs ours
    import torch

    # One torch thread: on the shared 2-core VM, torch's two threads wait on each other whenever
    # other work takes a core, and a digits run's CPU time then varies 3-10x (seen here).
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as name:
        temp = Path(name)
        os.chdir(temp)
        digits = digits_run(temp)
        digits(())  # warm up: imports, the dataset, SwanLab's first init
        rows = paired(RUN_VARIANTS, digits, args.repeats)
        rows += paired(HELP_VARIANTS, help_run(temp), args.repeats)
    print(f"machine: {machine()}")
    print(f"median of {args.repeats} interleaved repeats; difference: per-repeat pairs\n")
    print(table(["variant", "wall s", "CPU s", "vs shipped: wall ms", "vs shipped: CPU ms"], rows))


SWANLAB_SCALAR_FLUSH: object = None

if __name__ == "__main__":
    main()
