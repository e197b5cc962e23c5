"""``resume=``: turn the command line into one that continues an earlier run, before Hydra starts.

``resume=<run dir>`` (or its ``checkpoints/last.pt``) continues in that run directory: Hydra's
``hydra.run.dir`` is set to it, the run's original overrides are put back in front of the new
ones (so ``typedexp resume=outputs/...`` alone is enough), and this attempt's ``.hydra/`` files go
to ``.hydra/resume-<time>/`` so the original ones are never overwritten. ``resume=auto`` picks the
newest run under ``outputs/`` started with the same overrides. Any other checkpoint file (a copy,
``best.pt``) starts a new run directory from that state and leaves its origin untouched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from collections.abc import Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException

from typedexp.core.errors import ConfigError
from typedexp.runs.layout import CHECKPOINT_DIR, HYDRA_DIR, LAST, refuse_symlinks
from typedexp.runs.record import load_yaml
from typedexp.core.safety.launchers import RENDEZVOUS_DEFAULTS
from typedexp.runs.session import may_differ

KEY = "resume"
OUTPUTS = Path("outputs")  # where Hydra's default run directories live (configs.HYDRA_SETTINGS)
_PLAIN = re.compile(r"[\w./\-:+@]+", re.ASCII)  # what Hydra reads unquoted


@dataclass(frozen=True)
class ResumePlan:
    overrides: list[str]  # what Hydra gets instead of the typed overrides
    run_dir: Path | None  # the run directory it continues in; None: a new one


def quoted(value: str) -> str:
    """``value`` as one Hydra override value: as it is where Hydra reads it back unchanged."""
    return value if _PLAIN.fullmatch(value) else quoted_value(value)


def quoted_value(text: str) -> str:
    """``text`` as a quoted Hydra override value that reads back as exactly ``text``.

    Inside quotes Hydra's grammar only treats a quote, ``${`` (an interpolation) and the
    backslashes right before them (or before the closing quote) specially, so those backslashes
    are doubled and the quote and ``${`` escaped: ``out,a``, ``it's``, ``a b=c``, ``日本`` all
    parse back unchanged.
    """
    doubled = re.sub(r"(\\+)(?='|\$\{|\Z)", lambda run: run.group(1) * 2, text)
    return "'" + doubled.replace("'", "\\'").replace("${", "\\${") + "'"


def _line(override: Override) -> str:
    return override.input_line or ""  # set for every override parsed from text


def _key(override: Override) -> str:
    return f"{override.key_or_group}@{override.package}" if override.package else override.key_or_group


def plan_resume(overrides: Sequence[str], *, multirun: bool = False) -> ResumePlan | None:
    """The overrides that continue the run ``resume=`` names; None when there is no ``resume=``."""
    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except HydraException:
        return None  # Hydra reports the syntax error itself
    requests = [o for o in parsed if o.key_or_group == KEY and not o.is_delete()]
    if not requests:
        return None
    value = requests[-1].value()
    if value is None or requests[-1].is_sweep_override():
        if value is None:
            return None
        raise ConfigError("resume: continues one run; give one checkpoint or run directory, not a sweep")
    if multirun:
        raise ConfigError("resume: continues one run and cannot be combined with -m/--multirun")
    rest = [o for o in parsed if o.key_or_group != KEY]
    asked = str(value)
    checkpoint, run_dir = locate(asked, rest)
    if run_dir is not None:  # before its .hydra/overrides.yaml is read (rule: rundir.py)
        refuse_symlinks(run_dir, KEY)
    run_dirs = [str(o.value()) for o in rest if o.key_or_group == "hydra.run.dir"]
    if run_dir is not None and run_dirs and Path(run_dirs[-1]).resolve() != run_dir.resolve():
        raise ConfigError(
            f"resume={asked} continues in {run_dir}; drop hydra.run.dir={run_dirs[-1]} "
            "(or resume from a copied checkpoint file to start a new directory)"
        )
    merged = merge(original_overrides(run_dir) if run_dir else [], rest)
    lines = [_line(o) for o in merged if o.key_or_group != "hydra.run.dir"]
    lines.append(f"{KEY}={quoted(str(checkpoint.resolve()))}")
    if run_dir is not None:
        stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")
        lines += [
            f"hydra.run.dir={quoted(str(run_dir.resolve()))}",
            f"hydra.output_subdir={quoted(f'.hydra/resume-{stamp}')}",
        ]
    elif run_dirs:
        lines.append(f"hydra.run.dir={quoted(run_dirs[-1])}")
    return ResumePlan(lines, run_dir.resolve() if run_dir else None)


def locate(asked: str, rest: Sequence[Override]) -> tuple[Path, Path | None]:
    """The checkpoint file for ``resume=asked`` and the run directory it continues in (if any)."""
    if asked == "auto":
        run_dir = newest_matching_run(rest)
        return run_dir / CHECKPOINT_DIR / LAST, run_dir
    path = Path(asked)
    if path.is_dir():
        checkpoint = path / CHECKPOINT_DIR / LAST
        if not checkpoint.is_file():
            raise ConfigError(f"resume={asked}: no {CHECKPOINT_DIR}/{LAST} in that directory (no checkpoint was saved)")
        return checkpoint, path
    if not path.is_file():
        raise ConfigError(f"resume={asked}: no such checkpoint file or run directory")
    run_dir = path.parent.parent
    if path.name == LAST and path.parent.name == CHECKPOINT_DIR and (run_dir / ".hydra").is_dir():
        return path, run_dir
    return path, None


def original_overrides(run_dir: Path) -> list[Override]:
    """The overrides the run was first started with (its own ``.hydra/overrides.yaml``).

    The run dir may come from elsewhere: the file is read as ``runs.load_yaml`` reads it (a regular
    file only, never waited on, size-capped, plain YAML), and anything but a list of overrides Hydra
    can parse is one ``ConfigError`` line.
    """
    saved = run_dir / HYDRA_DIR / "overrides.yaml"
    unread: list[str] = []
    loaded = load_yaml(saved, unread)
    if unread:
        raise ConfigError(f"resume={run_dir}: cannot read the run's overrides: {unread[0]}")
    if loaded is None:  # no file: a run started without Hydra's files (or an empty one)
        return []
    if not isinstance(loaded, list) or not all(isinstance(line, str) for line in loaded):
        raise ConfigError(f"resume={run_dir}: {saved} is not a list of overrides, as Hydra writes it")
    try:
        parsed = OverridesParser.create().parse_overrides(loaded)
    except HydraException as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"resume={run_dir}: {saved} holds an override Hydra cannot parse: {reason}") from None
    # Where the ranks met is this attempt's to say, typed again if not the default (safety/launchers.py).
    return [o for o in parsed if o.key_or_group != KEY and o.key_or_group not in RENDEZVOUS_DEFAULTS]


def merge(first: Sequence[Override], then: Sequence[Override]) -> list[Override]:
    """``first`` followed by ``then``; an override in ``then`` replaces ``first``'s for its key.

    Hydra refuses two overrides of one config group (``model=a model=b``), so a plain
    concatenation would not do.
    """
    later = {_key(o) for o in then}
    return [o for o in first if _key(o) not in later] + list(then)


def identity(overrides: Sequence[Override]) -> list[str]:
    """What makes two command lines "the same config" for ``resume=auto``: the overrides, last one
    per key, without Hydra's settings and without the fields a resumed run may change (epochs...)."""
    last = {_key(o): _line(o) for o in overrides if not o.key_or_group.startswith("hydra.")}
    return sorted(line for key, line in last.items() if not may_differ(key.lstrip("+~")))


def newest_matching_run(rest: Sequence[Override]) -> Path:
    wanted = identity(rest)
    candidates = sorted(OUTPUTS.glob("*/*/.hydra/overrides.yaml"), reverse=True)  # names are times
    for saved in candidates:
        run_dir = saved.parent.parent
        try:
            overrides = original_overrides(run_dir)
        except ConfigError:  # not a run of ours (a FIFO, not YAML): not the one meant
            continue
        if identity(overrides) == wanted and (run_dir / CHECKPOINT_DIR / LAST).is_file():
            return run_dir
    shown = " ".join(wanted) or "no overrides"
    raise ConfigError(f"resume=auto: no run under {OUTPUTS}/ with the same overrides ({shown}) has a checkpoint")
