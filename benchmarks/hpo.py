"""Trials per minute of ``hydra/sweeper=optuna`` on digits, with and without pruning.

Each study runs in this process through ``launch_sweep`` (Hydra's basic launcher, as
``typedexp -m hydra/sweeper=optuna ...`` does) over a learning-rate range that is mostly bad
(``tag(log,interval(1e-5,3))``: too small learns nothing in a few epochs, too large diverges), so a
pruner has something to stop. Studies with ``pruner=none`` and ``pruner=median`` (the default)
alternate (A B A B ...), because wall time on a shared VM moves by ±10% within minutes; each
starts a fresh study in a fresh directory with the same sampler seed. The ratio is against
``pruner=none`` measured in the same process. Set-up per trial (composition, data from the
in-process cache, model build, run files) is included: it is what a user waits for.

    python -m benchmarks.hpo [--trials 12] [--epochs 6] [--repeats 2]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

from benchmarks.common import machine, table
from typedexp import launch_sweep

PRUNERS = ("none", "median")


@dataclass(frozen=True)
class Study:
    pruner: str
    seconds: float
    states: dict[str, int]  # trials by final state
    best: float  # best val/acc


def run_study(pruner: str, trials: int, epochs: int) -> Study:
    with tempfile.TemporaryDirectory() as tmp:
        sweep = Path(tmp) / "study"
        overrides = [
            "hydra/sweeper=optuna", f"hydra.sweeper.n_trials={trials}", f"hydra.sweeper.pruner={pruner}",
            "optim.lr=tag(log,interval(1e-5,3.0))", f"epochs={epochs}", "tracker=disabled",
            "trainer.progress=off", "hydra/job_logging=disabled", "hydra/hydra_logging=disabled",
        ]
        started = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            launch_sweep(overrides, sweep_dir=sweep)
        seconds = time.perf_counter() - started
        study = optuna.load_study(study_name="typedexp", storage=f"sqlite:///{sweep / 'study.db'}")
        states = {state.name.lower(): sum(t.state is state for t in study.trials) for state in TrialState}
        return Study(pruner, seconds, {k: v for k, v in states.items() if v}, study.best_value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    run_study("none", 2, 1)  # warm-up: imports, the dataset cache, torch's first kernels
    studies = [run_study(p, args.trials, args.epochs) for _ in range(args.repeats) for p in PRUNERS]
    print(machine())
    print(f"{args.trials} trials of {args.epochs} epochs on digits (small MLP), {args.repeats} studies per row")
    base = statistics.median(s.seconds for s in studies if s.pruner == "none")
    rows = []
    for pruner in PRUNERS:
        mine = [s for s in studies if s.pruner == pruner]
        seconds = statistics.median(s.seconds for s in mine)
        states = ", ".join(f"{k} {v}" for k, v in mine[-1].states.items())
        rows.append(
            [pruner, f"{args.trials * 60 / seconds:.1f}", f"{base / seconds:.2f}x", f"{seconds:.1f}",
             f"{max(s.best for s in mine):.4f}", states]
        )
    print(table(["pruner", "trials/min", "vs none", "seconds", "best val/acc", "last study's trials"], rows))


if __name__ == "__main__":
    main()
