"""``typedexp runs``: the table of runs under a directory, sorting, filtering, CSV and the plot.

One set of runs is made once for the module, as a user's directories hold them: a finished single
run (``tracker=disabled``), a sweep with two failed jobs, a run that crashed (only ``.hydra/`` and a
partial ``metrics.jsonl``), and a run that is still going (its lock held, as a live run holds it).
The command runs in this process (``run_main``).
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from tests.helpers import QUICK, CliRun, held_run, run_main
from typedexp import JobFailure, launch, launch_sweep
from typedexp.runs import layout as rundir
from typedexp.runs import record as runs
from typedexp.core.errors import TypedexpError
from typedexp.runs.record import JobState, RunRecord, find_runs
from typedexp.runs.columns import override_values

SWEEP = "multirun/sweep"
SINGLE = "outputs/single"
CRASHED = "outputs/crashed"
RUNNING = "outputs/running"
CRASHED_OVERRIDES = [*QUICK, "model=large", "optim.lr=0.05"]
# A crashed run's metrics.jsonl: two whole points and the half line a kill leaves.
CRASHED_POINTS = [
    {"step": 2, "epoch": 1, "train/loss": 2.25, "train/acc": 0.125},
    {"step": 2, "epoch": 1, "val/loss": 2.2, "val/acc": 0.3},
    {"step": 4, "epoch": 2, "train/loss": 1.75, "train/acc": 0.5},
]


def fake_run(source: Path, target: Path, overrides: list[str], points: list[dict[str, float]]) -> None:
    """A run dir as a killed job leaves it: Hydra's files, some metrics, no result.json, no model.pt."""
    shutil.copytree(source / rundir.HYDRA_DIR, target / rundir.HYDRA_DIR)
    (target / rundir.HYDRA_DIR / "overrides.yaml").write_text(json.dumps(overrides), encoding="utf-8")  # JSON is YAML
    lines = [json.dumps(point) for point in points]
    (target / rundir.METRICS_FILE).write_text("\n".join(lines) + '\n{"step": 5, "train/lo', encoding="utf-8")


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    before = Path.cwd()
    os.chdir(root)
    try:
        launch(QUICK, output_dir=root / SINGLE)
        results = launch_sweep(["optim.lr=0.1,-1", "model=small,large", *QUICK], sweep_dir=root / SWEEP)
        assert [isinstance(result, JobFailure) for result in results] == [False, False, True, True]
    finally:
        os.chdir(before)
    fake_run(root / SINGLE, root / CRASHED, CRASHED_OVERRIDES, CRASHED_POINTS)
    fake_run(root / SINGLE, root / RUNNING, [*QUICK, "model=large", "optim.lr=0.2"], CRASHED_POINTS[:1])
    return root


@pytest.fixture
def running(runs_root: Path) -> Iterator[Path]:
    """RUNNING's lock held for the test, as a live run holds it (flock on another open file)."""
    with rundir.hold(runs_root / RUNNING, "hydra.run.dir"):
        yield runs_root


def listed(root: Path, *args: str) -> tuple[CliRun, list[dict[str, str]]]:
    """``typedexp runs args... --csv`` in ``root``: what it printed, and the CSV's rows."""
    out = root.parent / f"{root.name}-listed.csv"
    done = run_main(["runs", *args, "--csv", str(out)], root)
    assert done.returncode == 0, done.stderr
    with out.open(encoding="utf-8", newline="") as file:
        return done, list(csv.DictReader(file))


def table_lines(printed: str) -> list[str]:
    """The table's rows as printed: the lines between the rule under the header and the first error line."""
    lines = printed.splitlines()
    rule = next(number for number, line in enumerate(lines) if set(line) == {"─"})
    return [line for line in lines[rule + 1 :] if line.split()[-1] in ("done", "failed", "interrupted", "running")]


# --- what is listed -------------------------------------------------------------------------------


def test_lists_every_run_under_outputs_and_multirun_with_its_state(running: Path) -> None:
    done, rows = listed(running)
    states = {row["run"]: row["state"] for row in rows}
    assert states == {
        f"{SWEEP}/0": "done",
        f"{SWEEP}/1": "done",
        f"{SWEEP}/2": "failed",
        f"{SWEEP}/3": "failed",
        SINGLE: "done",
        CRASHED: "interrupted",
        RUNNING: "running",
    }
    assert done.stdout.splitlines()[0] == "7 runs (3 done, 2 failed, 1 interrupted, 1 running) under outputs and multirun"
    printed = table_lines(done.stdout)
    assert [line.split()[0] for line in printed] == [row["run"] for row in rows]
    assert f"{SWEEP}/3 failed: optim.lr=-1.0: must be >= 0" in done.stdout.splitlines()
    assert rows[2]["error"] == "optim.lr=-1.0: must be >= 0"
    assert done.stderr == ""


def test_a_run_dir_without_its_lock_holder_reads_as_interrupted(runs_root: Path) -> None:
    _, rows = listed(runs_root)
    assert {row["run"]: row["state"] for row in rows}[RUNNING] == "interrupted"


def test_the_columns_are_the_overrides_that_differ_and_the_final_numbers(runs_root: Path) -> None:
    _, rows = listed(runs_root)
    header = list(rows[0])
    # The quick settings are the same for every run: no column. model/optim.lr differ.
    assert header[:3] == ["run", "optim.lr", "model"] and "tracker" not in header and "epochs" not in header
    assert header[-4:] == ["steps", "seconds", "state", "error"] and "val/acc" in header
    by_run = {row["run"]: row for row in rows}
    # A run that did not override a setting shows the value it ran with (from .hydra/).
    assert (by_run[SINGLE]["optim.lr"], by_run[SINGLE]["model"]) == ("0.01", "small")
    assert (by_run[CRASHED]["optim.lr"], by_run[CRASHED]["model"]) == ("0.05", "large")
    result = json.loads((runs_root / SINGLE / "result.json").read_text(encoding="utf-8"))
    assert by_run[SINGLE]["val/acc"] == f"{result['metrics']['val/acc']:.4f}"
    assert by_run[SINGLE]["steps"] == str(result["steps"]) == "2"
    assert by_run[SINGLE]["seconds"] == f"{result['seconds']:.1f}"
    # The crashed run: its last whole line's step, its last val/acc, no duration; the half line is skipped.
    assert (by_run[CRASHED]["steps"], by_run[CRASHED]["val/acc"], by_run[CRASHED]["seconds"]) == ("4", "0.3000", "")


def test_one_sweep_directory_lists_only_its_jobs(runs_root: Path) -> None:
    done, rows = listed(runs_root, SWEEP)
    assert [row["run"] for row in rows] == [f"{SWEEP}/{job}" for job in range(4)]
    assert done.stdout.splitlines()[0] == f"4 runs (2 done, 2 failed) under {SWEEP}"


# --- sorting and filtering ------------------------------------------------------------------------


def numbers(rows: list[dict[str, str]], metric: str) -> list[float]:
    return [float(row[metric]) for row in rows if row[metric]]


def test_sort_puts_the_best_first_and_runs_without_the_metric_last(runs_root: Path) -> None:
    done, rows = listed(runs_root, "--sort", "val/acc")
    values = numbers(rows, "val/acc")
    assert len(values) == 4 and values == sorted(values, reverse=True)  # acc: largest first
    assert [row["val/acc"] for row in rows[4:]] == ["", "", ""]
    assert list(rows[0])[3] == "val/acc" and "sorted by val/acc (largest first)" in done.stdout.splitlines()[0]
    _, rows = listed(runs_root, "--sort", "val/loss")
    values = numbers(rows, "val/loss")
    assert values == sorted(values) and list(rows[0])[3] == "val/loss"  # a loss: smallest first, its own column
    _, rows = listed(runs_root, "--sort", "val/acc", "--asc")
    assert numbers(rows, "val/acc") == sorted(numbers(rows, "val/acc"))


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (["model=large"], [f"{SWEEP}/1", f"{SWEEP}/3", CRASHED, RUNNING]),
        (["model=small"], [f"{SWEEP}/0", f"{SWEEP}/2", SINGLE]),  # the single run kept the default model
        (["optim.lr=1e-1"], [f"{SWEEP}/0", f"{SWEEP}/1"]),  # the value as a number: 0.1
        (["model=large", "optim.lr=-1"], [f"{SWEEP}/3"]),  # every --where must hold
        (["+optim.lr=0.01"], [SINGLE]),
    ],
)
def test_where_keeps_the_runs_with_that_setting(runs_root: Path, where: list[str], expected: list[str]) -> None:
    args = [arg for test in where for arg in ("--where", test)]
    done, rows = listed(runs_root, *args)
    assert [row["run"] for row in rows] == expected
    assert f"where {' and '.join(test.lstrip('+') for test in where)}" in done.stdout.splitlines()[0]


def test_where_that_matches_nothing_prints_an_empty_list(runs_root: Path) -> None:
    done, rows = listed(runs_root, "--where", "model=cnn")
    assert rows == [] and done.stdout.splitlines()[0].startswith("0 runs (none found) under")


# --- untrusted run directories ----------------------------------------------------------------------


def test_control_characters_and_formulas_from_a_foreign_run_are_defused(tmp_path: Path) -> None:
    runs = tmp_path / "foreign"
    for name, overrides, error in (
        ("a", ["model=\x1b[31mred", "+note==HYPERLINK(\"http://x\")"], "bad\x1b]0;title\x07 line"),
        ("b", ["model=small", "+note=@SUM(1)"], None),
    ):
        (runs / name / rundir.HYDRA_DIR).mkdir(parents=True)
        (runs / name / rundir.HYDRA_DIR / "overrides.yaml").write_text(json.dumps(overrides), encoding="utf-8")  # JSON is YAML
        result: dict[str, object] = {"state": "failed" if error else "done", "error": error, "steps": 1, "seconds": 1.0, "metrics": {}}
        (runs / name / "result.json").write_text(json.dumps(result), encoding="utf-8")
    done, rows = listed(tmp_path, "foreign")
    assert "\x1b" not in done.stdout and "\x07" not in done.stdout
    assert "foreign/a failed: bad?]0;title? line" in done.stdout.splitlines()
    assert [row["model"] for row in rows] == ["?[31mred", "small"]
    assert [row["note"] for row in rows] == ["'=HYPERLINK(\"http://x\")", "'@SUM(1)"]
    # Metric names come from the files too: an error that lists them shows no escape sequence.
    (runs / "b" / rundir.METRICS_FILE).write_text('{"step": 1, "val/\\u001b[2Jacc": 0.5}\n', encoding="utf-8")
    refused = run_main(["runs", "foreign", "--sort", "val/ac"], tmp_path)
    assert refused.returncode == 2 and "val/?[2Jacc" in refused.stderr and "\x1b" not in refused.stderr


def test_a_name_that_is_not_utf8_is_shown_and_saved(tmp_path: Path) -> None:
    """A directory name in another encoding, an error line with a lone surrogate: '?', not a traceback."""
    runs = tmp_path / "foreign"
    run = Path(os.fsdecode(os.fsencode(runs) + b"/caf\xe9"))
    (run / rundir.HYDRA_DIR).mkdir(parents=True)
    (run / rundir.HYDRA_DIR / "overrides.yaml").write_text('["model=large"]', encoding="utf-8")
    result = '{"state": "failed", "error": "bad \\udcff line", "steps": 0, "seconds": 0.5, "metrics": {}}'
    (run / "result.json").write_text(result, encoding="utf-8")
    done, rows = listed(tmp_path, "foreign")
    assert [(row["run"], row["error"]) for row in rows] == [("foreign/caf?", "bad ? line")]
    assert "foreign/caf? failed: bad ? line" in done.stdout.splitlines()


def test_symlinks_in_a_runs_directory_are_not_followed(tmp_path: Path, runs_root: Path) -> None:
    secret = tmp_path / "secret.jsonl"
    secret.write_text('{"step": 99, "val/acc": 0.99}\n', encoding="utf-8")
    runs = tmp_path / "given"
    fake_run(runs_root / SINGLE, runs / "run", CRASHED_OVERRIDES, [])
    (runs / "run" / rundir.METRICS_FILE).unlink()
    (runs / "run" / rundir.METRICS_FILE).symlink_to(secret)
    elsewhere = tmp_path / "result-elsewhere.json"
    elsewhere.write_text('{"state": "done", "steps": 7, "seconds": 1.0, "metrics": {"val/acc": 0.9}}', encoding="utf-8")
    (runs / "run" / "result.json").symlink_to(elsewhere)
    (runs / "elsewhere").symlink_to(runs_root / "outputs", target_is_directory=True)  # a folder of runs
    (runs / "linked" / ".hydra").parent.mkdir()
    (runs / "linked" / ".hydra").symlink_to(runs_root / CRASHED / ".hydra", target_is_directory=True)
    _, rows = listed(tmp_path, "given")
    assert [(row["run"], row["steps"], row["val/acc"], row["state"]) for row in rows] == [
        ("given/linked", "0", "", "interrupted"),
        ("given/run", "0", "", "interrupted"),
    ]
    assert [row["optim.lr"] for row in rows] == ["", "0.05"]  # the linked .hydra/'s overrides are not read


def hostile_runs(root: Path) -> list[str]:
    """Run dirs built to hang, exhaust memory or crash a reader; the warning lines each must give."""

    def run(name: str, note: str | None = None, **files: str | bytes) -> Path:
        path = root / name
        (path / rundir.HYDRA_DIR).mkdir(parents=True)
        if note is not None:
            (path / rundir.HYDRA_DIR / "overrides.yaml").write_text(json.dumps([f"+note={note}"]), encoding="utf-8")
        for file, content in files.items():
            target = path / file.replace("__", "/").replace("_", ".")  # hydra__hydra_yaml: .hydra/hydra.yaml
            target.write_bytes(content) if isinstance(content, bytes) else target.write_text(content, encoding="utf-8")
        return path

    fifo = run("fifo")  # every file a FIFO: a plain open of any of them waits for a writer forever
    for name in (".lock", "result.json", rundir.METRICS_FILE, ".hydra/overrides.yaml", ".hydra/hydra.yaml", ".hydra/config.yaml"):
        os.mkfifo(fifo / name)
    with (run("sparse", "sparse") / rundir.METRICS_FILE).open("wb") as sparse:
        sparse.truncate(20 * 2**30)  # 20 GiB of holes: no disk used, but read whole it is 20 GiB of memory
    run("nested", "nested", result_json="[" * 100_000 + "]" * 100_000)
    run("huge", "huge", result_json=json.dumps({"state": "done", "steps": 10**400, "metrics": {"val/acc": 10**400}}))
    run("timestamp", "timestamp", _hydra__hydra_yaml="hydra:\n  job:\n    num: 2024-13-45 00:00:00\n")
    run("types", "types", result_json='{"state": ["done"], "metrics": [1]}')
    run("binary", "binary", result_json=b"\xff\x00\x81", metrics_jsonl=b'\xff\x00\n{"step": 1, "val/acc": 0.25}\n')
    run("math", "$\\foo{$", metrics_jsonl='{"step": 1, "val/acc": 0.5}\n{"step": 2, "val/acc": 1.7e308}\n')
    folders = run("folders", "folders")
    for name in (".lock", "result.json", rundir.METRICS_FILE):
        (folders / name).mkdir()
    laughs = [f'a{i}: &a{i} [{", ".join([f"*a{i - 1}"] * 9)}]' for i in range(1, 30)]  # 9**29 leaves, if copied
    run("laughs", None, _hydra__config_yaml="\n".join(['a0: &a0 ["lol"]', *laughs, "note: laughs"]) + "\n")
    d = root.name
    return [
        f"{d}/binary/result.json: not JSON (unparsable); not read",
        f"{d}/fifo/.hydra/config.yaml: a FIFO, not a regular file; not read",
        f"{d}/fifo/.hydra/hydra.yaml: a FIFO, not a regular file; not read",
        f"{d}/fifo/.hydra/overrides.yaml: a FIFO, not a regular file; not read",
        f"{d}/fifo/.lock: a FIFO, not a regular file; not read, so the run is not shown as running",
        f"{d}/fifo/metrics.jsonl: a FIFO, not a regular file; not read",
        f"{d}/fifo/result.json: a FIFO, not a regular file; not read",
        f"{d}/folders/.lock: a directory, not a regular file; not read, so the run is not shown as running",
        f"{d}/folders/metrics.jsonl: a directory, not a regular file; not read",
        f"{d}/folders/result.json: a directory, not a regular file; not read",
        f"{d}/nested/result.json: not JSON (nested too deeply); not read",
        f"{d}/sparse/metrics.jsonl: 20.0 GiB; only its last 64.0 MiB read",
        f"{d}/timestamp/.hydra/hydra.yaml: not YAML typedexp can read (month must be in 1..12); not read",
        f"{d}/types/result.json: not a typedexp result (no known state); not read",
    ]


def limited_memory() -> None:
    """In the child: 3 GiB of address space, so reading a 20 GiB file whole fails at once (MemoryError)
    instead of pushing the machine into swap or the OOM killer."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))


def test_hostile_run_dirs_never_hang_or_crash_the_table_the_csv_or_the_plot(tmp_path: Path) -> None:
    """FIFOs, a 20 GiB sparse file, JSON nested 100,000 deep, a 400-digit metric, a bad YAML
    timestamp, a label matplotlib would read as maths: every run listed, one warning per file.

    A subprocess, with a timeout and a memory limit: a reader that blocks or reads whole would
    otherwise hang the suite or take the machine's memory.
    """
    expected = hostile_runs(tmp_path / "hostile")
    done = subprocess.run(
        [sys.executable, "-m", "typedexp", "runs", "hostile", "--csv", "rows.csv", "--plot", "val/acc"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, preexec_fn=limited_memory,
        env={k: v for k, v in os.environ.items() if k not in ("SWANLAB_API_KEY", "HYDRA_FULL_ERROR")},
    )
    assert done.returncode == 0, done.stderr
    assert sorted(done.stderr.splitlines()) == [f"typedexp: warning: {line}" for line in expected]
    with (tmp_path / "rows.csv").open(encoding="utf-8", newline="") as file:
        rows = {row["run"].removeprefix("hostile/"): row for row in csv.DictReader(file)}
    assert {name: row["state"] for name, row in rows.items()} == {
        **dict.fromkeys(["binary", "fifo", "folders", "laughs", "math", "nested", "sparse", "timestamp", "types"], "interrupted"),
        "huge": "done",
    }
    # What could be read is shown: a readable line beside a binary one, a YAML note beside the laughs.
    assert (rows["binary"]["val/acc"], rows["math"]["note"], rows["laughs"]["note"]) == ("0.2500", "$\\foo{$", "laughs")
    assert (rows["huge"]["val/acc"], rows["huge"]["steps"]) == ("", "0")  # 10**400 is no float: dropped
    assert float(rows["math"]["val/acc"]) == 1.7e308  # shown; too close to float max to be drawn
    assert done.stdout.splitlines()[-1] == "plotted val/acc of 2 runs in val-acc.png (8 more listed runs logged no val/acc)"
    assert (tmp_path / "val-acc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_run_with_thousands_of_overrides_prints_a_readable_table_quickly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At most MAX_SETTINGS setting columns are printed (the CSV has all); each run's overrides are
    split once, not once per column (70,000 overrides took minutes: quadratic, and rich's layout)."""
    from typedexp.runs import table as runs_table

    for name, overrides in (("many", [f"+k{i}=1" for i in range(1000)]), ("few", ["model=small"])):
        (tmp_path / "runs" / name / rundir.HYDRA_DIR).mkdir(parents=True)
        (tmp_path / "runs" / name / rundir.HYDRA_DIR / "overrides.yaml").write_text(json.dumps(overrides), encoding="utf-8")
    calls: list[int] = []

    def counted(overrides: tuple[str, ...]) -> dict[str, str]:
        calls.append(len(overrides))
        return override_values(overrides)

    monkeypatch.setattr(runs_table, "override_values", counted)
    done, rows = listed(tmp_path, "runs")
    settings = ["model", *(f"k{i}" for i in range(1000))]  # in the order the runs (few, many) name them
    header = done.stdout.splitlines()[1].split()
    assert header == ["run", *settings[: runs_table.MAX_SETTINGS], "val/acc", "steps", "seconds", "state"]
    assert f"{1001 - runs_table.MAX_SETTINGS} more settings differ between these runs (--csv FILE writes every one)" in done.stdout
    assert list(rows[0])[1:1002] == settings  # the CSV: every one
    assert len(calls) <= 2 * 2  # once per run for the printed table, once for the CSV


def test_a_metrics_file_over_the_cap_is_read_from_its_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The last values are right however long the file; a line too long to be a point is skipped whole."""
    monkeypatch.setattr(runs, "MAX_METRICS_BYTES", 4096)
    monkeypatch.setattr(runs, "MAX_LINE_BYTES", 256)
    metrics = tmp_path / rundir.METRICS_FILE
    lines = [json.dumps({"step": step, "train/loss": 1 / step}) for step in range(1, 1001)]
    lines.insert(990, "x" * 5000)  # longer than a line may be, and than the whole cap
    metrics.write_text("\n".join(lines) + "\n", encoding="utf-8")
    unread: list[str] = []
    assert runs.last_logged(metrics, unread) == ({"train/loss": 1 / 1000}, 1000)
    assert unread == [f"{metrics}: {rundir.size_text(metrics.stat().st_size)}; only its last 4.0 KiB read"]
    steps = [step for step, _ in runs.curve(metrics, "train/loss")]
    assert steps == list(range(steps[0], 1001)) and 1 < steps[0] < 1000  # the end, no line cut in two


def test_a_deep_tree_of_folders_is_walked_without_recursion(tmp_path: Path) -> None:
    """A run 400 folders down, listed with only 100 frames to spare: ``os.walk`` recurses once per
    level (in real trees: RecursionError at ~1,000 levels, which would take seconds to build here)."""
    levels = [os.path.join(tmp_path, *["d"] * level) for level in range(1, 401)]
    for folder in levels:  # one by one: os.makedirs and mkdir(parents=True) recurse too
        os.mkdir(folder)
    os.mkdir(os.path.join(levels[-1], rundir.HYDRA_DIR))
    frames = len(traceback.extract_stack())  # in use now, pytest's included
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(frames + 100)
    try:
        found = find_runs(Path(levels[0]))
    finally:
        sys.setrecursionlimit(limit)
    assert [record.run_dir for record in found] == [Path(levels[-1])]


def test_plot_labels_from_run_dirs_are_text_not_maths(tmp_path: Path) -> None:
    """``$\\foo{$`` is drawn as written (matplotlib would parse it as mathtext and fail); ``_x`` is in the
    legend (matplotlib leaves out labels that start with an underscore)."""
    import io

    from typedexp.runs.plot import figure

    records = [RunRecord(tmp_path / name, JobState.done) for name in ("a", "b")]
    for record in records:
        record.run_dir.mkdir()
        (record.run_dir / rundir.METRICS_FILE).write_text('{"step": 1, "val/acc": 0.5}\n', encoding="utf-8")
    drawn = figure(records, "val/acc", lambda drawn: ["note=$\\foo{$" if record.run_dir.name == "a" else "_x" for record in drawn])
    drawn.savefig(io.BytesIO(), format="png")
    (legend,) = drawn.legends
    assert legend is not None
    assert [text.get_text() for text in legend.get_texts()] == ["note=\\$\\foo{\\$", " _x"]


# --- the plot -------------------------------------------------------------------------------------


def logged(run_dir: Path, metric: str) -> tuple[list[float], list[float]]:
    """(steps, values) of ``metric`` in a run's metrics.jsonl, read here with json, whole lines only."""
    steps, values = [], []
    for line in (run_dir / rundir.METRICS_FILE).read_text(encoding="utf-8").splitlines():
        try:
            point = json.loads(line)
        except ValueError:
            continue
        if metric in point:
            steps.append(float(point["step"]))
            values.append(float(point[metric]))
    return steps, values


def test_the_plot_draws_each_runs_logged_points(runs_root: Path) -> None:
    from typedexp.runs.plot import figure
    from typedexp.runs.table import labels

    records = [record for record in find_runs(runs_root / "outputs") if record.run_dir.name != "running"]
    lines = figure(records, "train/loss", labels).axes[0].lines
    assert [line.get_label() for line in lines] == ["model=large optim.lr=0.05", "model=small optim.lr=0.01"]
    for line, record in zip(lines, records, strict=True):
        steps, values = logged(record.run_dir, "train/loss")
        assert len(steps) >= 1
        assert np.asarray(line.get_xdata(), dtype=float).tolist() == steps
        assert np.asarray(line.get_ydata(), dtype=float).tolist() == values
    assert logged(runs_root / CRASHED, "train/loss") == ([2.0, 4.0], [2.25, 1.75])


def test_a_figure_without_matplotlib_says_how_to_install_it(runs_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typedexp.runs.plot import INSTALL_HINT, figure

    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # the import fails
    with pytest.raises(TypedexpError, match=re.escape(INSTALL_HINT)):
        figure(find_runs(runs_root / SWEEP), "val/acc", str)


def test_plot_writes_a_png_and_says_where(runs_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "curves.png"
    done = run_main(["runs", "--plot", "val/acc", "--out", str(out)], runs_root)
    assert done.returncode == 0, done.stderr
    # Only where the picture is (the table is what `typedexp runs` prints without --plot).
    assert done.stdout.splitlines() == [f"plotted val/acc of 4 runs in {out} (3 more listed runs logged no val/acc)"]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    default = run_main(["runs", SWEEP, "--plot", "train/loss", "--csv", "sweep.csv"], runs_root)
    assert default.stdout.splitlines() == [
        "saved 4 rows in sweep.csv",  # what else was written is said too
        "plotted train/loss of 2 runs in train-loss.png (2 more listed runs logged no train/loss)",
    ]
    # Two runs drew train/loss (the failed jobs logged none): matplotlib's first two colours, not a third.
    with Image.open(runs_root / "train-loss.png") as png:
        assert png.format == "PNG" and png.size == (800, 500)
        pixels = np.asarray(png.convert("RGB"))

    def count(colour: tuple[int, int, int]) -> int:
        return int((pixels == colour).all(axis=-1).sum())

    assert count((31, 119, 180)) > 20 and count((255, 127, 14)) > 20 and count((44, 160, 44)) == 0


def test_plot_without_matplotlib_says_how_to_install_it(runs_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # found nowhere, as when it is not installed
    done = run_main(["runs", "--plot", "val/acc"], runs_root)
    assert done.returncode == 2 and done.stdout == ""  # said before anything is read or printed
    assert done.stderr.splitlines() == [
        "typedexp: error: runs: --plot needs matplotlib, an optional extra: pip install 'typedexp[plot]'"
    ]


def made_run(
    root: Path, name: str, overrides: list[str], points: list[dict[str, float]], **config: object
) -> RunRecord:
    """A finished run dir written by hand (no training): Hydra's three files, metrics.jsonl, result.json.

    Its config.yaml holds DEFAULTS with ``config`` over it, as a run's saved config holds every field.
    """
    hydra = root / name / rundir.HYDRA_DIR
    hydra.mkdir(parents=True)
    (hydra / "overrides.yaml").write_text(json.dumps(overrides), encoding="utf-8")  # JSON is YAML
    (hydra / "config.yaml").write_text(json.dumps({**DEFAULTS, **config}), encoding="utf-8")
    choices = {"model": "small", "optim": "sgd", "hydra/launcher": "basic"}
    (hydra / "hydra.yaml").write_text(json.dumps({"hydra": {"runtime": {"choices": choices}}}), encoding="utf-8")
    (root / name / rundir.METRICS_FILE).write_text("".join(json.dumps(point) + "\n" for point in points), encoding="utf-8")
    last = {key: value for point in points for key, value in point.items() if "/" in key}
    result = {"state": "done", "error": None, "steps": 4, "seconds": 1.0, "metrics": last}
    (root / name / "result.json").write_text(json.dumps(result), encoding="utf-8")
    return runs.read_run(root / name)


DEFAULTS: dict[str, object] = {
    "model": {"_target_": "typedexp.specs.models.MLP", "hidden": [128], "dropout": 0.0, "norm": "none"},
    "optim": {"_target_": "typedexp.specs.optim.SGD", "lr": 0.01},
    "epochs": 2,
    "batch_size": 64,
    "seed": 0,
}
CURVE = [{"step": 2, "val/acc": 0.25, "val/loss": 2.0}, {"step": 4, "val/acc": 0.5, "val/loss": 1.5}]


def test_a_setting_a_run_kept_at_its_default_shows_the_value_it_ran_with(tmp_path: Path) -> None:
    """``model.hidden`` of a run that did not override it: its saved list, as it would be typed."""
    made_run(tmp_path / "runs", "a", ["model.hidden=[64]"], CURVE)
    made_run(tmp_path / "runs", "b", [], CURVE)
    _, rows = listed(tmp_path, "runs")
    assert [(row["run"], row["model.hidden"]) for row in rows] == [("runs/a", "[64]"), ("runs/b", "[128]")]
    _, rows = listed(tmp_path, "runs", "--where", "model.hidden=[128]")
    assert [row["run"] for row in rows] == ["runs/b"]


def test_settings_every_run_shares_are_one_line_not_columns(tmp_path: Path) -> None:
    """``epochs=2`` typed in one run and kept as the default 2 in the other is no difference."""
    made_run(tmp_path / "runs", "a", ["epochs=2", "optim.lr=0.1", "batch_size=64"], CURVE)
    made_run(tmp_path / "runs", "b", ["optim.lr=0.01", "batch_size=64.0"], CURVE)
    done, rows = listed(tmp_path, "runs")
    assert done.stdout.splitlines()[1].split() == ["run", "optim.lr", "val/acc", "steps", "seconds", "state"]
    assert list(rows[0]) == ["run", "optim.lr", "val/acc", "steps", "seconds", "state", "error"]
    assert "same in all 2 runs: epochs=2 batch_size=64" in done.stdout.splitlines()
    one, _ = listed(tmp_path, "runs/a")
    assert "settings: epochs=2 optim.lr=0.1 batch_size=64" in one.stdout.splitlines()


def test_columns_picks_names_and_patterns_in_the_order_given(runs_root: Path) -> None:
    """``model.*`` is every field of the model's config (a default kept included), ``val/*`` every val metric."""
    config = yaml.safe_load((runs_root / SINGLE / rundir.HYDRA_DIR / "config.yaml").read_text(encoding="utf-8"))
    assert isinstance(config, dict) and isinstance(config["model"], dict) and isinstance(config["model"]["hidden"], list)
    fields = [f"model.{key}" for key in config["model"] if key != "_target_"]
    assert "model.hidden" in fields
    done, rows = listed(runs_root, "--columns", "run,model.*,val/*,state,model.hidden", "--where", "model=small")
    expected = ["run", *fields, "val/acc", "val/loss", "state"]  # model.hidden named twice: shown once
    assert list(rows[0]) == expected  # the CSV has the chosen columns, in the same order
    assert done.stdout.splitlines()[1].split() == expected
    hidden = "[" + ",".join(map(str, config["model"]["hidden"])) + "]"
    assert {row["model.hidden"] for row in rows} == {hidden}
    wrong = run_main(["runs", "--columns", "run,model.hiden"], runs_root)
    (line,) = wrong.stderr.splitlines()  # every name, whole: a group's fields after its first as .field
    assert "…" not in line and "; model, model.hidden, " in line and "; val/acc, val/loss, " in line, line
    assert line.endswith("; steps, seconds, state, error; or a pattern of them (model.*, val/*)")
    _, rows = listed(runs_root, "--columns", "model,optim.lr,error", "--where", "model=large")
    assert [list(row.values()) for row in rows] == [
        ["large", "0.1", ""],
        ["large", "-1", "optim.lr=-1.0: must be >= 0"],
        ["large", "0.05", ""],
        ["large", "0.2", ""],
    ]


def made_mixed(root: Path) -> None:
    """Two runs that differ in four settings: 95 characters wide with each column name on one line."""
    made_run(root, "a", ["optim.lr=0.001", "model.dropout=0.2", "model.norm=batch", "batch_size=32"], CURVE)
    made_run(root, "b", ["optim.lr=0.1"], CURVE)


def printed_at(root: Path, width: int, *args: str) -> list[str]:
    """What ``typedexp runs`` prints to a terminal ``width`` characters wide."""
    import io

    from rich.console import Console

    from typedexp.runs.table import parse, show

    out = io.StringIO()
    before = Path.cwd()
    os.chdir(root)
    try:
        show(parse(list(args)), Console(file=out, width=width, force_terminal=False))
    finally:
        os.chdir(before)
    return out.getvalue().splitlines()


@pytest.mark.parametrize("width", [120, 80])
def test_the_table_fits_a_terminal_without_cutting_a_value(tmp_path: Path, width: int) -> None:
    """At 120 columns the table fits as it is; at 80 its column names fold (``optim.`` over ``lr``),
    and every value is whole (rich would have cut them: ``0.0…`` for 0.001)."""
    made_mixed(tmp_path / "runs")
    lines = printed_at(tmp_path, width, "runs")
    assert all(len(line) <= width for line in lines) and "…" not in "".join(lines)
    rule = next(number for number, line in enumerate(lines) if set(line) == {"─"})
    rows = [line.split() for line in lines[rule + 1 : rule + 3]]
    assert rows == [
        ["runs/a", "0.001", "0.2", "batch", "32", "0.5000", "4", "1.0", "done"],
        ["runs/b", "0.1", "0.0", "none", "64", "0.5000", "4", "1.0", "done"],
    ]
    header = " ".join(lines[1:rule])
    if width == 120:
        assert rule == 2 and header.split() == [
            "run", "optim.lr", "model.dropout", "model.norm", "batch_size", "val/acc", "steps", "seconds", "state"
        ]
    else:
        assert rule == 3 and "optim." in lines[1] and "lr" in lines[2] and "batch_" in lines[1] and "size" in lines[2]


def test_a_table_too_wide_even_folded_prints_whole_rows_and_says_how_to_choose(tmp_path: Path) -> None:
    made_mixed(tmp_path / "runs")
    lines = printed_at(tmp_path, 50, "runs")
    assert "…" not in "".join(lines)
    assert [line.split()[:2] for line in lines if line.startswith("runs/")] == [["runs/a", "0.001"], ["runs/b", "0.1"]]
    assert "the table is 78 characters wide, the terminal 50: --columns NAME,... picks columns" in lines
    assert printed_at(tmp_path, 50, "runs", "--columns", "run,optim.lr,val/acc")[1:] == [
        "run      optim.lr   val/acc",
        "───────────────────────────",
        "runs/a   0.001       0.5000",
        "runs/b   0.1         0.5000",
    ]


def test_plot_labels_name_what_differs_between_the_drawn_runs_and_tell_equal_ones_apart(tmp_path: Path) -> None:
    """``tracker=disabled`` (typed in every run) and ``epochs=2`` (typed in one, the default in the
    others) are in no label; two runs with the same settings get the end of their run dir's path."""
    from typedexp.runs.plot import figure
    from typedexp.runs.table import labels

    records = [
        made_run(tmp_path, "first/0", ["tracker=disabled", "optim.lr=0.1", "epochs=2"], CURVE),
        made_run(tmp_path, "first/1", ["tracker=disabled", "optim.lr=0.01"], CURVE),
        made_run(tmp_path, "second/0", ["tracker=disabled", "optim.lr=0.1"], CURVE),
        made_run(tmp_path, "second/1", ["tracker=disabled", "optim.lr=0.5", "+note=x"], []),  # not drawn
    ]
    lines = figure(records, "val/acc", labels).axes[0].lines
    assert [line.get_label() for line in lines] == ["optim.lr=0.1 (first/0)", "optim.lr=0.01", "optim.lr=0.1 (second/0)"]
    same = figure(records[:1] + records[2:3], "val/acc", labels).axes[0].lines  # nothing differs: the paths
    assert [line.get_label() for line in same] == ["first/0", "second/0"]


@pytest.mark.parametrize("count", [2, 12])
def test_the_plot_legend_covers_no_curve(tmp_path: Path, count: int) -> None:
    """The legend's box, as matplotlib laid it out, lies outside the axes and inside the figure."""
    import io

    from typedexp.runs.plot import figure
    from typedexp.runs.table import labels

    settings = ["model.norm=batch", "model.dropout=0.25", "model.hidden=[512,256,128]", "batch_size=32"]
    records = [made_run(tmp_path, f"run{index}", [f"optim.lr=0.{index + 1}", *settings[: index % 5]], CURVE) for index in range(count)]
    drawn = figure(records, "val/acc", labels)
    drawn.savefig(io.BytesIO(), format="png")  # lays the figure out
    (legend,) = drawn.legends
    box, axes, whole = legend.get_window_extent(), drawn.axes[0].get_window_extent(), drawn.bbox
    assert len(legend.get_texts()) == count
    assert not box.overlaps(axes), (box, axes)
    assert whole.x0 <= box.x0 and box.x1 <= whole.x1 and whole.y0 <= box.y0 and box.y1 <= whole.y1, (box, whole)
    # A long legend makes the figure taller, not the plot smaller: the axes keep most of 500 pixels.
    assert axes.height > 300 and (whole.height > 500) == (count > 4), (axes, whole)


# --- mistakes: one line, exit code 2 --------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["nowhere"], "runs: nowhere: no such directory"),
        (["outputs/single/result.json"], "runs: outputs/single/result.json: not a directory"),
        (["--sort", "val/accuracy"], "runs: --sort val/accuracy: no listed run has this metric; choose one of: …"),
        (["--plot", "val/acc2"], "runs: --plot val/acc2: no listed run has this metric; choose one of: …"),
        (["--where", "model"], "runs: --where 'model': expected KEY=VALUE, e.g. --where model=large"),
        (["--where", "modle=large"], "runs: --where modle=large: no listed run has a setting modle; overrides …"),
        (["--asc"], "runs: --asc orders by a metric; add --sort METRIC"),
        (["--sort", "val/acc", "--asc", "--desc"], "runs: argument --desc: not allowed with argument --asc; see …"),
        (["--out", "x.png"], "runs: --out names the PNG of --plot; add --plot METRIC"),
        (["--csv", "no/such/dir.csv"], "runs: --csv no/such/dir.csv: no such directory no/such"),
        (["--plot", "val/acc", "--out", "outputs"], "runs: --out outputs: is a directory; name a file"),
        (["--bogus"], "runs: unrecognized arguments: --bogus; see typedexp runs --help"),
        (["--columns", "run,modle.hidden"], "runs: --columns modle.hidden: no such column; available: run; dataset, "),
        (["--columns", "val/accuracy*"], "runs: --columns val/accuracy*: no such column; available: run; "),
        (["--columns", " , "], "runs: --columns: name at least one column, e.g. --columns run,optim.lr,val/acc"),
    ],
)
def test_a_mistake_is_one_line_and_exit_code_2(runs_root: Path, args: list[str], line: str) -> None:
    done = run_main(["runs", *args], runs_root)
    assert done.returncode == 2 and done.stdout == ""
    (printed,) = done.stderr.splitlines()
    head, _, _ = line.partition("…")
    assert printed.startswith(f"typedexp: error: {head}"), printed


def test_no_runs_directory_here_is_one_line(tmp_path: Path) -> None:
    done = run_main(["runs"], tmp_path)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"typedexp: error: runs: no outputs/ or multirun/ in {tmp_path}; name the directory: typedexp runs DIR"
    ]


def test_a_directory_without_runs_says_so(tmp_path: Path) -> None:
    (tmp_path / "outputs").mkdir()
    done = run_main(["runs"], tmp_path)
    assert (done.returncode, done.stdout) == (0, "no runs under outputs (a run directory holds .hydra/)\n")


def test_help_names_every_option(tmp_path: Path) -> None:
    done = run_main(["runs", "--help"], tmp_path)
    assert done.returncode == 0
    for option in ("DIR", "--sort", "--asc", "--desc", "--where", "--columns", "--csv", "--plot", "--out"):
        assert option in done.stdout


# --- a live run, in another process ----------------------------------------------------------------


@pytest.mark.slow
def test_a_live_run_is_listed_as_running_and_then_as_done(tmp_path: Path) -> None:
    """A real run paused after its first logged point (tests/hold_run.py), listed while it holds its lock."""
    with held_run([*QUICK, "trainer.log_every=1", "hydra.run.dir=outputs/live"], tmp_path):
        _, rows = listed(tmp_path)
        assert [(row["run"], row["state"], row["steps"], row["seconds"]) for row in rows] == [("outputs/live", "running", "1", "")]
    _, rows = listed(tmp_path)
    assert [(row["run"], row["state"], row["steps"]) for row in rows] == [("outputs/live", "done", "2")]


def test_typedexps_own_help_points_to_the_runs_command(tmp_path: Path) -> None:
    done = run_main(["--help"], tmp_path)
    assert "List and compare runs: typedexp runs [DIR]  (sort, filter, CSV, plots: typedexp runs --help)" in done.stdout
