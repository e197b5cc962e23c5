"""Run the CLI and send this process a signal right after a given step is logged.

Deterministic stand-in for a person pressing Ctrl-C or a scheduler killing the job:
``python -m tests.signal_run STEP SIGNAL[,SIGNAL...] -- <typedexp overrides>``.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Mapping

from typedexp.cli import main
from typedexp.tracking import jsonl


def install(step_to_hit: int, signals: list[signal.Signals]) -> None:
    original = jsonl.JsonlTracker.log

    def log(self: jsonl.JsonlTracker, metrics: Mapping[str, float], *, step: int, epoch: int) -> None:
        original(self, metrics, step=step, epoch=epoch)
        if step == step_to_hit:
            for number in signals:
                os.kill(os.getpid(), number)

    setattr(jsonl.JsonlTracker, "log", log)  # a monkeypatch in a child process only


if __name__ == "__main__":
    step, names, separator, *overrides = sys.argv[1:]
    assert separator == "--"
    install(int(step), [signal.Signals[name] for name in names.split(",")])
    main(overrides)
