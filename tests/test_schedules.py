"""Learning-rate schedules: each one's curve is torch's own scheduler stepped as it means (per
step or per epoch), it is logged as train/lr, and a run killed mid-epoch resumes bit-exactly."""

from __future__ import annotations

import dataclasses
import math
import re
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from tests.helpers import SignalServer, run_cli, run_main
from typedexp import ConfigError, Cosine, OneCycle, StepDecay, WarmupCosine, launch
from typedexp.engine import LRSchedule, TrainerSettings
from typedexp.engine.checkpoint import Checkpointer, LoopPosition, read_checkpoint
from typedexp.core.errors import CheckpointError, Interrupted
from typedexp.specs.schedules import OPTIONS, NoSchedule, ScheduleSpec
from typedexp.tracking.jsonl import read_metrics

# digits: 1,437 training images, batch 64 -> 23 steps per epoch; 3 epochs = 69 steps.
EPOCHS, STEPS_PER_EPOCH = 3, 23
RUN = ["tracker=disabled", "trainer.progress=off", f"epochs={EPOCHS}", "trainer.log_every=1"]


def expected_lrs(spec: ScheduleSpec, base_lr: float) -> dict[int, float]:
    """The lr after each step (1-based), from torch's scheduler on a stand-in optimizer."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base_lr, momentum=0.9)
    schedule = spec.build(optimizer, epochs=EPOCHS, steps_per_epoch=STEPS_PER_EPOCH)
    lrs: dict[int, float] = {}
    for step in range(1, EPOCHS * STEPS_PER_EPOCH + 1):
        optimizer.step()
        if schedule is not None and schedule.per_step:
            schedule.scheduler.step()
        lrs[step] = float(optimizer.param_groups[0]["lr"])
        if schedule is not None and not schedule.per_step and step % STEPS_PER_EPOCH == 0:
            schedule.scheduler.step()  # after the epoch (its logged point shows the epoch's lr)
    return lrs


@pytest.mark.parametrize("name", [name for name in OPTIONS if name != "none"])
def test_each_schedule_logs_torch_s_own_curve(workdir: Path, name: str) -> None:
    result = launch([*RUN, f"schedule={name}", "schedule.every_epochs=1"] if name == "step" else [*RUN, f"schedule={name}"])
    logged = {int(point["step"]): point["train/lr"] for point in read_metrics(result.metrics_file) if "train/lr" in point}
    assert sorted(logged) == list(range(1, EPOCHS * STEPS_PER_EPOCH + 1))
    spec = StepDecay(every_epochs=1) if name == "step" else OPTIONS[name]
    expected = expected_lrs(spec, base_lr=0.01)
    assert logged == pytest.approx(expected, rel=1e-9)
    if name in ("cosine", "warmup_cosine"):  # down to min_ratio (0 by default) after the last step
        assert logged[EPOCHS * STEPS_PER_EPOCH] == pytest.approx(0.0, abs=1e-12)
    assert len(set(round(value, 12) for value in logged.values())) > 2  # the lr really moved


def test_step_decay_changes_only_between_epochs_and_cosine_every_step() -> None:
    step = expected_lrs(StepDecay(every_epochs=1, gamma=0.5), base_lr=0.1)
    assert {step[s] for s in range(1, 24)} == {0.1} and {step[s] for s in range(24, 47)} == {0.05}
    cosine = expected_lrs(Cosine(min_ratio=0.1), base_lr=0.1)
    assert cosine[1] > cosine[2] > cosine[68] and cosine[69] == pytest.approx(0.01)
    warm = expected_lrs(WarmupCosine(warmup_fraction=0.1), base_lr=0.1)
    assert warm[1] < warm[3] < warm[6] and warm[69] < warm[30]
    one = expected_lrs(OneCycle(max_lr=0.5), base_lr=0.1)
    assert max(one.values()) == pytest.approx(0.5, rel=1e-3) and one[69] < one[1]


def test_without_a_schedule_the_lr_is_not_logged(workdir: Path) -> None:
    result = launch([*RUN, "epochs=1"])
    assert all("train/lr" not in point for point in read_metrics(result.metrics_file))
    assert NoSchedule().build(torch.optim.SGD([torch.zeros(1)], lr=0.1), epochs=1, steps_per_epoch=1) is None


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("schedule.gamma=0", "schedule.gamma=0.0: must be in (0, 1]"),
        ("schedule.every_epochs=0", "schedule.every_epochs=0: must be >= 1"),
    ],
)
def test_schedule_fields_are_range_checked(workdir: Path, override: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace("]", r"\]")):
        launch(["schedule=step", override, *RUN])


SIGNAL_ARGS = ["tracker=disabled", "trainer.progress=off", "epochs=2", "schedule=onecycle", "trainer.log_every=3",
               "trainer.checkpoint_every=10"]


@pytest.mark.slow
def test_a_killed_scheduled_run_resumes_bit_exactly(tmp_path: Path, signalled: SignalServer) -> None:
    # The uninterrupted reference and the refused resume need no process of their own (run_main); the
    # killed run and its resume are real processes (the killed one forked from an interpreter that
    # has imported torch: ``signalled``).
    reference = run_main([*SIGNAL_ARGS, "hydra.run.dir=ref"], tmp_path)
    assert reference.returncode == 0, reference.stderr
    killed = signalled(36, "SIGKILL", [*SIGNAL_ARGS, "hydra.run.dir=run"], tmp_path)
    assert killed.returncode == -signal.SIGKILL
    checkpoint = read_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert checkpoint.scheduler is not None and checkpoint.scheduler["last_epoch"] == 30
    resumed = run_cli(["resume=run"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    ours = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    theirs = torch.load(tmp_path / "ref" / "model.pt", weights_only=True)
    assert all(torch.equal(ours[name], theirs[name]) for name in theirs)
    assert (tmp_path / "run" / "metrics.jsonl").read_bytes() == (tmp_path / "ref" / "metrics.jsonl").read_bytes()
    longer = run_main(["resume=run", "epochs=3"], tmp_path)
    assert longer.returncode == 2
    assert "its learning-rate schedule spans the run's 2 epochs; resume with epochs=2" in longer.stderr


# Independent of the specs' own code: each curve from its formula, each range at its edges.
def lrs_of(spec: ScheduleSpec, *, epochs: int = 3, per_epoch: int = 10, base_lr: float = 0.1) -> list[float]:
    """The lr the optimizer holds before each of the run's steps (index = steps taken so far)."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base_lr)
    schedule = spec.build(optimizer, epochs=epochs, steps_per_epoch=per_epoch)
    assert schedule is not None
    seen = []
    for step in range(epochs * per_epoch):
        seen.append(float(optimizer.param_groups[0]["lr"]))
        optimizer.step()
        if schedule.per_step:
            schedule.scheduler.step()
        elif (step + 1) % per_epoch == 0:
            schedule.scheduler.step()
    return seen


def test_step_decay_is_gamma_to_the_completed_periods() -> None:
    seen = lrs_of(StepDecay(every_epochs=2, gamma=0.5), epochs=5, per_epoch=4)
    expected = [0.1 * 0.5 ** ((step // 4) // 2) for step in range(20)]
    assert seen == pytest.approx(expected)
    assert StepDecay().every_epochs == 10 and StepDecay().gamma == 0.1


def test_cosine_follows_the_half_cosine_down_to_its_floor() -> None:
    total = 30
    seen = lrs_of(Cosine(min_ratio=0.2))
    floor = 0.02
    expected = [floor + (0.1 - floor) * (1 + math.cos(math.pi * step / total)) / 2 for step in range(total)]
    assert seen == pytest.approx(expected)
    assert Cosine().min_ratio == 0.0


def test_one_cycle_starts_at_a_25th_peaks_at_max_lr_where_the_warmup_ends() -> None:
    seen = lrs_of(OneCycle(max_lr=0.4, warmup_fraction=0.25), epochs=4, per_epoch=10)
    assert seen[0] == pytest.approx(0.4 / 25)  # OneCycleLR starts at max_lr / div_factor (25)
    assert max(seen) == pytest.approx(0.4) and seen.index(max(seen)) == round(0.25 * 40) - 1
    assert seen[-1] < seen[0] / 100  # it ends far below where it started
    assert (OneCycle().max_lr, OneCycle().warmup_fraction) == (0.1, 0.3)


def test_warmup_cosine_rises_linearly_then_follows_the_cosine() -> None:
    total, warmup = 40, 8  # warmup_fraction 0.2 of 40 steps
    seen = lrs_of(WarmupCosine(warmup_fraction=0.2, min_ratio=0.1), epochs=4, per_epoch=10)
    rising = [0.1 * (step + 1) / (warmup + 1) for step in range(warmup)]
    falling = [
        0.1 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup))))
        for step in range(warmup, total)
    ]
    assert seen == pytest.approx(rising + falling)
    assert (WarmupCosine().warmup_fraction, WarmupCosine().min_ratio) == (0.05, 0.0)


@pytest.mark.parametrize(("epochs", "per_epoch", "warmup_fraction"), [(1, 1, 0.0), (1, 2, 0.5), (2, 5, 0.9), (3, 10, 0.2)])
@pytest.mark.parametrize("min_ratio", [0.0, 0.3])
def test_warmup_cosine_ends_at_min_ratio_of_the_lr_after_the_last_step(
    epochs: int, per_epoch: int, warmup_fraction: float, min_ratio: float
) -> None:
    # The lr after the last step is the last train/lr logged. The first three runs have one step
    # left after the warm-up, where the cosine goes from its top to its floor in that one step.
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    schedule = WarmupCosine(warmup_fraction, min_ratio).build(optimizer, epochs=epochs, steps_per_epoch=per_epoch)
    assert schedule is not None and schedule.per_step
    for _ in range(epochs * per_epoch):
        optimizer.step()
        schedule.scheduler.step()
    assert optimizer.param_groups[0]["lr"] == 0.1 * min_ratio


def test_warmup_cosine_without_warmup_starts_at_the_full_lr() -> None:
    seen = lrs_of(WarmupCosine(warmup_fraction=0.0), epochs=1, per_epoch=10)
    assert seen[0] == pytest.approx(0.1) and seen[-1] < seen[1] < seen[0]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: StepDecay(every_epochs=0), "schedule.every_epochs=0: must be >= 1"),
        (lambda: StepDecay(gamma=0.0), r"schedule.gamma=0.0: must be in \(0, 1\]"),
        (lambda: StepDecay(gamma=1.5), r"schedule.gamma=1.5: must be in \(0, 1\]"),
        (lambda: Cosine(min_ratio=-0.1), r"schedule.min_ratio=-0.1: must be in \[0, 1\)"),
        (lambda: Cosine(min_ratio=1.0), r"schedule.min_ratio=1.0: must be in \[0, 1\)"),
        (lambda: OneCycle(max_lr=0.0), "schedule.max_lr=0.0: must be > 0"),
        (lambda: OneCycle(max_lr=-1.0), "schedule.max_lr=-1.0: must be > 0"),
        (lambda: OneCycle(warmup_fraction=0.0), r"schedule.warmup_fraction=0.0: must be in \(0, 1\)"),
        (lambda: OneCycle(warmup_fraction=1.0), r"schedule.warmup_fraction=1.0: must be in \(0, 1\)"),
        (lambda: WarmupCosine(warmup_fraction=1.0), r"schedule.warmup_fraction=1.0: must be in \[0, 1\)"),
        (lambda: WarmupCosine(min_ratio=-0.5), r"schedule.min_ratio=-0.5: must be in \[0, 1\)"),
        (lambda: WarmupCosine(warmup_fraction=-0.1), r"schedule.warmup_fraction=-0.1: must be in \[0, 1\)"),
    ],
)
def test_each_schedule_range_is_refused_naming_the_field(make: Callable[[], object], message: str) -> None:
    with pytest.raises(ConfigError, match=f"^{message}$"):
        make()


def test_the_edges_of_each_schedule_range_are_accepted() -> None:
    accepted: list[object] = [StepDecay(every_epochs=1, gamma=1.0), StepDecay(gamma=1e-9)]
    accepted += [Cosine(min_ratio=0.0), Cosine(min_ratio=0.999), OneCycle(max_lr=1e-9, warmup_fraction=0.999)]
    accepted += [OneCycle(warmup_fraction=1e-9), WarmupCosine(warmup_fraction=0.0, min_ratio=0.0)]
    accepted += [WarmupCosine(warmup_fraction=0.999, min_ratio=0.999)]
    assert len(accepted) == 8  # each constructed without a ConfigError


@pytest.mark.parametrize(
    "make",
    [
        lambda: StepDecay(gamma=math.nan),
        lambda: Cosine(min_ratio=math.nan),
        lambda: OneCycle(max_lr=math.inf),
        lambda: WarmupCosine(min_ratio=math.nan),
    ],
)
def test_nan_and_inf_are_refused_as_not_finite_naming_the_schedule(make: Callable[[], object]) -> None:
    with pytest.raises(ConfigError, match=r"^schedule\.\w+=(nan|inf): must be a finite number$"):
        make()


def checkpointer_with(directory: Path, spec: ScheduleSpec | None) -> tuple[Checkpointer, LRSchedule | None]:
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    schedule = None if spec is None else spec.build(optimizer, epochs=2, steps_per_epoch=5)
    saver = Checkpointer(
        directory, model=model, optimizer=optimizer, generator=torch.Generator().manual_seed(0),
        settings=TrainerSettings(), config={"seed": 0}, scheduler=None if schedule is None else schedule.scheduler,
    )
    return saver, schedule


def test_a_checkpoint_carries_the_scheduler_and_restores_it(tmp_path: Path) -> None:
    saver, schedule = checkpointer_with(tmp_path / "a", WarmupCosine(warmup_fraction=0.2))
    assert schedule is not None
    for _ in range(3):
        saver.optimizer.step()
        schedule.scheduler.step()
    saver.save(LoopPosition(1, 3, 3))
    saved = read_checkpoint(saver.last)
    assert saved.scheduler is not None and saved.scheduler["last_epoch"] == 3
    resumed, fresh = checkpointer_with(tmp_path / "b", WarmupCosine(warmup_fraction=0.2))
    assert fresh is not None
    resumed.restore(saved)
    assert fresh.scheduler.last_epoch == 3
    assert resumed.optimizer.param_groups[0]["lr"] == pytest.approx(saver.optimizer.param_groups[0]["lr"])
    plain, _ = checkpointer_with(tmp_path / "c", None)
    plain.save(LoopPosition(1, 3, 3))
    assert read_checkpoint(plain.last).scheduler is None
    other = "a malformed checkpoint (it was saved with another schedule setting (with or without a schedule)); "
    with pytest.raises(CheckpointError, match=re.escape(f"resume={saver.last}: {other}")):
        checkpointer_with(tmp_path / "d", None)[0].restore(saved)
    with pytest.raises(CheckpointError, match=re.escape(f"resume={plain.last}: {other}")):
        checkpointer_with(tmp_path / "e", Cosine())[0].restore(read_checkpoint(plain.last))
    broken = dataclasses.replace(saved, scheduler={"last_epoch": 3})  # LambdaLR's lr_lambdas missing
    with pytest.raises(CheckpointError, match=re.escape(f"resume={saver.last}: a malformed checkpoint (its scheduler state does not fit ('lr_lambdas'))")):
        checkpointer_with(tmp_path / "f", WarmupCosine())[0].restore(broken)


def test_a_stop_names_the_epoch_it_stopped_in_or_the_one_it_finished(tmp_path: Path) -> None:
    saver, _ = checkpointer_with(tmp_path, None)
    saver.stop_signal = signal.SIGTERM
    with pytest.raises(Interrupted, match=r"^interrupted by SIGTERM at epoch 3, step 12; "):
        saver.save(LoopPosition(3, 2, 12))
    with pytest.raises(Interrupted, match=r"^interrupted by SIGTERM at the end of epoch 2, step 10; "):
        saver.save(LoopPosition(3, 0, 10))


@pytest.mark.parametrize(("warmup_fraction", "steps", "refused"), [(0.25, 4, True), (0.5, 4, False), (0.1, 4, False)])
def test_onecycle_refuses_a_rise_of_exactly_one_step_and_only_that(
    warmup_fraction: float, steps: int, refused: bool
) -> None:
    """OneCycleLR divides by each phase's length: a 1-step rise would fail mid-run, 2 or 0.4 steps do not."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    spec = OneCycle(warmup_fraction=warmup_fraction)
    if refused:
        with pytest.raises(ConfigError, match=r"warmup_fraction=0.25 of this run's 4 optimizer steps .* exactly 1 step"):
            spec.build(optimizer, epochs=1, steps_per_epoch=steps)
    else:
        assert spec.build(optimizer, epochs=1, steps_per_epoch=steps) is not None
