"""Every fenced command and snippet in README.md, README.zh-CN.md and docs/*.md runs, read from the Markdown.

The tutorials (docs/tutorial-*.md, docs/zh/) are left to tests/test_tutorials.py, which follows
each of them in order in one directory, as a reader does: a block can depend on the ones before.

What runs, by the block's fence:
- ```` ```bash ````: each line, in order, in one fresh directory (later lines may use what earlier
  ones made). A `typedexp` line that trains gets the quick settings of `SHORTEN` for the keys it
  does not set itself, so a 15-epoch example takes a second; it still composes, builds and trains
  exactly what it names. A `resume=<run>` line gets nothing added: it re-applies that run's own
  overrides (another `resume=` keeps its `epochs`). A line commented `# killed ...` is killed (SIGKILL) in its third epoch. Plain override lines run through `launch()` in this process, and
  other `typedexp` lines (flags, `-m`, `runs`) through the CLI's `main` in this process: the
  console script's code path, without a second torch import (~3 s a line). The rest run in bash:
  `python -m typedexp`, `--help` and `-sc` (which change the process for its remaining life),
  shell syntax, other programs.
- ```` ```python ````: executed. A line marked `# mypy: <message>` must instead fail mypy with that
  message (and is left out of the execution).
- an untagged block of `$ command` lines: each command runs in a subprocess, and what it prints
  must match the lines shown under it (`…` stands for any text, a decimal number for any number,
  a date or time in a path for any). A command shown only failing with one `typedexp: error:`
  line runs through `main` in this process, except in the READMEs (a real process there still
  catches anything printed at start-up); a command shown twice runs once.
- a fence with `not-tested: <reason>` after its language is skipped, with that reason.
- a table row whose first cell names one override in backticks (no `<placeholder>`) and whose
  second cell is a single code span: that override must print exactly that error line (`...` and
  `…` elide), as in the Troubleshooting table. A `.pt` file it names is made, and corrupt. The
  first row runs in a subprocess, the others through `main` in this process.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import CliRun, run_cli, run_main, run_signalled
from typedexp import launch

ROOT = Path(__file__).resolve().parent.parent
DOCS = [
    ROOT / "README.md",
    ROOT / "README.zh-CN.md",
    *(path for path in sorted((ROOT / "docs").glob("*.md")) if not path.name.startswith("tutorial-")),
]
FENCE = re.compile(r"^```(?P<info>[^\n`]*)\n(?P<body>.*?)^```[ \t]*$", re.M | re.S)
SHELLS = ("bash", "sh", "shell")
# Keys a training example gets when it does not set them: one short epoch, nothing tracked.
SHORTEN = {"epochs": "1", "trainer.max_batches": "2", "trainer.progress": "off", "tracker": "disabled"}
# A command commented "killed ..." gets SIGKILL once this step is logged: with SHORTEN's 2 batches
# an epoch, that is inside epoch 3, after epoch 2's checkpoint.
KILL_AFTER_STEP = 6
NOT_TRAINING = {"--help", "-h", "--cfg", "-c", "-sc", "--shell-completion", "--info", "-i"}
# Run in bash even as plain `typedexp` lines: the help page's speed-up replaces a Hydra class for
# the rest of the process (typedexp exits right after it), and -sc is about the user's shell.
NOT_IN_THIS_PROCESS = {"--help", "-h", "-sc", "--shell-completion"}
SHELL_OPERATORS = set("|&;<>()")
SUBCOMMANDS = ("runs", "dashboard")  # `typedexp runs ...`: its own arguments, no overrides to add


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    info: str
    body: str

    @property
    def kind(self) -> str | None:
        language = self.info.split()[0] if self.info.split() else ""
        if language in SHELLS:
            return "bash"
        if language == "python":
            return "python"
        if self.body.startswith("$ "):
            return "transcript"
        return None  # a diagram, a file tree, output

    @property
    def not_tested(self) -> str | None:
        _, marker, reason = self.info.partition("not-tested:")
        return reason.strip() or "no reason given" if marker else None

    @property
    def id(self) -> str:
        return f"{self.path.name}:{self.line}"


def blocks() -> list[Block]:
    found = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append(Block(path, line, match["info"].strip(), match["body"]))
    return found


BLOCKS = blocks()
CODE = [block for block in BLOCKS if block.kind is not None]


def skip_if_not_tested(block: Block) -> None:
    if block.not_tested is not None:
        pytest.skip(f"{block.id} is marked not-tested: {block.not_tested}")


def test_the_docs_have_code_of_every_kind_and_no_untagged_commands() -> None:
    kinds = [block.kind for block in CODE]
    assert kinds.count("bash") >= 8 and kinds.count("python") >= 2 and kinds.count("transcript") >= 2
    for block in BLOCKS:
        if block.kind is None:  # an untagged command would silently escape these tests
            commands = [line for line in block.body.splitlines() if re.match(r"(typedexp|python|make|swanlab) ", line)]
            assert not commands, f"{block.id}: tag the block ```bash, or write `$ command` with its output"
    for block in CODE:
        assert block.not_tested != "no reason given", f"{block.id}: not-tested needs a reason"
    # The Chinese README's blocks that repeat the English ones run once (test_bash_block_runs).
    repeated = {block for block, first in SAME_COMMANDS.items() if block != first}
    assert {block.partition(":")[0] for block in repeated} == {"README.zh-CN.md"}


# --- bash blocks -----------------------------------------------------------------------------


def shell_env() -> dict[str, str]:
    """The environment a user has after `source .venv/bin/activate`: this interpreter's bin first."""
    env = {k: v for k, v in os.environ.items() if k not in ("SWANLAB_API_KEY", "HYDRA_FULL_ERROR")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH", "")])
    return env


def shortened(words: list[str]) -> list[str]:
    """``words`` (a typedexp command's arguments) plus the quick settings it does not set.

    ``resume=<run dir>`` (or its last.pt) re-applies the run's own overrides, so it gets nothing;
    any other resume keeps its ``epochs``, which count from the checkpoint's epoch.
    """
    resume = next((word.split("=", 1)[1] for word in words if word.startswith("resume=")), None)
    continues_a_run = resume is not None and resume != "auto" and (not resume.endswith(".pt") or resume.endswith("last.pt"))
    if NOT_TRAINING & set(words) or continues_a_run or (bool(words) and words[0] in SUBCOMMANDS):
        return words
    keys = {word.split("=", 1)[0].lstrip("+~") for word in words if "=" in word}
    keys |= {"epochs"} if resume is not None else set()
    return [*words, *(f"{key}={value}" for key, value in SHORTEN.items() if key not in keys)]


def run_bash_line(line: str, cwd: Path) -> None:
    words = shlex.split(line, comments=True)
    if not words:
        return
    if words[0] == "typedexp" and "killed" in line.partition(" #")[2]:  # "# killed somewhere": as it says
        done = run_signalled(KILL_AFTER_STEP, "SIGKILL", shortened(words[1:]), cwd)
        assert done.returncode == -9, done.stderr
        return
    if words[0] == "typedexp" and all("=" in word and not word.startswith("-") for word in words[1:]):
        launch(shortened(words[1:]))  # what the console script runs, in this process
        return
    # A launcher's worker processes outlive the call (joblib reuses its pool, in the directory it
    # started in), so a line that picks a launcher runs in its own process, as a user's command does.
    own_launcher = any(word.startswith("hydra/launcher=") for word in words)
    if words[0] == "typedexp" and not NOT_IN_THIS_PROCESS & set(words) and not shell_syntax(line) and not own_launcher:
        done = run_main(shortened(words[1:]), cwd)  # the console script's main, in this process
        assert done.returncode == 0, f"`{line}` exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        return
    if words[0] == "typedexp" or words[:3] == ["python", "-m", "typedexp"]:
        start = 1 if words[0] == "typedexp" else 3
        line = shlex.join([*words[:start], *shortened(words[start:])])
    shell = subprocess.run(["bash", "-c", line], cwd=cwd, env=shell_env(), capture_output=True, text=True, timeout=600)
    assert shell.returncode == 0, f"`{line}` exited {shell.returncode}:\n{shell.stdout}\n{shell.stderr}"


def shell_syntax(line: str) -> bool:
    """Whether bash would do more with ``line`` than split it into words: pipes, redirections, ``$``."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split, lexer.commenters = True, "#"
    return "$" in line or "`" in line or any(set(token) <= SHELL_OPERATORS for token in lexer)


def commands_of(block: Block) -> tuple[tuple[str, bool], ...]:
    """A bash block's commands, without comments other than ``# killed``, which changes how a line runs."""
    lines = [(shlex.split(line, comments=True), "killed" in line.partition(" #")[2]) for line in block.body.splitlines()]
    return tuple((shlex.join(words), killed) for words, killed in lines if words)


def first_with_the_same_commands() -> dict[str, str]:
    """Block id -> id of the first bash block with the same commands (README.zh-CN repeats README's)."""
    first: dict[tuple[tuple[str, bool], ...], str] = {}
    return {b.id: first.setdefault(commands_of(b), b.id) for b in CODE if b.kind == "bash" and b.not_tested is None}


SAME_COMMANDS = first_with_the_same_commands()


@pytest.mark.slow
@pytest.mark.parametrize("block", [b for b in CODE if b.kind == "bash"], ids=lambda b: b.id)
def test_bash_block_runs(workdir: Path, block: Block) -> None:
    skip_if_not_tested(block)
    if SAME_COMMANDS[block.id] != block.id:  # each block runs in a fresh directory: the same lines, the same run
        pytest.skip(f"{block.id} runs the same commands as {SAME_COMMANDS[block.id]}, which is tested")
    for line in block.body.splitlines():
        run_bash_line(line, workdir)


# --- python blocks ---------------------------------------------------------------------------

MYPY_ERROR = re.compile(r"#\s*mypy:\s*(?P<message>.+)$")
# Every test that runs mypy, here and in test_tutorials.py, runs on one pytest-xdist worker (the
# Makefile's --dist loadgroup): with a cold .mypy_cache, the first run spends ~30 s of CPU on
# torch's and Hydra's types, and the others then read them from the cache instead of redoing it.
ON_THE_MYPY_WORKER = pytest.mark.xdist_group("mypy")
PYTHON_BLOCKS = [
    pytest.param(b, id=b.id, marks=[ON_THE_MYPY_WORKER] if MYPY_ERROR.search(b.body) else [])
    for b in CODE if b.kind == "python"
]


def mypy_errors(source: str, directory: Path) -> list[str]:
    from mypy import api

    snippet = directory / "snippet.py"
    snippet.write_text(source, encoding="utf-8")
    stdout, _, _ = api.run(["--config-file", str(ROOT / "mypy.ini"), "--cache-dir", str(ROOT / ".mypy_cache"), str(snippet)])
    return [line for line in stdout.splitlines() if ": error:" in line]


@pytest.mark.parametrize("block", PYTHON_BLOCKS)
def test_python_block_runs(workdir: Path, block: Block) -> None:
    skip_if_not_tested(block)
    lines = block.body.splitlines()
    expected = {number: match["message"] for number, line in enumerate(lines, 1) if (match := MYPY_ERROR.search(line))}
    runnable = "\n".join("" if number in expected else line for number, line in enumerate(lines, 1))
    # dont_inherit: a snippet runs as its own file would, without this module's `from __future__`
    # (string annotations there make a snippet's dataclass look up a module that does not exist).
    exec(compile(runnable, block.id, "exec", dont_inherit=True), {"__name__": "__readme__"})
    if expected:
        errors = mypy_errors(block.body, workdir)
        for number, message in expected.items():
            on_line = [e for e in errors if f"snippet.py:{number}:" in e]
            assert any(message in error for error in on_line), f"line {number}: mypy said {on_line or errors}"


# --- transcripts: `$ command` and what it prints ---------------------------------------------


def transcript(block: Block) -> list[tuple[str, list[str]]]:
    commands: list[tuple[str, list[str]]] = []
    for line in block.body.splitlines():
        if line.startswith("$ "):
            commands.append((line[2:], []))
        elif line.strip():
            commands[-1][1].append(line)
    return commands


def as_pattern(shown: str, *, exact_metrics: bool = False) -> re.Pattern[str]:
    """What ``shown`` promises: ``…`` any text, a decimal any number, a path's date/time any digits.

    The spaces before a decimal are any number of spaces (at least one where the docs show one): a
    number right-aligned in a table column starts further left when it has more digits, as a
    sweep job's seconds do from 10 s on. ``exact_metrics``: a number with four or more decimals
    (how typedexp prints a metric) must be exactly that number (tests/test_tutorials.py).
    """
    pattern = ""
    parts = re.split(r"(…|\.\.\.|\d{4}-\d\d-\d\d|\d\d-\d\d-\d\d-\d+|\d+(?:\.\d+)? m?s\b|\d+\.\d+)", shown)
    for index, part in enumerate(parts):
        following = parts[index + 1] if index % 2 == 0 and index + 1 < len(parts) else ""
        if part.endswith(" ") and re.fullmatch(r"\d+(?:\.\d+)? m?s|\d+\.\d+", following):
            pattern += re.escape(part.rstrip(" ")) + " +"
        elif part in ("…", "..."):
            pattern += ".*"
        elif re.fullmatch(r"\d+(?:\.\d+)? m?s", part):  # a duration: "1.4 s", or "112 ms" below a second
            pattern += r"\d+(?:\.\d+)? m?s"
        elif exact_metrics and re.fullmatch(r"\d+\.\d{4,}", part):
            pattern += re.escape(part)
        elif re.fullmatch(r"\d+\.\d+", part):
            pattern += r"\d+\.\d+"
        elif re.fullmatch(r"\d{4}-\d\d-\d\d|\d\d-\d\d-\d\d-\d+", part):
            pattern += r"[\d-]+"
        else:
            pattern += re.escape(part)
    return re.compile(pattern)


def test_a_right_aligned_decimal_may_start_further_left_or_right() -> None:
    shown = "   2     1   0.01        0.1448     2.2423       5       9.5   done"
    assert as_pattern(shown).fullmatch(shown)
    assert as_pattern(shown).fullmatch(shown.replace("       9.5", "      10.5"))  # a job of 10 s or more
    assert as_pattern("done: 3 epochs in 112 ms").fullmatch("done: 3 epochs in 1.4 s")
    assert not as_pattern(shown).fullmatch(shown.replace("   done", " failed"))  # the words still count
    assert not as_pattern("took 1.5 s").fullmatch("took1.5 s")  # a space stays where the docs show one
    assert as_pattern(shown, exact_metrics=True).fullmatch(shown.replace("       9.5", "      10.5"))
    assert not as_pattern(shown, exact_metrics=True).fullmatch(shown.replace("0.1448", "0.1449"))


# `make run` is `make install` (a venv and pip, done once on a fresh machine) and then this.
MAKE_TARGETS = {"make run": "typedexp"}
TRANSCRIPTS = [
    pytest.param(block, command, shown, id=f"{block.id} {command}")
    for block in CODE if block.kind == "transcript"
    for command, shown in transcript(block)
]


READMES = {"README.md", "README.zh-CN.md"}


@pytest.fixture(scope="module")
def transcript_runs() -> dict[tuple[str, bool], CliRun]:
    """What each transcript command printed, by command (and whether in this process): read-only."""
    return {}


@pytest.mark.slow
@pytest.mark.parametrize(("block", "command", "shown"), TRANSCRIPTS)
def test_transcript_prints_what_the_docs_show(
    tmp_path_factory: pytest.TempPathFactory,
    transcript_runs: dict[tuple[str, bool], CliRun],
    block: Block,
    command: str,
    shown: list[str],
) -> None:
    skip_if_not_tested(block)
    words = shlex.split(MAKE_TARGETS.get(command, command), comments=True)
    assert words[0] == "typedexp", f"{block.id}: only typedexp commands are run from transcripts"
    only_an_error = len(shown) == 1 and shown[0].startswith("typedexp: error:")
    in_process = only_an_error and block.path.name not in READMES
    key = (shlex.join(words), in_process)
    if key not in transcript_runs:  # a fresh directory for each command, as a user's shell would have
        cwd = tmp_path_factory.mktemp("transcript")
        transcript_runs[key] = run_main(words[1:], cwd) if in_process else run_cli(words[1:], cwd, {"PATH": shell_env()["PATH"]})
    done = transcript_runs[key]
    printed = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert done.returncode == (2 if any(line.startswith("typedexp: error:") for line in shown) else 0)
    assert len(printed) == len(shown), printed
    for line, expected in zip(printed, shown, strict=True):
        assert as_pattern(expected).fullmatch(line), f"printed {line!r}\n   docs {expected!r}"


# --- table rows that promise an exact error line ---------------------------------------------


def promised_errors() -> list[tuple[str, str, str]]:
    """(where, override, message) for each table row of the docs that shows one exact error."""
    rows = []
    for path in DOCS:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")] if line.startswith("|") else []
            if len(cells) < 2 or not re.fullmatch(r"`[^`]+`", cells[1]):
                continue
            overrides = [span.strip("'") for span in re.findall(r"`([^`]+)`", cells[0]) if "=" in span]
            if overrides and "<" not in overrides[0] and " " not in overrides[0]:
                rows.append((f"{path.name}:{number}", overrides[0], cells[1].strip("`")))
    return rows


PROMISED = promised_errors()


def test_the_troubleshooting_table_promises_exact_lines() -> None:
    assert {override for _, override, _ in PROMISED} >= {"optim.lr=abc", "model=huge", "model.hidden=???"}


@pytest.mark.parametrize(("where", "override", "message"), PROMISED, ids=[f"{w} {o}" for w, o, _ in PROMISED])
def test_a_table_row_shows_the_line_the_cli_prints(workdir: Path, where: str, override: str, message: str) -> None:
    tracker = [] if override.startswith("tracker") else ["tracker=disabled"]
    for name in re.findall(r"[\w.-]+\.pt\b", override):  # a row about a broken checkpoint file
        (workdir / name).write_bytes(b"not a checkpoint")
    run = run_cli if (where, override, message) == PROMISED[0] else run_main
    done = run([*tracker, override], workdir)
    assert done.returncode == 2
    assert len(done.stderr_lines) == 1 and as_pattern(f"typedexp: error: {message}").fullmatch(done.stderr_lines[0]), (
        f"{where}: the CLI printed {done.stderr_lines}"
    )
