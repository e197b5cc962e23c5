"""A run directory's layout and its guards: what marks a run, no symlinks, one writer at a time.

Plain Python (no Hydra, no torch), so the engine, the trackers and the pre-Hydra checks can all
use it. The rules, which docs/safety.md states for users:

- **A run writes only inside its run directory** (and the tracker's log directory). The directory
  you name must be a real directory, not a symlink; the folders above it may be symlinks (that is
  where you chose to keep runs, e.g. ``outputs -> /scratch/outputs``). Inside it, none of the
  files a run reads or writes (``RUN_FILES`` and Hydra's job log) may be a symlink: a run directory
  received from someone else could otherwise point ``model.pt`` at a file of yours. Files are
  opened with ``O_NOFOLLOW`` and temp files are created with ``O_EXCL`` under fresh names, so a
  symlink planted after the check is refused too.
- **A directory holds a run** once it holds any of ``RESULTS``; only ``resume=`` may write there.
- **One writer at a time.** A run holds ``flock(LOCK_EX)`` on ``<run dir>/.lock`` for its whole
  life; the OS drops the lock when the process exits, however it exits. The file holds the
  holder's pid while it runs, so a second writer's error can name it.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from typedexp.core.errors import ConfigError

# The names and safe opening live in core/files.py (the engine and trackers use them too).
from typedexp.core.files import (
    METRICS_FILE as METRICS_FILE,
    WEIGHTS_FILE as WEIGHTS_FILE,
    CHECKPOINT_DIR as CHECKPOINT_DIR,
    LAST as LAST,
    BEST as BEST,
    LOCK_FILE as LOCK_FILE,
    HYDRA_DIR as HYDRA_DIR,
    RESULTS as RESULTS,
    RUN_FILES as RUN_FILES,
    symlink_refused as symlink_refused,
    open_no_follow as open_no_follow,
    exclusive_temp as exclusive_temp,
)


def results_in(directory: Path) -> str | None:
    """The first of ``RESULTS`` that ``directory`` holds (a symlink counts), or None."""
    for name in RESULTS:
        path = directory / name
        if path.exists() or path.is_symlink():
            return name
    return None


def refuse_used(directory: Path, setting: str) -> None:
    marker = results_in(directory)
    if marker is not None:
        raise ConfigError(
            f"{setting}={directory} already holds a run ({marker}); "
            "choose a new directory so nothing is overwritten, or continue it with resume="
        )


def refuse_symlinks(run_dir: Path, setting: str, also: Sequence[str] = ()) -> None:
    """Refuse a run directory that is a symlink or holds one where a run file goes.

    ``also`` adds names relative to ``run_dir`` (Hydra's job log, whose name comes from the config).
    """
    if run_dir.is_symlink():
        raise ConfigError(
            f"{setting}={run_dir} is a symlink (to {os.readlink(run_dir)}); name the directory itself"
        )
    for name in (*RUN_FILES, *also):
        if (run_dir / name).is_symlink():
            raise ConfigError(
                f"{setting}={run_dir}: {name} is a symlink; a run writes only inside its own "
                "directory, so remove the link (or copy the run's real files into a new directory)"
            )


def _pid_in(fd: int) -> str:
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return text if text.isdigit() else "unknown"


def in_use(run_dir: Path, setting: str, pid: str) -> ConfigError:
    return ConfigError(
        f"{setting}={run_dir} is in use by another typedexp run (pid {pid}); "
        "wait for it to finish, or choose another directory"
    )


def lock_holder(run_dir: Path) -> str | None:
    """The pid (as text) of the process that holds ``run_dir``'s lock, or None if nobody does.

    Probes with a shared lock, released at once: it conflicts with a holder's exclusive lock, and
    a run that starts in the same microseconds is the only one that could notice the probe.
    """
    try:
        fd = open_no_follow(run_dir / LOCK_FILE, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _pid_in(fd)
    finally:
        os.close(fd)  # also releases the probe's lock
    return None


@contextmanager
def hold(run_dir: Path, setting: str) -> Iterator[None]:
    """Hold ``run_dir``'s lock for the block; ``ConfigError`` naming the holder if it is taken."""
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = open_no_follow(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise in_use(run_dir, setting, _pid_in(fd)) from None
        # Ours now: a pid left by a holder that died is replaced.
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # emptied again, so a refused resume leaves the directory as it was
    finally:
        os.close(fd)  # releases the lock; the OS does the same if the process dies
