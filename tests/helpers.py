"""Shared pieces for tests: running the CLI as a user would, and a recording tracker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig

from typedexp.tracking import RunOutcome

# Fast settings for runs whose numbers do not matter.
QUICK = ["tracker=disabled", "epochs=1", "trainer.max_batches=2", "trainer.progress=off"]


@dataclass(frozen=True)
class CliRun:
    returncode: int
    stdout: str
    stderr: str

    @property
    def stderr_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def run_module(module_args: list[str], cwd: Path, env: Mapping[str, str] | None = None) -> CliRun:
    """``python -m <module_args>`` in ``cwd``, without the caller's API key or HYDRA_FULL_ERROR."""
    full_env = {k: v for k, v in os.environ.items() if k not in ("SWANLAB_API_KEY", "HYDRA_FULL_ERROR")}
    full_env.update(env or {})
    done = subprocess.run(
        [sys.executable, "-m", *module_args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return CliRun(done.returncode, done.stdout, done.stderr)


def run_cli(args: list[str], cwd: Path, env: Mapping[str, str] | None = None) -> CliRun:
    """``python -m typedexp args...`` in ``cwd``, as a user would type it."""
    return run_module(["typedexp", *args], cwd, env)


@dataclass
class RecordingTracker:
    """A Tracker that keeps every call, for checking what the engine reports."""

    points: list[tuple[int, int, dict[str, float]]] = field(default_factory=list)
    outcome: RunOutcome | None = None

    def log(self, metrics: Mapping[str, float], *, step: int, epoch: int) -> None:
        self.points.append((step, epoch, dict(metrics)))

    def finish(self, outcome: RunOutcome, error: str | None = None) -> None:
        self.outcome = outcome


def run_signalled(step: int | str, signals: str, args: list[str], cwd: Path) -> CliRun:
    """The CLI with ``args``, sent ``signals`` (e.g. "SIGINT" or "SIGKILL") right after ``step`` is logged.

    ``step="val@N"`` sends them as epoch N's validation starts instead.
    """
    root = Path(__file__).resolve().parent.parent
    path = os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])
    return run_module(["tests.signal_run", str(step), signals, "--", *args], cwd, {"PYTHONPATH": path})


class SignalServer:
    """``run_signalled`` without the ~4 s of CPU each fresh interpreter spends importing torch.

    Each case is still its own process, forked from one that has imported torch, Hydra and the CLI
    (``python -m tests.signal_run serve``): the signal stops that process, whose exit status,
    streams and children are the case's alone. Use it through the ``signalled`` fixture.
    """

    def __init__(self) -> None:
        root = Path(__file__).resolve().parent.parent
        env = {k: v for k, v in os.environ.items() if k not in ("SWANLAB_API_KEY", "HYDRA_FULL_ERROR")}
        env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.signal_run", "serve"], cwd=root, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )

    def _answer(self, timeout_s: float) -> dict[str, int]:
        import json
        import select

        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout_s)
        assert ready, f"no answer from the signal server within {timeout_s} s"
        line = self.process.stdout.readline()
        assert line, f"the signal server ended (exit status {self.process.wait()})"
        answer: dict[str, int] = json.loads(line)
        return answer

    def __call__(self, step: int | str, signals: str, args: list[str], cwd: Path) -> CliRun:
        """What ``run_signalled(step, signals, args, cwd)`` returns, from a forked case."""
        import json
        import tempfile

        assert self.process.stdin is not None
        with tempfile.TemporaryDirectory(prefix="signalled") as streams:
            out, err = Path(streams) / "stdout", Path(streams) / "stderr"
            request = {"argv": [str(step), signals, "--", *args], "cwd": str(cwd), "stdout": str(out), "stderr": str(err)}
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
            pid = self._answer(60)["pid"]
            try:
                code = self._answer(300)["returncode"]
            except AssertionError:
                os.kill(pid, signal.SIGKILL)  # the server reaps it and answers; this case has failed
                raise
            return CliRun(code, out.read_text(), err.read_text())

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=60)


def run_main(args: list[str], cwd: Path, env: Mapping[str, str] | None = None) -> CliRun:
    """``typedexp.app.cli.main(args)`` in this process, in ``cwd``: ~0.1 s for an error, not ~3 s.

    Catches the SystemExit and captures what it prints; torch and Hydra stay imported between calls.
    Like ``run_cli``, without the caller's API key or HYDRA_FULL_ERROR, plus ``env`` for the call.
    """
    import contextlib
    import io

    from typedexp.app import cli

    out, err = io.StringIO(), io.StringIO()
    before, argv = Path.cwd(), sys.argv
    changed = {"SWANLAB_API_KEY", "HYDRA_FULL_ERROR", *(env or {})}
    saved_env = {key: os.environ.pop(key) for key in changed if key in os.environ}
    os.environ.update(env or {})
    os.chdir(cwd)
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            cli.main(args)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        os.chdir(before)
        sys.argv = argv
        for key in changed:
            os.environ.pop(key, None)
        os.environ.update(saved_env)
    return CliRun(code, out.getvalue(), err.getvalue())


def leaf_kinds(node: DictConfig, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(dotted key, OmegaConf node type) of every leaf under ``node``; lists are leaves."""
    for key in node.keys():
        name = f"{prefix}{key!s}"
        child = node._get_node(str(key))
        if str(key).startswith("_"):
            continue
        if isinstance(child, DictConfig):
            yield from leaf_kinds(child, f"{name}.")
        elif child is not None:
            yield name, type(child).__name__


def config_fields() -> list[tuple[list[str], str, str]]:
    """Every leaf of the composed config, for each option of each group: (option overrides, key, kind).

    ``kind`` is the OmegaConf node type (``FloatNode``, ``IntegerNode``, ``ListConfig``, ...), so a
    field added to a spec is found here without editing any test. Trackers are composed as
    ``disabled`` only (all options share one spec), so no example starts SwanLab; ``hydra.*`` is
    Hydra's, not typedexp's.
    """
    from hydra import compose, initialize
    from hydra.core.config_store import ConfigStore

    from typedexp.app.store import APP_NAME, GROUPS, register_configs

    register_configs()
    choices: list[list[str]] = [["tracker=disabled"]]
    for group in (group for group in GROUPS if group != "tracker"):
        options = sorted(name.removesuffix(".yaml") for name in ConfigStore.instance().repo[group])
        choices += [["tracker=disabled", f"{group}={option}"] for option in options]
    found: dict[str, tuple[list[str], str, str]] = {}
    with initialize(version_base="1.3", config_path=None):
        for overrides in choices:
            for name, kind in leaf_kinds(compose(config_name=APP_NAME, overrides=overrides)):
                if not name.startswith("hydra."):
                    found.setdefault(name, (overrides, name, kind))
    return sorted(found.values(), key=lambda item: item[1])


class Hung(BaseException):
    """Raised by ``no_hang``: a BaseException, so no ``except Exception``/``except OSError`` swallows it."""


@contextmanager
def no_hang(seconds: int = 60) -> Iterator[None]:
    """Fail the test, rather than hang the suite, if the block still runs after ``seconds``.

    SIGALRM interrupts a blocking system call (``open`` of a FIFO waits for a writer forever) and
    its handler raises ``Hung``. Main thread only, as pytest runs tests.
    """

    def fail(signum: int, frame: object) -> None:
        raise Hung(f"still blocked after {seconds} s")

    previous = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def wait_for(condition: Callable[[], bool], timeout_s: float = 120.0) -> None:
    """Poll ``condition`` until it holds (a failed assertion after ``timeout_s``): no fixed sleeps."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@contextmanager
def held_run(args: list[str], cwd: Path) -> Iterator[subprocess.Popen[str]]:
    """The CLI with ``args`` in ``cwd``, alive for the block: paused after its first logged point.

    ``tests/hold_run.py`` holds it there; after the block it is released, and must then finish
    with exit code 0 (unless the block failed).
    """
    ready, release = cwd / "ready", cwd / "release"
    root = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if k not in ("SWANLAB_API_KEY", "HYDRA_FULL_ERROR")}
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.hold_run", str(ready), str(release), "--", *args],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_for(lambda: ready.exists() or process.poll() is not None)
        assert process.poll() is None, process.communicate()
        yield process
    finally:
        release.touch()
        _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
