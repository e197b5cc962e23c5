"""The README's error examples are real: each `$ typedexp ...` prints exactly the line shown."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests.helpers import run_cli

README = Path(__file__).resolve().parent.parent / "README.md"
EXAMPLE = re.compile(r"^\$ typedexp (?P<args>[^#\n]*?)\s*(#.*)?\n(?P<line>typedexp: error: .*)$", re.M)
EXAMPLES = [(match["args"], match["line"]) for match in EXAMPLE.finditer(README.read_text())]


def test_readme_has_error_examples() -> None:
    assert len(EXAMPLES) >= 5


@pytest.mark.parametrize(("args", "line"), EXAMPLES, ids=[args for args, _ in EXAMPLES])
def test_readme_error_example_is_what_the_cli_prints(workdir: Path, args: str, line: str) -> None:
    done = run_cli(shlex.split(args), workdir)
    assert done.returncode == 2
    assert done.stderr_lines == [line]
