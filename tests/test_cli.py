"""The installed `typedexp` console script, run as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import QUICK

SCRIPT = Path(sys.executable).parent / "typedexp"


def run_script(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SCRIPT, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_console_script_trains_and_prints_one_summary_line(workdir: Path) -> None:
    done = run_script(["model=large", "optim=adam", "optim.lr=3e-4", *QUICK], workdir)
    assert done.returncode == 0, done.stderr
    summary = [line for line in done.stdout.splitlines() if line.startswith("done: ")]
    assert len(summary) == 1
    assert "val/acc" in summary[0] and f"run dir: {workdir}/outputs/" in summary[0]
    assert "\x1b[" not in done.stdout  # no progress bar or colour codes when not on a terminal
    assert len(list((workdir / "outputs").rglob("model.pt"))) == 1


def test_cfg_job_prints_the_resolved_config(workdir: Path) -> None:
    done = run_script(["--cfg", "job", "model=large", "optim=adam", "optim.lr=3e-4"], workdir)
    assert done.returncode == 0, done.stderr
    assert "- 256\n  - 128" in done.stdout and "lr: 0.0003" in done.stdout
    assert not (workdir / "outputs").exists()  # printing the config runs nothing


def test_multirun_sweeps_each_combination_into_its_own_dir(workdir: Path) -> None:
    done = run_script(["-m", "model=small,large", "optim.lr=0.1,0.01", *QUICK], workdir)
    assert done.returncode == 0, done.stderr
    runs = sorted((workdir / "multirun").rglob("metrics.jsonl"))
    assert len(runs) == 4
    assert {path.parent.name for path in runs} == {"0", "1", "2", "3"}


@pytest.mark.parametrize("args", [["--help"], ["runs", "."]])
def test_a_reader_that_closed_the_pipe_is_no_error(workdir: Path, args: list[str]) -> None:
    """`typedexp --help | head -3`: the pipe's reader is gone before the output is written."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write now fails with EPIPE, as after `head` has read its lines
    with os.fdopen(write_end, "w") as closed_pipe:
        done = subprocess.run([SCRIPT, *args], cwd=workdir, stdout=closed_pipe, stderr=subprocess.PIPE,
                              text=True, timeout=300)
    assert done.stderr == ""
    assert done.returncode == 1  # not 2, a user's mistake; Python's docs and rich exit 1 here
