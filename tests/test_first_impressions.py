"""What a new user meets first: runs told apart in the dashboard, the experiment (not the
plumbing) in SwanLab, a quiet terminal, flags anywhere on the line, a Makefile that finds Python."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hydra._internal.utils import get_args_parser
from omegaconf import OmegaConf

from tests.helpers import QUICK, run_cli, run_main
from tests.test_tracking import only_run, read_offline_run
from typedexp.app.preflight import INFO_FLAGS, INFO_TOPICS, VALUE_FLAGS, flags_first
from typedexp.app.pipeline import seconds
from typedexp.app.task import run_name
from typedexp import SwanLabMode, SwanLabTracking, launch
from typedexp.tracking.swanlab_tracker import PALETTE, advise_dashboard, printed_to

ROOT = Path(__file__).resolve().parent.parent
OFFLINE = ["tracker=offline", "tracker.log_dir=sl", *QUICK[1:]]


def colors(log_dir: Path) -> list[str]:
    return [read_offline_run(run).color for run in sorted(log_dir.glob("run-*"))]


def test_two_runs_get_two_colours_and_a_resumed_run_keeps_its_own(tmp_path: Path) -> None:
    first = run_cli([*OFFLINE, "optim.lr=0.1", "trainer.checkpoint_every=1", "hydra.run.dir=outputs/a"], tmp_path)
    second = run_cli([*OFFLINE, "optim.lr=0.01"], tmp_path)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert colors(tmp_path / "sl") == [PALETTE[0], PALETTE[1]]
    resumed = run_cli(["resume=outputs/a", "epochs=2"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert colors(tmp_path / "sl")[-1] == PALETTE[0]


def test_the_jobs_of_a_sweep_get_distinct_colours(tmp_path: Path) -> None:
    done = run_cli(["-m", *OFFLINE, "seed=0,1,2"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(colors(tmp_path / "sl")) == sorted(PALETTE[:3])


def test_swanlab_gets_the_experiment_and_a_name_from_the_overrides_that_define_it(tmp_path: Path) -> None:
    done = run_cli([*OFFLINE, "model=large", "optim.lr=0.05"], tmp_path)
    assert done.returncode == 0, done.stderr
    swan_dir = only_run(tmp_path / "sl")
    config = OmegaConf.load(swan_dir / "files" / "config.yaml")
    assert set(config) == {"dataset", "model", "optim", "schedule", "task", "trainer", "epochs", "batch_size", "seed"}
    assert "_target_" not in OmegaConf.to_yaml(config) and "allowed_targets" not in OmegaConf.to_yaml(config)
    assert config.optim.value.lr == 0.05
    assert read_offline_run(swan_dir).name == "optim.lr=0.05,epochs=1,model=large,trainer.max_batches=2"


def test_a_run_name_leaves_out_what_does_not_change_the_numbers() -> None:
    assert run_name([]) == "defaults"
    assert run_name(["tracker=local", "+tracker.x=1", "trainer.progress=off", "hydra.run.dir=x", "resume=a",
                     "allowed_targets=[a.b]"]) == "defaults"
    assert run_name(["optim=adam", "trainer.precision=bf16", "model=large", "trackers=1"]) == (
        "trackers=1,model=large,optim=adam,trainer.precision=bf16"
    )


def test_the_terminal_shows_one_start_line_and_one_summary_line(tmp_path: Path) -> None:
    done = run_cli([*OFFLINE, "epochs=2"], tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2, done.stdout
    assert lines[0].startswith("typedexp: run dir ") and "; tracker offline, upload with: swanlab sync sl/run-" in lines[0]
    assert lines[1].startswith("done: val/acc ")
    assert re.search(r", \d+(\.\d+)? m?s on cpu\)  run dir: ", lines[1]), lines[1]  # ms or s: a loaded machine is slow
    assert done.stderr == ""
    log = next((tmp_path / "outputs").rglob("typedexp.log")).read_text()
    assert "swanlab sync" in log  # SwanLab's own hints went to the run's log file


def test_the_start_line_says_how_to_view_not_what_ran() -> None:
    def view(mode: SwanLabMode, log_dir: str = "swanlog") -> str:
        return SwanLabTracking(mode=mode, log_dir=log_dir).view_command(Path("sl/run-1"))

    assert view(SwanLabMode.local) == "tracker local, view with: typedexp dashboard"
    assert view(SwanLabMode.local, "my logs") == "tracker local, view with: typedexp dashboard --logdir 'my logs'"
    assert view(SwanLabMode.offline) == "tracker offline, upload with: swanlab sync sl/run-1"
    assert view(SwanLabMode.cloud) == "tracker cloud, view on swanlab.cn"


def test_the_run_log_advises_typedexp_dashboard_not_swanlab_watch(tmp_path: Path) -> None:
    log = tmp_path / "typedexp.log"
    with printed_to(log):
        print("swanlab: 🌟 Run `swanlab watch swanlog` to view SwanLab Experiment Dashboard")
        print("swanlab: Tracking run with swanlab version 0.10.3")
    assert log.read_text(encoding="utf-8").splitlines() == [
        "swanlab: 🌟 Run `typedexp dashboard --logdir swanlog` to view SwanLab Experiment Dashboard",
        "swanlab: Tracking run with swanlab version 0.10.3",
    ]
    assert advise_dashboard("Run `swanlab watch` to view") == "Run `typedexp dashboard` to view"


def test_a_resumed_run_says_where_it_carries_on(workdir: Path) -> None:
    run_dir = launch([*QUICK, "epochs=2"], output_dir="run").run_dir  # 2 batches an epoch: step 4 at its end
    done = run_main([f"resume={run_dir}", "epochs=3"], workdir)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1] == "typedexp: resuming from the end of epoch 2, step 4"


def test_seconds_below_one_are_printed_in_milliseconds() -> None:
    assert seconds(0.0004) == "0 ms"
    assert seconds(0.0416) == "42 ms"
    assert seconds(1.25) == "1.2 s"


@pytest.mark.parametrize(
    "args",
    [
        ["model=large", "-m", "seed=0,1"],
        ["seed=0", "--cfg", "job", "model=large"],
        ["seed=0", "--info", "defaults", "-m"],
    ],
)
def test_flags_may_follow_the_overrides(args: list[str]) -> None:
    moved = flags_first(args)
    parsed = get_args_parser().parse_args(moved)  # Hydra's own parser accepts the result
    assert parsed.overrides == [a for a in args if "=" in a]
    assert moved[: len(args) - len(parsed.overrides)] == [a for a in args if "=" not in a]


def test_the_flag_table_matches_hydra_s_own_parser() -> None:
    value_flags: set[str] = set()
    for action in get_args_parser()._actions:  # private, but the only listing of Hydra's flags
        if action.nargs is None and action.option_strings:
            value_flags.update(action.option_strings)
        if action.nargs == "?":
            assert set(action.option_strings) == INFO_FLAGS and set(action.choices or ()) == INFO_TOPICS
    assert value_flags == VALUE_FLAGS


def test_a_sweep_flag_after_the_overrides_runs_the_sweep(tmp_path: Path) -> None:
    done = run_cli([*QUICK, "-m", "seed=0,1"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "multirun").rglob("model.pt"))) == 2


def fake_python(bin_dir: Path, name: str, *, supported: bool) -> None:
    """A stand-in interpreter that answers the Makefile's version check."""
    script = bin_dir / name
    script.write_text(f"#!/bin/sh\nexit {0 if supported else 1}\n")
    script.chmod(0o755)


def make(args: list[str], path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", "-s", *args], cwd=ROOT, env={"PATH": str(path)}, capture_output=True, text=True)


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_uses_the_first_supported_python_and_says_when_there_is_none(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sh", "make", "test", "echo"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    fake_python(bin_dir, "python3", supported=False)  # a 3.9
    done = make(["python-check"], bin_dir)
    assert done.returncode != 0
    assert "typedexp: no Python >= 3.10 found on PATH" in done.stderr
    fake_python(bin_dir, "python3.12", supported=True)
    assert make(["python-check"], bin_dir).stdout.strip() == "python3.12"
    assert make(["python-check", "PYTHON=/opt/py/bin/python"], bin_dir).stdout.strip() == "/opt/py/bin/python"


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_torch_cpu_is_one_variable_away_and_not_the_default() -> None:
    def planned(*args: str) -> str:
        done = subprocess.run(["make", "-n", "-B", "install", *args], cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "--index-url https://download.pytorch.org/whl/cpu torch torchvision" in planned("TORCH=cpu")
    assert "download.pytorch.org" not in planned()
