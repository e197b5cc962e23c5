"""SIGINT / SIGTERM during training: finish the step, save a checkpoint, then stop.

The first signal only sets ``Checkpointer.stop_signal``; the loop checks it between steps (a
Python comparison), saves ``last.pt`` and raises ``Interrupted`` (exit 130 / 143). A second
signal exits at once with ``os._exit``, skipping the save, for when a step or a save hangs.

SwanLab replaces the SIGINT handler while its run is open, so these
handlers are installed after the tracker starts and the previous ones are put back on exit,
before the tracker is finished.

While the trackers close (``held_while_closing``), a first signal waits until they are closed
(a second, again, exits at once): a tracker cut off half-way through its ``finish`` can lose
its run, and closing takes about a second.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from typedexp.engine.checkpoint import Checkpointer
from typedexp.core.errors import Interrupted

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def stop_on_signals(checkpointer: Checkpointer) -> Iterator[None]:
    """Route SIGINT/SIGTERM to ``checkpointer`` for the duration of the block (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread; keep Python's defaults
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        if checkpointer.stop_signal is not None:
            name = signal.Signals(signum).name
            kept = checkpointer.saved or "none"
            sys.stderr.write(f"typedexp: error: {name} again; exiting at once (last checkpoint: {kept})\n")
            sys.stderr.flush()
            os._exit(128 + signum)
        checkpointer.stop_signal = signum

    with handling(handle):
        yield


@contextmanager
def held_while_closing(stopping: bool, line: Callable[[int], str]) -> Iterator[None]:
    """SIGINT/SIGTERM during the block are raised as ``Interrupted(line(signum))`` once it ends.

    ``stopping``: the run is stopping on a signal already, so any further one exits at once.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []

    def handle(signum: int, frame: FrameType | None) -> None:
        if stopping or held:
            sys.stderr.write(f"typedexp: error: {signal.Signals(signum).name} again; exiting at once\n")
            sys.stderr.flush()
            os._exit(128 + signum)
        held.append(signum)

    with handling(handle):
        yield
    if held:
        raise Interrupted(held[0], line(held[0]))


@contextmanager
def handling(handle: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    """``handle`` for SIGINT and SIGTERM during the block; the previous handlers put back after it."""
    previous = {number: signal.getsignal(number) for number in STOP_SIGNALS}
    for number in STOP_SIGNALS:
        signal.signal(number, handle)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
