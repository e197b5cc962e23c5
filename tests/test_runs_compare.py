"""Comparing runs: ``typedexp runs --group-by`` (mean ± std and counts over seeds), ``--diff A B``,
and a run's ``tags`` and ``note`` (SwanLab, result.json, the table, ``--where tag=``).

The numbers of ``--group-by`` are checked on run dirs written by hand (``made_run``), whose final
metrics are chosen so the means and sample stds can be worked out by hand. Tags and notes go
through two real quick runs, made once for the module.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
from swanlab.proto.swanlab.record.v1.record_pb2 import Record
from swanlab.sdk.internal.core_python.store import DataStoreReader

from tests.helpers import QUICK, CliRun, run_main
from tests.test_runs_command import made_run
from typedexp import Experiment, launch
from typedexp.core.errors import ConfigError
from typedexp.runs.session import check_same_config
from typedexp.app.task import run_name

# Final val/acc of each hand-written run: (model, seed) -> value. large's seed 2 failed part-way.
VAL_ACC = {("small", 0): 0.5, ("small", 1): 0.6, ("small", 2): 0.7, ("large", 0): 0.8, ("large", 1): 0.9}
FAILED = ("large", 2)


def seeds_dir(root: Path) -> Path:
    """A 2 × 3 grid of model × seed written by hand; one job failed (its partial val/acc is 0.1)."""
    for job, (model, seed) in enumerate([*VAL_ACC, FAILED]):
        value = VAL_ACC.get((model, seed), 0.1)
        points = [{"step": 4, "val/acc": value, "val/loss": 1 - value}]
        made_run(root, str(job), [f"model={model}", f"seed={seed}", "tracker=disabled"], points)
    failed = root / "5" / "result.json"
    result = json.loads(failed.read_text(encoding="utf-8"))
    failed.write_text(json.dumps({**result, "state": "failed", "error": "boom"}), encoding="utf-8")
    return root


def csv_of(root: Path, *args: str) -> tuple[CliRun, list[dict[str, str]]]:
    out = root / "out.csv"
    done = run_main(["runs", *args, "--csv", str(out)], root)
    assert done.returncode == 0, done.stderr
    with out.open(encoding="utf-8", newline="") as file:
        return done, list(csv.DictReader(file))


def printed_rows(done: CliRun) -> list[list[str]]:
    lines = done.stdout.splitlines()
    rule = next(number for number, line in enumerate(lines) if set(line) == {"─"})
    return [line.split("   ") for line in lines[rule + 1 :] if line and not line.startswith(("mean ±", "each", "saved"))]


# --- --group-by -----------------------------------------------------------------------------------


def test_group_by_gives_each_groups_mean_std_and_count_over_seeds(tmp_path: Path) -> None:
    seeds_dir(tmp_path / "seeds")
    done, rows = csv_of(tmp_path, "seeds", "--group-by", "model")
    assert list(rows[0]) == [
        "model", "runs", "excluded", "val/acc mean", "val/acc std", "val/acc count",
    ]
    small, large = rows
    # By hand: small 0.5, 0.6, 0.7 -> mean 0.6, sample std 0.1; large 0.8, 0.9 -> 0.85, 0.0707...
    # (the failed run's 0.1 is excluded from the means, and counted).
    assert (small["model"], small["runs"], small["excluded"], small["val/acc count"]) == ("small", "3", "0", "3")
    assert math.isclose(float(small["val/acc mean"]), 0.6) and math.isclose(float(small["val/acc std"]), 0.1)
    assert (large["model"], large["runs"], large["excluded"], large["val/acc count"]) == ("large", "2", "1", "2")
    assert math.isclose(float(large["val/acc mean"]), 0.85) and math.isclose(float(large["val/acc std"]), math.sqrt(0.005))
    lines = done.stdout.splitlines()
    assert lines[0] == "2 groups of 6 runs (5 done, 1 failed) under seeds, by model"
    assert [[cell.strip() for cell in row if cell.strip()] for row in printed_rows(done)] == [
        ["small", "3", "0", "0.6000 ± 0.1000"],
        ["large", "2", "1", "0.8500 ± 0.0707"],
    ]
    assert "each group's runs differ in: seed" in lines


def test_group_by_sorts_filters_and_picks_the_averaged_columns(tmp_path: Path) -> None:
    seeds_dir(tmp_path / "seeds")
    _, rows = csv_of(tmp_path, "seeds", "--group-by", "model", "--sort", "val/acc")
    assert [row["model"] for row in rows] == ["large", "small"]  # the larger mean first
    _, rows = csv_of(tmp_path, "seeds", "--group-by", "model", "--sort", "val/acc", "--asc")
    assert [row["model"] for row in rows] == ["small", "large"]
    done, rows = csv_of(tmp_path, "seeds", "--group-by", "model,seed", "--where", "model=small", "--columns", "val/loss")
    assert list(rows[0]) == ["model", "seed", "runs", "excluded", "val/loss mean", "val/loss std", "val/loss count"]
    assert [(row["seed"], row["val/loss std"]) for row in rows] == [("0", ""), ("1", ""), ("2", "")]  # one run: no std
    assert [float(row["val/loss mean"]) for row in rows] == pytest.approx([0.5, 0.4, 0.3])
    assert [row[-1].strip() for row in printed_rows(done)] == ["0.5000", "0.4000", "0.3000"]


def test_group_by_tag_counts_a_run_in_each_of_its_tags(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    made_run(runs, "a", ["tags=[baseline,ablation]"], [{"step": 4, "val/acc": 0.2}], tags=["baseline", "ablation"])
    made_run(runs, "b", ["tags=[baseline]"], [{"step": 4, "val/acc": 0.4}], tags=["baseline"])
    made_run(runs, "c", [], [{"step": 4, "val/acc": 0.9}])
    _, rows = csv_of(tmp_path, "runs", "--group-by", "tag")
    assert [(row["tag"], row["runs"], float(row["val/acc mean"])) for row in rows] == [
        ("baseline", "2", pytest.approx(0.3)), ("ablation", "1", 0.2), ("", "1", 0.9),
    ]
    _, rows = csv_of(tmp_path, "runs", "--where", "tag=ablation")
    assert [row["run"] for row in rows] == ["runs/a"]


# --- --diff ---------------------------------------------------------------------------------------


def test_diff_shows_only_the_settings_and_metrics_that_differ(tmp_path: Path) -> None:
    made_run(tmp_path / "runs", "a", ["optim.lr=0.1"], [{"step": 4, "val/acc": 0.5, "val/loss": 1.0}])
    made_run(tmp_path / "runs", "b", ["optim.lr=1e-1", "model.dropout=0.2"], [{"step": 4, "val/acc": 0.75, "val/loss": 1.0}])
    done, rows = csv_of(tmp_path, "--diff", "runs/a", "runs/b")
    # optim.lr is 0.1 in both (typed two ways); val/loss is the same: neither is listed.
    assert [list(row.values()) for row in rows] == [
        ["model.dropout", "0.0", "0.2", ""],
        ["val/acc", "0.5000", "0.7500", "+0.2500"],
    ]
    assert list(rows[0]) == ["field", "runs/a", "runs/b", "change"]
    assert done.stdout.splitlines()[0] == "runs/a vs runs/b: 1 setting and 1 metric differ"
    same = run_main(["runs", "--diff", "runs/a", "runs/a"], tmp_path)
    assert same.stdout.splitlines() == ["runs/a vs runs/a: the same settings, final metrics and state"]


# --- tags and a note ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tagged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two real quick runs: one tagged with a note (from Python), one without (from overrides)."""
    root = tmp_path_factory.mktemp("tagged")
    experiment = Experiment(tags=("baseline", "ablation"), note="first try: lr from the paper")
    launch(QUICK, experiment=experiment, output_dir=root / "outputs" / "tagged")
    launch([*QUICK, "seed=1"], output_dir=root / "outputs" / "plain")
    return root


def test_tags_and_the_note_are_saved_in_result_json(tagged: Path) -> None:
    result = json.loads((tagged / "outputs" / "tagged" / "result.json").read_text(encoding="utf-8"))
    assert (result["tags"], result["note"]) == (["baseline", "ablation"], "first try: lr from the paper")
    plain = json.loads((tagged / "outputs" / "plain" / "result.json").read_text(encoding="utf-8"))
    assert (plain["tags"], plain["note"]) == ([], "")


def test_the_runs_table_shows_tags_and_note_and_filters_by_tag(tagged: Path) -> None:
    _, rows = csv_of(tagged, "outputs")
    by_run = {row["run"]: row for row in rows}
    assert (by_run["outputs/tagged"]["tags"], by_run["outputs/tagged"]["note"]) == ("[baseline,ablation]", "first try: lr from the paper")
    assert (by_run["outputs/plain"]["tags"], by_run["outputs/plain"]["note"]) == ("[]", "")
    done, rows = csv_of(tagged, "outputs", "--where", "tag=ablation")
    assert [row["run"] for row in rows] == ["outputs/tagged"]
    assert "where tag=ablation" in done.stdout.splitlines()[0]
    _, rows = csv_of(tagged, "outputs", "--where", "tag=abl")  # a whole tag, not a part of one
    assert rows == []


def test_diff_of_two_real_runs_names_their_tags_note_seed_and_metrics(tagged: Path) -> None:
    _, rows = csv_of(tagged, "--diff", "outputs/tagged", "outputs/plain")
    fields = [row["field"] for row in rows]
    assert fields[:3] == ["seed", "tags", "note"]  # the config's order; nothing else of the config differs
    assert [rows[1]["outputs/tagged"], rows[1]["outputs/plain"]] == ["[baseline,ablation]", "[]"]
    assert "val/acc" in fields and all("/" in field for field in fields[3:])


def start_record(swanlab_run: Path) -> tuple[list[str], str]:
    """(tags, description) of the start record in SwanLab's record file: what ``swanlab.init`` was given."""
    reader = DataStoreReader()
    reader.open(next(swanlab_run.glob("run-*.swanlab")))
    try:
        for raw in reader:
            record = Record()
            record.ParseFromString(raw)
            if record.WhichOneof("record_type") == "start":
                return list(record.start.tags), record.start.description
    finally:
        reader.close()
    raise AssertionError(f"no start record in {swanlab_run}")


def test_swanlab_gets_the_tags_and_the_note(workdir: Path) -> None:
    launch(["tracker=offline", "tracker.log_dir=sl", *QUICK[1:], "tags=[baseline]", "note='lr 0.1, as in the paper'"])
    tags, description = start_record(next((workdir / "sl").glob("run-*")))
    assert tags == ["baseline"]
    assert description.splitlines()[0] == "lr 0.1, as in the paper"
    assert description.splitlines()[1].startswith("typedexp run in ")  # tracker.description's default after it


def test_tags_and_note_change_nothing_computed() -> None:
    """Not in a run's name; a resumed run may change them (session.MAY_DIFFER)."""
    assert run_name(["tags=[baseline]", "note=x", "seed=1"]) == "seed=1"
    check_same_config({"tags": ["a"], "note": "x", "seed": 1}, {"tags": ["b"], "note": "y", "seed": 1}, Path("r"))


@pytest.mark.parametrize(
    ("tags", "note", "message"),
    [
        (("a b",), "", "tags: 'a b' is not a tag: a tag is one word of up to 32 letters, digits, _ . or -, no spaces"),
        (("a,b",), "", "tags: 'a,b' is not a tag"),
        (("x" * 33,), "", "tags: 'x{33}' is not a tag"),
        (("a", "a"), "", "tags=['a', 'a']: a tag is given twice"),
        ((), "two\nlines", "note: must be one line of printable text"),
        ((), "x" * 201, "note: 201 characters; a note is one line of at most 200"),
    ],
)
def test_a_bad_tag_or_note_is_refused_in_python(tags: tuple[str, ...], note: str, message: str) -> None:
    with pytest.raises(ConfigError, match="^" + message.replace("[", r"\[").replace("(", r"\(")):
        Experiment(tags=tags, note=note)


# --- mistakes: one line, exit code 2 --------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["runs", "seeds", "--group-by", "modle"], "runs: --group-by modle: no such setting; available: tag; model, model.hidden, "),
        (["runs", "seeds", "--group-by", ","], "runs: --group-by: name at least one setting, e.g. --group-by model,optim.lr"),
        (["runs", "seeds", "--group-by", "model", "--plot", "val/acc"], "runs: --plot draws runs, not groups; leave out --group-by"),
        (["runs", "seeds", "--group-by", "model", "--columns", "model"], "runs: --columns model: no such column; available: val/acc"),
        (["runs", "--diff", "seeds/0"], "runs: argument --diff: expected 2 arguments; see typedexp runs --help"),
        (["runs", "--diff", "seeds/0", "seeds"], "runs: --diff seeds: not a run directory (a run directory holds .hydra/)"),
        (["runs", "--diff", "seeds/0", "nowhere"], "runs: --diff nowhere: no such run directory"),
        (["runs", "seeds", "--diff", "seeds/0", "seeds/1"], "runs: --diff compares the two runs it names; leave out DIR"),
        (["runs", "--where", "model=small", "--diff", "seeds/0", "seeds/1"], "runs: --diff compares the two runs it names; leave out --where"),
        (["runs", "seeds", "--where", "tag=baseline"], "runs: --where tag=baseline: no listed run has tags (set them with tags=[baseline])"),
        ([*QUICK, "tags=[a b]"], "tags: 'a b' is not a tag: a tag is one word of up to 32 letters"),
        ([*QUICK, 'tags=["a,b"]'], "tags: 'a,b' is not a tag"),
    ],
)
def test_a_mistake_is_one_line_and_exit_code_2(tmp_path: Path, args: list[str], line: str) -> None:
    seeds_dir(tmp_path / "seeds")
    done = run_main(args, tmp_path)
    assert done.returncode == 2 and done.stdout == "", done.stdout
    (printed,) = done.stderr.splitlines()
    assert printed.startswith(f"typedexp: error: {line}"), printed


def test_help_names_the_compare_options(tmp_path: Path) -> None:
    done = run_main(["runs", "--help"], tmp_path)
    assert done.returncode == 0
    for option in ("--group-by KEYS", "--diff RUN_A RUN_B", "tag=baseline"):
        assert option in " ".join(done.stdout.split()), option
