"""``Experiment``: a whole run as one typed value, and the presets built from it.

``typedexp model=large optim.lr=3e-4`` and ``launch(experiment=Experiment(model=LARGE,
optim=Adam(lr=3e-4)))`` describe the same run: the command line composes an ``Experiment`` from
the store, and Python writes one directly. Both checkers see every field (``Experiment(epocs=3)``
is an error), and a field read back has its precise type.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional

from typedexp.data import CIFAR10, MNIST, DatasetSpec, Digits
from typedexp.data import OPTIONS as DATASETS
from typedexp.engine import TrainerSettings
from typedexp.core.errors import ConfigError
from typedexp.specs.models import CNN, LARGE, MLP, ModelSpec
from typedexp.specs.models import OPTIONS as MODELS
from typedexp.specs.optim import OPTIONS as OPTIMIZERS
from typedexp.specs.optim import SGD, Adam, OptimizerSpec
from typedexp.specs.schedules import OPTIONS as SCHEDULES
from typedexp.specs.schedules import ScheduleSpec
from typedexp.specs.tasks import OPTIONS as TASKS
from typedexp.specs.tasks import TaskSpec
from typedexp.tracking import OPTIONS as TRACKERS
from typedexp.tracking import SwanLabMode, SwanLabTracking, TrackerSpec


@dataclass(frozen=True)
class Experiment:
    """One run: a spec per group, the engine's settings and the loop's numbers."""

    dataset: DatasetSpec = field(default_factory=lambda: DATASETS["digits"])
    model: ModelSpec = field(default_factory=lambda: MODELS["small"])
    optim: OptimizerSpec = field(default_factory=lambda: OPTIMIZERS["sgd"])
    schedule: ScheduleSpec = field(default_factory=lambda: SCHEDULES["none"])
    tracker: TrackerSpec = field(default_factory=lambda: TRACKERS["local"])
    task: TaskSpec = field(default_factory=lambda: TASKS["classification"])  # the loss and the metrics
    trainer: TrainerSettings = field(default_factory=TrainerSettings)
    epochs: int = 15  # passes over the training split; 15 reaches >= 0.95 val acc on digits
    batch_size: int = 64  # examples per optimizer step
    seed: int = 0  # seeds model initialisation and the data order
    resume: Optional[str] = None  # a checkpoint file or run dir, or "auto" (docs/runs.md)
    # Names configs may build beyond typedexp's own (mylib.models.ResNet, mylib.models.*); only
    # the command line or launch() can set it (docs/safety.md).
    allowed_targets: tuple[str, ...] = ()
    # What the run is for, not what it computes: in SwanLab (its tags, description), result.json
    # and `typedexp runs` (`--where tag=baseline`). A tag is a short plain word; a note one line.
    tags: tuple[str, ...] = ()
    note: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "tags", checked_tags(self.tags))
        check_note(self.note)
        for name, value in (("epochs", self.epochs), ("batch_size", self.batch_size)):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}={value}: must be an integer >= 1")
        if not isinstance(self.seed, int) or not SEEDS[0] <= self.seed <= SEEDS[1]:
            raise ConfigError(
                f"seed={self.seed}: must be a whole number from -2**63 to 2**64-1 (what torch.manual_seed "
                "takes), e.g. seed=0"
            )


SEEDS = (-(2**63), 2**64 - 1)  # torch.manual_seed's range; beyond it torch fails with "Overflow"
# A letter or digit, then letters, digits, _ . - (any script): no comma, space or "=", so a tag
# reads back whole from `tags=[a,b]` and `--where tag=a`. SwanLab takes at most 30 tags a run.
TAG = re.compile(r"[^\W_][\w.-]{0,31}")
MAX_TAGS = 30
MAX_NOTE = 200  # characters: one line of a table or a terminal; SwanLab's description takes 1024


def checked_tags(tags: object) -> tuple[str, ...]:
    """``tags`` as a tuple (Hydra hands a list over as a ListConfig), each a short plain word."""
    if isinstance(tags, str) or not isinstance(tags, Sequence):  # Hydra's ListConfig is a Sequence
        raise ConfigError(f"tags={tags!r}: must be a list of words, e.g. tags=[baseline,ablation]")
    values = tuple(tags)
    for tag in values:
        if not isinstance(tag, str) or not TAG.fullmatch(tag):
            raise ConfigError(
                f"tags: {tag!r} is not a tag: a tag is one word of up to 32 letters, digits, _ . or -, "
                "no spaces or commas, e.g. tags=[baseline,lr-sweep]"
            )
    if len(values) > MAX_TAGS:
        raise ConfigError(f"tags: {len(values)} tags; a run takes at most {MAX_TAGS}")
    if len(set(values)) < len(values):
        raise ConfigError(f"tags={list(values)}: a tag is given twice")
    return values


def check_note(note: object) -> None:
    if not isinstance(note, str):
        raise ConfigError(f"note={note!r}: must be text, e.g. note='first try with dropout'")
    if any(not character.isprintable() for character in note):
        raise ConfigError("note: must be one line of printable text (no line breaks or control characters)")
    if len(note) > MAX_NOTE:
        raise ConfigError(f"note: {len(note)} characters; a note is one line of at most {MAX_NOTE}")


# `+experiment=<name>`: whole experiments, each one typed value.
EXPERIMENTS: dict[str, Experiment] = {
    # The seed lesson exactly: its Net on CIFAR-10, batch 4, SGD lr=0.001 momentum=0.9, 2 epochs.
    "seed_cifar10": Experiment(
        dataset=CIFAR10(), model=CNN(), optim=SGD(lr=0.001, momentum=0.9), batch_size=4, epochs=2
    ),
    "mnist_mlp": Experiment(dataset=MNIST(), model=MLP(hidden=(256, 128)), optim=Adam(lr=1e-3), epochs=5),
    "digits_large": Experiment(dataset=Digits(), model=LARGE, optim=Adam(lr=3e-3), epochs=20),
}

# `debug=<name>`: quick checks on top of any experiment.
DEBUG: dict[str, Experiment] = {
    # One short epoch, nothing tracked: does it run at all?
    "fast": Experiment(
        epochs=1, trainer=TrainerSettings(max_batches=5), tracker=SwanLabTracking(mode=SwanLabMode.disabled)
    ),
    # The same two batches every epoch until the loss is near 0: can the model learn at all?
    "overfit": Experiment(
        epochs=150,
        optim=Adam(lr=3e-3),
        trainer=TrainerSettings(overfit_batches=2),
        tracker=SwanLabTracking(mode=SwanLabMode.disabled),
    ),
}
