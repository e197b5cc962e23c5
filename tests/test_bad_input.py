"""Bad input, typed as a user would: exit code 2, one line naming the field, nothing overwritten.

Also the faults a user meets at run time, each through the CLI's ``main``: NaN loss, a failing
tracker, SIGINT/SIGTERM, SIGKILL then resume, unsafe ``_target_``s, secrets in overrides.

Most cases call ``main`` in this process (``run_main``: the same code, without ~3 s of torch
import per case). A real process runs where its exit status or streams are the point (signals,
the traceback Python prints, a secret in anything printed) and for one case of each path an error
takes (Hydra's composition, a check before Hydra, a refused ``_target_``, a failure in training).
The signalled runs are processes forked from one that has already imported torch (``signalled``).
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import torch

from tests.helpers import QUICK, SignalServer, run_cli, run_main
from typedexp import ConfigError, TrackerError, launch
from typedexp.engine.checkpoint import read_checkpoint


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working directory that already holds one finished run."""
    cwd = tmp_path_factory.mktemp("project")
    earlier = run_main([*QUICK, "hydra.run.dir=outputs/earlier"], cwd)
    assert earlier.returncode == 0, earlier.stderr
    last = cwd / "outputs" / "earlier" / "checkpoints" / "last.pt"
    (cwd / "corrupt.pt").write_bytes(last.read_bytes()[:1000])  # a truncated copy
    (cwd / "evil").mkdir()
    (cwd / "evil" / "model").mkdir()
    (cwd / "evil" / "model" / "shell.yaml").write_text("_target_: subprocess.run\nargs: [touch, pwned]\n")
    return cwd


def snapshot(root: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in root.rglob("*") if path.is_file()}


# A device this machine lacks (mps here, cuda on an Apple machine), and the ones it offers instead.
MISSING_DEVICE = "cuda" if torch.backends.mps.is_available() else "mps"
OFFERED = ", ".join(["auto", "cpu"] + [d for d, ok in [("cuda", torch.cuda.is_available()),
                                                       ("mps", torch.backends.mps.is_available())] if ok])
VALID_HERE = {  # cases that are not mistakes on some machines: skipped there, with the reason
    "trainer.precision=fp16": (torch.cuda.is_available(), "fp16 is valid on this CUDA machine (test_features_take_effect checks it)"),
    f"trainer.device={MISSING_DEVICE}": (torch.cuda.is_available() and torch.backends.mps.is_available(), "this machine has every device"),
}

CASES = [
    # (arguments, words the one line must contain)
    (["optim.lr=abc"], ["optim.lr", "Float"]),
    (["epochs=-1"], ["epochs=-1", ">= 1"]),
    (["epochs=abc"], ["epochs", "Integer"]),
    (["model=huge"], ["model=huge: no such option; choose one of: cnn, large, small"]),
    (["trainer.epochz=3"], ["trainer.epochz", "unknown field", "max_batches"]),
    (["+epocs=3"], ["epocs", "did you mean epochs"]),
    (["modle=large"], ["modle", "did you mean model"]),
    (["model.activation=swish"], ["model.activation", "relu, gelu, tanh, silu"]),
    (["model.dropout=1.5"], ["model.dropout", "[0, 1)"]),
    ([f"trainer.device={MISSING_DEVICE}"], [f"trainer.device={MISSING_DEVICE}: not available", f"choose one of: {OFFERED}"]),
    (["tracker=cloud"], ["SWANLAB_API_KEY", "tracker=local"]),
    (["tracker.project=my project"], ["tracker.project", "letters, digits"]),
    (["hydra.run.dir=outputs/earlier"], ["already holds a run"]),
    (["model.hidden=???"], ["model.hidden is required: set it with model.hidden=VALUE"]),
    (["dataset=mnist"], ["dataset=mnist: no files in data/MNIST/raw", "dataset.download=true"]),
    (["model.norm=weight"], ["model.norm=weight", "none, batch, group, instance, layer"]),
    (["trainer.precision=fp16"], ["trainer.precision=fp16 needs CUDA"]),
    (["resume=corrupt.pt"], ["corrupt.pt: not a readable checkpoint (truncated or corrupt"]),
    (["resume=outputs/earlier", "model=large"], ["made with another config", "model.hidden=[128] there, [256, 128] here"]),
    (["resume=outputs/nowhere"], ["resume=outputs/nowhere: no such checkpoint file or run directory"]),
    (["-m", "resume=outputs/earlier"], ["cannot be combined with -m"]),
    (["optim.lr=1e6", "trainer.max_batches=null"], ["train/loss became nan at epoch 1", "lower optim.lr"]),
    (["model._target_=os.system"], ["model._target_=os.system: refused", "os is never allowed"]),
    (["model._target_=mylib.Net"], ["model._target_=mylib.Net: refused", "allowed_targets=[mylib.Net]"]),
    (["+hydra.callbacks.x._target_=subprocess.run"], ["hydra.callbacks.x._target_=subprocess.run: refused"]),
    (["allowed_targets=[subprocess.run]", "model._target_=subprocess.run"], ["subprocess is never allowed"]),
    (["--config-dir", "evil", "model=shell"], ["model._target_=subprocess.run: refused"]),
]
# Cases run by a real `python -m typedexp`, one per path an error takes (see the module docstring).
REAL_PROCESS = {"optim.lr=abc", "resume=corrupt.pt", "optim.lr=1e6 trainer.max_batches=null", "--config-dir evil model=shell"}
assert REAL_PROCESS <= {" ".join(args) for args, _ in CASES}


@pytest.mark.parametrize(("args", "words"), CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_input_is_one_line_and_exit_2(project: Path, args: list[str], words: list[str]) -> None:
    valid, reason = VALID_HERE.get(args[0], (False, ""))
    if valid:
        pytest.skip(reason)
    before = snapshot(project / "outputs" / "earlier")
    tracker = [] if any(a.startswith("tracker") for a in args) else ["tracker=disabled"]
    flags = [a for a in args if "=" not in a]  # Hydra's flags (-m, --config-dir DIR) go first
    overrides = [a for a in args if "=" in a]
    run = run_cli if " ".join(args) in REAL_PROCESS else run_main
    done = run([*flags, *tracker, "trainer.progress=off", *overrides], project)
    assert done.returncode == 2
    assert len(done.stderr_lines) == 1, done.stderr
    line = done.stderr_lines[0]
    assert line.startswith("typedexp: error: ")
    for word in words:
        assert word in line
    assert "Traceback" not in done.stderr + done.stdout
    assert snapshot(project / "outputs" / "earlier") == before  # a refused resume leaves no .hydra/resume-*/ either
    assert not (project / "pwned").exists()


def test_full_error_env_restores_the_traceback(project: Path) -> None:
    done = run_cli(["epochs=-1", "tracker=disabled"], project, env={"HYDRA_FULL_ERROR": "1"})
    assert done.returncode != 0
    assert "Traceback" in done.stderr and "ConfigError" in done.stderr


def test_cloud_without_key_fails_at_once_without_prompting(project: Path) -> None:
    done = run_cli(["tracker=cloud", *QUICK[1:]], project)
    assert done.returncode == 2
    assert "swanlab" not in done.stdout.lower()  # failed before SwanLab started


def test_a_failing_sweep_job_does_not_stop_the_others(project: Path) -> None:
    done = run_main(["-m", "epochs=-1,1", *QUICK[:1], *QUICK[2:]], project)
    assert done.returncode == 2
    assert done.stderr_lines == ["typedexp: error: job 0 (epochs=-1,trainer.max_batches=2): epochs=-1: must be an integer >= 1"]
    assert len(list((project / "multirun").rglob("metrics.jsonl"))) == 1


@pytest.mark.parametrize(
    ("overrides", "error", "words"),
    [
        (["optim.lr=abc"], ConfigError, "optim.lr"),
        (["model=huge"], ConfigError, "choose one of: cnn, large, small"),
        (["epochs=0"], ConfigError, "epochs=0"),
        (["tracker=cloud"], TrackerError, "SWANLAB_API_KEY"),
    ],
)
def test_launch_raises_the_same_typed_errors(
    workdir: Path, overrides: list[str], error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words.replace("[", r"\[")):
        launch([*QUICK[1:], *overrides])


def test_a_secret_typed_into_an_override_is_refused(project: Path) -> None:
    done = run_main([*QUICK, "tracker.description=sk-test-1234567"], project, env={"SWANLAB_API_KEY": "sk-test-1234567"})
    assert done.returncode == 2
    assert done.stderr_lines == [
        "typedexp: error: tracker.description: the value contains SWANLAB_API_KEY; secrets are never put in "
        "configs (Hydra saves overrides in .hydra/); read it from the environment instead"
    ]


def test_the_api_key_is_in_no_file_the_run_writes(workdir: Path) -> None:
    secret = "sk-never-in-a-file-42"
    args = ["tracker=offline", "tracker.log_dir=sl", "tracker.description=${oc.env:SWANLAB_API_KEY}", *QUICK[1:]]
    done = run_cli(args, workdir, env={"SWANLAB_API_KEY": secret})
    assert done.returncode == 0, done.stderr
    assert secret not in done.stdout + done.stderr
    files = [path for path in workdir.rglob("*") if path.is_file()]
    assert any(path.name == "last.pt" for path in files) and any(path.suffix == ".swanlab" for path in files)
    for path in files:
        assert secret.encode() not in path.read_bytes(), path


def test_a_failing_tracker_warns_once_and_training_completes(workdir: Path) -> None:
    (workdir / "a-file").write_text("the tracker's log_dir cannot be created under a file")
    done = run_main(["tracker=offline", "tracker.log_dir=a-file/sl", *QUICK[1:]], workdir)
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr_lines if "typedexp:" in line]
    assert warnings == [
        "typedexp: warning: tracking failed (start: NotADirectoryError: [Errno 20] Not a directory: 'a-file/sl'); "
        "training continues without the tracker, metrics.jsonl stays complete"
    ]
    assert "tracking failed (start: NotADirectoryError" in done.stdout  # the summary line says so
    metrics = next((workdir / "outputs").rglob("metrics.jsonl")).read_text().splitlines()
    assert len(metrics) == 2  # 2 steps: one train point (epoch end) and one validation point


# digits: 1,437 training images, batch 64 -> 23 batches per epoch; epoch 2 is steps 24..46.
SIGNAL_ARGS = ["tracker=disabled", "trainer.progress=off", "epochs=2", "model.dropout=0.2",
               "trainer.log_every=3", "trainer.checkpoint_every=10"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run that interrupted ones must equal once resumed: trained once per xdist worker, in this
    process (~2 s; the interrupted runs and their resumes are the real processes)."""
    cwd = tmp_path_factory.mktemp("reference")
    done = run_main([*SIGNAL_ARGS, "hydra.run.dir=ref"], cwd)
    assert done.returncode == 0, done.stderr
    return cwd / "ref"


def assert_same_run(run_dir: Path, reference: Path) -> None:
    ours = torch.load(run_dir / "model.pt", weights_only=True)
    theirs = torch.load(reference / "model.pt", weights_only=True)
    for name in theirs:
        assert torch.equal(ours[name], theirs[name]), name
    assert (run_dir / "metrics.jsonl").read_bytes() == (reference / "metrics.jsonl").read_bytes()


def test_sigkill_mid_epoch_then_resume_is_bit_exact(workdir: Path, signalled: SignalServer, uninterrupted: Path) -> None:
    killed = signalled(36, "SIGKILL", [*SIGNAL_ARGS, "hydra.run.dir=run"], workdir)
    assert killed.returncode == -signal.SIGKILL
    checkpoint = read_checkpoint(workdir / "run" / "checkpoints" / "last.pt")
    assert (checkpoint.position.epoch, checkpoint.position.batch, checkpoint.position.step) == (2, 7, 30)
    assert '"step": 36' in (workdir / "run" / "metrics.jsonl").read_text()  # logged, then lost
    resumed = run_cli(["resume=run"], workdir)
    assert resumed.returncode == 0, resumed.stderr
    assert f"run dir: {workdir / 'run'}" in resumed.stdout
    assert "typedexp: resuming from epoch 2, step 30" in resumed.stdout.splitlines()  # the last checkpoint's step
    assert_same_run(workdir / "run", uninterrupted)


@pytest.mark.parametrize(
    ("name", "code"), [("SIGINT", 130), pytest.param("SIGTERM", 143, marks=pytest.mark.slow)]
)
def test_a_signal_saves_a_checkpoint_exits_128_plus_n_and_resumes_exactly(
    workdir: Path, signalled: SignalServer, uninterrupted: Path, name: str, code: int
) -> None:
    stopped = signalled(36, name, [*SIGNAL_ARGS, "hydra.run.dir=run"], workdir)
    assert stopped.returncode == code
    assert stopped.stderr_lines == [
        f"typedexp: interrupted by {name} at epoch 2, step 36; saved "
        f"{workdir / 'run' / 'checkpoints' / 'last.pt'}; continue with: typedexp resume={workdir / 'run'}"
    ]
    assert read_checkpoint(workdir / "run" / "checkpoints" / "last.pt").position.step == 36
    assert not (workdir / "run" / "model.pt").exists()
    resumed = run_cli(["resume=run"], workdir)
    assert resumed.returncode == 0, resumed.stderr
    assert "typedexp: resuming from epoch 2, step 36" in resumed.stdout.splitlines()  # where the line said it stopped
    assert_same_run(workdir / "run", uninterrupted)


def test_a_second_sigint_exits_at_once_without_saving(workdir: Path, signalled: SignalServer) -> None:
    stopped = signalled(36, "SIGINT,SIGINT", [*SIGNAL_ARGS, "hydra.run.dir=run"], workdir)
    assert stopped.returncode == 130
    last = workdir / "run" / "checkpoints" / "last.pt"
    assert stopped.stderr_lines == [f"typedexp: error: SIGINT again; exiting at once (last checkpoint: {last})"]
    assert read_checkpoint(last).position.step == 30  # the step-36 save never happened
