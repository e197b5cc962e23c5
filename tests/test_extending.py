"""docs/extending.md works as written: its files, written into a project, add model=resnet."""

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
    env = {**os.environ, "PYTHONPATH": str(cwd)}
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
    (snippet,) = [body for body in blocks("python") if "launch(" in body]
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
