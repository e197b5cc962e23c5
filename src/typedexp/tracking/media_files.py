"""``<run dir>/media/*.png``: the sample grids and the confusion matrix, whatever the tracker.

``tracker=disabled`` users get the same pictures SwanLab shows. Files are written to a fresh temp
file and renamed (a symlink planted at a picture's name is replaced, never written through), and
a symlinked ``media/`` is refused. Pictures are a convenience: a failure to write one (a full
disk, a read-only run dir) costs one warning, after which no more are written, and training
goes on; ``metrics.jsonl`` stays the record that must be complete.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from typedexp.core.report import warn
from typedexp.core.files import exclusive_temp
from typedexp.tracking.base import Media, PredictionSamples, RunOutcome
from typedexp.tracking.render import render

MEDIA_DIR = "media"


def file_name(media: Media, epoch: int) -> str:
    """``val-samples-epoch-003.png`` (one per grid); ``val-confusion-matrix.png`` (one per run)."""
    stem = media.name.replace("/", "-").replace("_", "-")
    return f"{stem}-epoch-{epoch:03d}.png" if isinstance(media, PredictionSamples) else f"{stem}.png"


class MediaFiles:
    """A tracker that only draws media, as PNGs in ``directory``; scalars are metrics.jsonl's."""

    def __init__(self, directory: Path, *, warn: Callable[[str], None] = warn) -> None:
        self.directory = directory
        self.written: list[Path] = []
        self.failure: str | None = None
        self._warn = warn

    def log(self, metrics: Mapping[str, float], *, step: int, epoch: int) -> None:
        pass

    def log_media(self, media: Media, *, step: int, epoch: int) -> None:
        if self.failure is not None:
            return
        try:
            self.written.append(self._write(media, epoch))
        except OSError as exc:
            self.failure = f"{type(exc).__name__}: {exc.strerror or exc}"
            self._warn(f"cannot write {MEDIA_DIR}/ pictures in {self.directory.parent} ({self.failure}); training continues without them")

    def _write(self, media: Media, epoch: int) -> Path:
        self.directory.mkdir(exist_ok=True)
        if self.directory.is_symlink():
            raise OSError(0, f"{self.directory} is a symlink; refusing to write through it")
        picture = render(media)
        target = self.directory / file_name(media, epoch)
        fd, temp = exclusive_temp(target)
        try:
            with os.fdopen(fd, "wb") as file:
                picture.image.save(file, format="PNG", pnginfo=picture.png_info(), compress_level=1)  # zlib level 1: encoding is most of the ~10 ms a picture costs
            os.replace(temp, target)
        finally:
            temp.unlink(missing_ok=True)
        return target

    def finish(self, outcome: RunOutcome, error: str | None = None) -> None:
        pass
