"""docs/extending.md works as written: its files, written into a project, add model=resnet and
make the seed lesson's learning rate required."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "extending.md"
BLOCK = re.compile(r"```(\w+)[^\n]*\n(.*?)```", re.DOTALL)  # the fence may say why test_readme skips it


def blocks(language: str) -> list[str]:
    return [body for lang, body in BLOCK.findall(DOC.read_text()) if lang == language]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The doc's files (each block that starts with `# <path>`) written under tmp_path."""
    for body in blocks("python"):
        first, _, rest = body.partition("\n")
        if first.startswith("# ") and first.endswith(".py"):
            path = tmp_path / first[2:]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body)
    assert (tmp_path / "mylib" / "models.py").is_file() and (tmp_path / "mylib" / "__main__.py").is_file()
    return tmp_path


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # The project first, then the caller's path (a checkout's src/ when typedexp is not installed from it).
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(cwd), os.environ.get("PYTHONPATH")]))}
    env.pop("SWANLAB_API_KEY", None)
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_documented_command_trains_the_registered_model(project: Path) -> None:
    (command,) = [line for body in blocks("bash") for line in body.splitlines() if line.startswith("python -m mylib")]
    done = run([sys.executable, *command.split()[1:]], project)
    assert done.returncode == 0, done.stderr
    assert "done: val/acc" in done.stdout
    (overrides,) = list(project.rglob(".hydra/overrides.yaml"))
    assert "model=resnet" in overrides.read_text()
    config = next(project.rglob(".hydra/config.yaml")).read_text()
    assert "_target_: mylib.models.ResNet" in config and "width: 8" in config


def test_the_documented_python_launches_it_and_records_it_as_overrides(project: Path) -> None:
    (snippet,) = [body for body in blocks("python") if "launch(" in body and "ResNet" in body]
    script = snippet + "print(result.run_dir)\n"
    done = run([sys.executable, "-c", script], project)
    assert done.returncode == 0, done.stderr
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    saved = (run_dir / ".hydra" / "overrides.yaml").read_text()
    assert "model=resnet" in saved and "model.width=8" in saved
    resumed = run([sys.executable, "-m", "mylib", f"resume={run_dir}", "epochs=2"], project)
    assert resumed.returncode == 0, resumed.stderr


def test_an_unregistered_spec_is_one_clear_error(project: Path) -> None:
    script = (
        "from typedexp import Experiment, launch\nfrom mylib.models import ResNet\n"
        "launch(experiment=Experiment(model=ResNet()))\n"
    )
    done = run([sys.executable, "-c", script], project)
    assert done.returncode != 0
    assert "ResNet is not one of the model options; register it first" in done.stderr


def transcript_commands(body: str) -> list[tuple[str, list[str]]]:
    """``$ command`` lines of a transcript block, each with the lines printed after it."""
    pairs: list[tuple[str, list[str]]] = []
    for line in body.splitlines():
        if line.startswith("$ "):
            pairs.append((line[2:], []))
        elif pairs:
            pairs[-1][1].append(line)
    return pairs


def test_the_documented_required_field_is_refused_until_set(project: Path) -> None:
    (body,) = [body for body in re.findall(r"```[^\n]*\n(.*?)```", DOC.read_text(), re.DOTALL) if body.startswith("$ python -m seedapp")]
    for command, printed in transcript_commands(body):
        done = run([sys.executable, *command.split()[1:]], project)
        assert (done.returncode, done.stdout + done.stderr) == (2, "\n".join(printed) + "\n"), command
    assert not (project / "outputs").exists()  # refused before anything was made
    done = run([sys.executable, "-m", "seedapp", "tracker=disabled", "optim.lr=0.05", "epochs=1", "trainer.max_batches=2"], project)
    assert done.returncode == 0, done.stderr
    (config,) = list(project.rglob(".hydra/config.yaml"))
    assert "lr: 0.05" in config.read_text()


def test_launch_refuses_the_required_field_until_set_and_an_experiment_sets_it(project: Path) -> None:
    script = (
        "from typedexp import SGD, ConfigError, Experiment, launch, register\n"
        "register('optim', 'sgd', SGD(), required=['lr'])\n"
        "try:\n    launch(['tracker=disabled'])\nexcept ConfigError as exc:\n    print(exc)\n"
        "result = launch(['tracker=disabled', 'epochs=1', 'trainer.max_batches=2'], experiment=Experiment(optim=SGD(lr=0.01)))\n"
        "print((result.run_dir / '.hydra' / 'overrides.yaml').read_text())\n"
    )
    done = run([sys.executable, "-c", script], project)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "optim.lr is required: set it with optim.lr=VALUE"
    assert "- optim.lr=0.01" in lines  # SGD's default value, yet written: the typed value gives it


def test_register_names_a_required_field_it_does_not_have() -> None:
    from typedexp import SGD, ConfigError, register

    with pytest.raises(ConfigError, match="register: optim=sgd has no field 'learning_rate' to require; its fields: lr, "):
        register("optim", "sgd", SGD(), required=["learning_rate"])
    with pytest.raises(ConfigError, match="required= takes a list of field names"):
        register("optim", "sgd", SGD(), required="lr")  # type: ignore[arg-type]
