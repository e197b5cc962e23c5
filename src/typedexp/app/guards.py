"""Checks made before a job touches anything: no unknown fields, no reused or unsafe run directory."""

from __future__ import annotations

import dataclasses
import difflib
import os
from pathlib import Path

from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from typedexp.runs import layout as rundir
from typedexp.core.errors import ConfigError
from typedexp.sweeps.hpo import PLUGIN_CLASS


# The seed lesson's names (its argparse flags and YAML keys) for fields typedexp names otherwise.
LESSON_NAMES = {"learning_rate": "lr", "hidden_layer_sizes": "hidden", "normalization": "norm", "num_epochs": "epochs"}


def suggestion(name: str, candidates: list[str], node: DictConfig | None = None) -> str:
    """``did you mean X? `` for an unknown field: a close spelling among ``candidates``, else (with
    ``node``, the node the field was set on) the lesson's name for one of them, or the one field
    of a node below that has this name (``lr`` -> ``optim.lr``, ``dropout`` -> ``model.dropout``)."""
    close = difflib.get_close_matches(name, candidates, n=1)
    if close:
        return f"did you mean {close[0]}? "
    wanted = LESSON_NAMES.get(name, name)
    if node is None:
        return ""
    if wanted in candidates:
        return f"did you mean {wanted}? "
    nested = [f"{group}.{wanted}" for group in candidates if wanted in (fields_below(node, group) or [])]
    return f"did you mean {nested[0]}? " if len(nested) == 1 else ""


def fields_below(node: DictConfig, name: str) -> list[str] | None:
    """The fields of ``node.name`` when it is a structured node that is set; else None."""
    child = node._get_node(name)
    if not isinstance(child, DictConfig) or child._is_missing() or child._is_none():
        return None
    return allowed_fields(child)


def allowed_fields(node: DictConfig) -> list[str] | None:
    """Field names of a structured config node; None for a free-form mapping."""
    node_type = OmegaConf.get_type(node)
    if node_type is None or not dataclasses.is_dataclass(node_type):
        return None
    names = (field.name for field in dataclasses.fields(node_type))
    return [name for name in names if not name.startswith("_") and name != "defaults"]


def check_known_fields(cfg: DictConfig, path: str = "") -> None:
    """Refuse keys added with ``+key=value`` that the target does not take.

    Hydra lets ``+`` append any key, and zen would silently ignore a misspelt top-level one
    (``+epocs=3``); an unknown key inside a node only fails later as a TypeError.
    """
    allowed = allowed_fields(cfg)
    for key in cfg.keys():
        name = str(key)
        if allowed is not None and name not in allowed and not name.startswith("_") and name != "defaults":
            where = path.rstrip(".") or "the top level"
            raise ConfigError(
                f"{path}{name}: unknown field; {suggestion(name, allowed, cfg)}"
                f"fields of {where}: {', '.join(allowed)}"
            )
        child = cfg._get_node(name)
        if isinstance(child, DictConfig) and not child._is_missing() and not child._is_none():
            check_known_fields(child, f"{path}{name}.")


def as_job(composed: DictConfig, output_dir: Path) -> DictConfig:
    """A copy of ``composed.hydra`` with what Hydra fills in per job set (job 0 in ``output_dir``).

    Values such as ``hydra.job_logging.handlers.file.filename`` interpolate those fields, so they
    resolve only in this copy. The copy keeps the whole config, so ``hydra.run.dir=runs/${seed}``
    resolves; ``${now:}`` and ``${hydra:}`` resolve as in Hydra.
    """
    copy = OmegaConf.create(OmegaConf.to_container(composed, resolve=False))
    job = copy.hydra
    if not isinstance(job, DictConfig):
        raise TypeError("the composed config has no hydra node (compose with return_hydra_config=True)")
    job.runtime.output_dir = str(output_dir)
    job.job.num = 0
    job.job.id = "0"
    return job


def _text(node: DictConfig, key: str, setting: str) -> str | None:
    try:
        value = node.get(key)
    except Exception as exc:  # OmegaConf's resolution errors share no base class worth naming
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"{setting}: cannot be resolved ({reason})") from exc
    return None if value is None else str(value)


def refuse_leaving_the_run_dir(setting: str, value: str | None) -> None:
    """``hydra.output_subdir`` / ``hydra.sweep.subdir`` name a place inside the run (sweep) dir."""
    if value is not None and (Path(value).is_absolute() or ".." in Path(value).parts):
        raise ConfigError(
            f"{setting}={value}: must be a relative path inside the run directory (no leading / and no ..)"
        )


def job_logs(composed: DictConfig, run_dir: Path, setting: str) -> list[str]:
    """Hydra's log files for a job in ``run_dir``, relative to it; refused if one lies outside.

    Hydra opens them itself, before the task runs, so this is checked before Hydra starts.
    """
    job = as_job(composed, run_dir)
    inside = Path(os.path.abspath(run_dir))
    names: list[str] = []
    for logging in ("job_logging", "hydra_logging"):
        section = job.get(logging)
        handlers = section.get("handlers") if isinstance(section, DictConfig) else None
        for name, handler in (handlers or {}).items():
            if not isinstance(handler, DictConfig) or handler.get("filename") is None:
                continue
            key = f"hydra.{logging}.handlers.{name}.filename"
            path = Path(os.path.abspath(_text(handler, "filename", key) or ""))
            if not path.is_relative_to(inside):
                raise ConfigError(
                    f"{key}={path}: outside {setting}={run_dir}; a run writes only inside its own directory"
                )
            names.append(str(path.relative_to(inside)))
    return names


def refuse_a_file_in_the_way(path: Path, setting: str) -> None:
    """``hydra.run.dir=notes.txt`` (or a dir below a file): Hydra's makedirs would raise
    ``NotADirectoryError`` with a traceback, after composing and before any check of ours."""
    if path.is_symlink():
        return  # rundir.refuse_symlinks words that one
    for place in (path, *path.parents):
        if place.is_dir():
            return
        if place.exists() or place.is_symlink():  # a file, a dangling symlink, a socket, ...
            what = "a file" if place.is_file() else "not a directory"
            shown = path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path
            where = f"is {what}" if place == path else f"cannot be created: {place} is {what}"
            raise ConfigError(f"{setting}={shown}: {where}; give a directory, or a path that does not exist yet")


def check_run_dir(run_dir: Path, setting: str, composed: DictConfig, *, continuing: bool) -> None:
    """Refuse a run dir that Hydra or the run would write through a symlink, in use, or used."""
    refuse_a_file_in_the_way(run_dir, setting)
    rundir.refuse_symlinks(run_dir, setting, job_logs(composed, run_dir, setting))
    holder = rundir.lock_holder(run_dir)
    if holder is not None:
        raise rundir.in_use(run_dir.resolve(), setting, holder)
    if not continuing:
        rundir.refuse_used(run_dir.resolve(), setting)


def refuse_reused_run_dirs(
    composed: DictConfig, *, multirun: bool, resuming: Path | None, named: str | None = None
) -> None:
    """Refuse run directories of the composed config (with its ``hydra`` node) that are unsafe.

    Compares resolved, symlink-free paths, so quoting, ``++``, ``..`` or an interpolation that
    lands on a used directory are all caught. Default directories carry microseconds, so they
    never collide. ``resuming`` (resolved) is the one legitimate reuse: what ``resume=`` continues.
    Checked before Hydra starts, because Hydra writes ``.hydra/`` and its job log before the task
    runs, and exceptions raised by Hydra callbacks are only warnings. Relative directories are
    taken from the current directory, as Hydra does. ``named`` is what the caller called the run
    (sweep) directory, for the error lines: ``launch(output_dir=...)`` says ``output_dir``, not
    the ``hydra.run.dir`` it became.
    """
    job = as_job(composed, Path.cwd())
    refuse_leaving_the_run_dir("hydra.output_subdir", _text(job, "output_subdir", "hydra.output_subdir"))
    if multirun or composed.hydra.get("mode") == RunMode.MULTIRUN:  # -m, or hydra.mode=MULTIRUN
        refuse_leaving_the_run_dir("hydra.sweep.subdir", _text(job.sweep, "subdir", "hydra.sweep.subdir"))
        setting = named or "hydra.sweep.dir"
        sweep_dir = Path.cwd() / (_text(job.sweep, "dir", "hydra.sweep.dir") or "")
        refuse_a_file_in_the_way(sweep_dir, setting)
        # A symlink, or a FIFO where Hydra writes multirun.yaml (a plain open: it would wait forever).
        rundir.refuse_symlinks(sweep_dir, setting, [rundir.MULTIRUN_FILE])
        rundir.refuse_used(sweep_dir.resolve(), setting)
        # The optuna sweeper continues the study in its sweep dir: it numbers new jobs after every
        # job dir there, and each job still refuses a used dir under its lock (task.run_experiment).
        continuing = composed.hydra.sweeper.get("_target_") == PLUGIN_CLASS
        for job_dir in sorted(sweep_dir.glob("*")):
            if job_dir.is_dir():
                check_run_dir(job_dir, setting, composed, continuing=continuing)
        return
    # Absolute, but not resolved: a symlink as the last component must still be seen as one.
    run_dir = Path.cwd() / (_text(job.run, "dir", "hydra.run.dir") or "")
    check_run_dir(run_dir, named or "hydra.run.dir", composed, continuing=run_dir.resolve() == resuming)
