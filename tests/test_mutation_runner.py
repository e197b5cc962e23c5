"""``make mutation``'s own judgement: what counts as killed, survived, listed and stale."""

from __future__ import annotations

import re

from mutation.run import EQUIVALENT, MODULES, Listed, Score, fingerprint, listed_equivalents, mismatches

LOOP = "typedexp.engine.loop.x_fit__mutmut_"


def score(statuses: dict[str, str], equivalent: set[str]) -> Score:
    return Score("engine/loop", statuses, equivalent, finished=True)


def test_timeouts_and_type_errors_count_as_killed_and_unchecked_mutants_do_not_count() -> None:
    result = score({f"{LOOP}1": "killed", f"{LOOP}2": "timeout", f"{LOOP}3": "caught by type check",
                    f"{LOOP}4": "survived", f"{LOOP}5": "not checked"}, set())
    assert (result.killed, result.survivors, result.unlisted) == (3, [f"{LOOP}4"], [f"{LOOP}4"])
    assert result.score == 3 / 4


def test_a_listed_survivor_leaves_the_score_and_the_unlisted() -> None:
    result = score({f"{LOOP}1": "killed", f"{LOOP}2": "survived", f"{LOOP}3": "suspicious"}, {f"{LOOP}2"})
    assert result.unlisted == [f"{LOOP}3"] and result.score == 1 / 2


def test_a_listed_name_mutmut_no_longer_makes_is_stale_but_other_modules_names_are_not() -> None:
    listed = {f"{LOOP}7", f"{LOOP}9", "typedexp.engine.checkpoint.x_save__mutmut_1", "typedexp.engine.loop_x.y__mutmut_1"}
    result = score({f"{LOOP}7": "survived"}, listed)
    assert result.stale == [f"{LOOP}9"]


def test_the_equivalents_file_names_gated_modules_once_each_with_a_reason() -> None:
    listed = listed_equivalents()  # raises on a name without its reason
    modules = {"typedexp." + module.replace("/", ".") for module in MODULES}
    names = [line.split(" ", 1)[0] for line in EQUIVALENT.read_text(encoding="utf-8").splitlines()
             if line.strip() and not line.startswith("#")]  # each with "@<8 hex> <reason>" (or it raised)
    assert len(names) == len(set(names)) == len(listed)
    for name in names:
        assert re.fullmatch(r"typedexp\.[\w.ǁ]+__mutmut_\d+", name), name
        assert any(name.startswith(module + ".") for module in modules), name


DIFF = """--- src/typedexp/engine/loop.py
+++ src/typedexp/engine/loop.py
@@ -1,3 +1,3 @@
 def fit(
-    start = LoopPosition(epoch=1, batch=0)
+    start = LoopPosition(epoch=1, batch=None)
     step = start.step
"""


def test_a_fingerprint_is_the_change_itself_whatever_its_number_and_context() -> None:
    elsewhere = DIFF.replace("@@ -1,3 +1,3 @@", "@@ -90,3 +90,3 @@").replace(" def fit(", " def other(")
    assert fingerprint(DIFF) == fingerprint(elsewhere) == fingerprint(DIFF.replace("    start", "\tstart"))
    assert len(fingerprint(DIFF)) == 8 and int(fingerprint(DIFF), 16) >= 0
    assert fingerprint(DIFF) != fingerprint(DIFF.replace("batch=None", "batch=1"))
    assert fingerprint(DIFF) != fingerprint(DIFF.replace("batch=0)", "batch=2)"))  # the removed line counts too


def test_a_listed_survivor_whose_change_moved_is_named_with_its_new_fingerprint() -> None:
    diffs = {f"{LOOP}1": DIFF, f"{LOOP}2": DIFF.replace("batch=None", "batch=1"), f"{LOOP}3": DIFF}
    listed = {name: Listed(fingerprint(DIFF), "fresh start: batch unused") for name in diffs}
    found = mismatches([f"{LOOP}1", f"{LOOP}2", f"{LOOP}4"], listed, diffs.__getitem__)
    assert found == (f"{LOOP}2 @{fingerprint(diffs[f'{LOOP}2'])}",)  # 3 was killed, 4 is unlisted
