"""What a single run stopped by a config mistake leaves behind: only what it found there.

Hydra makes the run dir, ``.hydra/`` and the job log before the task runs, so ``typedexp
batch_size=0`` used to leave a dated directory that ``typedexp runs`` listed as failed. Three steps
undo exactly that, and nothing else (docs/runs.md):

1. ``note_before`` (before Hydra makes anything): which of the paths the run may create are absent.
2. ``claim`` (when the task starts, after Hydra made them): the identity (device, inode) of each
   that now exists as what Hydra makes (a regular file, a directory; never a symlink).
3. ``remove_claimed`` (after the mistake): under the run dir's lock (and, in a dir this run made,
   only while it holds no run's results), unlink each claimed file that is still the same entry,
   unchanged, then remove each claimed folder deepest first with ``rmdir``, which removes only an
   empty one. Nothing is removed
   recursively, so a file that anyone else put there (a run sharing the dir) keeps its folders too.

Plain Python, no Hydra: ``app/tidy.py`` reads Hydra's config and decides when to call these.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from typedexp.core.errors import TypedexpError
from typedexp.runs import layout as rundir

HYDRA_FILES = ("config.yaml", "hydra.yaml", "overrides.yaml")  # what Hydra saves in hydra.output_subdir
# (st_dev, st_ino, st_mtime_ns; 0 for a folder): the same entry, unchanged since it was claimed.
# Hydra rewrites a file in place (same inode), so a run sharing the dir changes its mtime.
Identity = tuple[int, int, int]


@dataclass(frozen=True)
class Before:
    """What was absent before Hydra started this run (``note_before``)."""

    run_dir: Path  # absolute, as Hydra names it (hydra.runtime.output_dir)
    new_dirs: tuple[Path, ...]  # the run dir and the folders above it that did not exist, deepest first
    new_inside: tuple[str, ...]  # paths inside the run dir that did not exist, relative, parents first


@dataclass(frozen=True)
class Claim:
    """What this run made (``claim``): each absent path that exists now, with its identity."""

    before: Before
    dirs: dict[Path, Identity]  # the run dir and the folders above it
    inside: dict[str, Identity]  # files and folders inside the run dir, relative


def _identity(path: Path, want_dir: bool) -> Identity | None:
    try:
        info = os.lstat(path)
    except OSError:
        return None
    if want_dir:
        return (info.st_dev, info.st_ino, 0) if stat.S_ISDIR(info.st_mode) else None
    return (info.st_dev, info.st_ino, info.st_mtime_ns) if stat.S_ISREG(info.st_mode) else None


def note_before(run_dir: Path, subdir: str | None, files: Sequence[str]) -> Before:
    """Note which of the run's paths are absent: ``run_dir`` and its parents, ``subdir`` (Hydra's
    ``.hydra``: its folders and files), ``files`` (relative to ``run_dir``) and the run's lock."""
    run_dir = Path(os.path.abspath(run_dir))
    new_dirs: list[Path] = []
    for place in (run_dir, *run_dir.parents):
        if place.exists() or place.is_symlink():
            break
        new_dirs.append(place)
    folders: list[str] = []
    if subdir:
        parts = Path(subdir).parts
        folders = [str(Path(*parts[: index + 1])) for index in range(len(parts))]
        folders += [str(Path(subdir, name)) for name in HYDRA_FILES]
    names = [*folders, *files, rundir.LOCK_FILE]
    absent = [name for name in dict.fromkeys(names) if not _present(run_dir / name)]
    return Before(run_dir, tuple(new_dirs), tuple(absent))


def _present(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def claim(before: Before) -> Claim:
    """What of ``before``'s absent paths this run's Hydra made. The lock comes later (the run takes
    it after this), so it is claimed when it is removed, under the lock itself."""
    dirs = {place: ident for place in before.new_dirs if (ident := _identity(place, want_dir=True)) is not None}
    inside: dict[str, Identity] = {}
    for name in before.new_inside:
        if name == rundir.LOCK_FILE:
            continue
        path = before.run_dir / name
        ident = _identity(path, want_dir=path.is_dir() and not path.is_symlink())
        if ident is not None:
            inside[name] = ident
    return Claim(before, dirs, inside)


def remove_claimed(made: Claim) -> None:
    """Remove what this run made, by the module's rules; whatever is not provably its own stays."""
    run_dir = made.before.run_dir
    if _identity(run_dir, want_dir=True) is None:
        return  # gone, or replaced by a symlink or a file: not ours to touch
    try:
        with rundir.hold(run_dir, "hydra.run.dir"):  # a run that holds it (sharing the dir) keeps it all
            if run_dir in made.dirs and rundir.results_in(run_dir) is not None:
                return  # a dir this run made holds a run: another run shares it (a resumed one keeps its own)
            for name in sorted(made.inside, key=lambda name: -len(Path(name).parts)):  # files before folders
                _remove(run_dir / name, made.inside[name])
            if rundir.LOCK_FILE in made.before.new_inside:  # made by this run's hold, held right now
                _remove(run_dir / rundir.LOCK_FILE, _identity(run_dir / rundir.LOCK_FILE, want_dir=False))
    except (OSError, TypedexpError):  # in use by another run, unwritable: leave it as it is
        return
    for place in made.before.new_dirs:  # deepest first: the run dir, then outputs/<date>, ...
        if place not in made.dirs or not _remove(place, made.dirs[place]):
            return  # not empty (or not the one made): it and the folders above it stay


def _remove(path: Path, ident: Identity | None) -> bool:
    """Unlink a file, or remove an empty folder, if it is still the entry that was claimed."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    if ident is None or _identity(path, want_dir=stat.S_ISDIR(info.st_mode)) != ident:
        return False
    try:
        if stat.S_ISDIR(info.st_mode):
            path.rmdir()  # only an empty one: whatever else is inside stays, and so does the folder
        elif stat.S_ISREG(info.st_mode):
            path.unlink()
        else:
            return False
    except OSError:
        return False
    return True
