"""A single run refused for a config mistake leaves nothing behind (``runs/leftovers.py`` does the disk part).

Hydra calls ``NoteRunDir.on_run_start`` (a callback in ``store.HYDRA_SETTINGS``) after composing a
single run's config and before it makes the run dir. The task claims what Hydra made when it starts
(``claim``); if the run then stops at a user's mistake before it began writing (``batch_size=0``, an
unknown field, a missing dataset or API key), ``remove_after_mistake`` removes it. A mistake found
once training began, and any crash, keeps the run dir and its result.json. A sweep is left as it
is: its summary lists each failed job from the job's result.json. Without a note (the callback
removed from ``hydra.callbacks``, a run dir Hydra resolved differently) nothing is removed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from typedexp.app.error_messages import user_message
from typedexp.app.guards import as_job, job_logs
from typedexp.runs.leftovers import Before, Claim, claim as claim_made, note_before, remove_claimed

# One run at a time per process (Hydra's run and its task are on one thread): the callback's note
# for the task that follows it, then the task's claim until the run ends.
_noted: list[Before] = []
_claimed: list[Claim] = []


class NoteRunDir(Callback):
    """Hydra callback: note which of a single run's paths are absent before Hydra makes them."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Any: Hydra's callback signature. ``config`` is the one ``run_job`` then reads the run
        dir from, so ``${now:}`` resolves to the same (cached) time."""
        _noted.clear()
        try:
            run_dir = Path(os.path.abspath(str(OmegaConf.select(config, "hydra.run.dir"))))
            subdir = as_job(config, run_dir).get("output_subdir")
            logs = job_logs(config, run_dir, "hydra.run.dir")
            _noted.append(note_before(run_dir, None if subdir is None else str(subdir), logs))
        except Exception:  # Hydra turns a callback's error into a warning; without a note nothing is removed
            return


def claim() -> None:
    """At the task's start: claim what Hydra made for this run, if it is the noted single run."""
    noted = _noted.pop() if _noted else None
    _claimed.clear()
    if noted is None or not HydraConfig.initialized():
        return
    hydra = HydraConfig.get()
    # hydra.mode is None in a run that hydra-zen's launch started; only a sweep's jobs are MULTIRUN.
    if hydra.mode == RunMode.MULTIRUN or Path(str(hydra.runtime.output_dir)) != noted.run_dir:
        return
    _claimed.append(claim_made(noted))


def forget() -> None:
    """Keep everything: the run began writing (its checkpoints, its result.json), or it ended."""
    _claimed.clear()


def removes(error: BaseException) -> bool:
    """Whether ``remove_after_mistake`` will remove this run's files for ``error``: a user's
    mistake (one line, exit code 2) in a single run that has not begun writing."""
    return bool(_claimed) and user_message(error) is not None


def remove_after_mistake(error: BaseException) -> bool:
    """Remove what this run made if ``removes(error)``; True if it did (no result.json is wanted)."""
    if not removes(error):
        forget()
        return False
    remove_claimed(_claimed.pop())
    return True
