"""The typed boundary between Hydra and the engine.

``zen(run_experiment)`` instantiates each config node and calls this function with the built
specs; from here on everything is plain typed Python. The only Hydra objects touched here are
``zen_cfg`` (turned into a plain dict for the tracker) and ``HydraConfig`` (the run directory).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Protocol

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from typedexp.data import DatasetSpec
from typedexp.engine import TrainerSettings, fit, prepare, resolve_device, seed_everything
from typedexp.engine.checkpoint import malformed
from typedexp.engine.checkpoint_checks import resume_problem
from typedexp.engine.loop import count_batches
from typedexp.engine.signals import stop_on_signals
from typedexp.errors import ConfigError
from typedexp.models import ModelSpec
from typedexp.optim import OptimizerSpec
from typedexp.redaction import redact
from typedexp.resources import naming_full_disk, naming_sizes, size_fields
from typedexp.session import Session, open_session
from typedexp.targets import DEFAULT_ALLOWED
from typedexp.tracking import FanOut, JsonlTracker, RunOutcome, Tracker
from typedexp.tracking.guarded import GuardedTracker

METRICS_FILE = "metrics.jsonl"
WEIGHTS_FILE = "model.pt"


class TrackerSpec(Protocol):
    def check_available(self) -> None: ...

    def start(
        self, *, config: Mapping[str, object], run_name: str, run_dir: str, resume_id: str | None = None
    ) -> Tracker: ...


@dataclass(frozen=True)
class RunResult:
    """What a finished run produced; returned by ``launch()``."""

    run_dir: Path  # Hydra's output directory: .hydra/, metrics.jsonl, model.pt
    metrics: dict[str, float]  # last value of every metric, e.g. metrics["val/acc"]
    steps: int
    epochs: int
    seconds: float  # training and validation wall time, excluding set-up
    device: str
    tracking_error: str | None = None  # why the external tracker stopped, if it failed

    @property
    def metrics_file(self) -> Path:
        return self.run_dir / METRICS_FILE

    @property
    def weights_file(self) -> Path:
        return self.run_dir / WEIGHTS_FILE


def run_experiment(
    dataset: DatasetSpec,
    model: ModelSpec,
    optim: OptimizerSpec,
    tracker: TrackerSpec,
    trainer: TrainerSettings,
    epochs: int = 15,  # passes over the training split; 15 reaches >= 0.95 val acc on digits
    batch_size: int = 64,  # examples per optimizer step
    seed: int = 0,  # seeds model initialisation and the data order
    resume: Optional[str] = None,  # a checkpoint file or run dir, or "auto" (README: Checkpoints)
    # Module prefixes that configs may name in _target_; checked before anything is built.
    allowed_targets: tuple[str, ...] = DEFAULT_ALLOWED,
    zen_cfg: DictConfig | None = None,
) -> RunResult:
    """Train ``model`` on ``dataset`` and record the run; the task Hydra runs for each job."""
    check_nodes(dataset=dataset, model=model, optim=optim, tracker=tracker, trainer=trainer)
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if value < 1:
            raise ConfigError(f"{name}={value}: must be an integer >= 1")
    dataset.check_available()  # both fail in milliseconds, before torch is imported
    tracker.check_available()
    import torch

    del allowed_targets  # enforced at the Hydra boundary (launch.guarded_task), before building
    hydra = HydraConfig.get()
    run_dir = Path(hydra.runtime.output_dir)
    config = plain_config(zen_cfg)
    generator = seed_everything(seed)
    device = resolve_device(trainer.device)
    # Absurd sizes fail inside torch's allocator; these name the fields that asked for them.
    with naming_sizes("loading the dataset", size_fields("dataset", dataset)):
        data = dataset.load()
    model_sizes = size_fields("model", model)
    with naming_sizes("building the model", model_sizes):
        net = model.build(data.input_shape, data.num_classes)
        trained, data = prepare(net, data, trainer, device)  # `trained` is net, or net compiled
        optimizer = optim.build(net.parameters())
    step_sizes = [f"batch_size={batch_size}", f"trainer.eval_batch_size={trainer.eval_batch_size}", *model_sizes]
    # Restores a checkpoint (refusing one that does not fit) before any file of the run is opened.
    session = open_session(
        run_dir, resume=resume, config=config, epochs=epochs, model=net, optimizer=optimizer,
        generator=generator, settings=trainer, metrics_file=run_dir / METRICS_FILE,
    )
    check_resume_fits(session, train_size=len(data.train), batch_size=batch_size, settings=trainer)

    console = Console()
    external = GuardedTracker.start(
        lambda: tracker.start(
            config=config,
            run_name=hydra.job.override_dirname or "defaults",
            run_dir=str(run_dir),
            resume_id=session.tracker_id,
        )
    )
    session.checkpointer.extra["tracker_id"] = external.run_id
    trackers = FanOut([JsonlTracker(run_dir / METRICS_FILE), external])
    outcome, error = RunOutcome.crashed, None
    try:
        with stop_on_signals(session.checkpointer), naming_sizes("training", step_sizes):
            fitted = fit(
                trained,
                optimizer,
                data,
                epochs=epochs,
                batch_size=batch_size,
                settings=trainer,
                tracker=trackers,
                generator=generator,
                console=console,
                checkpoints=session.checkpointer,
                resume_from=session.resume_from,
            )
        outcome = RunOutcome.success
    except KeyboardInterrupt as exc:  # Ctrl-C, or Interrupted (SIGINT/SIGTERM, checkpoint saved)
        outcome, error = RunOutcome.aborted, str(exc) or "interrupted"
        raise
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        trackers.finish(outcome, error)

    # Through an open file: torch.save to a path reports a full disk as "unexpected pos N vs M".
    with naming_full_disk(run_dir), (run_dir / WEIGHTS_FILE).open("wb") as weights:
        torch.save(net.state_dict(), weights)
    result = RunResult(
        run_dir, fitted.metrics, fitted.steps, fitted.epochs, fitted.seconds, str(device), external.failure
    )
    console.print(summary_line(result), markup=False, highlight=False, soft_wrap=True)
    return result


def check_nodes(**nodes: object) -> None:
    """``trainer=x`` or ``trainer=null`` replace a node of fields by a value, which zen passes on."""
    for name, node in nodes.items():
        if not dataclasses.is_dataclass(node):
            how = "choose an option with" if name != "trainer" else "set its fields, e.g."
            example = "trainer.max_batches=2" if name == "trainer" else f"{name}=<option>"
            raise ConfigError(f"{name}={node!r}: {name} is a group of fields, not a value; {how} {example}")


def check_resume_fits(session: Session, *, train_size: int, batch_size: int, settings: TrainerSettings) -> None:
    """Refuse a resumed position that does not fit this data, before the tracker or any file starts."""
    if session.resume_from is None or session.checkpointer.saved is None:
        return
    batches = count_batches(train_size, batch_size, settings)
    problem = resume_problem(session.resume_from, train_size=train_size, batches_per_epoch=batches)
    if problem is not None:
        raise malformed(session.checkpointer.saved, problem)


def plain_config(cfg: DictConfig | None) -> dict[str, object]:
    """The resolved config as plain containers, which is what SwanLab accepts."""
    if cfg is None:
        return {}
    container = redact(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))
    if not isinstance(container, dict):  # a task config is always a mapping
        raise TypeError(f"expected a mapping config, got {type(container).__name__}")
    return {str(key): value for key, value in container.items()}


def summary_line(result: RunResult) -> str:
    metrics = "  ".join(
        f"{name} {result.metrics[name]:.4f}"
        for name in ("val/acc", "val/loss", "train/loss", "test/acc")
        if name in result.metrics
    )
    tracking = f"  tracking failed ({result.tracking_error})" if result.tracking_error else ""
    return (
        f"done: {metrics}  ({result.epochs} epochs, {result.steps} steps, "
        f"{result.seconds:.1f} s on {result.device})  run dir: {result.run_dir}{tracking}"
    )
