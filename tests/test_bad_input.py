"""Bad input, typed as a user would: exit code 2, one line naming the field, nothing overwritten."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import QUICK, run_cli
from typedexp import ConfigError, TrackerError, launch


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working directory that already holds one finished run."""
    cwd = tmp_path_factory.mktemp("project")
    earlier = run_cli([*QUICK, "hydra.run.dir=outputs/earlier"], cwd)
    assert earlier.returncode == 0, earlier.stderr
    return cwd


def snapshot(root: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in root.rglob("*") if path.is_file()}


CASES = [
    # (arguments, words the one line must contain)
    (["optim.lr=abc"], ["optim.lr", "Float"]),
    (["epochs=-1"], ["epochs=-1", ">= 1"]),
    (["epochs=abc"], ["epochs", "Integer"]),
    (["model=huge"], ["model=huge", "large, small"]),
    (["trainer.epochz=3"], ["trainer.epochz", "unknown field", "max_batches"]),
    (["+epocs=3"], ["epocs", "did you mean epochs"]),
    (["modle=large"], ["modle", "did you mean model"]),
    (["model.activation=swish"], ["model.activation", "relu, gelu, tanh, silu"]),
    (["model.dropout=1.5"], ["model.dropout", "[0, 1)"]),
    (["trainer.device=mps"], ["trainer.device=mps", "auto, cpu"]),
    (["tracker=cloud"], ["SWANLAB_API_KEY", "tracker=local"]),
    (["tracker.project=my project"], ["tracker.project", "letters, digits"]),
    (["hydra.run.dir=outputs/earlier"], ["already holds a run"]),
]


@pytest.mark.parametrize(("args", "words"), CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_input_is_one_line_and_exit_2(project: Path, args: list[str], words: list[str]) -> None:
    before = snapshot(project / "outputs" / "earlier")
    tracker = [] if any(a.startswith("tracker") for a in args) else ["tracker=disabled"]
    done = run_cli([*tracker, "trainer.progress=off", *args], project)
    assert done.returncode == 2
    assert len(done.stderr_lines) == 1, done.stderr
    line = done.stderr_lines[0]
    assert line.startswith("typedexp: error: ")
    for word in words:
        assert word in line
    assert "Traceback" not in done.stderr + done.stdout
    assert snapshot(project / "outputs" / "earlier") == before


def test_full_error_env_restores_the_traceback(project: Path) -> None:
    done = run_cli(["epochs=-1", "tracker=disabled"], project, env={"HYDRA_FULL_ERROR": "1"})
    assert done.returncode != 0
    assert "Traceback" in done.stderr and "ConfigError" in done.stderr


def test_cloud_without_key_fails_at_once_without_prompting(project: Path) -> None:
    done = run_cli(["tracker=cloud", *QUICK[1:]], project)
    assert done.returncode == 2
    assert "swanlab" not in done.stdout.lower()  # failed before SwanLab started


def test_a_failing_sweep_job_does_not_stop_the_others(project: Path) -> None:
    done = run_cli(["-m", "epochs=-1,1", *QUICK[:1], *QUICK[2:]], project)
    assert done.returncode == 2
    assert done.stderr_lines == ["typedexp: error: epochs=-1: must be an integer >= 1"]
    assert len(list((project / "multirun").rglob("metrics.jsonl"))) == 1


@pytest.mark.parametrize(
    ("overrides", "error", "words"),
    [
        (["optim.lr=abc"], ConfigError, "optim.lr"),
        (["model=huge"], ConfigError, "large, small"),
        (["epochs=0"], ConfigError, "epochs=0"),
        (["tracker=cloud"], TrackerError, "SWANLAB_API_KEY"),
    ],
)
def test_launch_raises_the_same_typed_errors(
    workdir: Path, overrides: list[str], error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words.replace("[", r"\[")):
        launch([*QUICK[1:], *overrides])
