"""Shared bits of the benchmark scripts: the machine line and a plain-text table."""

from __future__ import annotations

import contextlib
import io
import os
import platform
import shutil
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return (
        f"{platform.node()}: {os.cpu_count()} CPUs ({cpu}), {gpu}; Python {platform.python_version()}, "
        f"torch {torch.__version__}, {time.strftime('%Y-%m-%d')}"
    )


def timed(run: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls, in seconds."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = [header, ["-" * w for w in widths], *rows]
    return "\n".join("| " + " | ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)) + " |" for line in lines)


def job_copies(temp: Path, jobs: int) -> list[Path]:
    """``temp/sweep/0`` ... ``temp/sweep/<jobs - 1>``: copies of one real sweep job's directory.

    The job is a one-job sweep of a short digits run, made in ``temp`` (which becomes the working
    directory), so the copies hold exactly what a job leaves: ``.hydra/``, ``metrics.jsonl``,
    ``result.json``, ``model.pt``.
    """
    from typedexp import launch_sweep

    os.chdir(temp)
    with contextlib.redirect_stdout(io.StringIO()):  # the job's own lines and its summary
        launch_sweep(["seed=0", "tracker=disabled", "epochs=1", "trainer.max_batches=2", "trainer.progress=off"], sweep_dir="one")
    dirs = [temp / "sweep" / str(job) for job in range(jobs)]
    for path in dirs:
        shutil.copytree(temp / "one" / "0", path)
    return dirs
