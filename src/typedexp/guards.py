"""Checks made before a job touches anything: no unknown fields, no reused run directory."""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path
from collections.abc import Sequence

from omegaconf import DictConfig, OmegaConf

from typedexp.errors import ConfigError

RUN_MARKER = "metrics.jsonl"  # a directory holding this file holds an earlier run


def suggestion(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=1)
    return f"did you mean {close[0]}? " if close else ""


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
                f"{path}{name}: unknown field; {suggestion(name, allowed)}"
                f"fields of {where}: {', '.join(allowed)}"
            )
        child = cfg._get_node(name)
        if isinstance(child, DictConfig) and not child._is_missing() and not child._is_none():
            check_known_fields(child, f"{path}{name}.")


def refuse_used_dir(directory: Path, setting: str) -> None:
    if (directory / RUN_MARKER).exists():
        raise ConfigError(
            f"{setting}={directory} already holds a run ({RUN_MARKER}); "
            "choose a new directory so nothing is overwritten"
        )


def refuse_reused_output_dirs(overrides: Sequence[str], *, resuming: Path | None = None) -> None:
    """Refuse an explicit ``hydra.run.dir`` / ``hydra.sweep.dir`` that already holds a run.

    Checked before Hydra starts because Hydra writes ``.hydra/`` into the run directory before
    the task runs, and exceptions raised by Hydra callbacks are only warnings. Default
    directories carry microseconds, so only an explicit (or reused) override can collide.
    ``resuming`` is the one legitimate reuse: the run directory that ``resume=`` continues.
    """
    chosen: dict[str, str] = {}
    for override in overrides:
        key, separator, value = override.partition("=")
        if separator and key in ("hydra.run.dir", "hydra.sweep.dir") and "${" not in value:
            chosen[key] = value  # the last occurrence wins, as in Hydra
    if "hydra.run.dir" in chosen and (resuming is None or Path(chosen["hydra.run.dir"]).resolve() != resuming):
        refuse_used_dir(Path(chosen["hydra.run.dir"]), "hydra.run.dir")
    if "hydra.sweep.dir" in chosen:
        for job_dir in sorted(Path(chosen["hydra.sweep.dir"]).glob("*")):
            refuse_used_dir(job_dir, "hydra.sweep.dir")
