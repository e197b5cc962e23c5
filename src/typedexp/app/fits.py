"""Checks across groups of a composed config, made before Hydra creates a run dir.

``task=regression dataset=digits`` cannot train: the task needs float targets and the dataset has
class labels. A dataset spec that declares its ``targets`` (engine/tasks.py, data/sources.py) is
checked here, as Hydra composes the config (``config_guard.checked_loader`` calls this), so the
mistake is one line and nothing is written. A dataset that does not declare them is checked
after it loads (``pipeline.train``).
"""

from __future__ import annotations

from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from typedexp.data.tensors import TargetKind
from typedexp.engine.tasks import check_targets
from typedexp.sweeps.ranking import built_task


def check_task_fits_dataset(cfg: DictConfig) -> None:
    """Refuse a task and a dataset whose targets differ, naming both options."""
    task, targets = built_task(cfg), declared_targets(cfg)
    if task is None or targets is None:
        return
    choices = OmegaConf.select(cfg, "hydra.runtime.choices", default=None)
    choices = choices if isinstance(choices, DictConfig) else {}
    check_targets(
        task, targets,
        task_name=str(choices.get("task") or type(task).__name__), dataset_name=str(choices.get("dataset") or "?"),
    )


def declared_targets(cfg: DictConfig) -> TargetKind | None:
    """``targets`` declared by the dataset spec's class, without building it; None if undeclared."""
    node = cfg.get("dataset") if "dataset" in cfg else None
    target = node.get("_target_") if isinstance(node, DictConfig) else None
    if not isinstance(target, str):
        return None
    try:
        declared = getattr(get_class(target), "targets", None)
    except Exception:  # not importable: the run reports it
        return None
    return declared if isinstance(declared, TargetKind) else None
