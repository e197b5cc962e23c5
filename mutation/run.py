"""Mutation testing with mutmut 3, one module at a time: ``make mutation`` or
``python -m mutation.run specs/models specs/optim``.

Each module runs in its own scratch copy of the repository (``.mutation/<module>/``, ignored by
git) with a ``[tool.mutmut]`` section that mutates only that module and selects only the test
files that exercise it (``MODULES``). mutmut records which of those tests reach each function
and runs only those per mutant, so a module takes minutes, not the suite's time per mutant.

Prints, per module: mutants, killed, survived, listed as equivalent, score. The score is killed
(timeouts count as killed) over mutants that are not listed as equivalent in
``mutation/equivalent.txt``. Exit status 1 if a gated module scores below ``TARGET``, has a
survivor that the file does not list, or lists a mutant whose change is no longer the one its
reason was written for: mutmut names mutants by their position in a function, so an edit above
one renumbers it, and each entry carries a fingerprint of its diff (``@`` and 8 hex digits). Tests that run the CLI in a subprocess run the plain
copy, so they kill nothing here: the in-process tests must.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENT = Path(__file__).resolve().parent / "equivalent.txt"
TARGET = 0.85  # share of non-equivalent mutants killed, per module (issue 16)

# module (under src/typedexp) -> the test files that exercise it in-process.
MODULES: dict[str, tuple[str, ...]] = {
    "specs/models": ("tests/test_features_take_effect.py", "tests/test_augment_and_flags.py", "tests/test_mutation_gaps.py"),
    "specs/optim": ("tests/test_features_take_effect.py", "tests/test_configs.py", "tests/test_mutation_gaps.py"),
    "data/tensors": ("tests/test_datasets.py", "tests/test_engine.py", "tests/test_mutation_gaps.py",
                     "tests/test_once_equivalent.py"),
    "data/augment": ("tests/test_augment_and_flags.py", "tests/test_mutation_gaps.py", "tests/test_once_equivalent.py"),
    "engine/loop": ("tests/test_engine.py", "tests/test_features_take_effect.py", "tests/test_resume.py", "tests/test_schedules.py",
                    "tests/test_mutation_gaps.py", "tests/test_once_equivalent.py"),
    "engine/checkpoint": ("tests/test_resume.py", "tests/test_features_take_effect.py", "tests/test_mutation_gaps.py",
                          "tests/test_unclear_errors.py", "tests/test_schedules.py", "tests/test_run_dirs.py",
                          "tests/test_once_equivalent.py"),
    "specs/schedules": ("tests/test_schedules.py",),
    "core/safety/allowlist": ("tests/test_config_guard.py",),
    "core/safety/secrets": ("tests/test_config_guard.py",),
    "core/safety/launchers": ("tests/test_launchers.py",),
    "app/config_guard": ("tests/test_config_guard.py", "tests/test_launchers.py", "tests/test_once_equivalent.py"),
}
# Scored and printed, but not held to TARGET (the reason is printed beside the score).
NOT_GATED: dict[str, str] = {}


@dataclass(frozen=True)
class Score:
    module: str
    statuses: dict[str, str]  # mutant name -> mutmut's status
    equivalent: set[str]  # survivors listed in equivalent.txt
    finished: bool  # False: stopped at the time limit, the rest unchecked
    error: str = ""  # mutmut's own failure (e.g. a selected test failing before any mutation)
    # "name @fingerprint" of listed survivors whose diff is not the one listed (or none is listed)
    mismatched: tuple[str, ...] = ()

    @property
    def killed(self) -> int:
        return sum(status in ("killed", "timeout", "caught by type check") for status in self.statuses.values())

    @property
    def survivors(self) -> list[str]:
        done = ("killed", "timeout", "caught by type check", "not checked")
        return sorted(name for name, status in self.statuses.items() if status not in done)

    @property
    def unlisted(self) -> list[str]:
        return [name for name in self.survivors if name not in self.equivalent]

    @property
    def stale(self) -> list[str]:
        """Listed names of this module that mutmut no longer generates."""
        prefix = "typedexp." + self.module.replace("/", ".") + "."
        return sorted(name for name in self.equivalent if name.startswith(prefix) and name not in self.statuses)

    @property
    def score(self) -> float:
        checked = sum(status != "not checked" for status in self.statuses.values())
        counted = checked - len(set(self.survivors) & self.equivalent)
        return self.killed / counted if counted else 0.0


@dataclass(frozen=True)
class Listed:
    fingerprint: str  # of the mutant's diff when its reason was written
    reason: str


def listed_equivalents() -> dict[str, Listed]:
    """``<mutant name> @<fingerprint> <reason>`` per line of equivalent.txt; ``#`` starts a comment."""
    listed: dict[str, Listed] = {}
    for line in EQUIVALENT.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, rest = line.partition(" ")
            mark, _, reason = rest.partition(" ")
            if not re.fullmatch(r"@[0-9a-f]{8}", mark) or not reason.strip():
                raise SystemExit(f"{EQUIVALENT.name}: {name} needs '@<fingerprint> <reason>' after its name")
            listed[name] = Listed(mark[1:], reason.strip())
    return listed


def fingerprint(diff: str) -> str:
    """8 hex digits of the lines a mutant removes and adds (``mutmut show``), whitespace-trimmed:
    the same change gives the same fingerprint whatever number mutmut gives it."""
    changed = [line[0] + line[1:].strip() for line in diff.splitlines()
               if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    return hashlib.sha1("\n".join(changed).encode("utf-8")).hexdigest()[:8]


def scratch_copy(module: str) -> Path:
    """A copy of src/ and tests/ with a pyproject.toml that mutates ``module`` only."""
    scratch = ROOT / ".mutation" / module.replace("/", ".")
    scratch.mkdir(parents=True, exist_ok=True)
    for folder in ("src", "tests"):
        shutil.rmtree(scratch / folder, ignore_errors=True)
        shutil.copytree(ROOT / folder, scratch / folder, ignore=shutil.ignore_patterns("__pycache__"))
    tests = ", ".join(f'"{path}"' for path in MODULES[module])
    (scratch / "pyproject.toml").write_text(
        "[tool.pytest.ini_options]\n"
        'markers = ["slow: takes more than a few seconds"]\n'
        "[tool.mutmut]\n"
        'source_paths = ["src"]\n'
        f'only_mutate = ["src/typedexp/{module}.py"]\n'
        f'pytest_add_cli_args_test_selection = [{tests}]\n'
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "-x", "-q"]\n'
        "use_git_change_detection = false\n"
        "debug = true\n",  # a failing clean run then shows pytest's own error in the tail printed below
        encoding="utf-8",
    )
    return scratch


def mutmut(scratch: Path, *args: str, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    # One torch thread per worker: the workers are the parallelism, and the machine is shared.
    # mutmut puts mutants/src first in its own processes. A test's CLI subprocess gets the plain
    # copy (a mutated module there would look for mutmut's config in the test's temp directory).
    plain = os.pathsep.join([str(scratch / "src"), str(scratch)])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": plain}
    return subprocess.run(["nice", "-n", "19", sys.executable, "-m", "mutmut", *args], cwd=scratch, env=env,
                          capture_output=True, text=True, timeout=timeout)


def run_module(module: str, *, max_children: int, minutes: float, fresh: bool) -> Score:
    scratch = scratch_copy(module)
    if fresh:
        shutil.rmtree(scratch / "mutants", ignore_errors=True)
    finished, error = True, ""
    try:
        done = mutmut(scratch, "run", "--max-children", str(max_children), timeout=minutes * 60)
        if done.returncode != 0:
            error = f"mutmut exited {done.returncode}"
            print(done.stdout[-3000:], done.stderr[-3000:], sep="\n")
    except subprocess.TimeoutExpired:
        finished = False  # what was checked so far stays in mutants/*.meta
    listing = mutmut(scratch, "results", "--all", "true").stdout
    statuses = dict(re.findall(r"^\s+(\S+): (.+)$", listing, re.M))
    listed = listed_equivalents()
    score = Score(module, statuses, set(listed), finished, error)

    def show(name: str) -> str:  # the diff of one mutant
        return mutmut(scratch, "show", name).stdout

    return dataclasses.replace(score, mismatched=mismatches(score.survivors, listed, show))


def mismatches(survivors: list[str], listed: dict[str, Listed], show: Callable[[str], str]) -> tuple[str, ...]:
    """``name @fingerprint`` of each listed survivor whose diff (``show(name)``) is not the listed one."""
    found = []
    for name in sorted(set(survivors) & set(listed)):
        actual = fingerprint(show(name))
        if actual != listed[name].fingerprint:
            found.append(f"{name} @{actual}")
    return tuple(found)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("modules", nargs="*", help=f"any of {', '.join(MODULES)} (default: all)")
    parser.add_argument("--max-children", type=int, default=2)
    parser.add_argument("--minutes", type=float, default=20.0, help="stop a module's run after this long")
    parser.add_argument("--fresh", action="store_true", help="forget earlier results of these modules")
    parser.add_argument("--show", action="store_true", help="print the diff of each unlisted survivor")
    options = parser.parse_args()
    unknown = set(options.modules) - set(MODULES)
    if unknown:
        parser.error(f"unknown module {', '.join(sorted(unknown))}; choose from {', '.join(MODULES)}")
    failed = False
    rows = []
    for module in options.modules or list(MODULES):
        result = run_module(module, max_children=options.max_children, minutes=options.minutes, fresh=options.fresh)
        gated = module not in NOT_GATED
        ok = (result.finished and not result.error and result.score >= TARGET and not result.unlisted
              and not result.stale and not result.mismatched)
        failed |= gated and not ok
        note = "" if result.finished else "  stopped at the time limit"
        note += f"  {result.error}" if result.error else ""
        note += "" if gated else f"  (not gated: {NOT_GATED[module]})"
        rows.append(f"{module:<18} {len(result.statuses):>7} {result.killed:>6} {len(result.survivors):>8} "
                    f"{len(set(result.survivors) & result.equivalent):>10} {result.score:>6.1%}"
                    f"  {'ok' if ok else 'FAIL'}{note}")
        print(rows[-1], flush=True)
        for name in result.unlisted:
            print(f"    survived, not in {EQUIVALENT.name}: {name}")
            if options.show:
                print(mutmut(ROOT / ".mutation" / module.replace("/", "."), "show", name).stdout)
        killed = {name for name, status in result.statuses.items() if status in ("killed", "timeout")}
        for name in sorted(result.equivalent & killed):
            print(f"    killed now, remove from {EQUIVALENT.name}: {name}")
        for name in result.stale:  # mutmut numbers mutants by position: an edit above renumbers them
            print(f"    no such mutant now, remove or renumber in {EQUIVALENT.name}: {name}")
        for entry in result.mismatched:  # the name now belongs to another change: re-judge it
            print(f"    listed for another change (renumbered?), judge it again in {EQUIVALENT.name}: {entry}")
            if options.show:
                print(mutmut(ROOT / ".mutation" / module.replace("/", "."), "show", entry.split(" ")[0]).stdout)
    print(f"\n{'module':<18} {'mutants':>7} {'killed':>6} {'survived':>8} {'equivalent':>10} {'score':>6}  (target {TARGET:.0%})")
    print("\n".join(rows))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
