"""The files a run directory holds, and how typedexp opens them: never through a symlink, never
waiting on a FIFO or a device, never more than a cap, temp files under fresh names.

A leaf (stdlib only) so that the engine's checkpoints and the trackers' files, which sit below the
run-dir layer (``runs/layout.py``: what marks a run, the lock), write by the same rules.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from pathlib import Path

from typedexp.core.errors import ConfigError

METRICS_FILE = "metrics.jsonl"
WEIGHTS_FILE = "model.pt"
CHECKPOINT_DIR = "checkpoints"
LAST, BEST = "last.pt", "best.pt"
LOCK_FILE = ".lock"
HYDRA_DIR = ".hydra"
MULTIRUN_FILE = "multirun.yaml"  # Hydra writes it into the sweep dir, before the first job
# Any of these means the directory holds an earlier run's results.
RESULTS = (METRICS_FILE, WEIGHTS_FILE, f"{CHECKPOINT_DIR}/{LAST}")
# Everything a run or a resume reads or writes in its directory (Hydra writes .hydra/'s files),
# parents before children.
RUN_FILES = (
    LOCK_FILE, HYDRA_DIR, f"{HYDRA_DIR}/overrides.yaml", f"{HYDRA_DIR}/config.yaml", f"{HYDRA_DIR}/hydra.yaml",
    METRICS_FILE, WEIGHTS_FILE, CHECKPOINT_DIR, f"{CHECKPOINT_DIR}/{LAST}", f"{CHECKPOINT_DIR}/{BEST}",
)
FOLDERS = (HYDRA_DIR, CHECKPOINT_DIR)  # the RUN_FILES that are directories
_KINDS = (
    (stat.S_ISLNK, "a symlink"), (stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
)


class UnreadableFile(ConfigError):
    """A file of a run dir that typedexp does not read; the message names it and says why.

    A ``ConfigError``: where a run or a resume needs the file it is one line and exit code 2;
    ``typedexp runs`` and the sweep summary turn it into one warning and show the rest of the run.
    """


def kind(mode: int) -> str:
    """What an ``lstat`` mode is, in words: ``"a FIFO"``, ``"a regular file"``..."""
    return next((name for test, name in _KINDS if test(mode)), "a regular file" if stat.S_ISREG(mode) else "a special file")


def size_text(size: int) -> str:
    """``"20.0 GiB"``: a byte count as a person reads it."""
    value, unit = float(size), "bytes"
    for larger in ("KiB", "MiB", "GiB", "TiB"):
        if value < 1024:
            break
        value, unit = value / 1024, larger
    return f"{size} bytes" if unit == "bytes" else f"{value:.1f} {unit}"


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


def open_regular(path: Path) -> int:
    """A read-only descriptor of the regular file ``path``, opened without waiting on anything.

    ``FileNotFoundError`` if there is none; ``UnreadableFile`` for a symlink, a directory, a FIFO,
    a socket or a device. The entry is checked with ``lstat`` before it is opened (opening a
    device can act on it, opening a FIFO waits for a writer) and the descriptor with ``fstat``
    after, so something swapped in between is refused too; ``O_NONBLOCK`` means that even then a
    FIFO is not waited on. Any other failure to open it (permissions) is an ``UnreadableFile``.
    """
    try:
        before = os.lstat(path)
    except NotADirectoryError:  # a parent is a file: nothing is there
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path)) from None
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise UnreadableFile(f"{path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(before.st_mode):
        raise UnreadableFile(f"{path}: {kind(before.st_mode)}, not a regular file")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        reason = "a symlink, not a regular file" if exc.errno == errno.ELOOP else exc.strerror or str(exc)
        raise UnreadableFile(f"{path}: {reason}") from None
    opened = os.fstat(fd)
    if not stat.S_ISREG(opened.st_mode) or (opened.st_dev, opened.st_ino) != (before.st_dev, before.st_ino):
        os.close(fd)
        raise UnreadableFile(f"{path}: replaced while it was opened, now {kind(opened.st_mode)}")
    return fd


def read_capped(path: Path, limit: int) -> bytes | None:
    """The bytes of the regular file ``path`` (``open_regular``); None if there is none.

    ``UnreadableFile`` if it is not a regular file or holds more than ``limit`` bytes: a file that
    large is not one a run wrote, and reading it whole could exhaust memory (a sparse file claims
    terabytes on no disk at all).
    """
    try:
        fd = open_regular(path)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as file:
        size = os.fstat(fd).st_size
        data = file.read(limit + 1) if size <= limit else b""  # + 1: it may have grown since fstat
    if size > limit or len(data) > limit:
        raise UnreadableFile(f"{path}: {size_text(max(size, len(data)))}, more than the {size_text(limit)} typedexp reads of it")
    return data


def exclusive_temp(target: Path) -> tuple[int, Path]:
    """A new, empty temp file beside ``target``: a fresh random name opened with ``O_EXCL``.

    ``O_EXCL`` fails on any existing entry, symlinks included, and the name cannot be guessed in
    advance, so the bytes written never land in a file someone planted.
    """
    temp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(8)}.tmp")
    return open_no_follow(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL), temp
