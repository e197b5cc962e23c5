"""Sweep cost per job: a 20-job ``-m`` sweep of short digits runs through Hydra's basic launcher.

What hyper-parameter search pays per job beyond training: Hydra's composition of the job, the
task's set-up (data, model, tracker start), the tracker's finish, the run files. Each sweep runs
``typedexp -m seed=range(0,N) epochs=2 tracker=<t>`` as a subprocess in a fresh directory and
timestamps its output lines as they arrive:

- Hydra logs ``#k : <overrides>`` when job k starts, so job k's wall time is the gap to the
  ``#k+1`` line (the last job ends when the process exits);
- the job's summary line (``done: ... (2 epochs, 46 steps, 14 ms on cpu)``) gives its own
  training and validation seconds, which are subtracted;
- at each line the child's CPU time is read from ``/proc/<pid>/stat`` (all its threads, 10 ms
  ticks), so a job's CPU time sits next to its wall time.

The first job (process start to ``#1``: imports, the store, the first composition) is reported
on its own; the rest as median and mean. Sweeps of every variant are interleaved (A B A B ...),
because wall time on a shared VM moves by ±10% within minutes. ``--baseline-src DIR`` runs the
same sweeps with another copy of typedexp's ``src/`` first on the path (e.g. the code before a
change, from ``git archive``), interleaved with this one, so before/after come from one run.

    python -m benchmarks.sweep [--jobs 20] [--repeats 2] [--trackers local,disabled] [--baseline-src DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.common import machine, table

REPO_SRC = Path(__file__).resolve().parent.parent / "src"
JOB_START = re.compile(r"\[HYDRA\]\s+#(\d+) : ")
SUMMARY = re.compile(r"^done: .*\((\d+) epochs, \d+ steps, ([0-9.]+) (ms|s) on ")
RUN_DIR_LINE = re.compile(r"^typedexp: run dir ")
TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


@dataclass
class Job:
    start: float  # perf_counter seconds when Hydra logged `#k`
    start_cpu: float  # the child's CPU seconds at that moment
    set_up_done: float | None = None  # the task's `run dir` line: data, model, tracker started
    done: float | None = None  # the summary line: training, tracker finish, model.pt written
    training: float | None = None  # the job's own training + validation seconds (its summary)
    end: float = 0.0
    end_cpu: float = 0.0

    @property
    def outside(self) -> float:
        assert self.training is not None
        return self.end - self.start - self.training


@dataclass
class Sweep:
    label: str
    started: float
    jobs: list[Job] = field(default_factory=list)
    first_job_line: float = 0.0  # process start to `#0`: imports, the store, the pre-Hydra checks
    total_wall: float = 0.0
    total_cpu: float = 0.0


def child_cpu_seconds(pid: int) -> float:
    """User + system CPU of process ``pid`` (all threads), from /proc; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_SECOND  # utime, stime (fields 14, 15)


def run_sweep(label: str, src: Path, tracker: str, jobs: int, epochs: int, threads: int) -> Sweep:
    env = {
        **os.environ,
        "PYTHONPATH": str(src),
        "PYTHONUNBUFFERED": "1",  # lines must arrive when they are printed, not at exit
        "OMP_NUM_THREADS": str(threads),
        "SWANLAB_INTERACTIVE": "false",
    }
    command = [
        sys.executable, "-m", "typedexp", "-m", f"seed=range(0,{jobs})", f"epochs={epochs}",
        f"tracker={tracker}", "hydra.sweep.dir=sweep",
    ]
    with tempfile.TemporaryDirectory() as cwd:
        started = time.perf_counter()
        child = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        sweep = Sweep(label, started)
        lines: list[str] = []
        assert child.stdout is not None
        for line in child.stdout:
            now, cpu = time.perf_counter(), child_cpu_seconds(child.pid)
            lines.append(line)
            if (start := JOB_START.search(line)) is not None:
                if sweep.jobs:
                    sweep.jobs[-1].end, sweep.jobs[-1].end_cpu = now, cpu
                else:
                    sweep.first_job_line = now - started
                assert int(start.group(1)) == len(sweep.jobs), line
                sweep.jobs.append(Job(now, cpu))
            elif RUN_DIR_LINE.match(line) and sweep.jobs:
                sweep.jobs[-1].set_up_done = now
            elif (summary := SUMMARY.match(line)) is not None:
                value = float(summary.group(2))
                sweep.jobs[-1].training = value / 1000 if summary.group(3) == "ms" else value
                sweep.jobs[-1].done = now
        last_cpu = child_cpu_seconds(child.pid)  # before wait() reaps it
        code = child.wait()
        ended = time.perf_counter()
        if code != 0 or len(sweep.jobs) != jobs or any(job.training is None for job in sweep.jobs):
            raise SystemExit(f"{label}: sweep failed (exit {code}):\n{''.join(lines[-30:])}")
        sweep.jobs[-1].end, sweep.jobs[-1].end_cpu = ended, last_cpu
        sweep.total_wall = ended - started
        sweep.total_cpu = last_cpu
    # The first job is counted from the process start: what a one-job run would pay.
    sweep.jobs[0].start, sweep.jobs[0].start_cpu = started, 0.0
    return sweep


def median_of(sweeps: list[Sweep], value: Callable[[Sweep], float]) -> float:
    return statistics.median(value(sweep) for sweep in sweeps)


def rest(sweep: Sweep) -> list[Job]:
    return sweep.jobs[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=2, help="epochs per job (2 on digits: ~20-60 ms of training)")
    parser.add_argument("--repeats", type=int, default=2, help="sweeps per variant, interleaved")
    parser.add_argument("--trackers", default="local,disabled", help="comma-separated tracker options")
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of each sweep")
    parser.add_argument("--baseline-src", type=Path, help="another typedexp src/ to compare with, interleaved")
    args = parser.parse_args()

    sources = [("this", REPO_SRC)] + ([("baseline", args.baseline_src.resolve())] if args.baseline_src else [])
    variants = [(f"{name} tracker={tracker}", src, tracker) for tracker in args.trackers.split(",") for name, src in sources]
    results: dict[str, list[Sweep]] = {label: [] for label, _, _ in variants}
    for repeat in range(args.repeats):
        for label, src, tracker in variants if repeat % 2 == 0 else variants[::-1]:
            results[label].append(run_sweep(label, src, tracker, args.jobs, args.epochs, args.threads))
            print(f"  {label}: sweep {repeat + 1} of {args.repeats} done", file=sys.stderr)

    print(f"machine: {machine()}")
    print(
        f"typedexp -m seed=range(0,{args.jobs}) epochs={args.epochs} tracker=<t>, basic launcher, "
        f"OMP_NUM_THREADS={args.threads}; median over {args.repeats} interleaved sweeps of each variant\n"
    )
    rows = []
    for label, sweeps in results.items():
        rows.append([
            label,
            f"{median_of(sweeps, lambda s: s.total_wall):.1f}",
            f"{median_of(sweeps, lambda s: s.jobs[0].end - s.started):.2f}",
            f"{median_of(sweeps, lambda s: statistics.median(j.outside for j in rest(s))):.3f}",
            f"{median_of(sweeps, lambda s: statistics.mean(j.outside for j in rest(s))):.3f}",
            f"{median_of(sweeps, lambda s: statistics.median(j.end_cpu - j.start_cpu for j in rest(s))):.3f}",
            f"{median_of(sweeps, lambda s: statistics.median(j.training or 0.0 for j in rest(s))):.3f}",
        ])
    print(table(
        ["variant", "sweep wall s", "first job s", "later: outside training s (median)", "(mean)",
         "later: job CPU s (median)", "later: training s (median)"],
        rows,
    ))
    # Where a later job's time goes, from the line timestamps (median over jobs and sweeps).
    phases = []
    for label, sweeps in results.items():
        jobs = [job for sweep in sweeps for job in rest(sweep)]
        phases.append([
            label,
            f"{statistics.median((j.set_up_done or j.start) - j.start for j in jobs):.3f}",
            f"{statistics.median((j.done or j.end) - (j.set_up_done or j.start) - (j.training or 0.0) for j in jobs):.3f}",
            f"{statistics.median(j.end - (j.done or j.end) for j in jobs):.3f}",
        ])
    print("\nwhere a later job's time outside training goes (median seconds):")
    print(table(
        ["variant", "`#k` to `run dir` line (compose, data, model, tracker start)",
         "`run dir` to `done` minus training (tracker finish, model.pt)", "`done` to `#k+1` (job teardown)"],
        phases,
    ))


if __name__ == "__main__":
    main()
