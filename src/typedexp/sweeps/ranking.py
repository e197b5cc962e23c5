"""What ranks a sweep's jobs by default: the task's headline metric and its direction.

``typedexp -m task=regression dataset=diabetes optim.lr=0.1,0.01`` ranks by ``val/rmse``, smallest
first, with no ranking setting: the summary table (``summary.py``) and the Optuna sweeper's
objective (``hpo.py``) ask the composed config's task, and a job's ``result.json`` records it for
later (``runs.record.RunRecord.objective``). ``hydra.callbacks.summary.metric``/``mode`` and
``hydra.sweeper.metric``/``mode`` still choose another.
"""

from __future__ import annotations

from collections.abc import Sequence

from hydra.utils import instantiate
from omegaconf import DictConfig

from typedexp.data.tensors import TargetKind
from typedexp.engine.settings import BestMode
from typedexp.engine.tasks import Task, direction, headline
from typedexp.runs.record import RunRecord
from typedexp.specs.tasks import goal_of

DEFAULT = ("val/acc", BestMode.max)  # classification's, for configs and runs that do not say


def built_task(cfg: DictConfig) -> Task | None:
    """The composed ``task`` node built (a frozen spec: no torch, no files); None where it cannot be.

    A node that fails to build is left alone here: the run reports it with the rest of the config.
    Only a config that ``config_guard`` has checked is given here, so its target is allowed.
    """
    node = cfg.get("task") if "task" in cfg else None
    if not isinstance(node, DictConfig) or "_target_" not in node:
        return None
    try:
        task: object = instantiate(node)
    except Exception:
        return None
    if not (isinstance(getattr(task, "targets", None), TargetKind) and isinstance(task, Task)):
        return None
    return task


def ranking(
    metric: str | None, mode: BestMode | None, *, task: Task | None = None, records: Sequence[RunRecord] = ()
) -> tuple[str, BestMode]:
    """The metric and direction to rank by: those given, else the task's headline (from the config,
    or else as the jobs recorded it), else ``val/acc`` (max). A metric given without a direction
    gets the one its task (or any known task) gives it, else max."""
    if metric is None:
        recorded = next((record.objective for record in records if record.objective is not None), None)
        chosen = headline(task) if task is not None else recorded or DEFAULT
        return chosen[0], mode or chosen[1]
    known = (direction(task, metric) if task is not None else None) or goal_of(metric)
    return metric, mode or known or BestMode.max
