"""What a sweep gives back: typed per-job results, the ranked summary, SwanLab groups, one-line failures."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from swanlab.proto.swanlab.record.v1.record_pb2 import Record
from swanlab.sdk.internal.core_python.store import DataStoreReader

import typedexp.app.pipeline
from tests.helpers import QUICK, SignalServer, run_cli, run_main
from typedexp import ConfigError, JobFailure, RunResult, launch, launch_sweep
from typedexp.runs import layout as rundir
from typedexp.engine import fit
from typedexp.engine.settings import BestMode
from typedexp.runs.record import RESULT_FILE, JobState, find_runs, read_run
from typedexp.sweeps.summary import METRICS, report, summarize, to_markdown

LAUNCHERS = ("joblib", "submitit_local")


def summary_rows(sweep_dir: Path) -> list[dict[str, str]]:
    with (sweep_dir / "summary.csv").open(encoding="utf-8", newline="") as file:
        return list(csv.DictReader(file))


def swanlab_groups(log_dir: Path) -> list[str]:
    """The group of each SwanLab run in ``log_dir``, read from its record file as `swanlab sync` does."""
    groups = []
    for run in sorted(log_dir.glob("run-*")):
        reader = DataStoreReader()
        reader.open(next(run.glob("run-*.swanlab")))
        for raw in reader:
            record = Record()
            record.ParseFromString(raw)
            if record.WhichOneof("record_type") == "start":
                groups.append(record.start.group)
        reader.close()
    return groups


# --- launch_sweep: typed results in job order, failures as values --------------------------


def test_launch_sweep_returns_every_job_in_order_with_failures_as_values(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = launch_sweep(["optim.lr=0.1,-1", "model=small,large", *QUICK], sweep_dir="sweep")
    sweep = workdir / "sweep"
    assert [type(result) for result in results] == [RunResult, RunResult, JobFailure, JobFailure]
    done = [result for result in results if isinstance(result, RunResult)]
    assert [result.run_dir for result in done] == [sweep / "0", sweep / "1"]
    failure = results[3]
    assert isinstance(failure, JobFailure)
    assert failure.job == 3 and {"optim.lr=-1", "model=large"} <= set(failure.overrides)
    assert failure.error == "optim.lr=-1.0: must be >= 0"
    assert isinstance(failure.exception, ConfigError) and failure.run_dir == sweep / "3"

    # The summary: ranked by val/acc (max), the failed jobs last with their line, not dropped.
    rows = summary_rows(sweep)
    assert list(rows[0]) == [
        "rank", "job", "optim.lr", "model", "val/acc", "val/loss", "steps", "seconds", "state", "error", "run_dir"
    ]
    best_first = sorted(range(2), key=lambda job: -done[job].metrics["val/acc"])
    assert [row["job"] for row in rows] == [*map(str, best_first), "2", "3"]
    assert [row["rank"] for row in rows] == ["1", "2", "", ""]
    assert rows[0]["val/acc"] == f"{done[best_first[0]].metrics['val/acc']:.4f}"
    assert [(row["state"], row["error"]) for row in rows[2:]] == [("failed", failure.error)] * 2
    assert [row["model"] for row in rows[2:]] == ["small", "large"] and rows[2]["optim.lr"] == "-1"
    markdown = (sweep / "summary.md").read_text(encoding="utf-8")
    assert "| - | 3 | -1 | large | - | - | 0 | 0.0 | failed | optim.lr=-1.0: must be >= 0 |" in markdown

    printed = capsys.readouterr().out.splitlines()
    start = printed.index(
        "sweep summary: 4 jobs (2 done, 2 failed), ranked by val/acc (max); saved in sweep/summary.csv and summary.md"
    )
    assert printed[start + 1].split() == ["rank", "job", "optim.lr", "model", "val/acc", "val/loss", "steps", "seconds", "state"]
    assert printed[start + 3].split()[:2] == ["1", str(best_first[0])] and printed[start + 3].endswith("done")
    assert printed[start + 6].split()[:4] == ["-", "3", "-1", "large"] and printed[start + 6].endswith("failed")
    assert printed[start + 7 :] == [f"job 2 failed: {failure.error}", f"job 3 failed: {failure.error}"]


def test_launch_sweep_under_joblib_gives_each_failed_job_its_own_line(workdir: Path) -> None:
    # Not in test_launchers.py: mutation testing runs that file in-process with mutated modules,
    # which joblib's workers would import without mutmut's set-up.
    results = launch_sweep(["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "optim.lr=0.1,-1", *QUICK], sweep_dir="sweep")
    assert [type(result) for result in results] == [RunResult, JobFailure]
    failure = results[1]
    assert isinstance(failure, JobFailure) and failure.error == "optim.lr=-1.0: must be >= 0"
    assert failure.run_dir == workdir / "sweep" / "1"


def test_the_ranking_metric_and_its_direction_are_config(workdir: Path) -> None:
    ranking = ["hydra.callbacks.summary.metric=train/loss", "hydra.callbacks.summary.mode=min"]
    results = launch_sweep(["optim.lr=0.3,0.03,0.003", *QUICK, *ranking], sweep_dir="sweep")
    losses = {str(job): result.metrics["train/loss"] for job, result in enumerate(results) if isinstance(result, RunResult)}
    rows = summary_rows(workdir / "sweep")
    assert list(rows[0])[3:6] == ["train/loss", "val/acc", "val/loss"]  # the ranking metric comes first
    assert [row["job"] for row in rows] == sorted(losses, key=losses.__getitem__)  # smallest first
    assert len(set(losses.values())) == 3  # distinct, so the order says something


def test_launch_sweep_names_itself_when_given_the_wrong_kind_of_argument(workdir: Path) -> None:
    with pytest.raises(TypeError, match=r"^launch_sweep\(\) takes a list of overrides, e.g. \['seed=0,1'\], not a str$"):
        launch_sweep("seed=0,1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^launch_sweep\(sweep_dir=...\) takes a str or Path; got int$"):
        launch_sweep(["seed=0,1"], sweep_dir=3)  # type: ignore[arg-type]
    assert not list(workdir.iterdir())


BAD_RANKINGS = [
    (
        "hydra.callbacks.summary.metric=val/accuracy",
        f"hydra.callbacks.summary.metric='val/accuracy': no such metric; choose one of: {', '.join(METRICS)}",
    ),
    ("hydra.callbacks.summary.mode=up", "hydra.callbacks.summary.mode='up': must be one of: max, min"),
]


@pytest.mark.parametrize(("override", "line"), BAD_RANKINGS, ids=["metric", "mode"])
def test_a_bad_ranking_setting_is_one_line_before_any_job_runs(workdir: Path, override: str, line: str) -> None:
    done = run_main(["-m", "seed=0,1", *QUICK, override], workdir)
    assert done.returncode == 2
    assert done.stderr_lines == [f"typedexp: error: {line}"]
    assert not (workdir / "multirun").exists()
    with pytest.raises(ConfigError) as raised:
        launch_sweep(["seed=0,1", *QUICK, override])
    assert str(raised.value) == line
    assert not (workdir / "multirun").exists()


@pytest.mark.parametrize(
    "override",
    [
        "hydra.callbacks.summary._target_=tempfile.mkdtemp",
        "+hydra.callbacks.pickled._target_=hydra.experimental.callbacks.PickleJobInfoCallback",
    ],
    ids=["summary replaced", "another callback"],
)
def test_only_typedexp_s_own_summary_callback_is_allowed(workdir: Path, override: str) -> None:
    done = run_main(["-m", "seed=0,1", *QUICK, override], workdir)
    assert done.returncode == 2
    assert len(done.stderr_lines) == 1 and "_target_=" in done.stderr and ": refused" in done.stderr, done.stderr
    assert not (workdir / "multirun").exists()


# --- the command line ----------------------------------------------------------------------


@pytest.mark.slow
def test_a_cli_sweep_prints_the_ranked_table_and_saves_it(workdir: Path) -> None:
    done = run_cli(["-m", "optim.lr=0.1,-1", *QUICK, "hydra.sweep.dir=sweep"], workdir)
    assert done.returncode == 2, done.stderr
    error = "optim.lr=-1.0: must be >= 0"
    assert done.stderr_lines == [f"typedexp: error: job 1 (epochs=1,optim.lr=-1,trainer.max_batches=2): {error}"]
    printed = done.stdout.splitlines()
    start = printed.index("sweep summary: 2 jobs (1 done, 1 failed), ranked by val/acc (max); saved in sweep/summary.csv and summary.md")
    assert [line.split() for line in printed[start + 1 : start + 2]] == [
        ["rank", "job", "optim.lr", "val/acc", "val/loss", "steps", "seconds", "state"]
    ]
    best = printed[start + 3].split()
    assert best[:3] == ["1", "0", "0.1"] and best[-3] == "2" and best[-1] == "done"
    assert printed[start + 4].split() == ["-", "1", "-1", "-", "-", "0", "0.0", "failed"]
    assert printed[start + 5 :] == [f"job 1 failed: {error}"]
    assert [row["state"] for row in summary_rows(workdir / "sweep")] == ["done", "failed"]
    assert error in (workdir / "sweep" / "summary.md").read_text(encoding="utf-8")


def test_a_crashing_job_is_one_line_its_traceback_is_kept_and_the_sweep_goes_on(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []

    def crash_the_first_job(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom in training")
        return fit(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(typedexp.app.pipeline, "fit", crash_the_first_job)
    done = run_main(["-m", "seed=0,1", *QUICK, "hydra.sweep.dir=sweep"], workdir)
    line = "RuntimeError: boom in training (HYDRA_FULL_ERROR=1 shows the traceback)"
    assert done.returncode == 2
    assert done.stderr_lines == [f"typedexp: error: job 0 (epochs=1,seed=0,trainer.max_batches=2): {line}"]
    crashed, finished = find_runs(workdir / "sweep")
    assert (crashed.state, crashed.error, finished.state) == (JobState.failed, line, JobState.done)
    saved = json.loads((workdir / "sweep" / "0" / RESULT_FILE).read_text(encoding="utf-8"))
    assert saved["traceback"].startswith("Traceback") and "boom in training" in saved["traceback"]
    assert "job 0 failed: " + line in done.stdout


# --- SwanLab: one run per job, grouped by sweep ----------------------------------------------


def test_a_sweep_s_swanlab_runs_share_its_group_and_a_single_run_has_none(workdir: Path) -> None:
    tracked = ["tracker=offline", "tracker.log_dir=sl", *QUICK[1:]]
    results = launch_sweep(["seed=0,1", *tracked], sweep_dir="sweeps/first")
    assert all(isinstance(result, RunResult) for result in results)
    launch_sweep(["seed=2", *tracked], sweep_dir="sweeps/second")
    # Sorted: SwanLab names run folders by the second they started, then a random id.
    assert sorted(swanlab_groups(workdir / "sl")) == ["sweeps/first", "sweeps/first", "sweeps/second"]
    launch([*tracked[:1], "tracker.log_dir=single", *QUICK[1:]])
    assert swanlab_groups(workdir / "single") == [""]


# --- the same under other launchers ----------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_every_launcher_gives_the_same_summary_groups_and_failure_line(workdir: Path, launcher: str) -> None:
    pytest.importorskip(f"hydra_plugins.hydra_{launcher.removesuffix('_local')}_launcher")
    args = ["-m", f"hydra/launcher={launcher}", "optim.lr=0.1,-1", "tracker=offline", "tracker.log_dir=sl", *QUICK[1:]]
    done = run_cli([*args, "hydra.sweep.dir=sweep"], workdir)
    assert done.returncode == 2, done.stderr
    error = "optim.lr=-1.0: must be >= 0"
    assert f"job 1 failed: {error}" in done.stdout.splitlines()
    assert [(row["job"], row["state"], row["error"]) for row in summary_rows(workdir / "sweep")] == [
        ("0", "done", ""), ("1", "failed", error)
    ]
    assert swanlab_groups(workdir / "sl") == ["sweep"]  # the failed job never started SwanLab
    # joblib's workers print to this terminal; submitit's to its own log files in the sweep dir.
    logs = done.stderr if launcher == "joblib" else "".join(
        path.read_text(encoding="utf-8") for path in (workdir / "sweep" / ".submitit").rglob("*.err")
    )
    assert f"typedexp: error: job 1 (epochs=1,optim.lr=-1,trainer.max_batches=2): {error}" in logs


@pytest.mark.slow
@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_every_launcher_refuses_a_job_whose_config_names_a_target_not_allowed(workdir: Path, launcher: str) -> None:
    pytest.importorskip(f"hydra_plugins.hydra_{launcher.removesuffix('_local')}_launcher")
    (workdir / "evil" / "model").mkdir(parents=True)
    (workdir / "evil" / "model" / "deep.yaml").write_text(
        "_target_: typedexp.specs.models.MLP\nhidden: [8]\nextra:\n  _target_: tempfile.mkdtemp\n  dir: .\n  prefix: pwned\n"
    )
    done = run_cli(["-m", "--config-dir", "evil", f"hydra/launcher={launcher}", "model=small,deep", *QUICK], workdir)
    assert done.returncode == 2
    assert len(done.stderr_lines) == 1 and "model.extra._target_=tempfile.mkdtemp: refused" in done.stderr_lines[0]
    assert not list(workdir.rglob("pwned*"))


# --- reading a run dir: RunRecord ------------------------------------------------------------


def fake_job(run_dir: Path, job: int, overrides: list[str]) -> Path:
    (run_dir / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(overrides), run_dir / ".hydra" / "overrides.yaml")
    hydra = {"hydra": {"mode": "MULTIRUN", "job": {"num": job}, "run": {"dir": "${now:%H}"}}}
    OmegaConf.save(OmegaConf.create(hydra), run_dir / ".hydra" / "hydra.yaml")
    return run_dir


def test_a_run_dir_killed_mid_write_reads_as_interrupted_with_what_it_logged(tmp_path: Path) -> None:
    run_dir = fake_job(tmp_path / "7", 7, ["optim.lr=0.1", "+trainer.max_batches=2"])
    lines = ['{"step": 10, "epoch": 1, "train/loss": 2.0}', "[1, 2]", '{"step": 14, "epoch": 1, "val/acc": 0.5}', '{"step": 20, "tr']
    (run_dir / "metrics.jsonl").write_text("\n".join(lines), encoding="utf-8")
    record = read_run(run_dir)
    assert record.state is JobState.interrupted
    assert (record.job, record.overrides) == (7, ("optim.lr=0.1", "+trainer.max_batches=2"))
    assert (record.metrics, record.steps, record.seconds, record.error) == ({"train/loss": 2.0, "val/acc": 0.5}, 14, None, None)


def test_a_run_dir_whose_lock_is_held_reads_as_running(tmp_path: Path) -> None:
    run_dir = fake_job(tmp_path / "0", 0, [])
    with rundir.hold(run_dir, "hydra.sweep.dir"):
        assert read_run(run_dir).state is JobState.running
    assert read_run(run_dir).state is JobState.interrupted


@pytest.mark.parametrize(
    ("text", "state", "metrics", "steps"),
    [
        ("[1, 2]", JobState.interrupted, {}, 0),
        ('{"state": "exploded"}', JobState.interrupted, {}, 0),
        ('{"state": "done", "steps": "many", "metrics": {"val/acc": "high", "val/loss": 0.5, "x": NaN}}', JobState.done, {"val/loss": 0.5}, 0),
        ('{"state": "failed", "steps": 3, "seconds": true, "error": ["not", "a", "line"]}', JobState.failed, {}, 3),
    ],
)
def test_a_result_file_is_read_field_by_field_and_what_is_not_ours_is_ignored(
    tmp_path: Path, text: str, state: JobState, metrics: dict[str, float], steps: int
) -> None:
    run_dir = fake_job(tmp_path / "0", 0, [])
    (run_dir / RESULT_FILE).write_text(text, encoding="utf-8")
    record = read_run(run_dir)
    assert (record.state, record.metrics, record.steps, record.seconds, record.error) == (state, metrics, steps, None, None)


def test_runs_are_found_in_job_order_and_symlinked_folders_are_not_followed(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    fake_job(sweep / "b", 10, ["seed=1"])
    fake_job(sweep / "a" / "nested", 2, ["seed=0"])
    elsewhere = fake_job(tmp_path / "elsewhere", 0, ["seed=9"])
    os.symlink(elsewhere, sweep / "link")
    assert [(record.job, record.run_dir.name) for record in find_runs(sweep)] == [(2, "nested"), (10, "b")]


def test_only_override_values_that_differ_are_columns_and_pipes_are_escaped(tmp_path: Path) -> None:
    fake_job(tmp_path / "0", 0, ["epochs=1", "model=small", "+tag=a|b"])
    fake_job(tmp_path / "1", 1, ["epochs=1", "model=large"])
    summary = summarize(tmp_path, "val/acc", BestMode.max)
    assert summary.varying == ("model", "tag")
    assert "| - | 0 | small | a\\|b | - | 0 | - | interrupted |  |" in to_markdown(summary)


@pytest.mark.slow
def test_a_sweep_stopped_by_ctrl_c_still_prints_the_jobs_so_far(workdir: Path, signalled: SignalServer) -> None:
    args = ["-m", "seed=0,1", *QUICK[:1], "epochs=2", "trainer.max_batches=2", "trainer.progress=off", "hydra.sweep.dir=sweep"]
    done = signalled(2, "SIGINT", args, workdir)  # in job 0, epoch 1 of 2
    assert done.returncode == 130, done.stderr
    assert "sweep summary: 1 job (1 interrupted), ranked by val/acc (max); saved in sweep/summary.csv and summary.md" in done.stdout
    assert [(row["job"], row["state"]) for row in summary_rows(workdir / "sweep")] == [("0", "interrupted")]
    assert done.stderr_lines[-1].startswith("typedexp: interrupted")


def test_control_characters_from_a_run_dir_never_reach_the_terminal_or_the_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_job(tmp_path / "0", 0, ["+note=\x1b]0;pwned\x07"])
    fake_job(tmp_path / "1", 1, [])
    (tmp_path / "0" / RESULT_FILE).write_text(json.dumps({"state": "failed", "error": "bad\x1b[2J\nline"}), encoding="utf-8")
    report(tmp_path, "val/acc", BestMode.max)
    written = (tmp_path / "summary.csv").read_text(encoding="utf-8") + (tmp_path / "summary.md").read_text(encoding="utf-8")
    for text in (capsys.readouterr().out, written):
        assert "\x1b" not in text and "\x07" not in text
    assert "bad?[2J?line" in written


def test_a_csv_cell_a_spreadsheet_would_run_as_a_formula_is_quoted(tmp_path: Path) -> None:
    fake_job(tmp_path / "0", 0, ["+note==HYPERLINK(\"http://x\")", "optim.lr=-1"])
    fake_job(tmp_path / "1", 1, ["+note=@SUM(1)", "optim.lr=-0.5"])
    (tmp_path / "0" / RESULT_FILE).write_text(json.dumps({"state": "failed", "error": "-2+3+cmd|' /C calc'!A0"}), encoding="utf-8")
    report(tmp_path, "val/acc", BestMode.max)
    rows = {row["job"]: row for row in summary_rows(tmp_path)}
    assert rows["0"]["note"] == "'=HYPERLINK(\"http://x\")" and rows["1"]["note"] == "'@SUM(1)"
    assert rows["0"]["error"] == "'-2+3+cmd|' /C calc'!A0"
    assert (rows["0"]["optim.lr"], rows["1"]["optim.lr"]) == ("-1", "-0.5")  # numbers stay numbers


def test_resuming_a_sweep_job_updates_the_sweep_summary_with_its_ranking(workdir: Path) -> None:
    ranking = ["hydra.callbacks.summary.metric=val/loss", "hydra.callbacks.summary.mode=min"]
    launch_sweep(["seed=1,2", *QUICK, *ranking], sweep_dir="sweep")
    before = {row["job"]: row for row in summary_rows(workdir / "sweep")}
    assert before["0"]["steps"] == "2"
    launch(["resume=sweep/0", "epochs=2"])  # one more epoch of 2 steps
    rows = summary_rows(workdir / "sweep")
    after = {row["job"]: row for row in rows}
    assert after["0"]["steps"] == "4" and after["1"] == {**before["1"], "rank": after["1"]["rank"]}
    assert list(rows[0])[3] == "val/loss"  # still ranked by the sweep's metric
    assert [row["job"] for row in rows] == sorted(after, key=lambda job: float(after[job]["val/loss"]))
    assert "| 4 |" in (workdir / "sweep" / "summary.md").read_text(encoding="utf-8")
    launch([*QUICK, "hydra.run.dir=alone"])  # a run outside a sweep writes no summary
    assert not (workdir / "summary.csv").exists()
