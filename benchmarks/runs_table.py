"""``typedexp runs``' cost: listing N run dirs, against the sweep summary reading the same dirs.

The baseline is ``summary.summarize`` (``runs.find_runs`` plus ranking), which the sweep summary
already pays at the end of every sweep. ``typedexp runs`` reads the same records and then, for a
run that did not override a varying setting, its ``.hydra/hydra.yaml`` and ``.hydra/config.yaml``
(to show the value it ran with); ``--where`` on such a setting reads them too. Half of the N
copies of one real job dir override ``seed`` and half do not, so half take that path. Same
process, interleaved, medians of 5.

    python -m benchmarks.runs_table [N]
"""

from __future__ import annotations

import io
import json
import sys
import tempfile
from pathlib import Path

from rich.console import Console

from benchmarks.common import job_copies, machine, table, timed
from typedexp.runs.table import parse, show
from typedexp.sweeps.summary import summarize


def main(jobs: int) -> None:
    print(machine())
    with tempfile.TemporaryDirectory() as temp:
        sweep = Path(temp) / "sweep"
        for job, path in enumerate(job_copies(Path(temp), jobs)):
            overrides = [f"seed={job}"] if job % 2 == 0 else []
            (path / ".hydra" / "overrides.yaml").write_text(json.dumps(overrides), encoding="utf-8")
        quiet = Console(file=io.StringIO(), width=10_000)
        cases = {
            "summarize (baseline)": lambda: summarize(sweep),
            "typedexp runs sweep": lambda: show(parse(["sweep"]), quiet),
            "typedexp runs sweep --where seed=0 --sort val/acc": lambda: show(parse(["sweep", "--where", "seed=0", "--sort", "val/acc"]), quiet),
        }
        timings: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(5):  # interleaved, so that the shared VM's load hits all alike
            for name, case in cases.items():
                timings[name].append(timed(case, repeats=1))
    baseline = sorted(timings["summarize (baseline)"])[2]
    rows = []
    for name, values in timings.items():
        median = sorted(values)[2]
        rows.append([name, f"{median:.3f}", f"{median / jobs * 1000:.2f}", f"{median / baseline:.2f}x"])
    print(f"\nlisting {jobs} run dirs (half without the varying override), median of 5 interleaved repeats")
    print(table(["what", "seconds", "ms per run", "vs baseline"], rows))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
