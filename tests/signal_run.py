"""Run the CLI and send this process a signal right after a given step is logged.

Deterministic stand-in for a person pressing Ctrl-C or a scheduler killing the job:
``python -m tests.signal_run STEP SIGNAL[,SIGNAL...] -- <typedexp overrides>``. STEP ``val@N``
sends the signals as epoch N's validation starts instead. STEP ``stage:NAME`` sends them inside
one stage of the run, which then carries on as if the signal had not come (the run must stop
there by itself): ``compose`` (the pre-Hydra composition), ``load`` (``FakeData.load``),
``spawn`` (right after the first rank process starts; the pids of this process's children are
written to ``children.txt`` in the working directory), ``checkpoint`` (inside the first write of
``last.pt``) and ``finish`` (closing metrics.jsonl's tracker, after training).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Mapping
from multiprocessing.process import BaseProcess
from pathlib import Path

from typedexp.app import preflight
from typedexp.app.cli import main
from typedexp.data.sources import FakeData
from typedexp.engine import checkpoint, loop
from typedexp.tracking import jsonl

CHILDREN = Path("children.txt")


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


def signalling_once(original: Callable[..., object], signals: list[signal.Signals], before: bool = True) -> Callable[..., object]:
    """``original``, sending ``signals`` on its first call (before it runs, or after)."""
    calls = 0

    def wrapper(*args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        if calls == 1 and before:
            send(signals)
        result = original(*args, **kwargs)
        if calls == 1 and not before:
            send(signals)
        return result

    return wrapper


def record_children() -> None:
    """This process's children (the ranks started so far, multiprocessing's resource tracker), from /proc."""
    me = os.getpid()
    CHILDREN.write_text(Path(f"/proc/{me}/task/{me}/children").read_text())


def install_at_stage(stage: str, signals: list[signal.Signals]) -> None:
    if stage == "compose":
        setattr(preflight, "compose_with_hydra_node", signalling_once(preflight.compose_with_hydra_node, signals))
    elif stage == "load":
        setattr(FakeData, "load", signalling_once(FakeData.load, signals))
    elif stage == "spawn":  # in this process only: spawned ranks do not run this module's main block
        start = BaseProcess.start

        def started(process: BaseProcess) -> None:
            start(process)
            record_children()

        setattr(BaseProcess, "start", signalling_once(started, signals, before=False))
    elif stage == "checkpoint":
        setattr(checkpoint, "write_atomically", signalling_once(checkpoint.write_atomically, signals))
    elif stage == "finish":
        setattr(jsonl.JsonlTracker, "finish", signalling_once(jsonl.JsonlTracker.finish, signals))
    else:
        raise SystemExit(f"unknown stage {stage}")


def run(argv: list[str]) -> None:
    """One case: ``STEP SIGNALS -- overrides``, in this process (which the signals then stop)."""
    step, names, separator, *overrides = argv
    assert separator == "--"
    numbers = [signal.Signals[name] for name in names.split(",")]
    if step.startswith("stage:"):
        install_at_stage(step.removeprefix("stage:"), numbers)
    elif step.startswith("val@"):
        install_in_validation(int(step.removeprefix("val@")), numbers)
    else:
        install(int(step), numbers)
    main(overrides)


def serve() -> None:
    """Fork one process per case from an interpreter that has imported torch, Hydra and typedexp.

    ``python -m tests.signal_run serve`` reads one JSON request a line (``argv`` as for ``run``, the
    ``cwd``, and files for the case's ``stdout`` and ``stderr``), answers ``{"pid": N}`` when the
    case starts and ``{"returncode": N}`` when it ends (negative: the signal that ended it, as
    ``subprocess`` reports). Each case is still a process of its own that the signal stops, with
    its own exit status, streams, children and cleanup at exit; what it shares with the others is
    only the ~4-5 s of CPU that importing torch, Hydra and the CLI's modules takes (tests/helpers.py,
    ``SignalServer``). Nothing here runs a tensor operation before forking: OpenMP's thread pool
    does not survive a fork, so it must not exist yet.
    """
    import json

    import hydra  # noqa: F401  # what each case would import; loaded once, before the forks
    import torch  # noqa: F401
    import torch._dynamo  # noqa: F401  # torch.optim's first optimizer imports it: ~1.5 s of CPU

    import typedexp.app.config_guard  # noqa: F401
    import typedexp.app.pipeline  # noqa: F401
    import typedexp.app.preflight  # noqa: F401
    import typedexp.app.task  # noqa: F401

    for request_line in sys.stdin:
        request = json.loads(request_line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the case: leaves this loop only by exiting, as `python -m tests.signal_run` would
            os.chdir(request["cwd"])
            for fd, path, flags in ((0, os.devnull, os.O_RDONLY), (1, request["stdout"], os.O_WRONLY | os.O_CREAT),
                                    (2, request["stderr"], os.O_WRONLY | os.O_CREAT)):
                opened = os.open(path, flags, 0o644)
                os.dup2(opened, fd)
                os.close(opened)
            sys.argv = [sys.argv[0], *request["argv"]]
            run(request["argv"])
            raise SystemExit(0)
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}), flush=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["serve"]:
        serve()
    else:
        run(sys.argv[1:])
