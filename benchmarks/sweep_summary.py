"""The sweep summary's cost: reading N job dirs (``runs.find_runs``) and saving the table.

The summary reads each job's ``.hydra/hydra.yaml`` (about 10 kB) for its job number. The baseline
reads it with ``OmegaConf.load``; typedexp reads it with PyYAML's libyaml safe loader. Both read
the same N copies of a real job dir, made by one real sweep job, in the same process, interleaved;
medians of 5.

    python -m benchmarks.sweep_summary [N]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from omegaconf import OmegaConf

from benchmarks.common import job_copies, machine, table, timed
from typedexp.runs import record as runs
from typedexp.sweeps.summary import save, summarize


def omegaconf_hydra_files(run_dir: Path) -> tuple[int | None, tuple[str, ...]]:
    """The baseline: the same two files read with OmegaConf.load, as a first version did."""
    overrides = OmegaConf.to_container(OmegaConf.load(run_dir / ".hydra" / "overrides.yaml"))
    number = OmegaConf.select(OmegaConf.load(run_dir / ".hydra" / "hydra.yaml"), "hydra.job.num", default=None)
    items = tuple(str(item) for item in overrides) if isinstance(overrides, list) else ()
    return (number if isinstance(number, int) else None), items


def main(jobs: int) -> None:
    print(machine())
    with tempfile.TemporaryDirectory() as temp:
        dirs = job_copies(Path(temp), jobs)
        sweep = Path(temp) / "sweep"
        readers = {"OmegaConf.load (baseline)": omegaconf_hydra_files, "libyaml (typedexp)": runs.hydra_files}
        timings: dict[str, list[float]] = {name: [] for name in readers}
        whole: list[float] = []
        for _ in range(5):  # interleaved, so that the shared VM's load hits both alike
            for name, reader in readers.items():
                timings[name].append(timed(lambda: [reader(path) for path in dirs], repeats=1))
            whole.append(timed(lambda: save(summarize(sweep)), repeats=1))
        baseline = sorted(timings["OmegaConf.load (baseline)"])[2]
        rows = []
        for name, values in timings.items():
            median = sorted(values)[2]
            rows.append([name, f"{median:.3f}", f"{median / jobs * 1000:.2f}", f"{baseline / median:.1f}x"])
        summary_seconds = sorted(whole)[2]
    print(f"\nreading .hydra/ of {jobs} job dirs, median of 5 interleaved repeats")
    print(table(["reader", "seconds", "ms per job", "speed-up"], rows))
    print(f"the whole summary (read every job dir, rank, write summary.csv and summary.md): {summary_seconds:.3f} s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
