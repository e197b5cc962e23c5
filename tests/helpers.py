"""Shared pieces for tests: running the CLI as a user would, and a recording tracker."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from typedexp.tracking import RunOutcome

# Fast settings for runs whose numbers do not matter.
QUICK = ["tracker=disabled", "epochs=1", "trainer.max_batches=2", "trainer.progress=off"]


@dataclass(frozen=True)
class CliRun:
    returncode: int
    stdout: str
    stderr: str

    @property
    def stderr_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def run_module(module_args: list[str], cwd: Path, env: Mapping[str, str] | None = None) -> CliRun:
    """``python -m <module_args>`` in ``cwd``, without the caller's API key or HYDRA_FULL_ERROR."""
    full_env = {k: v for k, v in os.environ.items() if k not in ("SWANLAB_API_KEY", "HYDRA_FULL_ERROR")}
    full_env.update(env or {})
    done = subprocess.run(
        [sys.executable, "-m", *module_args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return CliRun(done.returncode, done.stdout, done.stderr)


def run_cli(args: list[str], cwd: Path, env: Mapping[str, str] | None = None) -> CliRun:
    """``python -m typedexp args...`` in ``cwd``, as a user would type it."""
    return run_module(["typedexp", *args], cwd, env)


@dataclass
class RecordingTracker:
    """A Tracker that keeps every call, for checking what the engine reports."""

    points: list[tuple[int, int, dict[str, float]]] = field(default_factory=list)
    outcome: RunOutcome | None = None

    def log(self, metrics: Mapping[str, float], *, step: int, epoch: int) -> None:
        self.points.append((step, epoch, dict(metrics)))

    def finish(self, outcome: RunOutcome, error: str | None = None) -> None:
        self.outcome = outcome


def run_signalled(step: int | str, signals: str, args: list[str], cwd: Path) -> CliRun:
    """The CLI with ``args``, sent ``signals`` (e.g. "SIGINT" or "SIGKILL") right after ``step`` is logged.

    ``step="val@N"`` sends them as epoch N's validation starts instead.
    """
    root = Path(__file__).resolve().parent.parent
    path = os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])
    return run_module(["tests.signal_run", str(step), signals, "--", *args], cwd, {"PYTHONPATH": path})
