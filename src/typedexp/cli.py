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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from typedexp.errors import Interrupted, TypedexpError
from typedexp.report import INTERRUPTED_EXIT, print_error
from typedexp.safety.secrets import MaskingStream, mask_log_records

if TYPE_CHECKING:
    from omegaconf import DictConfig

__all__ = ["INTERRUPTED_EXIT", "USER_ERROR_EXIT", "main", "print_error"]

USER_ERROR_EXIT = 2


def full_errors_wanted() -> bool:
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


def _report_in_one_line(func: Callable[[], Any]) -> Any:
    """Stands in for Hydra's ``run_and_report``, which prints multi-line reports and tracebacks.

    ``Any`` because it replaces Hydra's own ``run_and_report(func: Any) -> Any``.
    """
    from typedexp.error_messages import describe

    try:
        return func()
    except Exception as exc:
        print_error(describe(exc))
        sys.exit(USER_ERROR_EXIT)


@dataclass(frozen=True)
class JobFailed:
    """A job's one-line error, as the job hands it back to the launching process.

    A launcher other than Hydra's basic one runs the job in another process (joblib's workers, a
    submitit job on this machine or on a Slurm node, a Ray worker) and pickles what the task
    returns back to the launcher. A plain string pickles wherever the job ran; the exception
    itself might not. ``pid`` is the process that ran the job: when it is not the launcher's, the
    line went to that process's stderr (a submitit log file, a worker's output), so the launcher
    prints it again at the end of the sweep.
    """

    message: str
    pid: int
    run_dir: str


def failed_jobs(returned: object) -> list[JobFailed]:
    """The ``JobFailed`` values in what ``Hydra.multirun`` returned: one list of JobReturns per batch."""
    from hydra.core.utils import JobReturn, JobStatus

    found: list[JobFailed] = []
    for batch in returned if isinstance(returned, list) else []:
        for job in batch if isinstance(batch, (list, tuple)) else []:
            # A FAILED job raised, and Hydra's sweeper has already reported it; only completed
            # jobs hold what the task returned.
            if isinstance(job, JobReturn) and job.status == JobStatus.COMPLETED and isinstance(job.return_value, JobFailed):
                found.append(job.return_value)
    return found


def report_failures_from_elsewhere(returned: object) -> int:
    """Print the lines of jobs that failed in another process; the number of failed jobs."""
    failed = failed_jobs(returned)
    for failure in failed:
        if failure.pid != os.getpid():  # a job run here printed its line when it failed
            print_error(f"job in {failure.run_dir}: {failure.message}")
    return len(failed)


def share_repository_for_help() -> None:
    """Make ``--help`` about 1 s faster (1.5 s -> 0.6 s here) with the same output.

    Hydra 1.3 lists each config group's options through a ``CachingConfigRepository``, which
    deep-copies the whole config repository every time (about 80 copies for the help page), so
    that initializing its search path cannot touch the shared one. The help path only reads,
    and the process exits right after, so it can share the repository instead of copying it.
    """
    import hydra._internal.config_loader_impl as hydra_loader
    import hydra._internal.config_repository as hydra_repository

    class SharedRepository(hydra_repository.CachingConfigRepository):
        def __init__(self, delegate: hydra_repository.IConfigRepository) -> None:
            self.delegate = delegate
            self.cache = {}

    # The loader module imports the class by name, so the name must be replaced there.
    setattr(hydra_loader, "CachingConfigRepository", SharedRepository)


def mask_secrets_in_output() -> None:
    """Mask secrets in all the process prints and logs, Hydra's output included (safety/secrets.py)."""
    if not isinstance(sys.stdout, MaskingStream):
        sys.stdout = MaskingStream(sys.stdout, reports=False)
        sys.stderr = MaskingStream(sys.stderr, reports=True)
        mask_log_records()


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
    try:
        _main(list(sys.argv[1:] if argv is None else argv))
    except Interrupted as exc:  # SIGINT/SIGTERM: a checkpoint was saved; the line says where
        print_error(str(exc))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:  # Ctrl-C at any other moment: start-up, composition, set-up
        print_error("interrupted")
        sys.exit(INTERRUPTED_EXIT)


def _main(args: list[str]) -> None:
    from typedexp.config_guard import config_guard, require_supported_hydra
    from typedexp.preflight import flags_first, overrides_in, typed_allow_list, typed_launcher_settings
    from typedexp.store import register_configs

    mask_secrets_in_output()
    register_configs()
    try:
        require_supported_hydra()  # the config guard refuses to run unchecked
        refuse_unsafe_flags(args)
        typed = typed_allow_list(overrides_in(args))  # before resume= adds a run's saved overrides
        typed_launcher = typed_launcher_settings(overrides_in(args))
    except TypedexpError as exc:
        print_error(str(exc))
        sys.exit(USER_ERROR_EXIT)
    with config_guard(typed, typed_launcher):  # every config composed from here on is checked (docs/safety.md)
        run_hydra(flags_first(args))  # -m, --cfg job, --help may come after the overrides


def run_hydra(args: list[str]) -> None:
    """Hydra's main over the typed store, with ``args`` prepared and one-line errors."""
    import hydra
    import hydra._internal.utils as hydra_internal
    from hydra.core.hydra_config import HydraConfig

    from typedexp.error_messages import user_message
    from typedexp.launch import Failure, guarded_task
    from typedexp.preflight import prepare_argv
    from typedexp.store import APP_NAME

    try:
        sys.argv = [sys.argv[0], *prepare_argv(args)]  # secrets, resume=, reused run dirs
    except TypedexpError as exc:
        print_error(str(exc))
        sys.exit(USER_ERROR_EXIT)
    if "--help" in sys.argv[1:] or "-h" in sys.argv[1:]:
        share_repository_for_help()
    report: Callable[[Callable[[], Any]], Any] = (
        hydra_internal.run_and_report if full_errors_wanted() else _report_in_one_line
    )
    returned: list[object] = []

    # Any: the signature of Hydra's own run_and_report, which this stands in for.
    def run_and_keep(func: Callable[[], Any]) -> Any:
        # What Hydra's `_run_hydra` gets back from `Hydra.multirun` is where the failures of jobs
        # that ran in other processes (joblib, submitit, Ray) come back: it calls this module
        # global for each of its steps and drops the values.
        value = report(func)
        returned.append(value)
        return value

    hydra_internal.run_and_report = run_and_keep  # Hydra 1.3 has no hook for error reporting
    failures: list[str] = []
    task = guarded_task()

    def cli_task(cfg: DictConfig) -> object:
        outcome = task(cfg)
        if isinstance(outcome, Failure):
            message = user_message(outcome.error)
            if message is None or full_errors_wanted():
                raise outcome.error
            print_error(message)
            failures.append(message)
            return JobFailed(message, os.getpid(), str(HydraConfig.get().runtime.output_dir))
        return outcome

    hydra.main(config_path=None, config_name=APP_NAME, version_base="1.3")(cli_task)()
    failed_elsewhere = sum(report_failures_from_elsewhere(value) for value in returned)
    if failures or failed_elsewhere:
        sys.exit(USER_ERROR_EXIT)
