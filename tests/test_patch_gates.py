"""The patches of third-party internals: installed on the pinned versions only, else the library's
own behaviour with a debug note; and a loud failure when an installed version leaves its pin."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import hydra._internal.config_loader_impl as hydra_loader
import hydra._internal.config_repository as hydra_repository
import hydra._internal.utils as hydra_utils
from hydra._internal.config_search_path_impl import ConfigSearchPathImpl
import pytest

from typedexp.app import cli

from typedexp.core import versions as patch_gates
from typedexp.runs.dashboard import fix_run_table
from typedexp.core.versions import PATCHES, PINS, allowed, has_parameters
from typedexp.tracking.swanlab_patches import list_requirements_in_process, writer_has_its_shape

from tests.helpers import run_cli, run_main

GATES_LOG = "typedexp.core.versions"


def test_the_installed_versions_are_the_pinned_ones() -> None:
    """Fails when hydra-core, swanlab or swanboard moves: the patches must be re-checked first."""
    for distribution, pinned in PINS.items():
        installed = metadata.version(distribution)
        targets = "; ".join(target for name, (dist, target) in PATCHES.items() if dist == distribution)
        assert installed in pinned, (
            f"{distribution} {installed} is installed, but typedexp's patches of its internals were written "
            f"against {', '.join(sorted(pinned))}. Off the pin they are silently left out (slower, still correct). "
            f"Re-check each against the new source: {targets}; run tests/test_patch_gates.py and "
            f"tests/test_swanlab_cost.py, re-measure with `python -m benchmarks.patches`, then add the "
            f"version to PINS in src/typedexp/core/versions.py (or drop the patch)."
        )


def test_every_patch_names_a_pinned_distribution() -> None:
    assert {distribution for distribution, _ in PATCHES.values()} == set(PINS)


@pytest.fixture
def other_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every distribution reads as a version no patch was written against."""
    monkeypatch.setattr(patch_gates, "installed_version", lambda distribution: "99.0")


def gate_notes(caplog: pytest.LogCaptureFixture, patch: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == GATES_LOG and r.levelno == logging.DEBUG
            and f"patch {patch} " in r.getMessage()]


def test_a_refused_gate_logs_one_debug_note_and_never_asks_for_the_shape(
    other_versions: None, caplog: pytest.LogCaptureFixture
) -> None:
    asked: list[bool] = []

    def shape_ok() -> bool:
        asked.append(True)
        return True

    caplog.set_level(logging.DEBUG, logger=GATES_LOG)
    assert not allowed("requirements_in_process", shape_ok)
    assert asked == []  # off the pin the patched module is not even imported
    (note,) = gate_notes(caplog, "requirements_in_process")
    assert "swanlab 99.0 is not the pinned 0.10.3" in note


def test_an_unexpected_shape_on_the_pinned_version_is_refused_too(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=GATES_LOG)
    assert allowed("requirements_in_process", lambda: True)
    assert caplog.records == []  # nothing to say when the patch goes in
    assert not allowed("requirements_in_process", lambda: False)
    moved: dict[str, bool] = {}
    assert not allowed("requirements_in_process", lambda: moved["get"])  # an internal that moved
    notes = gate_notes(caplog, "requirements_in_process")
    assert len(notes) == 2 and "does not have the expected shape" in notes[0] and "KeyError" in notes[1]


def test_parameter_names_are_the_shape() -> None:
    def before(self: object, records: list[object]) -> None: ...

    def after(self: object, records: list[object], flush: bool) -> None: ...

    assert has_parameters(before, ("self", "records"))
    assert not has_parameters(after, ("self", "records"))
    assert not has_parameters(None, ())


def test_a_changed_dashboard_writer_is_not_patched() -> None:
    from swanlab.deprecated.local import LocalCallbacker, _MetricContext

    class Changed(LocalCallbacker):
        @staticmethod
        def _record_time(record: object, timezone: str = "UTC") -> str:
            return ""

    assert not writer_has_its_shape(Changed, _MetricContext)  # the pinned writer: test_the_real_swanlab_tracker_...


# --- Hydra's --help: the shared repository -------------------------------------------------------


@pytest.fixture
def hydra_repository_restored(monkeypatch: pytest.MonkeyPatch) -> type[hydra_repository.CachingConfigRepository]:
    """Hydra's own class, put back after the test (the shared one is for --help processes only)."""
    monkeypatch.setattr(hydra_loader, "CachingConfigRepository", hydra_repository.CachingConfigRepository)
    return hydra_repository.CachingConfigRepository


def loaders_repository() -> object:
    """The class Hydra's config loader builds its repositories from (a module global it imported)."""
    return getattr(hydra_loader, "CachingConfigRepository")


def copies_delegate(repository_class: type[hydra_repository.CachingConfigRepository]) -> bool:
    delegate = hydra_repository.ConfigRepository(config_search_path=ConfigSearchPathImpl())
    return repository_class(delegate).delegate is not delegate


def test_help_shares_hydras_repository_on_the_pinned_hydra(
    hydra_repository_restored: type[hydra_repository.CachingConfigRepository],
) -> None:
    assert cli.share_repository_for_help()
    shared = loaders_repository()
    assert isinstance(shared, type) and shared is not hydra_repository_restored and issubclass(shared, hydra_repository_restored)
    assert not copies_delegate(shared) and copies_delegate(hydra_repository_restored)


def test_help_keeps_hydras_own_repository_on_another_hydra(
    hydra_repository_restored: type[hydra_repository.CachingConfigRepository],
    other_versions: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=GATES_LOG)
    assert not cli.share_repository_for_help()
    assert loaders_repository() is hydra_repository_restored  # Hydra's copying one
    assert gate_notes(caplog, "help_shares_repository")


# --- SwanLab's environment snapshot --------------------------------------------------------------


@pytest.fixture
def swanlab_snapshot(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[list[str]]]:
    """SwanLab's own ``requirements.get`` in place, its commands recorded (and answered without pip)."""
    from swanlab.sdk.internal.probe_python.environment import requirements

    current = requirements.get
    original = getattr(current, "__wrapped__", current) if getattr(current, "__typedexp_patched__", False) else current
    monkeypatch.setattr(requirements, "get", original)
    commands: list[list[str]] = []

    def try_run(cmd: list[str], timeout: int = 5, check: bool = False) -> subprocess.CompletedProcess[str] | None:
        commands.append(cmd)
        pip = cmd[:4] == [sys.executable, "-m", "pip", "list"]
        return subprocess.CompletedProcess(cmd, 0, stdout="listed-by-pip==1.0\n") if pip else None

    monkeypatch.setattr(requirements, "_try_run", try_run)
    yield commands


def test_on_another_swanlab_its_own_pip_list_records_the_environment(
    workdir: Path, swanlab_snapshot: list[list[str]], other_versions: None, caplog: pytest.LogCaptureFixture
) -> None:
    from swanlab.sdk.internal.probe_python.environment import requirements

    from typedexp.tracking import RunOutcome, SwanLabMode, SwanLabTracking

    own = requirements.get
    caplog.set_level(logging.DEBUG, logger=GATES_LOG)
    tracker = SwanLabTracking(mode=SwanLabMode.offline, log_dir="sl", flush_every_s=0).start(
        config={}, run_name="fallback", run_dir=str(workdir)
    )
    tracker.finish(RunOutcome.success)
    assert requirements.get is own  # not replaced
    assert [sys.executable, "-m", "pip", "list", "--format=freeze"] in swanlab_snapshot
    (run,) = (workdir / "sl").glob("run-*")
    assert (run / "files" / "requirements.txt").read_text() == "listed-by-pip==1.0\n"
    assert gate_notes(caplog, "requirements_in_process")


def test_on_the_pinned_swanlab_the_snapshot_is_read_in_process(swanlab_snapshot: list[list[str]]) -> None:
    from swanlab.sdk.internal.probe_python.environment import requirements

    assert list_requirements_in_process()
    assert "torch==" in str(requirements.get()) and swanlab_snapshot == []  # no subprocess, no pip


# --- the dashboard's run table (swanboard) -------------------------------------------------------


@pytest.fixture
def swanboard_tag_dir(monkeypatch: pytest.MonkeyPatch) -> object:
    import swanboard.controller.project as project

    monkeypatch.setattr(project, "get_tag_dir", project.get_tag_dir)
    return project.get_tag_dir


def test_run_table_fix_only_on_the_pinned_swanboard(
    tmp_path: Path, swanboard_tag_dir: object, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import swanboard.controller.project as project

    caplog.set_level(logging.DEBUG, logger=GATES_LOG)
    with monkeypatch.context() as faked:
        faked.setattr(patch_gates, "installed_version", lambda distribution: "0.2.0")
        assert not fix_run_table(tmp_path)
    assert project.get_tag_dir is swanboard_tag_dir
    assert gate_notes(caplog, "dashboard_run_table")
    assert fix_run_table(tmp_path) and project.get_tag_dir is not swanboard_tag_dir
    assert not fix_run_table(tmp_path)  # the replaced function is not swanboard's: never wrapped twice


# --- Hydra's error report: its documented switch, not a replaced function ------------------------


def test_one_line_errors_leave_hydras_run_and_report_alone(workdir: Path) -> None:
    own = hydra_utils.run_and_report
    done = run_main(["model=huge", "tracker=disabled"], workdir)
    assert done.returncode == cli.USER_ERROR_EXIT
    assert done.stderr_lines == ["typedexp: error: model=huge: no such option; choose one of: cnn, large, small"]
    assert hydra_utils.run_and_report is own
    assert cli.FULL_ERROR not in os.environ and cli.FULL_ERROR_SET_BY_TYPEDEXP not in os.environ


def test_help_with_a_bad_override_is_one_line_too(workdir: Path) -> None:
    """Hydra builds --help outside its run_and_report: its error used to end in a traceback."""
    done = run_main(["--help", "optim=sgdd"], workdir)
    assert done.returncode == cli.USER_ERROR_EXIT
    assert done.stderr_lines == ["typedexp: error: optim=sgdd: no such option; choose one of: adam, adamw, sgd"]


def test_a_typedexp_started_by_typedexp_does_not_take_the_switch_for_the_users_wish(workdir: Path) -> None:
    """What a launcher's worker inherits while Hydra runs: still one line, not a traceback."""
    inherited = {cli.FULL_ERROR: "1", cli.FULL_ERROR_SET_BY_TYPEDEXP: "1"}
    done = run_cli(["model=huge", "tracker=disabled"], workdir, env=inherited)
    assert done.returncode == cli.USER_ERROR_EXIT and "Traceback" not in done.stderr
    assert done.stderr_lines == ["typedexp: error: model=huge: no such option; choose one of: cnn, large, small"]


def test_the_users_full_errors_still_give_the_traceback(workdir: Path) -> None:
    done = run_cli(["model=huge", "tracker=disabled"], workdir, env={cli.FULL_ERROR: "1"})
    assert done.returncode != 0 and "Traceback" in done.stderr and "MissingConfigException" in done.stderr


# --- the real tracker, in a fresh interpreter ---------------------------------------------------

# Run in a fresh interpreter: the patches are process-wide, so any earlier test that started a
# local run would leave them installed and hide a `start` that no longer installs them.
# argv: log dir, then the version every distribution reads as ("" for the installed ones).
PATCH_PROBE = """
import json, logging, subprocess, sys
from swanlab.deprecated.local import LocalCallbacker
from swanlab.sdk.internal.probe_python.environment import requirements
from typedexp.core import versions as patch_gates
from typedexp.tracking import RunOutcome, SwanLabMode, SwanLabTracking
from typedexp.tracking.swanlab_patches import installed_requirements, write_scalars

if sys.argv[2]:
    patch_gates.installed_version = lambda distribution: sys.argv[2]
notes = []
class Notes(logging.Handler):
    def emit(self, record):
        notes.append(record.getMessage())
logging.getLogger("typedexp.core.versions").addHandler(Notes())
logging.getLogger("typedexp.core.versions").setLevel(logging.DEBUG)
snapshots = []  # SwanLab's own snapshot commands: pixi list, uv pip list, python -m pip list
real_run = subprocess.run
def run(cmd, *args, **kwargs):
    if isinstance(cmd, list) and "list" in cmd:
        snapshots.append(cmd)
    return real_run(cmd, *args, **kwargs)
subprocess.run = run
swanlab_own = {"get": requirements.get, **{name: LocalCallbacker.__dict__[name]
               for name in ("on_scalar_flush", "on_media_flush", "_check_exp_status")}}

def installed():
    return {
        "snapshot": getattr(requirements.get, "__typedexp_patched__", False),
        "writer": LocalCallbacker.__dict__["on_scalar_flush"] is write_scalars,
    }

seen = {"before": installed()}
for mode in ("offline", "local"):
    tracking = SwanLabTracking(mode=SwanLabMode(mode), log_dir=sys.argv[1], flush_every_s=0)
    tracker = tracking.start(config={}, run_name=mode, run_dir=sys.argv[1])
    seen[mode] = installed()
    seen[mode + "_snapshot_is_ours"] = requirements.get() == installed_requirements()
    tracker.finish(RunOutcome.success)
seen["swanlab_own_in_place"] = [name for name, own in swanlab_own.items()
    if (requirements.get if name == "get" else LocalCallbacker.__dict__[name]) is own]
seen["snapshot_commands"] = len(snapshots)
seen["notes"] = notes
print(json.dumps(seen))
"""


def probe_patches(tmp_path: Path, version: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", PATCH_PROBE, str(tmp_path / "sl"), version], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert isinstance(seen, dict)
    return seen


def test_the_real_swanlab_tracker_installs_its_patches_when_it_starts(tmp_path: Path) -> None:
    seen = probe_patches(tmp_path, "")
    assert seen["before"] == {"snapshot": False, "writer": False}
    # offline: the snapshot patch only; local also gets the dashboard writer's.
    assert seen["offline"] == {"snapshot": True, "writer": False}
    assert seen["local"] == {"snapshot": True, "writer": True}
    assert seen["offline_snapshot_is_ours"] and seen["local_snapshot_is_ours"]
    assert seen["swanlab_own_in_place"] == ["on_media_flush", "_check_exp_status"]  # never patched
    assert seen["snapshot_commands"] == 0 and seen["notes"] == []


@pytest.mark.slow
def test_on_another_swanlab_the_real_tracker_runs_swanlab_as_it_is(tmp_path: Path) -> None:
    seen = probe_patches(tmp_path, "0.11.0")
    nothing = {"snapshot": False, "writer": False}
    assert seen["offline"] == seen["local"] == nothing
    assert seen["swanlab_own_in_place"] == ["get", "on_scalar_flush", "on_media_flush", "_check_exp_status"]
    commands = seen["snapshot_commands"]
    assert isinstance(commands, int) and commands >= 2  # SwanLab's own snapshot, at each init
    notes = seen["notes"]
    assert isinstance(notes, list)
    for patch in ("requirements_in_process", "dashboard_scalars_per_batch"):
        assert any(f"patch {patch} not installed" in note and "swanlab 0.11.0" in note for note in notes), notes
