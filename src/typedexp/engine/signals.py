"""SIGINT / SIGTERM during training: finish the step, save a checkpoint, then stop.

The first signal only sets ``Checkpointer.stop_signal``; the loop checks it between steps (a
Python comparison), saves ``last.pt`` and raises ``Interrupted`` (exit 130 / 143). A second
signal exits at once with ``os._exit``, skipping the save, for when a step or a save hangs.

SwanLab replaces the SIGINT handler while its run is open, so these
handlers are installed after the tracker starts and the previous ones are put back on exit,
before the tracker is finished.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from typedexp.engine.checkpoint import Checkpointer

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

    previous = {number: signal.getsignal(number) for number in STOP_SIGNALS}
    for number in STOP_SIGNALS:
        signal.signal(number, handle)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
