"""Learning-rate schedules: each one's curve is torch's own scheduler stepped as it means (per
step or per epoch), it is logged as train/lr, and a run killed mid-epoch resumes bit-exactly."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import torch

from tests.helpers import run_cli, run_signalled
from typedexp import ConfigError, Cosine, OneCycle, StepDecay, WarmupCosine, launch
from typedexp.engine.checkpoint import read_checkpoint
from typedexp.schedules import OPTIONS, NoSchedule, ScheduleSpec
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
def test_a_killed_scheduled_run_resumes_bit_exactly(tmp_path: Path) -> None:
    reference = run_cli([*SIGNAL_ARGS, "hydra.run.dir=ref"], tmp_path)
    assert reference.returncode == 0, reference.stderr
    killed = run_signalled(36, "SIGKILL", [*SIGNAL_ARGS, "hydra.run.dir=run"], tmp_path)
    assert killed.returncode == -signal.SIGKILL
    checkpoint = read_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert checkpoint.scheduler is not None and checkpoint.scheduler["last_epoch"] == 30
    resumed = run_cli(["resume=run"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    ours = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    theirs = torch.load(tmp_path / "ref" / "model.pt", weights_only=True)
    assert all(torch.equal(ours[name], theirs[name]) for name in theirs)
    assert (tmp_path / "run" / "metrics.jsonl").read_bytes() == (tmp_path / "ref" / "metrics.jsonl").read_bytes()
    longer = run_cli(["resume=run", "epochs=3"], tmp_path)
    assert longer.returncode == 2
    assert "its learning-rate schedule spans the run's 2 epochs; resume with epochs=2" in longer.stderr
