"""Run the CLI and pause right after the first logged point until a file appears.

For tests that need a run which is certainly alive (holding its run dir) while they act:
``python -m tests.hold_run READY RELEASE -- <typedexp overrides>`` creates READY when paused and
carries on once RELEASE exists (or after two minutes, so a failed test never leaves it behind).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from pathlib import Path

from typedexp.app.cli import main
from typedexp.tracking import jsonl

PATIENCE_S = 120.0


def install(ready: Path, release: Path) -> None:
    original = jsonl.JsonlTracker.log

    def log(self: jsonl.JsonlTracker, metrics: Mapping[str, float], *, step: int, epoch: int) -> None:
        original(self, metrics, step=step, epoch=epoch)
        if not ready.exists():
            ready.touch()
            deadline = time.monotonic() + PATIENCE_S
            while not release.exists() and time.monotonic() < deadline:
                time.sleep(0.02)  # polling a condition, not a fixed wait

    setattr(jsonl.JsonlTracker, "log", log)  # a monkeypatch in a child process only


if __name__ == "__main__":
    ready, release, separator, *overrides = sys.argv[1:]
    assert separator == "--"
    install(Path(ready).resolve(), Path(release).resolve())
    main(overrides)
