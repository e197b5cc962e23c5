"""Type tests for sweeps, checked by mypy --strict and basedpyright, never run (see config_types.py).

The documented use of ``launch_sweep``: one result per job, a ``RunResult`` or a ``JobFailure``,
told apart with ``isinstance``; each expected error carries its ``# type: ignore[<code>]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import assert_type

from typedexp import Experiment, JobFailure, RunResult, launch_sweep
from typedexp.sweeps.summary import SweepSummary


def launch_sweep_returns_one_typed_result_per_job() -> None:
    results = launch_sweep(["optim.lr=0.1,0.01", "model=small,large"], experiment=Experiment(epochs=1))
    assert_type(results, list[RunResult | JobFailure])
    for result in results:
        if isinstance(result, JobFailure):
            assert_type(result.error, str)
            assert_type(result.overrides, tuple[str, ...])
            assert_type(result.run_dir, Path)
            assert_type(result.exception, Exception)
        else:
            assert_type(result.metrics["val/acc"], float)
    print(results[0].metrics)  # type: ignore[union-attr]
    launch_sweep("optim.lr=0.1,0.01")  # type: ignore[arg-type]
    launch_sweep(["seed=0,1"], sweep_dir=3)  # type: ignore[arg-type]


def the_summary_callback_takes_a_metric_and_a_mode() -> None:
    SweepSummary(metric="val/loss", mode="min")
    SweepSummary(metric=0.5)  # type: ignore[arg-type]
