"""The ``task`` group: what a run optimises and measures (``task=classification``, ``task=regression``).

The specs themselves live in ``engine/tasks.py``, since the engine calls their methods (the loss,
the metric sums); this table offers them on the command line. A task of your own is a frozen
dataclass with the same members (``engine.tasks.Task``), registered with
``typedexp.register("task", "my_task", MyTask())`` (docs/extending.md).
"""

from __future__ import annotations

from typedexp.engine.settings import BestMode
from typedexp.engine.tasks import Classification, Regression, RegressionLoss, Task, direction

TaskSpec = Task  # what Experiment.task accepts: any frozen spec with the Task members

# The `task` group, default first: a new task is a spec plus one line here.
OPTIONS: dict[str, TaskSpec] = {"classification": Classification(), "regression": Regression()}

__all__ = ["OPTIONS", "Classification", "Regression", "RegressionLoss", "TaskSpec", "goal_of", "known_tasks", "logged_metrics"]


# register("task", ...)'s additions (app/store.py), so that their metrics are known by name to
# the sweep summary, the Optuna sweeper and `typedexp runs` as the built-in ones are.
_REGISTERED: dict[str, TaskSpec] = {}


def note_registered(name: str, spec: TaskSpec) -> None:
    _REGISTERED[name] = spec


def known_tasks() -> list[TaskSpec]:
    return [*OPTIONS.values(), *_REGISTERED.values()]


def logged_metrics(task: TaskSpec) -> tuple[str, ...]:
    """Every metric a run of ``task`` logs, by split: ``val/loss``, ``val/acc``, ..., ``train/lr``."""
    names = ("loss", *task.goals)
    return (*(f"{split}/{name}" for split in ("val", "train", "test") for name in names), "train/lr")


def goal_of(metric: str) -> BestMode | None:
    """Whether a larger or smaller ``metric`` is better, as the first known task that logs it says."""
    for task in known_tasks():
        mode = direction(task, metric)
        if mode is not None:
            return mode
    return None
