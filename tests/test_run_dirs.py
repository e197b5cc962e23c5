"""Run directories: a used one is never overwritten, one writer at a time, no writes through symlinks.

The reuse check runs on the composed config (resolved, absolute, symlink-free paths), so every
spelling of a used directory is refused before Hydra writes ``.hydra/`` into it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import QUICK, held_run, no_hang, run_cli, run_main
from typedexp import ConfigError, launch, launch_sweep
from typedexp.engine.checkpoint import FORMAT, write_atomically
from typedexp.runs.layout import LOCK_FILE, hold, lock_holder
from typedexp.runs.record import JobState, read_run
from typedexp.tracking.jsonl import JsonlTracker


def state(root: Path) -> dict[Path, tuple[bytes, int]]:
    """Every file's bytes and mtime: a rewrite with the same bytes still shows."""
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def used(workdir: Path) -> Path:
    """``runs/a``: a finished run in the working directory."""
    launch(QUICK, output_dir="runs/a")
    return workdir / "runs" / "a"


@pytest.mark.parametrize(
    "overrides",
    [
        ["hydra.run.dir=runs/a"],
        ["hydra.run.dir='runs/a'"],
        ["++hydra.run.dir=runs/a"],
        ["hydra.run.dir=runs/nowhere/../a"],
        ["hydra.run.dir=./runs//a/"],
        ["hydra.run.dir=${hydra:runtime.cwd}/runs/a"],
        ["hydra.job.name=a", "hydra.run.dir=runs/${hydra.job.name}"],
    ],
    ids=lambda overrides: " ".join(overrides),
)
def test_every_spelling_of_a_used_run_dir_is_refused_before_hydra_writes(used: Path, overrides: list[str]) -> None:
    before = state(used)
    with pytest.raises(ConfigError, match=f"hydra.run.dir={used} already holds a run \\(metrics.jsonl\\)"):
        launch([*QUICK, *overrides])
    assert state(used) == before  # .hydra/ included: not even rewritten


def test_the_cli_refuses_a_quoted_used_dir_in_one_line(used: Path, workdir: Path) -> None:
    before = state(used)
    done = run_cli([*QUICK, "hydra.run.dir='runs/a'"], workdir)
    assert done.returncode == 2
    assert done.stderr_lines == [
        f"typedexp: error: hydra.run.dir={used} already holds a run (metrics.jsonl); "
        "choose a new directory so nothing is overwritten, or continue it with resume="
    ]
    assert state(used) == before


def test_a_sweep_into_used_job_dirs_is_refused(workdir: Path) -> None:
    first = run_cli(["-m", *QUICK, "hydra.sweep.dir=sweep", "seed=1,2"], workdir)
    assert first.returncode == 0, first.stderr
    before = state(workdir / "sweep")
    for args in (["-m", "++hydra.sweep.dir='./sweep'"], ["hydra.mode=MULTIRUN", "hydra.sweep.dir=sweep"]):
        again = run_cli([*args, *QUICK, "seed=1,2"], workdir)
        assert again.returncode == 2
        assert again.stderr_lines == [
            f"typedexp: error: hydra.sweep.dir={workdir / 'sweep' / '0'} already holds a run (metrics.jsonl); "
            "choose a new directory so nothing is overwritten, or continue it with resume="
        ]
    assert state(workdir / "sweep") == before


def test_sweep_jobs_that_share_a_dir_do_not_overwrite_each_other(workdir: Path) -> None:
    done = run_cli(["-m", *QUICK, "hydra.sweep.dir=sweep", "hydra.sweep.subdir=same", "seed=1,2"], workdir)
    assert done.returncode == 2
    assert (
        f"typedexp: error: job 1 (epochs=1,seed=2,trainer.max_batches=2): hydra.sweep.dir={workdir / 'sweep' / 'same'} "
        "already holds a run (metrics.jsonl); choose a new directory so nothing is overwritten, or continue it with resume="
    ) in done.stderr_lines
    assert read_run(workdir / "sweep" / "same").state is JobState.done  # job 1 did not overwrite job 0's record
    assert (workdir / "sweep" / "same" / "metrics.jsonl").read_text().count('"step": 2') == 2  # train + val


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("hydra.output_subdir=../hydra-files", "hydra.output_subdir=../hydra-files: must be a relative path"),
        ("hydra.output_subdir=/tmp/hydra-files", "hydra.output_subdir=/tmp/hydra-files: must be a relative path"),
        ("hydra.job.name=../../escaped", "hydra.job_logging.handlers.file.filename="),
        # Refused by the config guard, which sees the text before it resolves.
        ("hydra.job_logging.handlers.file.filename=elsewhere.log", "log files are written inside the run directory"),
    ],
)
def test_hydra_files_stay_inside_the_run_dir(workdir: Path, override: str, words: str) -> None:
    inside = "a run writes only inside|must be a relative path|log files are written inside the run directory"
    with pytest.raises(ConfigError, match=inside) as caught:
        launch([*QUICK, override], output_dir="runs/b")
    assert words in str(caught.value)
    assert sorted(p.name for p in workdir.iterdir()) == []  # nothing written anywhere


def test_a_relative_sweep_subdir_must_stay_inside(workdir: Path) -> None:
    done = run_cli(["-m", *QUICK, "hydra.sweep.dir=sweep", "hydra.sweep.subdir=../up", "seed=1,2"], workdir)
    assert done.returncode == 2
    assert done.stderr_lines == [
        "typedexp: error: hydra.sweep.subdir=../up: must be a relative path inside the run directory "
        "(no leading / and no ..)"
    ]
    assert list(workdir.iterdir()) == []


# Symlinks in a run directory received from someone else.
RUN_FILE_LINKS = ["model.pt", "metrics.jsonl", "checkpoints/best.pt", "typedexp.log", ".hydra", ".lock"]


@pytest.mark.parametrize("name", RUN_FILE_LINKS)
def test_resume_refuses_a_run_dir_holding_a_symlink(workdir: Path, name: str) -> None:
    launch([*QUICK, "epochs=1"], output_dir="shared")
    victim = workdir / "victim"
    victim.mkdir() if name == ".hydra" else victim.write_text("precious\n")
    link = workdir / "shared" / name
    if link.is_dir():
        os.rename(link, workdir / "moved")
    else:
        link.unlink(missing_ok=True)
    link.symlink_to(victim)
    with pytest.raises(ConfigError, match=f"shared: {name} is a symlink; a run writes only inside its own directory"):
        launch(["resume=shared", "epochs=2"])
    assert (list(victim.iterdir()) == []) if victim.is_dir() else victim.read_text() == "precious\n"


# A FIFO where a run file goes: opened plainly (to read the lock's holder, to append metrics, for
# Hydra to write its files), it waits for a writer or reader forever.
SPECIAL_FILES = [".lock", "metrics.jsonl", ".hydra/config.yaml", "typedexp.log"]


def test_a_fifo_where_a_run_file_goes_is_refused_not_waited_on(workdir: Path) -> None:
    launch([*QUICK, "epochs=1"], output_dir="shared")  # finished, with checkpoints/last.pt: resumable
    (workdir / "fresh" / ".hydra").mkdir(parents=True)
    for name in SPECIAL_FILES:
        for run_dir, args in ((workdir / "shared", ["resume=shared", "epochs=2"]), (workdir / "fresh", [*QUICK, "hydra.run.dir=fresh"])):
            path = run_dir / name
            if path.exists():
                path.rename(workdir / "parked")
            os.mkfifo(path)
            with no_hang(), pytest.raises(ConfigError, match=f": {name} is a FIFO, not a regular file; a run reads and writes only"):
                launch(args)
            path.unlink()
            if (workdir / "parked").exists():
                (workdir / "parked").rename(path)
    (workdir / "shared" / ".lock").unlink()  # the command line: one line, exit code 2
    os.mkfifo(workdir / "shared" / ".lock")
    with no_hang():
        done = run_main(["resume=shared", "epochs=2"], workdir)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        "typedexp: error: resume=shared: .lock is a FIFO, not a regular file; a run reads and writes only regular "
        "files in its directory, so remove it (or copy the run's real files into a new directory)"
    ]


def test_a_fifo_where_hydra_writes_a_sweeps_file_is_refused(workdir: Path) -> None:
    (workdir / "sweep").mkdir()
    os.mkfifo(workdir / "sweep" / "multirun.yaml")
    with no_hang(), pytest.raises(ConfigError, match="sweep: multirun.yaml is a FIFO, not a regular file"):
        launch_sweep([*QUICK, "seed=1,2"], sweep_dir="sweep")


def test_a_new_run_refuses_a_symlink_where_its_files_go(workdir: Path) -> None:
    (workdir / "fresh").mkdir()
    (workdir / "victim").write_text("precious\n")
    (workdir / "fresh" / "model.pt").symlink_to(workdir / "victim")
    with pytest.raises(ConfigError, match="fresh: model.pt is a symlink"):
        launch(QUICK, output_dir="fresh")
    assert (workdir / "victim").read_text() == "precious\n"


def test_the_run_dir_itself_may_not_be_a_symlink_but_its_parents_may(workdir: Path) -> None:
    (workdir / "real").mkdir()
    (workdir / "link").symlink_to(workdir / "real")
    with pytest.raises(ConfigError, match=r"output_dir=.*link is a symlink \(to .*real\); name the directory itself"):
        launch(QUICK, output_dir="link")
    assert list((workdir / "real").iterdir()) == []
    result = launch(QUICK, output_dir="link/run")  # a symlinked parent: where you keep your runs
    assert (workdir / "real" / "run" / "model.pt").is_file()
    assert result.run_dir.resolve() == workdir / "real" / "run"
    with pytest.raises(ConfigError, match=r"resume=.*alias is a symlink \(to .*run\); name the directory itself"):
        (workdir / "alias").symlink_to(workdir / "real" / "run")
        launch(["resume=alias", "epochs=2"])


def test_metrics_are_never_appended_through_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "victim").write_text("precious\n")
    (tmp_path / "metrics.jsonl").symlink_to(tmp_path / "victim")
    with pytest.raises(ConfigError, match="metrics.jsonl is a symlink"):
        JsonlTracker(tmp_path / "metrics.jsonl")
    assert (tmp_path / "victim").read_text() == "precious\n"


def test_an_atomic_write_replaces_a_symlink_and_never_uses_a_planted_temp_file(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (tmp_path / "model.pt").symlink_to(victim)
    # The temp names of the old scheme, planted in advance: none of them may be written through.
    (tmp_path / f".model.pt.{os.getpid()}.tmp").symlink_to(victim)
    write_atomically({"format": FORMAT}, tmp_path / "model.pt")
    assert victim.read_text() == "precious\n"
    assert not (tmp_path / "model.pt").is_symlink()


def test_checkpoints_never_go_through_a_symlinked_folder(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "checkpoints").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ConfigError, match="checkpoints is a symlink"):
        write_atomically({"format": FORMAT}, tmp_path / "checkpoints" / "last.pt")
    assert list((tmp_path / "elsewhere").iterdir()) == []


# One writer at a time.


def test_the_lock_is_exclusive_between_processes_and_names_the_holder(tmp_path: Path) -> None:
    with hold(tmp_path, "hydra.run.dir"):
        assert lock_holder(tmp_path) == str(os.getpid())
        code = (
            "import sys; from pathlib import Path; from typedexp.runs.layout import hold\n"
            "try:\n    hold(Path(sys.argv[1]), 'hydra.run.dir').__enter__()\n"
            "except Exception as exc:\n    print(exc)\n"
        )
        other = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60)
        assert other.stdout.strip() == (
            f"hydra.run.dir={tmp_path} is in use by another typedexp run (pid {os.getpid()}); "
            "wait for it to finish, or choose another directory"
        )
    assert lock_holder(tmp_path) is None  # released with the block (and by the OS on any exit)
    assert (tmp_path / LOCK_FILE).read_text() == ""  # the pid is there only while it is held


def test_a_second_run_or_resume_into_a_live_run_dir_is_refused_naming_its_pid(workdir: Path) -> None:
    with held_run([*QUICK, "trainer.checkpoint_every=1", "hydra.run.dir=live"], workdir) as first:
        live = workdir / "live"
        assert lock_holder(live) == str(first.pid)  # the task holds the lock while it runs
        before = state(live)
        for args in ([*QUICK, "hydra.run.dir=live"], ["resume=live"]):
            second = run_cli(args, workdir)
            assert second.returncode == 2
            assert second.stderr_lines == [
                f"typedexp: error: hydra.run.dir={live} is in use by another typedexp run (pid {first.pid}); "
                "wait for it to finish, or choose another directory"
            ]
        assert state(live) == before  # not even .hydra/ was rewritten
    assert lock_holder(workdir / "live") is None
