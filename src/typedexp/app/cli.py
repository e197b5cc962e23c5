"""The ``typedexp`` command: Hydra's CLI over the typed store, with one-line errors.

Hydra prints composition errors over several lines and task errors with a traceback. Here every
user mistake becomes one line on stderr and exit code 2 (``HYDRA_FULL_ERROR=1`` restores Hydra's
full reports). Training failures that are not user mistakes keep Hydra's report. Every config
Hydra composes is checked before it builds anything (``config_guard``), and secrets are masked in
all the process prints.

Hydra, OmegaConf and torch are imported inside ``main``, under its Ctrl-C handler: the console
script imports this module first, and a Ctrl-C while they load (about 3 s) must still print one
line and exit with 130, not a traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from typedexp.core.errors import Interrupted, TypedexpError
from typedexp.core.report import INTERRUPTED_EXIT, print_error, print_interrupted
from typedexp.core.safety.secrets import mask_process_output

if TYPE_CHECKING:
    from omegaconf import DictConfig

__all__ = ["INTERRUPTED_EXIT", "USER_ERROR_EXIT", "main", "print_error"]

USER_ERROR_EXIT = 2
PIPE_CLOSED_EXIT = 1  # what Python's docs and rich (the runs table) use when stdout's reader is gone
DASHBOARD = "dashboard"  # `typedexp dashboard [--port N] [--logdir DIR]` (dashboard.py)
RUNS = "runs"  # `typedexp runs [DIR] [--sort M] [--where K=V] [--columns C] [--group-by K] [--csv F] [--plot M]`, `--diff A B` (runs/table.py)


FULL_ERROR = "HYDRA_FULL_ERROR"  # Hydra's documented switch: "1" re-raises instead of reporting
# Set beside it by errors_raised_by_hydra, so that a typedexp started from this one (a launcher's
# worker, a user's subprocess) does not take the inherited switch for the user's wish.
FULL_ERROR_SET_BY_TYPEDEXP = "TYPEDEXP_SET_HYDRA_FULL_ERROR"


def full_errors_wanted() -> bool:
    """Whether the user asked for Hydra's full reports (``HYDRA_FULL_ERROR=1``)."""
    return os.environ.get(FULL_ERROR) == "1" and os.environ.get(FULL_ERROR_SET_BY_TYPEDEXP) != "1"


@contextmanager
def errors_raised_by_hydra() -> Iterator[None]:
    """Let Hydra's errors reach typedexp, which reports them in one line.

    Hydra 1.3 has no hook for error reporting: its ``run_and_report`` prints a multi-line report
    (a traceback for most errors) and exits 1, unless ``HYDRA_FULL_ERROR=1``, when it re-raises.
    So the switch is on while Hydra runs, and ``run_hydra`` catches what comes out. Processes
    started meanwhile (a launcher's workers) inherit it; they run jobs, where Hydra reports nothing.
    """
    before = {name: os.environ.get(name) for name in (FULL_ERROR, FULL_ERROR_SET_BY_TYPEDEXP)}
    if not full_errors_wanted():
        os.environ[FULL_ERROR_SET_BY_TYPEDEXP] = "1"
    os.environ[FULL_ERROR] = "1"
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def share_repository_for_help() -> bool:
    """Make ``--help`` about 1.3 s faster (2.2 s -> 0.9 s here) with the same output; False if left out.

    Hydra 1.3 lists each config group's options through a ``CachingConfigRepository``, which
    deep-copies the whole config repository every time (about 80 copies for the help page), so
    that initializing its search path cannot touch the shared one. The help path only reads,
    and the process exits right after, so it can share the repository instead of copying it.
    Hydra has no public hook for this (its help template only picks what is printed), so the
    patch is installed only on the pinned hydra-core and while the class has its known shape.
    """
    from typedexp.core.versions import allowed, has_parameters

    def known_shape() -> bool:
        import hydra._internal.config_loader_impl as hydra_loader
        import hydra._internal.config_repository as hydra_repository

        caching = getattr(hydra_loader, "CachingConfigRepository", None)
        return (
            caching is getattr(hydra_repository, "CachingConfigRepository", None)  # not replaced already
            and isinstance(caching, type)
            and has_parameters(vars(caching).get("__init__"), ("self", "delegate"))
            and all(callable(getattr(caching, name, None)) for name in ("get_group_options", "load_config"))
        )

    if not allowed("help_shares_repository", known_shape):
        return False
    import hydra._internal.config_loader_impl as hydra_loader
    import hydra._internal.config_repository as hydra_repository

    class SharedRepository(hydra_repository.CachingConfigRepository):
        def __init__(self, delegate: hydra_repository.IConfigRepository) -> None:
            self.delegate = delegate  # Hydra's own sets a deep copy of it
            self.cache = {}

    # The loader module imports the class by name, so the name must be replaced there.
    setattr(hydra_loader, "CachingConfigRepository", SharedRepository)
    return True


# Hydra does one of these per command, and raises a bare ValueError (a traceback) for two of them.
MODE_FLAGS = {"-m": "-m", "--multirun": "-m", "-r": "--run", "--run": "--run", "-c": "--cfg", "--cfg": "--cfg",
              "-i": "--info", "--info": "--info", "-sc": "--shell-completion", "--shell-completion": "--shell-completion"}


def refuse_unsafe_flags(argv: Sequence[str]) -> None:
    # Hydra's rerun unpickles .hydra/config.pickle: a run directory from elsewhere could run code.
    if any(arg.startswith("--experimental-rerun") for arg in argv):
        raise TypedexpError("--experimental-rerun is refused (it unpickles a file); continue a run with resume=<run dir>")
    modes = sorted({MODE_FLAGS[arg] for arg in argv if arg in MODE_FLAGS})
    if len(modes) > 1:
        raise TypedexpError(
            f"{' and '.join(modes)} cannot be used together (Hydra does one of them); to see a sweep's config, "
            "drop -m and the sweep's commas: typedexp --cfg hydra hydra/launcher=joblib"
        )


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``typedexp`` and ``python -m typedexp``; ``argv`` defaults to sys.argv[1:]."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        dispatch(args)
    except BrokenPipeError:  # the reader went away (`typedexp --help | head -3`): nothing went wrong
        reader_gone()


def dispatch(args: list[str]) -> None:
    if args[:1] == [DASHBOARD]:  # a subcommand, not an override (those always hold '='): no Hydra
        from typedexp.runs.dashboard import main as dashboard

        dashboard(args[1:])
        return
    if args[:1] == [RUNS]:
        from typedexp.runs.table import main as runs

        runs(args[1:])
        return
    try:
        with signals_interrupt():
            _main(args)
    except Interrupted as exc:  # SIGINT/SIGTERM: a checkpoint was saved; the line says where
        print_interrupted(str(exc))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:  # Ctrl-C at any other moment: start-up, composition, set-up
        print_interrupted("interrupted")
        sys.exit(INTERRUPTED_EXIT)


def reader_gone() -> None:
    """Exit quietly with 1, as rich does for the runs table, without a second error at shutdown.

    Python ignores SIGPIPE, so a closed pipe is an exception; the interpreter's last flush of
    stdout would raise again, so stdout is pointed at /dev/null first (Python's signal docs).
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.exit(PIPE_CLOSED_EXIT)


@contextmanager
def signals_interrupt() -> Iterator[None]:
    """SIGTERM (``timeout``, Slurm, ``docker stop``) and SIGINT raise ``Interrupted``, naming the
    signal, wherever the command is: composing, loading data, starting. Without this, SIGTERM
    killed the process with no line and no result.json. Training, the ranks' launcher and the
    trackers' closing put their own handlers in for their stage (engine/signals.py, ranks.py) and
    restore these.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise Interrupted(signum, f"interrupted by {signal.Signals(signum).name}")

    previous = {number: signal.signal(number, interrupt) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _main(args: list[str]) -> None:
    from typedexp.app.config_guard import config_guard, require_supported_hydra
    from typedexp.app.preflight import (
        flags_first, overrides_in, typed_allow_list, typed_launcher_settings, typed_rendezvous_settings,
    )
    from typedexp.app.store import register_configs

    mask_process_output()
    register_configs()
    try:
        require_supported_hydra()  # the config guard refuses to run unchecked
        refuse_unsafe_flags(args)
        typed = typed_allow_list(overrides_in(args))  # before resume= adds a run's saved overrides
        typed_launcher = typed_launcher_settings(overrides_in(args))
        typed_rendezvous = typed_rendezvous_settings(overrides_in(args))
    except TypedexpError as exc:
        print_error(str(exc))
        sys.exit(USER_ERROR_EXIT)
    with config_guard(typed, typed_launcher, typed_rendezvous):  # every config composed from here on is checked (docs/safety.md)
        run_hydra(flags_first(args))  # -m, --cfg job, --help may come after the overrides


def run_hydra(args: list[str]) -> None:
    """Hydra's main over the typed store, with ``args`` prepared and one-line errors."""
    import hydra

    from typedexp.app.error_messages import describe, error_line, user_message
    from typedexp.app.launch import Failure, guarded_task
    from typedexp.app.preflight import prepare_argv
    from typedexp.app.store import APP_NAME
    from typedexp.sweeps.summary import forget_last_summary, last_summary, report_interrupted_sweep
    from typedexp.app.preflight import overrides_in
    from typedexp.app.task import swept_keys, sweep_job_label

    try:
        sys.argv = [sys.argv[0], *prepare_argv(args)]  # secrets, resume=, reused run dirs
    except TypedexpError as exc:
        print_error(str(exc))
        sys.exit(USER_ERROR_EXIT)
    if "--help" in sys.argv[1:] or "-h" in sys.argv[1:]:
        share_repository_for_help()
    full_errors = full_errors_wanted()  # read before errors_raised_by_hydra sets the variable
    failures: list[str] = []
    task = guarded_task(swept_keys(overrides_in(sys.argv[1:])))

    def cli_task(cfg: DictConfig) -> object:
        outcome = task(cfg)
        if isinstance(outcome, Failure):
            label = sweep_job_label()  # "job 3 (model=large,optim.lr=0.1)" in a sweep, else ""
            # A crash keeps Hydra's traceback in a single run; in a sweep it is one line (its
            # traceback is in the job's result.json) and the other jobs still run.
            if full_errors or (user_message(outcome.error) is None and not label):
                raise outcome.error
            print_error(f"{label}: {error_line(outcome.error)}" if label else error_line(outcome.error))
            failures.append(label)
        return outcome

    forget_last_summary()  # an earlier sweep's, in a process that runs main() more than once
    try:
        with errors_raised_by_hydra():
            hydra.main(config_path=None, config_name=APP_NAME, version_base="1.3")(cli_task)()
    except KeyboardInterrupt:  # Ctrl-C, SIGTERM: Hydra skips the summary's on_multirun_end
        report_interrupted_sweep()
        raise
    except BrokenPipeError:
        raise  # not a config mistake: main() exits quietly
    except Exception as exc:  # what Hydra's run_and_report would have printed over several lines
        if full_errors:
            raise
        print_error(describe(exc))
        sys.exit(USER_ERROR_EXIT)
    # Jobs run by another launcher fail in other processes: their failures are read from the
    # sweep dir, by the summary that Hydra's callback just printed.
    summary = last_summary()
    if failures or (summary is not None and summary.failed()):
        sys.exit(USER_ERROR_EXIT)
