"""``metrics.jsonl``: the tracker-independent record of a run, one JSON object per logged point."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from typedexp.core.resources import naming_full_disk
from typedexp.core.files import open_no_follow
from typedexp.tracking.base import RunOutcome


class JsonlTracker:
    """Appends ``{"step": .., "epoch": .., "<metric>": value, ...}`` lines to ``path``.

    Each line is flushed when written, so the file is complete up to the last logged point even
    if the process dies. Appending (never truncating) keeps earlier lines of the same run. A
    symlink at ``path`` is refused (``O_NOFOLLOW``): a run writes only inside its own directory.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        fd = open_no_follow(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        self._file = os.fdopen(fd, "a", encoding="utf-8")

    def log(self, metrics: Mapping[str, float], *, step: int, epoch: int) -> None:
        record = {"step": step, "epoch": epoch, **metrics}
        with naming_full_disk(self.path.parent):
            self._file.write(json.dumps(record) + "\n")
            self._file.flush()

    def finish(self, outcome: RunOutcome, error: str | None = None) -> None:
        with naming_full_disk(self.path.parent):  # closing flushes a line a full disk refused
            self._file.close()


def read_metrics(path: Path) -> list[dict[str, float]]:
    """Read back a ``metrics.jsonl`` (steps and epochs come back as floats too)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [{key: float(value) for key, value in json.loads(line).items()} for line in lines]
