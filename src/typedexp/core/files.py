"""The files a run directory holds, and how typedexp opens them: never through a symlink, temp
files under fresh names.

A leaf (stdlib only) so that the engine's checkpoints and the trackers' files, which sit below the
run-dir layer (``runs/layout.py``: what marks a run, the lock), write by the same rules.
"""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path

from typedexp.core.errors import ConfigError

METRICS_FILE = "metrics.jsonl"
WEIGHTS_FILE = "model.pt"
CHECKPOINT_DIR = "checkpoints"
LAST, BEST = "last.pt", "best.pt"
LOCK_FILE = ".lock"
HYDRA_DIR = ".hydra"
# Any of these means the directory holds an earlier run's results.
RESULTS = (METRICS_FILE, WEIGHTS_FILE, f"{CHECKPOINT_DIR}/{LAST}")
# Everything a run or a resume reads or writes in its directory, parents before children.
RUN_FILES = (
    LOCK_FILE, HYDRA_DIR, f"{HYDRA_DIR}/overrides.yaml", METRICS_FILE, WEIGHTS_FILE,
    CHECKPOINT_DIR, f"{CHECKPOINT_DIR}/{LAST}", f"{CHECKPOINT_DIR}/{BEST}",
)


def symlink_refused(path: Path) -> ConfigError:
    return ConfigError(f"{path} is a symlink; a run writes only inside its own directory and never follows one")


def open_no_follow(path: Path, flags: int, mode: int = 0o666) -> int:
    """``os.open`` that refuses a symlink as the last component, with a one-line error."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise symlink_refused(path) from exc
        raise


def exclusive_temp(target: Path) -> tuple[int, Path]:
    """A new, empty temp file beside ``target``: a fresh random name opened with ``O_EXCL``.

    ``O_EXCL`` fails on any existing entry, symlinks included, and the name cannot be guessed in
    advance, so the bytes written never land in a file someone planted.
    """
    temp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(8)}.tmp")
    return open_no_follow(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL), temp
