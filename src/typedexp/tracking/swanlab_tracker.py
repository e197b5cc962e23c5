"""SwanLab behind the ``Tracker`` protocol: the spec behind ``tracker=local|offline|cloud|disabled``.

SwanLab pitfalls handled here (shared/KNOWLEDGE.md): ``config`` must be a plain dict; only Python
floats are logged (SwanLab converts tensors later on a thread, so a tensor mutated afterwards
records the wrong value); interactive prompts are off, so ``cloud`` without a key fails at once
instead of waiting for a login at stdin; project names are checked before ``init``.
"""

from __future__ import annotations

import enum
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from typedexp.errors import ConfigError, TrackerError
from typedexp.tracking.base import NullTracker, RunOutcome, Tracker

if TYPE_CHECKING:
    import swanlab

# SwanLab's own rule for project names (init fails on anything else).
PROJECT_NAME = re.compile(r"^[0-9a-zA-Z_\-+.]{1,100}$")
API_KEY_VARIABLE = "SWANLAB_API_KEY"


class SwanLabMode(enum.Enum):
    """How SwanLab records a run."""

    local = "local"  # files + a local database that `swanlab watch <log_dir>` serves as a dashboard
    offline = "offline"  # files only, no network; `swanlab sync <run dir>` uploads them later
    cloud = "cloud"  # streams to swanlab.cn; needs SWANLAB_API_KEY and a network
    disabled = "disabled"  # SwanLab is not even imported; metrics.jsonl is still written


@dataclass(frozen=True)
class SwanLabTracking:
    mode: SwanLabMode = SwanLabMode.local
    project: str = "typedexp"  # SwanLab project; letters, digits and _-+. only
    log_dir: str = "swanlog"  # relative to the working directory; what `swanlab watch` opens
    workspace: Optional[str] = None  # cloud only: an organisation instead of your user
    description: str = ""

    def __post_init__(self) -> None:
        if not PROJECT_NAME.match(self.project):
            raise ConfigError(
                f"tracker.project={self.project!r}: use 1-100 letters, digits or _-+. (SwanLab's rule)"
            )

    def check_available(self) -> None:
        """Fail before any work (and without importing swanlab) if the run cannot be tracked."""
        if self.mode is SwanLabMode.cloud and not os.environ.get(API_KEY_VARIABLE):
            raise TrackerError(
                f"tracker=cloud needs {API_KEY_VARIABLE} in the environment "
                "(or use tracker=local / tracker=offline, which need no account)"
            )

    def start(self, *, config: Mapping[str, object], run_name: str, run_dir: str) -> Tracker:
        """Begin a SwanLab run holding ``config``; fails fast, never prompts."""
        if self.mode is SwanLabMode.disabled:
            return NullTracker()
        self.check_available()
        api_key = os.environ.get(API_KEY_VARIABLE) or None
        import swanlab

        try:
            run = swanlab.init(
                mode="online" if self.mode is SwanLabMode.cloud else self.mode.value,
                project=self.project,
                workspace=self.workspace,
                log_dir=self.log_dir,
                name=run_name,
                description=self.description or f"typedexp run in {run_dir}",
                config=dict(config),
                reinit=True,
                settings=swanlab.Settings(interactive=False, api_key=api_key),
            )
        except Exception as exc:
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise TrackerError(f"SwanLab ({self.mode.value}) could not start: {first_line}") from exc
        return SwanLabTracker(run)


class SwanLabTracker:
    def __init__(self, run: swanlab.Run) -> None:
        self.run = run

    def log(self, metrics: Mapping[str, float], *, step: int, epoch: int) -> None:
        self.run.log(dict(metrics), step=step)

    def finish(self, outcome: RunOutcome, error: str | None = None) -> None:
        self.run.finish(state=outcome.value, error=error)
