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
- **Nothing in a run directory can make typedexp wait or run out of memory.** Each of its files
  is read only if it is a regular file (``open_regular``: checked before and after opening, opened
  with ``O_NONBLOCK``, so a FIFO, a socket or a device is never waited on) and only up to a size
  cap (``read_capped``); a run or resume refuses a run directory where one of its files is
  anything else (``refuse_symlinks``).
- **A directory holds a run** once it holds any of ``RESULTS``; only ``resume=`` may write there.
- **One writer at a time.** A run holds ``flock(LOCK_EX)`` on ``<run dir>/.lock`` for its whole
  life; the OS drops the lock when the process exits, however it exits. The file holds the
  holder's pid while it runs, so a second writer's error can name it.
"""

from __future__ import annotations

import fcntl
import os
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from typedexp.core.errors import ConfigError

# The names and safe opening live in core/files.py (the engine and trackers use them too).
from typedexp.core.files import (
    LAST as LAST,
    BEST as BEST,
    METRICS_FILE as METRICS_FILE,
    WEIGHTS_FILE as WEIGHTS_FILE,
    CHECKPOINT_DIR as CHECKPOINT_DIR,
    LOCK_FILE as LOCK_FILE,
    HYDRA_DIR as HYDRA_DIR,
    MULTIRUN_FILE as MULTIRUN_FILE,
    RESULTS as RESULTS,
    RUN_FILES as RUN_FILES,
    FOLDERS as FOLDERS,
    UnreadableFile as UnreadableFile,
    kind as kind,
    size_text as size_text,
    symlink_refused as symlink_refused,
    open_no_follow as open_no_follow,
    open_regular as open_regular,
    read_capped as read_capped,
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

    Also refuses a run file that is not what a run makes there (a FIFO, a socket, a device, a
    directory where a file goes): writing to a FIFO waits for a reader forever, so a run directory
    from elsewhere could otherwise hang the run or the resume. ``also`` adds names relative to
    ``run_dir`` (Hydra's job log, whose name comes from the config).
    """
    if run_dir.is_symlink():
        raise ConfigError(
            f"{setting}={run_dir} is a symlink (to {os.readlink(run_dir)}); name the directory itself"
        )
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"{setting}={run_dir} is {kind(run_dir.stat().st_mode)}, not a directory; name a directory")
    for name in (*RUN_FILES, *also):
        path = run_dir / name
        try:
            mode = os.lstat(path).st_mode
        except (FileNotFoundError, NotADirectoryError):
            continue
        if stat.S_ISLNK(mode):
            raise ConfigError(
                f"{setting}={run_dir}: {name} is a symlink; a run writes only inside its own "
                "directory, so remove the link (or copy the run's real files into a new directory)"
            )
        folder = name in FOLDERS
        if not (stat.S_ISDIR(mode) if folder else stat.S_ISREG(mode)):
            expected = "a directory" if folder else "a regular file"
            raise ConfigError(
                f"{setting}={run_dir}: {name} is {kind(mode)}, not {expected}; a run reads and writes only "
                "regular files in its directory, so remove it (or copy the run's real files into a new directory)"
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
    a run that starts in the same microseconds is the only one that could notice the probe. A
    ``.lock`` that is not a regular file (a FIFO would block a plain open) is an ``UnreadableFile``.
    """
    try:
        fd = open_regular(run_dir / LOCK_FILE)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _pid_in(fd)
    finally:
        os.close(fd)  # also releases the probe's lock
    return None


def _refuse_special_lock(run_dir: Path, setting: str, mode: int) -> None:
    if not stat.S_ISREG(mode):
        raise ConfigError(
            f"{setting}={run_dir}: {LOCK_FILE} is {kind(mode)}, not a regular file; a run's lock is a "
            "regular file, so remove it"
        )


@contextmanager
def hold(run_dir: Path, setting: str) -> Iterator[None]:
    """Hold ``run_dir``'s lock for the block; ``ConfigError`` naming the holder if it is taken."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_FILE
    try:
        _refuse_special_lock(run_dir, setting, os.lstat(path).st_mode)  # before opening: a FIFO would block
    except FileNotFoundError:
        pass
    # O_NONBLOCK: a FIFO swapped in since the check is not waited on, and fstat refuses it.
    fd = open_no_follow(path, os.O_RDWR | os.O_CREAT | os.O_NONBLOCK, 0o644)
    try:
        _refuse_special_lock(run_dir, setting, os.fstat(fd).st_mode)
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
