"""A tracker whose failures never stop training.

If the external tracker fails (``start`` raises, ``log`` raises, its log directory cannot be
written), typedexp prints one warning, drops the tracker and trains on; ``metrics.jsonl`` is
written by a separate tracker and stays complete. Configuration mistakes found before the
tracker starts (``TrackerError``, ``ConfigError``: no API key, a bad project name) still stop
the run, because they are the user's to fix.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from typedexp.core.errors import TypedexpError
from typedexp.core.report import warn
from typedexp.tracking.base import Media, MediaTracker, RunOutcome, Tracker


def _describe(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first[:160]}" if first else type(exc).__name__


class GuardedTracker:
    """Wraps ``inner``; after its first failure it warns once and ignores it from then on."""

    def __init__(self, inner: Tracker | None, *, warn: Callable[[str], None] = warn) -> None:
        self.inner = inner
        self.failure: str | None = None  # "log: OSError: ..." once the tracker has failed
        self._warn = warn

    @classmethod
    def start(cls, start: Callable[[], Tracker], *, warn: Callable[[str], None] = warn) -> GuardedTracker:
        try:
            return cls(start(), warn=warn)
        except TypedexpError:
            raise  # a configuration mistake, worded for the user: stop before training
        except Exception as exc:
            guarded = cls(None, warn=warn)
            guarded._fail("start", exc)
            return guarded

    @property
    def run_id(self) -> str | None:
        """The tracker's own run id (SwanLab's), saved in checkpoints so a resume continues it."""
        value = getattr(self.inner, "run_id", None)
        return value if isinstance(value, str) else None

    @property
    def view(self) -> str:
        """How to look at the run ("typedexp dashboard"); empty without an external tracker."""
        value = getattr(self.inner, "view", "")
        return value if isinstance(value, str) else ""

    def log(self, metrics: Mapping[str, float], *, step: int, epoch: int) -> None:
        if self.inner is None:
            return
        try:
            self.inner.log(metrics, step=step, epoch=epoch)
        except Exception as exc:
            self._fail("log", exc)

    def log_media(self, media: Media, *, step: int, epoch: int) -> None:
        if not isinstance(self.inner, MediaTracker):  # none, failed, or one without images
            return
        try:
            self.inner.log_media(media, step=step, epoch=epoch)
        except Exception as exc:
            self._fail("log", exc)

    def finish(self, outcome: RunOutcome, error: str | None = None) -> None:
        if self.inner is None:
            return
        try:
            self.inner.finish(outcome, error)
        except Exception as exc:
            self._fail("finish", exc)

    def _fail(self, stage: str, exc: BaseException) -> None:
        inner, self.inner = self.inner, None
        self.failure = f"{stage}: {_describe(exc)}"
        self._warn(
            f"tracking failed ({self.failure}); training continues without the tracker, "
            "metrics.jsonl stays complete"
        )
        if inner is not None and stage == "log":
            try:  # close the broken run so it does not linger (SwanLab keeps process-wide hooks)
                inner.finish(RunOutcome.crashed, self.failure)
            except Exception:
                pass
