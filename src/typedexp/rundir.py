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

import errno
import fcntl
import os
import secrets
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from typedexp.errors import ConfigError

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
