"""What a run optimises and measures: the task (the ``task`` group), as the engine uses it.

A task is a frozen spec that gives the loss of a batch, the sums over examples its metrics are
made of, the metrics from those sums, and the metric that picks ``checkpoints/best.pt``. The
engine never computes a metric itself: it keeps each step's ``statistics`` on the device and
reads them back once per logged point, as it always did for the loss (engine/loop.py).

``Classification`` (the default) and ``Regression`` are the two built in; a task of your own is
one frozen dataclass with these members, registered with ``register("task", name, MyTask())``
(docs/extending.md). Torch is imported only inside the methods, so composing configs stays fast.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from typedexp.core.checks import require_finite
from typedexp.core.errors import ConfigError
from typedexp.data.tensors import TargetKind
from typedexp.engine.settings import BestMode

if TYPE_CHECKING:
    import torch


@runtime_checkable  # register("task", ...) checks a spec has every member before offering it
class Task(Protocol):
    """The objective: loss, metrics and the best-checkpoint metric, for targets of one kind."""

    @property
    def targets(self) -> TargetKind:
        """Class indices or float vectors: a dataset of the other kind is refused before training."""
        ...

    @property
    def goals(self) -> Mapping[str, BestMode]:
        """Each metric's name (without ``val/``) and whether larger is better; the first is the
        headline a sweep ranks by unless told otherwise."""
        ...

    @property
    def best_metric(self) -> str:
        """What ``best.pt`` keeps the best epoch of (``trainer.best_metric`` overrides it)."""
        ...

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """() the mean loss over the batch: what is backpropagated and logged as ``*/loss``."""
        ...

    def statistics(self, outputs: torch.Tensor, targets: torch.Tensor, sizes: Sequence[int]) -> torch.Tensor:
        """The sums ``metrics`` needs, over the examples of several steps (``sizes``: each step's
        examples, in order, concatenated in ``outputs``/``targets``), without a host sync.

        Integer counts may come summed over all the steps (() or (M,)): integer sums are exact in
        any order. Float sums come per step, (steps, M), and are kept in step order, so that a run
        resumed from a checkpoint adds up exactly the same numbers as one that was not stopped.
        """
        ...

    def metrics(self, totals: Sequence[float], count: int) -> dict[str, float]:
        """Every metric named in ``goals``, from the ``statistics`` summed over ``count`` examples."""
        ...


def direction(task: Task, metric: str) -> BestMode | None:
    """Whether a larger or smaller ``metric`` (``val/acc``, ``test/loss``) is better; None if the
    task does not know it."""
    name = metric.rpartition("/")[2]
    return BestMode.min if name == "loss" else task.goals.get(name)


def headline(task: Task) -> tuple[str, BestMode]:
    """The validation metric that ranks runs of this task by default, with its direction."""
    name, mode = next(iter(task.goals.items()))
    return f"val/{name}", mode


def shown_metrics(task: Task) -> tuple[str, ...]:
    """What the summary line prints: every validation metric, the losses, the headline on test."""
    names = tuple(task.goals)
    return (*(f"val/{name}" for name in names), "val/loss", "train/loss", f"test/{names[0]}")


def check_targets(task: Task, targets: TargetKind, *, task_name: str, dataset_name: str) -> None:
    """One line naming both fields when the task and the dataset's targets disagree."""
    if task.targets is not targets:
        raise ConfigError(
            f"task={task_name} needs {task.targets.described}; dataset={dataset_name} has {targets.described}: "
            f"choose a {'regression' if targets is TargetKind.values else 'classification'} task for it "
            f"(task={'regression' if targets is TargetKind.values else 'classification'}) or a dataset of "
            f"{task.targets.described}"
        )


@dataclass(frozen=True)
class Classification:
    """Class indices: cross-entropy on the logits, accuracy; ``best.pt`` by the highest ``val/acc``."""

    # Share of each target's probability spread evenly over all classes (0: plain cross-entropy).
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        require_finite(self, "task")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"task.label_smoothing={self.label_smoothing}: must be in [0, 1)")

    @property
    def targets(self) -> TargetKind:
        return TargetKind.classes

    @property
    def goals(self) -> Mapping[str, BestMode]:
        return {"acc": BestMode.max}

    @property
    def best_metric(self) -> str:
        return "val/acc"

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as F

        return F.cross_entropy(outputs, targets, label_smoothing=self.label_smoothing)  # (B, K), (B,) -> ()

    def statistics(self, outputs: torch.Tensor, targets: torch.Tensor, sizes: Sequence[int]) -> torch.Tensor:
        return (outputs.argmax(dim=1) == targets).sum()  # () int64: correct examples of all the steps

    def metrics(self, totals: Sequence[float], count: int) -> dict[str, float]:
        return {"acc": totals[0] / count}


class RegressionLoss(enum.Enum):
    """The regression loss (the CLI takes the name: ``task.criterion=l1``)."""

    mse = "mse"  # mean squared error: ``val/loss`` is ``val/rmse`` squared
    l1 = "l1"  # mean absolute error: less pulled by outliers; ``val/loss`` is ``val/mae``


@dataclass(frozen=True)
class Regression:
    """Float target vectors (N, D): ``rmse``, ``mae`` and ``r2`` (the mean over the D columns, as
    scikit-learn's ``r2_score``), in the targets' own unit; ``best.pt`` by the lowest ``val/loss``."""

    criterion: RegressionLoss = RegressionLoss.mse

    @property
    def targets(self) -> TargetKind:
        return TargetKind.values

    @property
    def goals(self) -> Mapping[str, BestMode]:
        return {"rmse": BestMode.min, "mae": BestMode.min, "r2": BestMode.max}

    @property
    def best_metric(self) -> str:
        return "val/loss"

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as F

        if self.criterion is RegressionLoss.l1:
            return F.l1_loss(outputs, targets)  # (B, D), (B, D) -> ()
        return F.mse_loss(outputs, targets)

    def statistics(self, outputs: torch.Tensor, targets: torch.Tensor, sizes: Sequence[int]) -> torch.Tensor:
        import torch

        # float64 where the device has it: sum(y^2) - sum(y)^2 / n loses digits in float32.
        dtype = torch.float32 if outputs.device.type == "mps" else torch.float64
        predicted, actual = outputs.to(dtype), targets.to(dtype)  # (n, D)
        error = predicted - actual
        # (n, 1 + 3D): |error| summed over the columns, then per column error^2, y, y^2.
        rows = torch.cat([error.abs().sum(dim=1, keepdim=True), error.square(), actual, actual.square()], dim=1)
        if len(set(sizes)) == 1:  # the usual case: one reshape, one sum
            return rows.view(len(sizes), sizes[0], -1).sum(dim=1)  # (steps, 1 + 3D)
        return torch.stack([part.sum(dim=0) for part in torch.split(rows, list(sizes))])

    def metrics(self, totals: Sequence[float], count: int) -> dict[str, float]:
        columns = (len(totals) - 1) // 3
        squared, sums, squares = totals[1 : 1 + columns], totals[1 + columns : 1 + 2 * columns], totals[1 + 2 * columns :]
        r2 = []
        for error, total, square in zip(squared, sums, squares, strict=True):
            spread = square - total * total / count  # n x the column's variance
            # scikit-learn's convention for a constant column: 1 if predicted exactly, else 0.
            r2.append(1.0 - error / spread if spread > 0 else (1.0 if error == 0 else 0.0))
        return {
            "rmse": math.sqrt(sum(squared) / (count * columns)),
            "mae": totals[0] / (count * columns),
            "r2": sum(r2) / columns,
        }
