"""Checkpoints and resume: bit-exact continuation, refusal of bad checkpoints, best.pt, clipping."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import BinaryIO

import pytest
import torch
from hydra.core.override_parser.overrides_parser import OverridesParser
from hypothesis import example, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from tests.helpers import QUICK, RecordingTracker, SignalServer, no_hang, run_cli, run_main
from typedexp import ConfigError, launch, launch_sweep
from typedexp.data import FakeData
from typedexp.engine import TrainerSettings, fit, seed_everything
from typedexp.engine.checkpoint import FORMAT, Checkpointer, LoopPosition, read_checkpoint, write_atomically
from typedexp.engine.settings import BestMode, Progress
from typedexp.core.errors import CheckpointError, TrainingDiverged
from typedexp.specs.models import MLP
from typedexp.specs.optim import SGD
from typedexp.runs.resume import quoted, quoted_value
from typedexp.tracking.jsonl import read_metrics

FAST = ["tracker=disabled", "trainer.progress=off", "dataset=fake", "dataset.num_samples=400"]


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    loaded = torch.load(run_dir / "model.pt", weights_only=True)
    assert isinstance(loaded, dict)
    return loaded


def assert_same_weights(a: Path, b: Path) -> None:
    first, second = weights(a), weights(b)
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name


def snapshot(root: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in root.rglob("*") if path.is_file()}


def test_resume_mid_epoch_in_process_is_bit_exact(workdir: Path) -> None:
    # fake data: 320 training images, batch 64 -> 5 batches per epoch; checkpoints every 3 steps.
    args = [*FAST, "epochs=3", "model.dropout=0.3", "optim=adam", "trainer.log_every=2"]
    reference = launch([*args, "trainer.checkpoint_every=3"], output_dir=workdir / "ref")
    short = launch([*args, "trainer.checkpoint_every=3", "epochs=1"], output_dir=workdir / "run")
    assert read_checkpoint(short.run_dir / "checkpoints" / "last.pt").position.step == 5
    resumed = launch(["resume=run", "epochs=3"])
    assert resumed.run_dir == (workdir / "run").resolve()
    assert resumed.steps == reference.steps == 15
    assert_same_weights(reference.run_dir, resumed.run_dir)
    assert (workdir / "run" / "metrics.jsonl").read_bytes() == (workdir / "ref" / "metrics.jsonl").read_bytes()


def test_a_run_stopped_during_its_last_validation_is_finished_by_resume(workdir: Path, signalled: SignalServer) -> None:
    # 2 epochs of 5 batches; SIGTERM arrives as epoch 2's validation starts. The validation stops
    # before its first batch (a long one is not run to its end first), the checkpoint holds epoch
    # 2 with all 5 batches trained, and resume runs that validation and finishes the run.
    args = [*FAST, "epochs=2", "model.dropout=0.3", "trainer.log_every=2"]
    reference = launch(args, output_dir=workdir / "ref")
    stopped = signalled("val@2", "SIGTERM", [*args, "hydra.run.dir=run"], workdir)
    assert stopped.returncode == 143
    assert stopped.stderr_lines == [
        f"typedexp: interrupted by SIGTERM at epoch 2, step 10; saved "
        f"{workdir / 'run' / 'checkpoints' / 'last.pt'}; continue with: typedexp resume={workdir / 'run'}"
    ]
    position = read_checkpoint(workdir / "run" / "checkpoints" / "last.pt").position
    assert (position.epoch, position.batch, position.step) == (2, 5, 10)
    assert not (workdir / "run" / "model.pt").exists()
    resumed = run_cli(["resume=" + str(workdir / "run")], workdir)  # exactly what the line says
    assert resumed.returncode == 0, resumed.stderr
    assert_same_weights(reference.run_dir, workdir / "run")
    assert (workdir / "run" / "metrics.jsonl").read_bytes() == reference.metrics_file.read_bytes()


def test_only_a_run_that_wrote_model_pt_is_finished(workdir: Path) -> None:
    args = [*FAST, "epochs=2"]
    reference = launch(args, output_dir=workdir / "ref")
    launch(args, output_dir=workdir / "run")
    with pytest.raises(ConfigError, match="run/checkpoints/last.pt: that run already finished 2 epochs; set epochs= higher"):
        launch(["resume=run"])
    with pytest.raises(ConfigError, match="that run already trained 2 epochs, more than epochs=1; set epochs=2 or higher"):
        launch(["resume=run", "epochs=1"])
    (workdir / "run" / "model.pt").unlink()  # killed after its last checkpoint, before model.pt
    metrics = (workdir / "run" / "metrics.jsonl").read_bytes()
    resumed = launch(["resume=run"])
    assert resumed.steps == 10 and resumed.metrics["val/acc"] == reference.metrics["val/acc"]
    assert_same_weights(reference.run_dir, resumed.run_dir)
    assert resumed.metrics_file.read_bytes() == metrics  # no step twice (no test split here)


def test_checkpoint_holds_every_state_and_the_config(workdir: Path) -> None:
    result = launch([*FAST, "epochs=2", "seed=5"], output_dir=workdir / "run")
    checkpoint = read_checkpoint(result.run_dir / "checkpoints" / "last.pt")
    assert checkpoint.position.epoch == 3 and checkpoint.position.batch == 0
    assert checkpoint.position.step == result.steps
    assert set(checkpoint.rng) == {"python", "numpy", "torch", "cuda", "data"}
    assert checkpoint.config["seed"] == 5 and checkpoint.config["epochs"] == 2
    assert "state" in checkpoint.optimizer and "param_groups" in checkpoint.optimizer
    raw = torch.load(checkpoint.path, weights_only=True)
    assert raw["scheduler"] is None and raw["format"] == FORMAT


def test_best_checkpoint_is_the_best_validation_epoch(workdir: Path) -> None:
    result = launch([*FAST, "epochs=4", "trainer.best_metric=val/loss", "trainer.best_mode=min"])
    losses = [point["val/loss"] for point in read_metrics(result.metrics_file) if "val/loss" in point]
    best = read_checkpoint(result.run_dir / "checkpoints" / "best.pt")
    assert best.position.latest["val/loss"] == min(losses)
    assert best.best_value == min(losses)


def test_an_unknown_best_metric_names_the_metrics(workdir: Path) -> None:
    with pytest.raises(ConfigError, match=r"trainer.best_metric=val/f1: no such metric; choose one of: .*val/acc"):
        launch([*FAST, "epochs=1", "trainer.best_metric=val/f1"])


def test_resume_auto_continues_the_newest_run_with_the_same_overrides(workdir: Path) -> None:
    older = launch([*FAST, "epochs=1"])
    newer = launch([*FAST, "epochs=1"])
    launch([*FAST, "epochs=1", "seed=9"])  # other overrides: not a candidate, though newest
    resumed = launch([*FAST, "epochs=1", "resume=auto", "epochs=2"])
    assert resumed.run_dir == newer.run_dir.resolve() != older.run_dir.resolve()
    assert resumed.steps == 10


def test_resume_auto_without_a_matching_run_is_refused(workdir: Path) -> None:
    with pytest.raises(ConfigError, match="resume=auto: no run under outputs/ with the same overrides"):
        launch([*FAST, "resume=auto"])


def test_resuming_a_sweep_job_beside_a_hostile_sibling_updates_the_summary(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The summary refresh reads every job of the sweep: a sibling built to hang or crash a reader
    (FIFOs, JSON nested 100,000 deep, a timestamp in month 13) is shown with what could be read."""
    launch_sweep(QUICK, sweep_dir="sweep")  # one finished job, sweep/0, and summary.csv
    sibling = workdir / "sweep" / "1"
    (sibling / ".hydra").mkdir(parents=True)
    os.mkfifo(sibling / ".lock")
    os.mkfifo(sibling / "metrics.jsonl")
    (sibling / "result.json").write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    (sibling / ".hydra" / "hydra.yaml").write_text("hydra:\n  job:\n    num: 2024-13-45 00:00:00\n", encoding="utf-8")
    capsys.readouterr()
    with no_hang():
        launch(["resume=sweep/0", "epochs=2"])  # one more epoch of 2 steps
    with (workdir / "sweep" / "summary.csv").open(encoding="utf-8", newline="") as file:
        rows = {row["run_dir"]: (row["state"], row["steps"]) for row in csv.DictReader(file)}
    assert rows == {"0": ("done", "4"), "1": ("interrupted", "0")}
    warnings = capsys.readouterr().err.splitlines()
    assert f"typedexp: warning: {sibling}/result.json: not JSON (nested too deeply); not read" in warnings
    assert not any("not updated" in line for line in warnings)


@pytest.mark.parametrize(
    ("saved", "words"),
    [
        ('{"model": "large"}', "is not a list of overrides, as Hydra writes it"),
        ('["model=large", "optim.lr=(("]', "holds an override Hydra cannot parse"),
        ("- 2024-13-45 00:00:00\n", "cannot read the run's overrides: "),
        (b'["model=\xff"]', "cannot read the run's overrides: "),
    ],
    ids=["mapping", "unparsable", "bad-timestamp", "not-utf8"],
)
def test_resume_of_a_run_with_garbled_overrides_is_one_line(workdir: Path, saved: str | bytes, words: str) -> None:
    (workdir / "run" / "checkpoints").mkdir(parents=True)
    (workdir / "run" / "checkpoints" / "last.pt").write_bytes(b"not read: the overrides are first")
    overrides = workdir / "run" / ".hydra" / "overrides.yaml"
    overrides.parent.mkdir()
    overrides.write_bytes(saved) if isinstance(saved, bytes) else overrides.write_text(saved, encoding="utf-8")
    done = run_main(["resume=run"], workdir)
    assert done.returncode == 2 and done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith("typedexp: error: resume=run: ") and words in line, line


def test_truncated_checkpoint_is_refused_and_the_run_is_untouched(workdir: Path) -> None:
    launch([*FAST, "epochs=1"], output_dir=workdir / "run")
    last = workdir / "run" / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    before = snapshot(workdir / "run")
    with pytest.raises(CheckpointError, match="not a readable checkpoint .truncated or corrupt"):
        launch(["resume=run", "epochs=2"])
    after = snapshot(workdir / "run")
    assert {path: after[path] for path in before} == before  # only .hydra/resume-*/ was added
    assert all(".hydra/resume-" in str(path) for path in after.keys() - before.keys())


class _RunsCode:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (Path.touch, ("pwned",))  # what a malicious pickle would do on load


# torch >= 2.6 loads with weights_only=True by default, but pyproject allows torch 2.4, and this
# variable turns the default off on any version: only an explicit weights_only=True holds.
@pytest.mark.parametrize("force_no_weights_only", [None, "1"])
def test_checkpoint_loading_never_unpickles_code(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, force_no_weights_only: str | None
) -> None:
    if force_no_weights_only is not None:
        monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", force_no_weights_only)
    path = workdir / "evil.pt"
    torch.save({"format": FORMAT, "model": _RunsCode()}, path)
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        read_checkpoint(path)
    assert not (workdir / "pwned").exists()
    with pytest.raises(CheckpointError, match="not a typedexp checkpoint"):
        torch.save({"state_dict": {}}, workdir / "other.pt")
        read_checkpoint(workdir / "other.pt")


def _engine(hidden: tuple[int, ...], directory: Path) -> Checkpointer:
    data = FakeData(num_samples=100).load()
    generator = seed_everything(0)
    model = MLP(hidden=hidden).build(data.input_shape, data.num_classes)
    optimizer = SGD().build(model.parameters())
    settings = TrainerSettings(progress=Progress.off)
    return Checkpointer(directory, model=model, optimizer=optimizer, generator=generator,
                        settings=settings, config={"model": {"hidden": list(hidden)}})


def test_checkpoint_of_another_model_is_refused_naming_the_layer(tmp_path: Path) -> None:
    saver = _engine((16,), tmp_path)
    saver.save(LoopPosition(epoch=2, batch=0, step=3, latest={"val/acc": 0.5}), epoch_end=True)
    other = _engine((32,), tmp_path / "other")
    with pytest.raises(CheckpointError, match=r"0.weight|1.weight"):
        other.restore(read_checkpoint(saver.last))


def test_a_failed_write_leaves_the_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "last.pt"
    write_atomically({"format": FORMAT, "n": 1}, path)
    before = path.read_bytes()

    def dies_half_way(obj: object, file: BinaryIO) -> None:
        file.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", dies_half_way)
    with pytest.raises(OSError, match="disk full"):
        write_atomically({"format": FORMAT, "n": 2}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left behind


def test_nan_stops_training_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    data = FakeData(num_samples=200).load()
    generator = seed_everything(0)
    model = MLP(hidden=(16,)).build(data.input_shape, data.num_classes)
    optimizer = SGD().build(model.parameters())
    settings = TrainerSettings(progress=Progress.off, log_every=2)
    checkpoints = Checkpointer(tmp_path, model=model, optimizer=optimizer, generator=generator,
                               settings=settings, config={})

    def train(epochs: int, resume_from: LoopPosition | None = None) -> None:
        fit(model, optimizer, data, epochs=epochs, batch_size=32, settings=settings,
            tracker=RecordingTracker(), generator=generator, checkpoints=checkpoints,
            resume_from=resume_from)

    train(epochs=1)  # 160 training images: 5 steps, then last.pt at the epoch's end
    good = checkpoints.last.read_bytes()
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match=rf"train/loss became nan at epoch 2, step 6 .*{checkpoints.last}"):
        train(epochs=2, resume_from=read_checkpoint(checkpoints.last).position)
    assert checkpoints.last.read_bytes() == good


def test_clip_grad_norm_bounds_each_update() -> None:
    data = FakeData(num_samples=64, noise=5.0).load()

    def first_update(clip: float | None) -> float:
        seed_everything(0)
        model = MLP(hidden=(32,)).build(data.input_shape, data.num_classes)
        before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
        optimizer = SGD(lr=1.0, momentum=0.0).build(model.parameters())
        settings = TrainerSettings(progress=Progress.off, max_batches=1, clip_grad_norm=clip)
        fit(model, optimizer, data, epochs=1, batch_size=64, settings=settings,
            tracker=RecordingTracker(), generator=torch.Generator().manual_seed(0))
        after = torch.cat([p.detach().flatten() for p in model.parameters()])
        return float((after - before).norm())

    assert first_update(None) > 0.01
    assert first_update(0.01) == pytest.approx(0.01, rel=1e-4)  # lr 1 * gradient norm clipped to 0.01


def test_best_mode_is_typed() -> None:
    assert TrainerSettings(best_mode=BestMode.min).best_mode is BestMode.min
    with pytest.raises(ConfigError, match="checkpoint_every=0"):
        TrainerSettings(checkpoint_every=0)


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1))
@example("~")  # Hydra's grammar refuses an unquoted ~ (found by this test)
@example("a${b}\\")
def test_a_quoted_value_reads_back_as_exactly_its_text(text: str) -> None:
    """Paths and values pass through Hydra's override grammar and OmegaConf unchanged: a '${' in a
    run dir's name must not become an interpolation, nor a backslash an escape."""
    for expected in (text, "/" + text):
        written = quoted_value(expected) if expected == text else quoted(expected)
        parsed = OverridesParser.create().parse_override(f"key={written}").value()
        assert OmegaConf.create({"key": parsed}).key == expected
