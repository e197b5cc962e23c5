"""A single run refused for a config mistake leaves nothing behind; it removes only what it made.

Hydra makes the run dir, ``.hydra/`` and the job log before the task runs; a mistake found before
training (``app/tidy.py``) removes exactly those (``runs/leftovers.py``) and keeps everything that
was there before, that another run made, or that changed since. A mistake found once training
began keeps the dir (its result.json says how it ended), and a sweep still lists failed jobs.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import QUICK, run_main
from typedexp import ConfigError, launch
from typedexp.runs import leftovers
from typedexp.runs.layout import hold
from typedexp.runs.record import JobState, read_run


def state(root: Path) -> dict[str, tuple[bytes, int] | None]:
    """Every entry below ``root`` (relative): a file's bytes and mtime, None for a folder."""
    return {
        str(path.relative_to(root)): (path.read_bytes(), path.stat().st_mtime_ns) if path.is_file() else None
        for path in root.rglob("*")
    }


MISTAKES = [
    (["batch_size=0"], "batch_size=0: must be an integer >= 1"),
    (["model.dropout=1.5"], "model.dropout=1.5: must be in [0, 1)"),
    (["+batch_sise=16"], "batch_sise: unknown field; did you mean batch_size?"),
    (["tracker=cloud"], "tracker=cloud needs SWANLAB_API_KEY"),
    (["dataset=mnist"], "dataset=mnist: no files in data/MNIST/raw"),
]


@pytest.mark.parametrize(("overrides", "line"), MISTAKES, ids=lambda value: " ".join(value) if isinstance(value, list) else "")
def test_a_config_mistake_leaves_no_run_dir(workdir: Path, overrides: list[str], line: str) -> None:
    done = run_main([*overrides, "epochs=1", "trainer.progress=off"], workdir)
    assert done.returncode == 2
    assert len(done.stderr_lines) == 1 and done.stderr_lines[0].startswith(f"typedexp: error: {line}")
    assert list(workdir.iterdir()) == []  # no outputs/<date>/<time>/, no outputs/ either


def test_folders_that_were_there_stay(workdir: Path) -> None:
    earlier = workdir / "outputs" / "2020-01-01" / "00-00-00-000000"
    earlier.mkdir(parents=True)
    (earlier / "notes.txt").write_text("mine", encoding="utf-8")
    before = state(workdir)
    assert run_main(["batch_size=0"], workdir).returncode == 2
    assert state(workdir) == before  # outputs/ kept (not made by this run); today's date folder gone


@pytest.mark.parametrize("run_dir", [".", "mine", "mine/deeper"])
def test_a_directory_that_existed_keeps_everything_and_gains_nothing(workdir: Path, run_dir: str) -> None:
    (workdir / "mine" / "deeper").mkdir(parents=True)
    (workdir / "notes.txt").write_text("keep", encoding="utf-8")
    (workdir / "mine" / "typedexp.log").write_text("someone's log", encoding="utf-8")
    before = state(workdir)
    done = run_main(["batch_size=0", f"hydra.run.dir={run_dir}"], workdir)
    assert done.returncode == 2
    assert state(workdir) == before  # no .hydra/, .lock, job log or result.json left in it


def test_a_resume_with_a_bad_override_leaves_the_run_as_it_was(workdir: Path) -> None:
    run_dir = launch(QUICK, output_dir="run").run_dir
    before = {name: value for name, value in state(run_dir).items() if name != ".lock"}
    done = run_main([f"resume={run_dir}", "batch_size=0"], workdir)
    assert done.returncode == 2
    assert done.stderr_lines == ["typedexp: error: batch_size=0: must be an integer >= 1"]
    after = state(run_dir)
    assert after.pop(".lock", None) is not None  # its lock stays, emptied (a pid is written only while held)
    assert after == before  # no .hydra/resume-<time>/ left, and the run's own files untouched
    assert read_run(run_dir).state is JobState.done


def test_launch_raises_and_leaves_no_output_dir_so_the_same_dir_works_next(workdir: Path) -> None:
    with pytest.raises(ConfigError, match="batch_size=0: must be an integer >= 1"):
        launch([*QUICK, "batch_size=0"], output_dir="runs/first")
    assert list(workdir.iterdir()) == []
    assert launch(QUICK, output_dir="runs/first").run_dir == workdir / "runs" / "first"


def test_a_checkpoint_refused_after_the_run_took_its_dir_leaves_no_dir(workdir: Path) -> None:
    # Refused while the run holds its dir (open_session), still before it begins writing.
    checkpoint = launch(QUICK, output_dir="a").run_dir / "checkpoints" / "last.pt"
    (workdir / "copy.pt").write_bytes(checkpoint.read_bytes())
    done = run_main([*QUICK, "resume=copy.pt", "model=large", "hydra.run.dir=b"], workdir)
    assert done.returncode == 2
    assert "made with another config" in done.stderr_lines[0]
    assert sorted(path.name for path in workdir.iterdir()) == ["a", "copy.pt"]


def test_a_mistake_found_once_training_began_keeps_its_dir(workdir: Path) -> None:
    (workdir / "diverged").mkdir()  # made beforehand: only what the run wrote could be removed
    done = run_main([*QUICK, "trainer.max_batches=3", "optim.lr=1e30", "hydra.run.dir=diverged"], workdir)
    assert done.returncode == 2
    assert "train/loss became nan" in done.stderr_lines[-1]
    assert read_run(workdir / "diverged").state is JobState.failed
    assert {".hydra", "typedexp.log", "metrics.jsonl"} <= {path.name for path in (workdir / "diverged").iterdir()}


def test_a_sweep_still_records_its_failed_jobs(workdir: Path) -> None:
    done = run_main(["-m", *QUICK, "hydra.sweep.dir=sweep", "batch_size=0,8"], workdir)
    assert done.returncode == 2
    assert read_run(workdir / "sweep" / "0").state is JobState.failed
    assert read_run(workdir / "sweep" / "1").state is JobState.done


# What remove_claimed keeps, checked on the disk part alone (as Hydra would make the files).


def made_by_hydra(run_dir: Path) -> leftovers.Claim:
    before = leftovers.note_before(run_dir, ".hydra", ["typedexp.log"])
    (run_dir / ".hydra").mkdir(parents=True)
    for name in leftovers.HYDRA_FILES:
        (run_dir / ".hydra" / name).write_text("x", encoding="utf-8")
    (run_dir / "typedexp.log").write_text("", encoding="utf-8")
    return leftovers.claim(before)


def test_removes_what_it_made_and_empty_parents_it_made(tmp_path: Path) -> None:
    (tmp_path / "outputs").mkdir()
    made = made_by_hydra(tmp_path / "outputs" / "day" / "time")
    with hold(made.before.run_dir, "hydra.run.dir"):  # the run took its lock before the mistake
        pass
    leftovers.remove_claimed(made)
    assert list(tmp_path.rglob("*")) == [tmp_path / "outputs"]


def test_a_file_another_run_put_there_keeps_it_and_its_folders(tmp_path: Path) -> None:
    made = made_by_hydra(tmp_path / "outputs" / "time")
    (tmp_path / "outputs" / "time" / "theirs.txt").write_text("theirs", encoding="utf-8")
    leftovers.remove_claimed(made)
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == [
        "outputs", "outputs/time", "outputs/time/theirs.txt"
    ]


def test_a_dir_it_made_that_now_holds_a_run_is_left_whole(tmp_path: Path) -> None:
    made = made_by_hydra(tmp_path / "run")
    (tmp_path / "run" / "metrics.jsonl").write_text("{}", encoding="utf-8")  # a run sharing the dir, finished
    before = state(tmp_path)
    leftovers.remove_claimed(made)
    assert {name: value for name, value in state(tmp_path).items() if name != "run/.lock"} == before


def test_a_file_rewritten_since_it_was_claimed_is_kept(tmp_path: Path) -> None:
    made = made_by_hydra(tmp_path / "run")
    config = tmp_path / "run" / ".hydra" / "config.yaml"
    os.utime(config, ns=(1, 1))  # a run sharing the dir rewrote it in place (same inode)
    leftovers.remove_claimed(made)
    assert sorted(p.name for p in tmp_path.rglob("*")) == [".hydra", "config.yaml", "run"]


def test_a_dir_another_run_holds_is_left_whole(tmp_path: Path) -> None:
    made = made_by_hydra(tmp_path / "run")
    before = state(tmp_path)
    fd = os.open(tmp_path / "run" / ".lock", os.O_RDWR | os.O_CREAT)
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_EX)  # another run's lock (flock is per open file, so this process conflicts)
    try:
        leftovers.remove_claimed(made)
    finally:
        os.close(fd)
    assert {name: value for name, value in state(tmp_path).items() if name != "run/.lock"} == before


def test_a_claimed_file_replaced_by_a_symlink_is_not_followed_or_removed(tmp_path: Path) -> None:
    made = made_by_hydra(tmp_path / "run")
    target = tmp_path / "precious.txt"
    target.write_text("precious", encoding="utf-8")
    log = tmp_path / "run" / "typedexp.log"
    log.unlink()
    log.symlink_to(target)
    leftovers.remove_claimed(made)
    assert log.is_symlink() and target.read_text(encoding="utf-8") == "precious"


def test_a_run_dir_replaced_by_a_symlink_is_not_touched(tmp_path: Path) -> None:
    made = made_by_hydra(tmp_path / "run")
    (tmp_path / "run").rename(tmp_path / "moved")
    (tmp_path / "run").symlink_to(tmp_path / "moved")
    before = state(tmp_path / "moved")
    leftovers.remove_claimed(made)
    assert (tmp_path / "run").is_symlink() and state(tmp_path / "moved") == before
