"""Run the CLI and send this process a signal right after a given step is logged.

Deterministic stand-in for a person pressing Ctrl-C or a scheduler killing the job:
``python -m tests.signal_run STEP SIGNAL[,SIGNAL...] -- <typedexp overrides>``. STEP ``val@N``
sends the signals as epoch N's validation starts instead (it runs on, then the epoch-end save).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Mapping

from typedexp.app.cli import main
from typedexp.engine import loop
from typedexp.tracking import jsonl


def send(signals: list[signal.Signals]) -> None:
    for number in signals:
        os.kill(os.getpid(), number)


def install(step_to_hit: int, signals: list[signal.Signals]) -> None:
    original = jsonl.JsonlTracker.log

    def log(self: jsonl.JsonlTracker, metrics: Mapping[str, float], *, step: int, epoch: int) -> None:
        original(self, metrics, step=step, epoch=epoch)
        if step == step_to_hit:
            send(signals)

    setattr(jsonl.JsonlTracker, "log", log)  # a monkeypatch in a child process only


def install_in_validation(epoch_to_hit: int, signals: list[signal.Signals]) -> None:
    original = loop.evaluate
    validations = 0

    def evaluate(*args: object, **kwargs: object) -> dict[str, float]:
        nonlocal validations
        if kwargs.get("prefix", "val") == "val":
            validations += 1
            if validations == epoch_to_hit:
                send(signals)
        return original(*args, **kwargs)  # type: ignore[arg-type]

    setattr(loop, "evaluate", evaluate)  # fit looks `evaluate` up in its module at each call


if __name__ == "__main__":
    step, names, separator, *overrides = sys.argv[1:]
    assert separator == "--"
    numbers = [signal.Signals[name] for name in names.split(",")]
    if step.startswith("val@"):
        install_in_validation(int(step.removeprefix("val@")), numbers)
    else:
        install(int(step), numbers)
    main(overrides)
