"""Property: a garbage value in any config field is refused in one line, or runs normally.

The fields come from the composed config (``helpers.config_fields``), so a field added to a
spec is covered without editing this file. Each example runs ``cli.main`` in this process, in a
fresh temp dir, with one training batch.

Typed fields (int, float, bool, enum, list) get text that no value of their type can be: it
always holds a ``q``, which no number, boolean, ``null`` or enum name here contains, and float
fields also get nan/inf. String fields get any text, which may be valid: then the run must
finish normally, still without a traceback.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import config_fields, run_main

FIELDS = config_fields()
QUICK = ["epochs=1", "trainer.max_batches=1", "trainer.progress=off"]
TYPED = {"IntegerNode", "FloatNode", "BooleanNode", "EnumNode", "ListConfig"}
REPO = Path(__file__).resolve().parents[1]

# Any characters but lone surrogates (which no command line can hold): quotes, commas,
# brackets, `${`, `=`, newlines, unicode.
JUNK = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
SYNTAX = st.sampled_from(["", "[", "]", "{", "}", "${", "'", '"', ",", "=", "\\", "\n", " ", "null", "1e400", "~"])
NOT_A_VALUE = st.builds(lambda a, b, c: a + b + "q" + c, SYNTAX, JUNK, JUNK)


def garbage(kind: str) -> st.SearchStrategy[str]:
    if kind == "FloatNode":
        return st.one_of(NOT_A_VALUE, st.sampled_from(["nan", "inf", "-inf", "NaN", "+inf"]))
    if kind in TYPED:
        return NOT_A_VALUE
    return st.one_of(JUNK, NOT_A_VALUE, st.just(""), st.text(min_size=300, max_size=3000))


def listing() -> set[str]:
    return {path.name for path in REPO.iterdir()} | {path.name for path in Path.home().iterdir()}


@settings(max_examples=40, deadline=None, database=None)
@given(st.data())
def test_garbage_in_any_field_is_one_line_and_exit_2(data: st.DataObject) -> None:
    overrides, key, kind = data.draw(st.sampled_from(FIELDS), label="field")
    value = data.draw(garbage(kind), label="value")
    before = listing()
    with tempfile.TemporaryDirectory() as cwd:
        done = run_main([*overrides, *QUICK, f"{key}={value}"], Path(cwd))
    assert "Traceback" not in done.stderr + done.stdout
    if kind in TYPED or done.returncode != 0:
        assert done.returncode == 2, (done.stdout, done.stderr)
        assert len(done.stderr_lines) == 1, done.stderr
        assert done.stderr_lines[0].startswith("typedexp: error: ")
        assert len(done.stderr_lines[0]) < 2000  # long values are shortened
    else:
        assert all(line.startswith("typedexp: warning: ") for line in done.stderr_lines), done.stderr
    assert listing() == before  # nothing written outside the temp dir
