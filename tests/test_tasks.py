"""The task group: regression learns on diabetes, metrics are scikit-learn's, a task and a dataset
that disagree are one line before any run dir, a user's task is one file, resume stays bit-exact,
and every place that ranks runs asks the task."""

from __future__ import annotations

import importlib
import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch

from tests.helpers import QUICK, RecordingTracker, run_cli, run_main
from typedexp import Classification, Regression, RegressionLoss, launch, launch_sweep
from typedexp.core.errors import Interrupted
from typedexp.data import Diabetes, Split
from typedexp.engine import TrainerSettings, evaluate, fit, seed_everything
from typedexp.engine.checkpoint import Checkpointer, read_checkpoint
from typedexp.engine.loop import _Window
from typedexp.engine.settings import BestMode, Progress
from typedexp.runs.table import larger_is_better
from typedexp.specs.models import MLP
from typedexp.specs.optim import Adam
from typedexp.sweeps.ranking import ranking
from typedexp.tracking.jsonl import read_metrics

# scikit-learn ships no type information: its metrics are read as plain attributes of the module.
SKLEARN = importlib.import_module("sklearn.metrics")
REGRESSION = ["task=regression", "dataset=diabetes", "tracker=disabled", "trainer.progress=off"]
DOC = Path(__file__).resolve().parent.parent / "docs" / "extending.md"


def test_regression_on_diabetes_learns_and_records_its_metrics(workdir: Path) -> None:
    result = launch([*REGRESSION, "model=large", "epochs=4"])
    val = [point for point in read_metrics(result.metrics_file) if "val/loss" in point]
    assert len(val) == 4 and val[-1]["val/loss"] < val[0]["val/loss"]
    assert result.metrics["val/r2"] > 0.3  # 0.47 at this seed; 0 is predicting the mean
    assert {"train/rmse", "train/mae", "train/r2", "val/rmse", "val/mae"} <= result.metrics.keys()
    assert "val/acc" not in result.metrics and "train/acc" not in result.metrics
    assert result.metrics["val/rmse"] == pytest.approx(math.sqrt(result.metrics["val/loss"]), rel=1e-5)  # MSE
    recorded = json.loads((result.run_dir / "result.json").read_text())
    assert recorded["objective"] == {"metric": "val/rmse", "mode": "min"}
    assert not list(result.run_dir.glob("media/*"))  # no "pred 3 / true 5" grid for a regression


def test_the_summary_line_names_the_task_s_metrics(workdir: Path) -> None:
    done = run_main([*REGRESSION, *QUICK[1:]], workdir)
    assert done.returncode == 0, done.stderr
    assert re.search(r"^done: val/rmse \S+  val/mae \S+  val/r2 \S+  val/loss \S+  train/loss ", done.stdout, re.M)


def test_regression_metrics_are_scikit_learn_s_over_uneven_batches() -> None:
    generator = torch.Generator().manual_seed(0)
    inputs, targets = torch.randn(50, 3, generator=generator), torch.randn(50, 2, generator=generator) * 3 + 7
    model = torch.nn.Linear(3, 2)
    split = Split(inputs, targets, torch.arange(50))
    for criterion in RegressionLoss:
        metrics = evaluate(model, split, batch_size=7, task=Regression(criterion=criterion))  # 7 batches of 7, 1 of 1
        predicted, actual = model(inputs).detach().double().numpy(), targets.double().numpy()  # as the task sums
        assert metrics["val/rmse"] == pytest.approx(math.sqrt(SKLEARN.mean_squared_error(actual, predicted)), rel=1e-9)
        assert metrics["val/mae"] == pytest.approx(SKLEARN.mean_absolute_error(actual, predicted), rel=1e-9)
        assert metrics["val/r2"] == pytest.approx(SKLEARN.r2_score(actual, predicted), rel=1e-9)
        expected = metrics["val/mae"] if criterion is RegressionLoss.l1 else metrics["val/rmse"] ** 2
        assert metrics["val/loss"] == pytest.approx(expected, rel=1e-5)


def test_label_smoothing_changes_the_classification_loss_and_nothing_else() -> None:
    generator = torch.Generator().manual_seed(0)
    split = Split(torch.randn(40, 5, generator=generator), torch.randint(0, 3, (40,), generator=generator), torch.arange(40))
    model = torch.nn.Linear(5, 3)
    plain = evaluate(model, split, batch_size=40)
    smoothed = evaluate(model, split, batch_size=40, task=Classification(label_smoothing=0.2))
    expected = torch.nn.functional.cross_entropy(model(split.images), split.labels, label_smoothing=0.2).detach()
    assert smoothed["val/loss"] == pytest.approx(float(expected), rel=1e-6) and smoothed["val/loss"] != plain["val/loss"]
    assert smoothed["val/acc"] == plain["val/acc"]


@pytest.mark.parametrize(
    ("overrides", "line"),
    [
        (["task=regression"], "task=regression needs float targets; dataset=digits has class labels: choose a "
                              "classification task for it (task=classification) or a dataset of float targets"),
        (["dataset=diabetes"], "task=classification needs class labels; dataset=diabetes has float targets: choose a "
                               "regression task for it (task=regression) or a dataset of class labels"),
    ],
)
def test_a_task_and_a_dataset_that_disagree_are_one_line_before_any_run_dir(
    tmp_path: Path, overrides: list[str], line: str
) -> None:
    done = run_main([*QUICK, *overrides], tmp_path)
    assert done.returncode == 2 and done.stderr.strip() == f"typedexp: error: {line}", done.stderr
    assert "Traceback" not in done.stdout + done.stderr and not list(tmp_path.iterdir())


def test_the_command_line_refuses_a_mismatch_with_exit_2(tmp_path: Path) -> None:
    done = run_cli(["task=regression", "dataset=fake", *QUICK], tmp_path)
    assert done.returncode == 2 and done.stderr_lines == [
        "typedexp: error: task=regression needs float targets; dataset=fake has class labels: choose a "
        "classification task for it (task=classification) or a dataset of float targets"
    ]
    assert not list(tmp_path.iterdir())


def test_a_user_task_is_one_file_and_trains_from_the_documented_command(tmp_path: Path) -> None:
    blocks = re.findall(r"```(\w+)[^\n]*\n(.*?)```", DOC.read_text(), re.DOTALL)
    (source,) = [body for lang, body in blocks if lang == "python" and body.startswith("# focal.py\n")]
    (command,) = [line for lang, body in blocks if lang == "bash" for line in body.splitlines() if "focal.py" in line]
    (tmp_path / "focal.py").write_text(source)
    env = {key: value for key, value in os.environ.items() if key not in ("SWANLAB_API_KEY", "HYDRA_FULL_ERROR")}
    done = subprocess.run([sys.executable, *command.split()[1:], "trainer.progress=off"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].startswith("done: val/acc ")
    (metrics_file,) = tmp_path.rglob("metrics.jsonl")
    first = read_metrics(metrics_file)[0]
    # The focal loss of a nearly uniform 10-class guess: (1 - 0.1)^1.5 x ln 10 ~ 1.97, not ln 10 ~ 2.30.
    assert 1.6 < first["train/loss"] < 2.1, first
    config = next(tmp_path.rglob(".hydra/config.yaml")).read_text()
    assert "FocalLoss" in config and "gamma: 1.5" in config


def test_a_regression_run_resumed_mid_epoch_is_bit_exact(workdir: Path) -> None:
    # diabetes: 354 training rows, batch 64 -> 6 batches an epoch, the last of 34 (an uneven window).
    args = [*REGRESSION, "epochs=3", "model.dropout=0.3", "optim=adam", "trainer.log_every=4", "trainer.checkpoint_every=3"]
    reference = launch(args, output_dir=workdir / "ref")
    launch([*args, "epochs=1"], output_dir=workdir / "run")
    resumed = launch(["resume=run", "epochs=3"])
    assert resumed.steps == reference.steps == 18
    ours, theirs = (torch.load(run / "model.pt", weights_only=True) for run in (resumed.run_dir, reference.run_dir))
    assert all(torch.equal(ours[name], theirs[name]) for name in theirs)
    assert (workdir / "run" / "metrics.jsonl").read_bytes() == (workdir / "ref" / "metrics.jsonl").read_bytes()


class StopsAt(Checkpointer):
    """Is asked to stop (as SIGINT asks) after step ``stop_at``, wherever the logging window is."""

    stop_at = -1

    def due(self, step: int) -> bool:
        if step == self.stop_at:
            self.stop_signal = 2
        return super().due(step)


def test_a_stop_inside_a_logging_window_resumes_to_the_same_regression_points(tmp_path: Path) -> None:
    data = Diabetes().load()

    def run(directory: Path, tracker: RecordingTracker, *, stop_at: int = -1, resume: bool = False) -> torch.nn.Module:
        generator = seed_everything(0)
        model = MLP(hidden=(16,)).build(data.input_shape, data.num_outputs)
        optimizer = Adam(lr=0.01).build(model.parameters())
        settings = TrainerSettings(progress=Progress.off, log_every=4)
        checkpoints = StopsAt(directory, model=model, optimizer=optimizer, generator=generator,
                              settings=settings, config={}, task=Regression())
        checkpoints.stop_at = stop_at
        start = checkpoints.restore(read_checkpoint(checkpoints.last)) if resume else None
        fit(model, optimizer, data, epochs=2, batch_size=32, settings=settings, tracker=tracker, generator=generator,
            checkpoints=checkpoints, resume_from=start, task=Regression())
        return model

    reference = RecordingTracker()
    expected = run(tmp_path / "reference", reference)
    with pytest.raises(Interrupted):  # stopped at step 7: steps 5, 6 and 7 of the window are folded in
        run(tmp_path / "run", RecordingTracker(), stop_at=7)
    saved = read_checkpoint(tmp_path / "run" / "last.pt").position
    assert saved.step == 7 and saved.window is not None and saved.window[1].shape == (3, 4)  # (steps, 1 + 3D)
    resumed = RecordingTracker()
    model = run(tmp_path / "run", resumed, resume=True)
    assert resumed.points == [point for point in reference.points if point[0] > 7]
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), expected.state_dict().values(), strict=True))


class RowsAsTheyCome(Regression):
    """Each step's one output value as its float32 sum: float additions that depend on their order."""

    def statistics(self, outputs: torch.Tensor, targets: torch.Tensor, sizes: Sequence[int]) -> torch.Tensor:
        return outputs.float().view(len(sizes), 1)  # (steps, 1), one example a step

    def metrics(self, totals: Sequence[float], count: int) -> dict[str, float]:
        return {"sum": totals[0]}


def test_float_sums_are_added_in_step_order_whatever_was_folded_before_a_checkpoint() -> None:
    # float32: (1e8 + -1e8) + 1 == 1, but 1e8 + (-1e8 + 1) == 0. A window folded at a checkpoint
    # (after the first step) and restored must still give the uninterrupted run's sum.
    steps = [torch.tensor([[1e8]]), torch.tensor([[-1e8]]), torch.tensor([[1.0]])]
    whole = _Window.zeros(torch.device("cpu"), RowsAsTheyCome())
    for value in steps:
        whole.add(torch.tensor(0.0), value, value)
    folded = _Window.zeros(torch.device("cpu"), RowsAsTheyCome())
    folded.add(torch.tensor(0.0), steps[0], steps[0])
    restored = _Window.restored(folded.totals(), torch.device("cpu"), RowsAsTheyCome())
    for value in steps[1:]:
        restored.add(torch.tensor(0.0), value, value)
    assert whole.drain("train")["train/sum"] == restored.drain("train")["train/sum"] == 1.0


def test_best_pt_follows_the_task_s_metric_and_direction(workdir: Path) -> None:
    result = launch([*REGRESSION, "epochs=3"])
    val = [point["val/loss"] for point in read_metrics(result.metrics_file) if "val/loss" in point]
    assert read_checkpoint(result.run_dir / "checkpoints" / "best.pt").best_value == min(val)


def test_a_regression_sweep_ranks_by_val_rmse_smallest_first(workdir: Path) -> None:
    launch_sweep([*REGRESSION, *QUICK[1:], "optim.lr=0.1,0.0001"])
    (summary,) = workdir.rglob("summary.md")
    assert "ranked by val/rmse (min)" in summary.read_text()
    rows = [line for line in summary.read_text().splitlines() if line.startswith("| 1 ") or line.startswith("| 2 ")]
    rmse = [float(row.split("|")[4]) for row in rows]
    assert len(rmse) == 2 and rmse[0] <= rmse[1]


def test_every_default_ranking_asks_the_task() -> None:
    # The Optuna sweeper's objective and the summary's ranking both come from `ranking`.
    assert ranking(None, None, task=Regression()) == ("val/rmse", BestMode.min)
    assert ranking(None, None, task=Classification()) == ("val/acc", BestMode.max)
    assert ranking("val/r2", None, task=Regression()) == ("val/r2", BestMode.max)
    assert ranking("val/loss", None) == ("val/loss", BestMode.min)
    assert ranking(None, None) == ("val/acc", BestMode.max)
    assert [larger_is_better(name) for name in ("val/r2", "val/rmse", "test/mae", "val/acc", "train/lr")] == [
        True, False, False, True, False
    ]
