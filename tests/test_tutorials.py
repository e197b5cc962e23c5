"""The tutorials (docs/tutorial-*.md, and in Chinese docs/zh/tutorial-*.md) work when followed in order.

A reader follows a tutorial from top to bottom in one directory, so a block can break because of
what an earlier block left behind (a run directory, a second SwanLab run). Each test here does
the same: one tutorial, every runnable block in document order, in one fresh directory.

What runs, by the block:
- ```` ```bash ````: each line as tests/test_readme.py runs a bash line (a training command gets
  the quick settings of ``SHORTEN`` for the keys it does not set itself). A one-line ``typedexp``
  block followed by a ```` ```text ```` block must print that text, as lines in a row (an excerpt).
- ```` ```python ```` whose first line is ``# <path>.py``: a file the tutorial asks you to create;
  it is written there. Any other ```` ```python ````: run as a script (``__name__ == "__main__"``),
  whole, as it would be pasted; a ```` ```text ```` block right after it is exactly what it prints.
  A type error is shown as mypy's output for a file (below), never as a line that would crash.
- a block of ``$ command`` lines (a transcript): each command runs, as typed, with nothing added,
  and prints the lines under it (``as_pattern``: ``…`` any text, a time or a path's date any
  digits). A metric, a number with four decimals, must be exactly the one printed: the runs are
  seeded and on the CPU they repeat to the last digit. ``typedexp`` runs in this process (the
  console script's ``main``); ``python ...`` (a tutorial's project, ``python -m <package>``) in a
  process of its own, since the project registers options for its own process; ``mypy --strict``
  through mypy's API with mypy.ini (strict, plus warn_unreachable) and the shared cache.
- a fence with ``not-tested: <reason>``: skipped, with that reason (the seed's own code, a server).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
import tokenize
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import CliRun, run_cli, run_main
from tests.test_readme import NOT_IN_THIS_PROCESS, ON_THE_MYPY_WORKER, as_pattern, run_bash_line, shell_env

ROOT = Path(__file__).resolve().parent.parent
LANGUAGES = {"en": ROOT / "docs", "zh": ROOT / "docs" / "zh"}
TUTORIALS = [path for folder in LANGUAGES.values() for path in sorted(folder.glob("tutorial-*.md"))]
FENCE = re.compile(r"^```(?P<info>[^\n`]*)\n(?P<body>.*?)^```[ \t]*\n", re.M | re.S)
PROJECT_FILE = re.compile(r"# (?P<path>[\w/]+\.py)\n")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    info: str
    body: str
    text_after: str | None  # the body of a ```text block right after this one (only blank lines between)

    @property
    def language(self) -> str:
        return self.info.split()[0] if self.info.split() else ""

    @property
    def not_tested(self) -> bool:
        return "not-tested:" in self.info

    @property
    def file(self) -> str | None:
        """The path of a python block that is a file to create (``# seedapp/optim.py``)."""
        match = PROJECT_FILE.match(self.body)
        return match["path"] if self.language == "python" and match else None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    matches = list(FENCE.finditer(text))
    found = []
    for index, match in enumerate(matches):
        after = matches[index + 1] if index + 1 < len(matches) else None
        followed = after is not None and after["info"].strip() == "text" and not text[match.end() : after.start()].strip()
        line = text.count("\n", 0, match.start()) + 1
        found.append(Block(path, line, match["info"].strip(), match["body"], after["body"] if followed and after else None))
    return found


def transcript(body: str) -> list[tuple[str, list[str]]]:
    """(command, the non-blank lines shown under it) for each ``$ `` line of ``body``."""
    commands: list[tuple[str, list[str]]] = []
    for line in body.splitlines():
        if line.startswith("$ "):
            commands.append((line[2:], []))
        elif line.strip():
            commands[-1][1].append(line)
    return commands


# --- running one block -----------------------------------------------------------------------


def project_env(cwd: Path) -> dict[str, str]:
    """A reader's shell in the tutorial's folder: typedexp installed, the project importable."""
    env = shell_env()
    env["PYTHONPATH"] = os.pathsep.join([str(cwd), env["PYTHONPATH"]])
    return env


def run_command(command: str, cwd: Path) -> tuple[CliRun, bool]:
    """Run one transcript command; (what it printed, whether its numbers are to be compared)."""
    words = shlex.split(command)
    if words[0] == "typedexp":
        in_process = not NOT_IN_THIS_PROCESS & set(words)
        return (run_main(words[1:], cwd) if in_process else run_cli(words[1:], cwd, {"PATH": shell_env()["PATH"]})), True
    if words[0] == "python":
        done = subprocess.run(words, cwd=cwd, env=project_env(cwd), capture_output=True, text=True, timeout=300)
        return CliRun(done.returncode, done.stdout, done.stderr), True
    if words[0] == "mypy":
        from mypy import api

        # The reader's `mypy --strict` is mypy.ini's strict (which adds warn_unreachable): the same
        # options as the suite's other mypy runs, so they share the cache (other options re-check
        # torch's and Hydra's types from scratch, ~30 s).
        assert "--strict" in words, f"`{command}`: show mypy with --strict, as mypy.ini checks"
        arguments = [word for word in words[1:] if word != "--strict"]
        stdout, stderr, status = api.run(
            ["--config-file", str(ROOT / "mypy.ini"), "--cache-dir", str(ROOT / ".mypy_cache"), *arguments]
        )
        return CliRun(status, stdout, stderr), False
    raise AssertionError(f"`{command}`: a transcript runs typedexp, python or mypy commands")


def check_transcript(block: Block, cwd: Path) -> None:
    for command, shown in transcript(block.body):
        done, numbers = run_command(command, cwd)
        printed = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
        failing = any(line.startswith("typedexp: error:") for line in shown) or any(": error:" in line for line in shown)
        expected_code = (1 if command.startswith("mypy") else 2) if failing else 0
        assert done.returncode == expected_code, f"{block.where}: `{command}` exited {done.returncode}:\n" + "\n".join(printed)
        assert len(printed) == len(shown), f"{block.where}: `{command}` printed:\n" + "\n".join(printed)
        for line, expected in zip(printed, shown, strict=True):
            assert as_pattern(expected, exact_metrics=numbers).fullmatch(line), (
                f"{block.where}: `{command}`\n printed {line!r}\n    docs {expected!r}"
            )


def run_python(block: Block) -> None:
    assert not re.search(r"#\s*mypy:", block.body), (
        f"{block.where}: show a type error as a file and `$ mypy --strict <file>` with its output, "
        "not as a line that a reader who pastes the block would run"
    )
    output = io.StringIO()
    # dont_inherit: the snippet runs as its own file would, without this module's `from __future__`.
    with contextlib.redirect_stdout(output):
        exec(compile(block.body, block.where, "exec", dont_inherit=True), {"__name__": "__main__"})
    if block.text_after is not None:
        assert output.getvalue().rstrip("\n") == block.text_after.rstrip("\n"), f"{block.where} printed:\n{output.getvalue()}"


def run_excerpt(block: Block, cwd: Path) -> None:
    """A one-line ``typedexp`` bash block followed by text: the text is lines of what it prints."""
    words = shlex.split(block.body, comments=True)
    assert words[0] == "typedexp" and len(block.body.strip().splitlines()) == 1, f"{block.where}: one typedexp command"
    done = run_main(words[1:], cwd)
    assert done.returncode == 0, done.stderr
    printed = [line.rstrip() for line in done.stdout.splitlines()]
    shown = [line.rstrip() for line in (block.text_after or "").splitlines()]
    starts = [i for i in range(len(printed) - len(shown) + 1) if printed[i : i + len(shown)] == shown]
    assert starts, f"{block.where}: not printed in a row by `{block.body.strip()}`:\n{done.stdout}"


def follow(path: Path, cwd: Path) -> None:
    """Everything ``path`` asks the reader to run, in order, in ``cwd``."""
    for block in blocks(path):
        if block.not_tested:
            continue
        if block.file is not None:
            target = cwd / block.file
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.body, encoding="utf-8")  # no __init__.py: the tutorials do not show one
        elif block.language == "python":
            run_python(block)
        elif block.language == "bash" and block.text_after is not None:
            run_excerpt(block, cwd)
        elif block.language == "bash":
            for line in block.body.splitlines():
                run_bash_line(line, cwd)
        elif block.language == "" and block.body.startswith("$ "):
            check_transcript(block, cwd)


@pytest.mark.slow
@ON_THE_MYPY_WORKER  # its mypy runs share the cache of the suite's other mypy runs
@pytest.mark.parametrize("path", TUTORIALS, ids=[str(path.relative_to(ROOT / "docs")) for path in TUTORIALS])
def test_a_tutorial_works_when_followed_in_order(workdir: Path, path: Path) -> None:
    follow(path, workdir)


# --- what the tutorials hold ---------------------------------------------------------------------


def test_each_language_has_the_four_tutorials_and_they_hold_every_kind_of_block() -> None:
    names = {language: [path.name for path in sorted(folder.glob("tutorial-*.md"))] for language, folder in LANGUAGES.items()}
    assert len(names["en"]) == 4 and names["zh"] == names["en"]
    kinds = {
        ("file" if block.file else block.language or "transcript", block.text_after is not None)
        for path in TUTORIALS
        for block in blocks(path)
        if not block.not_tested
    }
    assert {("bash", False), ("bash", True), ("python", False), ("python", True), ("file", False), ("transcript", False)} <= kinds
    for path in TUTORIALS:
        for block in blocks(path):  # an untagged command would silently escape the test
            if block.language == "" and not block.body.startswith("$ "):
                assert not re.search(r"^(typedexp|python|mypy) ", block.body, re.M), f"{block.where}: tag it ```bash or write `$ command`"


RUN_DIR = re.compile(r"""(?:hydra\.run\.dir=|hydra\.sweep\.dir=|output_dir="|sweep_dir=")(?P<dir>[\w./-]+)""")


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_four_tutorials_can_share_one_directory(language: str) -> None:
    # A reader may follow all four in one directory, one after another. Each is followed in a
    # directory of its own above, so here: no two of them name the same run or sweep directory.
    named: dict[str, str] = {}
    for path in sorted(LANGUAGES[language].glob("tutorial-*.md")):
        for block in blocks(path):
            for match in [] if block.not_tested else RUN_DIR.finditer(block.body):
                assert match["dir"] not in named or named[match["dir"]] == path.name, (
                    f"{block.where} and {named[match['dir']]} both write {match['dir']}"
                )
                named[match["dir"]] = path.name
    assert "runs/first" in named and "multirun/grid" in named


def runnable(path: Path) -> list[tuple[str, str | None, str]]:
    """(language, file, body) of what a reader runs or sees printed in ``path``, in order.

    Without comments, prose and illustrations (file trees, the seed's YAML), which a translation
    words in its own language.
    """
    found: list[tuple[str, str | None, str]] = []
    for block in blocks(path):
        body = block.body
        if block.language == "python":
            tokens = tokenize.generate_tokens(io.StringIO(body).readline)
            code = tokenize.untokenize((token.type, token.string) for token in tokens if token.type != tokenize.COMMENT)
            body = "\n".join(line.rstrip() for line in code.splitlines() if line.strip())
        elif block.language == "bash":
            body = "\n".join(shlex.join(shlex.split(line, comments=True)) for line in body.splitlines())
        elif not (block.language == "text" or (block.language == "" and body.startswith("$ "))):
            continue
        found.append(("not-tested" if block.not_tested else block.language, block.file, body))
    return found


@pytest.mark.parametrize("name", [path.name for path in sorted(LANGUAGES["en"].glob("tutorial-*.md"))])
def test_a_chinese_tutorial_runs_the_same_commands_and_shows_the_same_output(name: str) -> None:
    english, chinese = runnable(LANGUAGES["en"] / name), runnable(LANGUAGES["zh"] / name)
    assert len(chinese) == len(english), f"zh/{name}: {len(chinese)} blocks, the English has {len(english)}"
    for block, english_block in zip(chinese, english, strict=True):
        assert block == english_block, f"zh/{name}: differs from the English:\n{block[2]}"
