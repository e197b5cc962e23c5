"""``hydra/sweeper=optuna``: search spaces, pruning per epoch, NaN-safe and resumable studies, storage rules."""

from __future__ import annotations

import csv
import pickle
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState
from swanlab.proto.swanlab.run.v1.run_pb2 import RUN_STATE_ABORTED

from tests.helpers import QUICK, RecordingTracker, run_main
from tests.test_tracking import only_run, read_offline_run
from typedexp import ConfigError, JobFailure, RunResult, launch_sweep
from typedexp.sweeps import trials
from typedexp.app.config_guard import registered_targets
from typedexp.data import Digits
from typedexp.engine import TrainerSettings, fit, prepare, resolve_device, seed_everything
from typedexp.engine.settings import Progress
from typedexp.sweeps.hpo import PLUGIN_CLASS, search_space, study_file
from typedexp.specs.models import SMALL
from typedexp.specs.optim import SGD
from typedexp.runs.record import JobState, read_run
from typedexp.app.store import register_configs
from typedexp.sweeps.summary import BEST_FILE

# Obviously bad learning rates beside good ones: 1e-4 learns nothing in 3 epochs (pruned once two
# trials have finished), 1000 diverges to NaN (a failed trial). Seeded, so the same trials every run.
STUDY = [
    "hydra/sweeper=optuna", "hydra.sweeper.n_trials=8", "hydra.sweeper.pruner_startup_trials=2",
    "optim.lr=choice(0.0001,0.05,0.1,1000.0)", "tracker=disabled", "epochs=3", "trainer.progress=off",
]


def study_in(sweep_dir: Path) -> optuna.Study:
    return optuna.load_study(study_name="typedexp", storage=f"sqlite:///{sweep_dir / 'study.db'}")


def states(study: optuna.Study) -> list[TrialState]:
    return [trial.state for trial in study.trials]


@pytest.mark.slow
def test_a_study_prunes_bad_trials_survives_nan_and_continues_where_it_stopped(workdir: Path) -> None:
    sweep = workdir / "search"
    results = launch_sweep(STUDY, sweep_dir=sweep)
    study = study_in(sweep)
    assert len(study.trials) == len(results) == 8
    assert TrialState.PRUNED in states(study) and TrialState.COMPLETE in states(study)
    failed = [trial.number for trial in study.trials if trial.state is TrialState.FAIL]
    assert failed and min(failed) < 7, "a NaN trial must not end the study"
    for trial in study.trials:  # each trial's job dir says the same as the study
        record = read_run(sweep / str(trial.user_attrs["job"]))
        expected = {TrialState.PRUNED: JobState.pruned, TrialState.FAIL: JobState.failed}.get(trial.state, JobState.done)
        assert record.state is expected
        if trial.state is TrialState.PRUNED:  # stopped early: fewer steps than a full 3-epoch run
            assert record.steps < max(r.steps for r in results if isinstance(r, RunResult))
            assert "optim.lr=0.0001" in record.overrides or "optim.lr=1000.0" in record.overrides
        if trial.state is TrialState.FAIL:
            assert record.error is not None and "became nan" in record.error
    pruned = [r for r in results if isinstance(r, RunResult) and r.pruned]
    assert pruned and all(r.epochs < 3 for r in pruned)
    assert any(isinstance(r, JobFailure) for r in results)

    best = yaml.safe_load((sweep / BEST_FILE).read_text(encoding="utf-8"))
    assert isinstance(best, dict)
    assert best["value"] == study.best_value and best["trial"] == study.best_trial.number
    assert f"optim.lr={study.best_params['optim.lr']}" in best["overrides"]
    with (sweep / "summary.csv").open(encoding="utf-8", newline="") as file:
        rows = list(csv.DictReader(file))
    assert {row["state"] for row in rows} >= {"done", "pruned", "failed"}
    assert rows[0]["job"] == str(best["job"])  # the summary ranks by the study's metric
    note = f"Best trial of the Optuna study typedexp: job {best['job']}, val/acc {best['value']:.4f}"
    assert note in (sweep / "summary.md").read_text(encoding="utf-8")
    first_result = (sweep / "0" / "result.json").read_bytes()

    again = launch_sweep([*STUDY[:1], "hydra.sweeper.n_trials=2", *STUDY[2:]], sweep_dir=sweep)
    study = study_in(sweep)
    assert len(again) == 2 and len(study.trials) == 10, "the same storage adds trials, it does not start over"
    assert [trial.user_attrs["job"] for trial in study.trials[8:]] == [8, 9]
    # Reseeded past the earlier trials: the same seed would propose trials 0 and 1 again.
    assert [trial.params for trial in study.trials[8:]] != [trial.params for trial in study.trials[:2]]
    assert (sweep / "8" / "result.json").is_file() and (sweep / "0" / "result.json").read_bytes() == first_result


def test_search_spaces_from_the_command_line_and_the_config(workdir: Path) -> None:
    space, fixed = search_space(
        [
            "optim.lr=interval(0.1,0.5)",  # from hydra.sweeper.params; the command line's line wins
            "optim.lr=tag(log,interval(1e-4,1e-1))", "model=choice(small,large)", "batch_size=choice(32,64,128)",
            "epochs=range(1,8,3)", "optim.momentum=range(0,1,0.25)", "tracker=disabled",
        ]
    )
    assert space["optim.lr"] == FloatDistribution(1e-4, 1e-1, log=True)
    assert space["model"] == CategoricalDistribution(["small", "large"])
    assert space["batch_size"] == CategoricalDistribution([32, 64, 128])
    assert space["epochs"] == IntDistribution(1, 7, step=3)  # range's end is excluded, as in Hydra
    assert space["optim.momentum"] == CategoricalDistribution([0.0, 0.25, 0.5, 0.75])
    assert fixed == ["tracker=disabled"]
    with pytest.raises(ConfigError, match="nothing to search"):
        search_space(["optim.lr=0.1"])
    with pytest.raises(ConfigError, match=r"start < end"):
        search_space(["optim.lr=tag(log,interval(0,1))"])
    with pytest.raises(ConfigError, match=r"takes choice\(\), range\(\) and interval\(\)"):
        search_space(["model=glob(*)"])


@pytest.mark.parametrize(
    "storage",
    [
        "postgresql://evil.example/db",  # a network database
        "sqlite:////home/user/.config/autostart/x.db",  # absolute: outside the sweep dir
        "sqlite:///../elsewhere/study.db",
        "sqlite:///study.db?uri=true",  # URL options reach SQLite's own file handling
        "study.db",
    ],
)
def test_a_study_lives_only_in_a_sqlite_file_inside_the_sweep_dir(storage: str) -> None:
    with pytest.raises(ConfigError, match=r"^hydra.sweeper.storage="):
        study_file(storage, Path("sweep"))


@pytest.mark.parametrize("planted", ["study.db", "db"])
def test_a_study_file_that_a_symlink_leads_elsewhere_is_refused(tmp_path: Path, planted: str) -> None:
    sweep, elsewhere = tmp_path / "s", tmp_path / "elsewhere"
    sweep.mkdir()
    elsewhere.mkdir()
    (sweep / planted).symlink_to(elsewhere / planted)
    storage = "sqlite:///study.db" if planted == "study.db" else "sqlite:///db/study.db"
    done = run_main(["-m", "hydra/sweeper=optuna", f"hydra.sweeper.storage={storage}", "optim.lr=choice(0.1,0.2)",
                     *QUICK, f"hydra.sweep.dir={sweep}"], tmp_path)
    assert done.returncode == 2 and "is a symlink or leads through one out of the sweep dir" in done.stderr
    assert list(elsewhere.iterdir()) == [] and not (sweep / "0").exists()


def test_a_relative_sqlite_path_resolves_inside_the_sweep_dir() -> None:
    assert study_file("sqlite:///db/study.db", Path("s")) == Path("s/db/study.db")


def test_a_bad_storage_is_one_line_before_any_trial_runs(tmp_path: Path) -> None:
    done = run_main(["-m", "hydra/sweeper=optuna", "hydra.sweeper.storage=postgresql://evil/db", "optim.lr=choice(0.1,0.2)",
                     *QUICK, "hydra.sweep.dir=s"], tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("typedexp: error: hydra.sweeper.storage='postgresql://evil/db': only a SQLite")
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert not (tmp_path / "s").exists()
    metric = run_main(["-m", "hydra/sweeper=optuna", "hydra.sweeper.metric=val/accuracy", "optim.lr=choice(0.1,0.2)",
                       *QUICK, "hydra.sweep.dir=s"], tmp_path)
    assert metric.returncode == 2 and len(metric.stderr.strip().splitlines()) == 1
    assert metric.stderr.startswith("typedexp: error: hydra.sweeper.metric='val/accuracy': no such metric; choose one of: val/acc")


def test_the_sweeper_is_allowed_because_it_is_registered_and_its_neighbours_are_not(tmp_path: Path) -> None:
    register_configs()
    _, plugins = registered_targets()
    assert plugins.permits(PLUGIN_CLASS)
    assert not plugins.permits("hydra_plugins.typedexp_optuna.optuna_sweeper.OptunaSweeperConf")
    done = run_main(["-m", "hydra/sweeper=optuna", "hydra.sweeper._target_=optuna.create_study", *QUICK], tmp_path)
    assert done.returncode == 2 and "hydra.sweeper._target_=optuna.create_study: refused" in done.stderr
    params = run_main(["-m", "hydra/sweeper=optuna", "+hydra.sweeper.params={hydra.verbose: 'choice(true,false)'}", *QUICK], tmp_path)
    assert params.returncode == 2 and "a sweep cannot vary Hydra's settings" in params.stderr


def test_a_study_db_is_read_without_unpickling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(storage=storage, study_name="typedexp", direction="maximize")
    trial = study.ask({"optim.lr": FloatDistribution(1e-4, 1e-1, log=True)})
    trial.set_user_attr("overrides", ["optim.lr=0.01"])
    study.tell(trial, 0.9)

    def refuse(*args: object, **kwargs: object) -> object:
        raise AssertionError("unpickled")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    loaded = optuna.load_study(study_name="typedexp", storage=storage)
    assert loaded.best_trial.user_attrs["overrides"] == ["optim.lr=0.01"] and loaded.best_value == 0.9


def test_fit_stops_after_the_epoch_its_check_says_and_skips_the_end_evaluations() -> None:
    generator = seed_everything(0)
    data = Digits().load()
    settings = TrainerSettings(progress=Progress.off)
    net, data = prepare(SMALL.build(data.input_shape, data.num_classes), data, settings, resolve_device(settings.device))
    asked: list[tuple[int, float]] = []

    def stop_at_two(epoch: int, metrics: object) -> bool:
        assert isinstance(metrics, dict)
        asked.append((epoch, metrics["val/acc"]))
        return epoch == 2

    tracker = RecordingTracker()
    result = fit(net, SGD().build(net.parameters()), data, epochs=5, batch_size=64, settings=settings,
                 tracker=tracker, generator=generator, should_stop=stop_at_two)
    assert result.stopped_early and result.epochs == 2 and [epoch for epoch, _ in asked] == [1, 2]
    assert max(epoch for _, epoch, _ in tracker.points) == 2
    assert not any("test/acc" in point for _, _, point in tracker.points)


def test_a_job_takes_the_check_offered_for_its_number_and_ends_pruned(workdir: Path) -> None:
    with trials.offered({0: lambda epoch, metrics: True}):
        results = launch_sweep(
            ["optim.lr=0.1", "tracker=offline", "tracker.log_dir=sl", "epochs=3", "trainer.max_batches=2",
             "trainer.progress=off"],
            sweep_dir="s",
        )
    (result,) = results
    assert isinstance(result, RunResult) and result.pruned and result.epochs == 1
    assert read_run(workdir / "s" / "0").state is JobState.pruned
    # SwanLab has no "pruned": its run finishes as stopped before its end, not as finished or crashed.
    assert read_offline_run(only_run(workdir / "sl")).final_state == RUN_STATE_ABORTED
    assert trials.take(0) is None  # withdrawn after the launch


def test_an_interrupted_trial_is_failed_in_the_study_and_the_same_command_goes_on(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import typedexp.sweeps.hpo

    def interrupting(trial: optuna.Trial, metric: str) -> object:
        def check(epoch: int, metrics: object) -> bool:
            raise KeyboardInterrupt  # Ctrl-C during the first trial's first epoch check

        return check

    study = ["hydra/sweeper=optuna", "hydra.sweeper.n_trials=1", "optim.lr=choice(0.05,0.1)", *QUICK]
    with monkeypatch.context() as patched:
        patched.setattr(typedexp.sweeps.hpo, "epoch_check", interrupting)
        with pytest.raises(KeyboardInterrupt):
            launch_sweep(study, sweep_dir="s")
    assert states(study_in(workdir / "s")) == [TrialState.FAIL]  # not left RUNNING
    assert read_run(workdir / "s" / "0").state is JobState.interrupted
    (result,) = launch_sweep(study, sweep_dir="s")
    assert isinstance(result, RunResult) and result.run_dir == workdir / "s" / "1"
    assert states(study_in(workdir / "s")) == [TrialState.FAIL, TrialState.COMPLETE]
