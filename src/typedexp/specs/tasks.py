"""The ``task`` group: what a run optimises and measures (``task=classification``, ``task=regression``).

The specs themselves live in ``engine/tasks.py``, since the engine calls their methods (the loss,
the metric sums); this table offers them on the command line. A task of your own is a frozen
dataclass with the same members (``engine.tasks.Task``), registered with
``typedexp.register("task", "my_task", MyTask())`` (docs/extending.md).
"""

from __future__ import annotations

from typedexp.engine.tasks import Classification, Regression, RegressionLoss, Task

TaskSpec = Task  # what Experiment.task accepts: any frozen spec with the Task members

# The `task` group, default first: a new task is a spec plus one line here.
OPTIONS: dict[str, TaskSpec] = {"classification": Classification(), "regression": Regression()}

__all__ = ["OPTIONS", "Classification", "Regression", "RegressionLoss", "TaskSpec"]
