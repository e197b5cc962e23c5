"""The tutorials (docs/tutorial-*.md) work as written, beyond what tests/test_readme.py runs.

test_readme runs every block it can run in this process. This file covers the two kinds it
cannot:
- a ```` ```python ```` block followed by a ```` ```text ```` block: what the snippet prints must
  be exactly that text (run as a script would be, with ``__name__ == "__main__"``);
- a ```` ```bash ```` block of one ``typedexp`` command followed by a ```` ```text ```` block: the
  text is an excerpt of what the command prints (its lines, in a row);
- a tutorial's project: its ```` ```python ```` blocks that start with ``# <package>/<file>.py``
  are written into a fresh directory, and the ``$ python -m <package> ...`` transcripts of the
  same tutorial run there, printing what the tutorial shows. The project must pass mypy --strict.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_readme import MYPY_ERROR, ON_THE_MYPY_WORKER, as_pattern

ROOT = Path(__file__).resolve().parent.parent
TUTORIALS = sorted((ROOT / "docs").glob("tutorial-*.md"))
# A fence and its body; blank lines between two fences are what make them "followed by".
FENCE = re.compile(r"^```(?P<info>[^\n`]*)\n(?P<body>.*?)^```[ \t]*\n", re.M | re.S)
PROJECT_FILE = re.compile(r"# (?P<path>\w+/\w+\.py)\n")


def fences(path: Path) -> list[tuple[str, str, int, int]]:
    """(info, body, start, end) of each fenced block of ``path``, in order."""
    text = path.read_text(encoding="utf-8")
    return [(m["info"].strip(), m["body"], m.start(), m.end()) for m in FENCE.finditer(text)]


def followed_by_text(language: str) -> list[tuple[str, str, str]]:
    """(id, body, the text block's body) for each ``language`` block directly followed by a text block."""
    found = []
    for path in TUTORIALS:
        text = path.read_text(encoding="utf-8")
        blocks = fences(path)
        for (info, body, start, end), (next_info, next_body, next_start, _) in zip(blocks, blocks[1:]):
            if info == language and next_info == "text" and not text[end:next_start].strip():
                line = text.count("\n", 0, start) + 1
                found.append((f"{path.name}:{line}", body, next_body))
    return found


PRINTED = followed_by_text("python")
EXCERPTS = followed_by_text("bash")


def test_each_tutorial_shows_printed_output_and_a_project() -> None:
    names = {where.partition(":")[0] for where, _, _ in PRINTED}
    assert {"tutorial-2-typed-configs.md", "tutorial-3-config-groups.md"} <= names
    assert [where.partition(":")[0] for where, _, _ in EXCERPTS] == ["tutorial-3-config-groups.md"]
    assert {path.name for path in TUTORIALS if project_files(path)} >= {
        "tutorial-2-typed-configs.md",
        "tutorial-3-config-groups.md",
    }


@pytest.mark.parametrize(("where", "source", "expected"), PRINTED, ids=[where for where, _, _ in PRINTED])
def test_a_snippet_prints_the_text_shown_under_it(workdir: Path, where: str, source: str, expected: str) -> None:
    runnable = "\n".join("" if MYPY_ERROR.search(line) else line for line in source.splitlines())
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(compile(runnable, where, "exec", dont_inherit=True), {"__name__": "__main__"})
    assert output.getvalue().rstrip("\n") == expected.rstrip("\n")


@pytest.mark.parametrize(("where", "command", "excerpt"), EXCERPTS, ids=[where for where, _, _ in EXCERPTS])
def test_a_command_prints_the_excerpt_shown_under_it(workdir: Path, where: str, command: str, excerpt: str) -> None:
    words = shlex.split(command, comments=True)
    assert words[0] == "typedexp" and len(command.strip().splitlines()) == 1, f"{where}: one typedexp command"
    done = subprocess.run(
        [sys.executable, "-m", *words], cwd=workdir, env=project_env(workdir), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    printed = [line.rstrip() for line in done.stdout.splitlines()]
    shown = [line.rstrip() for line in excerpt.splitlines()]
    starts = [i for i in range(len(printed) - len(shown) + 1) if printed[i : i + len(shown)] == shown]
    assert starts, f"{where}: not printed in a row by `{command.strip()}`:\n{done.stdout}"


# --- the tutorials' projects ------------------------------------------------------------------


def project_files(path: Path) -> dict[str, str]:
    """{relative path: source} of the python blocks of ``path`` that start with ``# <pkg>/<file>.py``."""
    files = {}
    for info, body, _, _ in fences(path):
        match = PROJECT_FILE.match(body)
        if info.split()[:1] == ["python"] and match:
            files[match["path"]] = body
    return files


def project_transcripts(path: Path) -> list[tuple[str, list[str]]]:
    """(command, lines it prints) for each ``$ python -m ...`` line of ``path``'s transcripts."""
    commands: list[tuple[str, list[str]]] = []
    for _, body, _, _ in fences(path):
        if not body.startswith("$ python -m "):
            continue
        for line in body.splitlines():
            if line.startswith("$ "):
                commands.append((line[2:], []))
            elif line.strip():
                commands[-1][1].append(line)
    return commands


def write_project(path: Path, directory: Path) -> Path:
    for relative, source in project_files(path).items():
        target = directory / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(source, encoding="utf-8")  # no __init__.py: the tutorials do not show one
    return directory


def project_env(project: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SWANLAB_API_KEY", "HYDRA_FULL_ERROR")}
    env["PYTHONPATH"] = os.pathsep.join([str(project), str(ROOT / "src"), env.get("PYTHONPATH", "")])
    return env


WITH_PROJECTS = [path for path in TUTORIALS if project_files(path)]
PROJECT_COMMANDS = [
    pytest.param(path, command, shown, id=f"{path.name} {command}")
    for path in WITH_PROJECTS
    for command, shown in project_transcripts(path)
]


@pytest.mark.slow
@pytest.mark.parametrize(("path", "command", "shown"), PROJECT_COMMANDS)
def test_a_project_command_prints_what_the_tutorial_shows(
    workdir: Path, path: Path, command: str, shown: list[str]
) -> None:
    project = write_project(path, workdir)
    words = shlex.split(command)
    done = subprocess.run(
        [sys.executable, *words[1:]], cwd=project, env=project_env(project), capture_output=True, text=True, timeout=300
    )
    printed = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert done.returncode == (2 if any(line.startswith("typedexp: error:") for line in shown) else 0), printed
    assert len(printed) == len(shown), printed
    for line, expected in zip(printed, shown, strict=True):
        assert as_pattern(expected).fullmatch(line), f"printed {line!r}\n   docs {expected!r}"


@pytest.mark.slow
@ON_THE_MYPY_WORKER
@pytest.mark.parametrize("path", WITH_PROJECTS, ids=[path.name for path in WITH_PROJECTS])
def test_a_project_passes_mypy_strict(workdir: Path, path: Path) -> None:
    from mypy import api

    write_project(path, workdir)  # the working directory, where mypy looks for the package
    package = next(iter(project_files(path))).partition("/")[0]
    stdout, _, status = api.run(
        ["--config-file", str(ROOT / "mypy.ini"), "--cache-dir", str(ROOT / ".mypy_cache"), "-p", package]
    )
    assert status == 0, stdout
