"""Issue 17, part 5: each mistake or fault gives one line naming the field or file, exit code 2.

Most cases run ``cli.main`` in this process (``run_main``), which takes a fraction of a second
once torch is imported. Faults that cannot be made for real in a test (a full disk, a read-only
dataset root as root) are simulated at the write they affect.
"""

from __future__ import annotations

import copy
import errno
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from tests.dataset_files import write_mnist
from tests.helpers import QUICK, CliRun, config_fields, run_main
from typedexp import ConfigError, launch
from typedexp.runs import layout as rundir
from typedexp.data.tensors import RawImages, split_train_val
from typedexp.data.vision import CACHE_FOLDER
from typedexp.core.errors import ResourceError
from typedexp.core.report import one_line
from typedexp.core.resources import naming_sizes

ERROR = "typedexp: error: "


def one_error(done: CliRun) -> str:
    """The single error line of a refused run (exit code 2, no traceback)."""
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert len(done.stderr_lines) == 1, done.stderr
    assert done.stderr_lines[0].startswith(ERROR)
    return done.stderr_lines[0].removeprefix(ERROR)


# 1. A read-only dataset root: the cache is an optimisation, so one warning and the run goes on.
def test_a_read_only_dataset_root_warns_once_and_trains(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "data"
    write_mnist(root)
    real_mkdir = Path.mkdir

    def read_only_mkdir(self: Path, *args: object, **kwargs: object) -> None:
        if self.name == CACHE_FOLDER:  # what mkdir raises on a read-only mount
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        real_mkdir(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "mkdir", read_only_mkdir)
    done = run_main([*QUICK, "dataset=mnist", f"dataset.root={root}"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr_lines == [
        f"typedexp: warning: cannot write the dataset cache in {root / CACHE_FOLDER} (Read-only file system); "
        "decoding the files on every run instead (dataset.cache=false silences this)"
    ]
    assert "done: " in done.stdout and not (root / CACHE_FOLDER).exists()


# 2. A full disk, made real by sending one file's writes to /dev/full (ENOSPC from the kernel).
def writes_to_dev_full(monkeypatch: pytest.MonkeyPatch, matches: Callable[[Path], bool]) -> None:
    """Writes to a matching path land in /dev/full, whether opened by ``Path.open`` (the data cache)
    or by ``rundir.open_no_follow`` (metrics.jsonl and the temp files of checkpoints and model.pt)."""
    real_open = Path.open
    real_open_no_follow = rundir.open_no_follow

    def open_full(self: Path, mode: str = "r", *args: object, **kwargs: object) -> object:
        if "r" not in mode and matches(self):
            return open("/dev/full", mode.replace("x", "w"))  # noqa: SIM115 - returned, as Path.open does
        return real_open(self, mode, *args, **kwargs)  # type: ignore[call-overload]

    def open_no_follow_full(path: Path, flags: int, mode: int = 0o666) -> int:
        if flags & (os.O_WRONLY | os.O_RDWR) and matches(Path(path)):
            return os.open("/dev/full", os.O_WRONLY)
        return real_open_no_follow(path, flags, mode)

    monkeypatch.setattr(Path, "open", open_full)
    for module in list(sys.modules.values()):  # every module that imported it by name
        if getattr(module, "open_no_follow", None) is real_open_no_follow:
            monkeypatch.setattr(module, "open_no_follow", open_no_follow_full)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize(
    ("write", "directory"),
    [
        ("metrics.jsonl", "run"),
        (".last.pt", "run/checkpoints"),  # the checkpoint's temp file, renamed once complete
        (".best.pt", "run/checkpoints"),  # best.pt's temp file, copied from last.pt
        (".model.pt", "run"),  # model.pt's temp file, likewise
    ],
)
def test_a_full_disk_names_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write: str, directory: str
) -> None:
    writes_to_dev_full(monkeypatch, lambda path: path.name.startswith(write))
    line = one_error(run_main([*QUICK, "hydra.run.dir=run"], tmp_path))
    assert line == f"no space left on the device holding {tmp_path / directory}; free some space there or write elsewhere"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_under_the_dataset_cache_only_warns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_mnist(tmp_path / "data")
    writes_to_dev_full(monkeypatch, lambda path: path.parent.name == CACHE_FOLDER)
    done = run_main([*QUICK, "dataset=mnist", f"dataset.root={tmp_path / 'data'}"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert [line.split("(")[1].split(")")[0] for line in done.stderr_lines] == ["No space left on device"]
    assert not list((tmp_path / "data" / CACHE_FOLDER).iterdir())  # no half-written file is left


def test_a_full_disk_where_hydra_writes_names_that_directory() -> None:
    from typedexp.app.error_messages import describe, user_message

    full = OSError(errno.ENOSPC, "No space left on device", "/runs/a/.hydra/config.yaml")
    expected = "no space left on the device holding /runs/a/.hydra; free some space there or write elsewhere"
    assert describe(full) == user_message(full) == expected


# 3. nan/inf in every float field of every spec, found from the composed config.
FLOAT_FIELDS = [(overrides, key) for overrides, key, kind in config_fields() if kind == "FloatNode"]


@pytest.mark.parametrize(("overrides", "key"), FLOAT_FIELDS, ids=[key for _, key in FLOAT_FIELDS])
@pytest.mark.parametrize("value", ["nan", "-inf"])
def test_nan_and_inf_are_refused_naming_the_field(
    tmp_path: Path, overrides: list[str], key: str, value: str
) -> None:
    line = one_error(run_main([*QUICK, *overrides, f"{key}={value}"], tmp_path))
    assert line == f"{key}={value}: must be a finite number"


def test_every_spec_has_float_fields_checked() -> None:
    keys = {key.split(".")[0] for _, key in FLOAT_FIELDS}
    assert keys == {"dataset", "model", "optim", "schedule", "tracker", "task", "trainer"}


# 4. Empty splits.
@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["dataset=fake", "dataset.num_samples=1"], "dataset.val_fraction=0.2: leaves 0 of the dataset's 1 examples"),
        (["dataset.val_fraction=0.9999"], "dataset.val_fraction=0.9999: leaves 0 of the dataset's 1797 examples"),
    ],
)
def test_an_empty_split_names_the_val_fraction(tmp_path: Path, args: list[str], words: str) -> None:
    assert one_error(run_main([*QUICK, *args], tmp_path)).startswith(words)


def test_an_empty_test_split_is_refused() -> None:
    images = RawImages(torch.zeros(10, 1, 2, 2), torch.zeros(10, dtype=torch.int64))
    empty = RawImages(torch.zeros(0, 1, 2, 2), torch.zeros(0, dtype=torch.int64))
    with pytest.raises(ConfigError, match="test files hold no examples"):
        split_train_val(images, num_classes=2, val_fraction=0.2, seed=0, test=empty)


# 5. Sizes too large to allocate (terabytes, so that they fail on any machine) or to represent.
@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (["model.hidden=[100000000000]"],
         r"out of memory while building the model \([\d.]+ GiB asked for\); lower model\.hidden=\[100000000000\]"),
        (["model.hidden=[100000000000000000000]"],
         r"a size too large for torch while building the model; lower model\.hidden=\[100000000000000000000\]"),
        (["dataset=fake", "dataset.num_samples=1000000000000"],
         r"out of memory while loading the dataset \([\d.]+ GiB asked for\); lower dataset\.num_samples=1000000000000"),
    ],
)
def test_absurd_sizes_name_the_field(tmp_path: Path, args: list[str], pattern: str) -> None:
    assert re.fullmatch(pattern, one_error(run_main([*QUICK, *args], tmp_path)))


def test_an_allocation_failure_names_the_fields_given() -> None:
    with pytest.raises(ResourceError, match=r"^out of memory while training; lower batch_size=9$"):
        with naming_sizes("training", ["batch_size=9"]):
            raise MemoryError
    gpu = "CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0 has a total capacity of 79.10 GiB"
    with pytest.raises(ResourceError, match=r"^out of memory while training \(20\.00 GiB asked for\); lower"):
        with naming_sizes("training", ["batch_size=9"]):
            raise RuntimeError(gpu)  # what torch.OutOfMemoryError (a RuntimeError) says
    with pytest.raises(RuntimeError, match="unrelated"):  # other errors pass through unchanged
        with naming_sizes("training", ["batch_size=9"]):
            raise RuntimeError("unrelated")


# 6. Checkpoints that load (weights_only) but are malformed.
RESUMABLE = ["tracker=disabled", "trainer.progress=off", "epochs=2", "trainer.max_batches=3", "trainer.checkpoint_every=2"]


@pytest.fixture(scope="module")
def saved_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """An epoch-end checkpoint (epoch 2, batch 0, step 3: 3 batches per epoch) as plain containers."""
    cwd = tmp_path_factory.mktemp("checkpoint")
    done = run_main([*RESUMABLE, "epochs=1", "hydra.run.dir=base"], cwd)
    assert done.returncode == 0, done.stderr
    loaded = torch.load(cwd / "base" / "checkpoints" / "last.pt", weights_only=True)
    assert isinstance(loaded, dict)
    return loaded


def mid_epoch(checkpoint: dict[str, object]) -> dict[str, object]:
    """The same state one batch into epoch 2, as a mid-epoch save would hold it."""
    position = checkpoint["position"]
    assert isinstance(position, dict)
    position.update(batch=1, step=4, order=torch.randperm(1438), window=[torch.ones(1), torch.tensor(3), 64])
    return checkpoint


def index(node: object, key: str) -> int | str:
    """List positions and the optimizer's parameter ids are ints; other keys are str."""
    return int(key) if key.isdigit() and not (isinstance(node, dict) and key in node) else key


def edit(path: str, value: object, *, mid: bool = False) -> Callable[[dict[str, object]], object]:
    """A change to the checkpoint: set the item at ``path`` (keys separated by '/') to ``value``."""

    def change(checkpoint: dict[str, object]) -> object:
        node: object = mid_epoch(checkpoint) if mid else checkpoint
        *parents, last = path.split("/")
        for key in parents:
            node = node[index(node, key)]  # type: ignore[index]
        node[index(node, last)] = value  # type: ignore[index]
        return checkpoint

    return change


MALFORMED = [
    ("rng/torch", edit("rng/torch", torch.zeros(10, dtype=torch.uint8)), "rng.torch is not a uint8 tensor of 5056 bytes"),
    ("rng/data", edit("rng/data", torch.zeros(5056)), "rng.data is not a uint8 tensor"),
    ("rng/python", edit("rng/python/1", [1, 2, 3]), "rng.python's state does not hold 625 numbers"),
    ("rng/numpy keys", edit("rng/numpy/0", torch.zeros(3, dtype=torch.int64)), "rng.numpy's keys are not 624 int64 values"),
    ("rng/numpy pos", edit("rng/numpy/1", 10**6), "rng.numpy's position or cached gaussian is out of range"),
    ("order short", edit("position/order", torch.arange(5), mid=True), "position.order has 5 entries, the training split 1438"),
    ("order float", edit("position/order", torch.rand(1438), mid=True), "position.order is not a 1-D int64 tensor"),
    ("order out of range", edit("position/order", torch.arange(1438) + 10**6, mid=True), "position.order is not a permutation"),
    ("window 2-D", edit("position/window", [torch.ones(2, 2), torch.tensor(1), 5], mid=True), "window's losses are not a 1-D float"),
    ("batch", edit("position/batch", 10**6, mid=True), "batch=1000000, step=4 does not fit 3 batches per epoch"),
    ("epoch", edit("position/epoch", -5), "position epoch=-5, batch=0, step=3 is out of range"),
    ("step", edit("position/step", 7), "step=7 does not fit 3 batches per epoch"),
    ("optimizer state shape", edit("optimizer/state/0", {"momentum_buffer": torch.zeros(3)}), "optimizer.state[0].momentum_buffer has shape (3,)"),
    ("optimizer groups", edit("optimizer/param_groups", "x"), "optimizer.param_groups is not a list of mappings"),
    ("optimizer lr", edit("optimizer/param_groups/0/lr", "x"), "optimizer hyper-parameter lr='x' is not a finite number"),
    ("optimizer state id", edit("optimizer/state/99", {}), "optimizer.state[99] belongs to no parameter"),
    ("model", edit("model/1.weight", "x"), "the model state holds values that are not tensors"),
    ("best value", edit("best_value", "x"), "best_value='x' is not a number"),
    ("metrics bytes", edit("extra/metrics_bytes", -1), "extra.metrics_bytes or extra.tracker_id is malformed"),
]


@pytest.mark.parametrize(("name", "change", "problem"), MALFORMED, ids=[name for name, _, _ in MALFORMED])
def test_a_malformed_checkpoint_is_refused_in_one_line(
    tmp_path: Path, saved_checkpoint: dict[str, object], name: str,
    change: Callable[[dict[str, object]], object], problem: str,
) -> None:
    torch.save(change(copy.deepcopy(saved_checkpoint)), tmp_path / "crafted.pt")
    line = one_error(run_main([*RESUMABLE, "resume=crafted.pt"], tmp_path))
    assert line.startswith(f"resume={tmp_path / 'crafted.pt'}: a malformed checkpoint (")
    assert problem in line
    assert not (tmp_path / "outputs").exists() or not list((tmp_path / "outputs").rglob("metrics.jsonl"))


def test_a_well_formed_mid_epoch_checkpoint_still_resumes(tmp_path: Path, saved_checkpoint: dict[str, object]) -> None:
    torch.save(mid_epoch(copy.deepcopy(saved_checkpoint)), tmp_path / "crafted.pt")
    done = run_main([*RESUMABLE, "resume=crafted.pt"], tmp_path)
    assert done.returncode == 0, done.stderr


# 7. Ctrl-C during start-up: while main() imports Hydra, and while the task imports torch.
INTERRUPT_ON_IMPORT = """
import builtins, os
real_import, target = builtins.__import__, os.environ["INTERRUPT_IMPORT"]
def interrupting(name, *args, **kwargs):
    if name == target or name.startswith(target + "."):
        raise KeyboardInterrupt
    return real_import(name, *args, **kwargs)
builtins.__import__ = interrupting
"""


@pytest.mark.parametrize("module", ["hydra_zen", "torch"])
def test_ctrl_c_during_start_up_prints_one_line_and_exits_130(tmp_path: Path, module: str) -> None:
    (tmp_path / "sitecustomize.py").write_text(INTERRUPT_ON_IMPORT)  # runs before `-m typedexp`
    source = Path(__file__).resolve().parents[1] / "src"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(source)]), "INTERRUPT_IMPORT": module}
    env.pop("HYDRA_FULL_ERROR", None)
    done = subprocess.run(
        [sys.executable, "-m", "typedexp", *QUICK], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert (done.returncode, done.stderr) == (130, "typedexp: interrupted\n")


def test_ctrl_c_while_composing_prints_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("typedexp.app.store.register_configs", interrupted)
    done = run_main(QUICK, tmp_path)
    assert (done.returncode, done.stderr) == (130, "typedexp: interrupted\n")


# 8. A huge value repeated in an error line is shortened, the explanation kept.
def test_a_huge_value_is_shortened_in_the_error_line(tmp_path: Path) -> None:
    line = one_error(run_main([*QUICK, "tracker.project=" + "x" * 12000], tmp_path))
    assert len(line) < 400
    assert line.startswith("tracker.project='xxx") and "…" in line
    assert line.endswith("' (12018 characters): use 1-100 letters, digits or _-+. (SwanLab's rule)")


def test_one_line_keeps_short_parts_and_joins_lines() -> None:
    assert one_line("a=1: must be\n  >= 2") == "a=1: must be >= 2"
    assert one_line("k=" + "y" * 1000 + "; why") == "k=" + "y" * 158 + "…" + "y" * 40 + " (1002 characters); why"


# 9. Deleting a required group.
@pytest.mark.parametrize(
    ("override", "group", "options"),
    [("~model", "model", "cnn, large, small"), ("~optim", "optim", "adam, adamw, sgd"),
     ("~dataset=x", "dataset", "cifar10, cifar100, diabetes, digits, fake, fashion_mnist, mnist")],
)
def test_deleting_a_group_says_it_is_required(tmp_path: Path, override: str, group: str, options: str) -> None:
    assert one_error(run_main([*QUICK, override], tmp_path)) == (
        f"{group}: the {group} group is required and cannot be deleted with ~{group}; "
        f"choose an option with {group}=<option>, one of: {options}"
    )


# 10. launch() with something other than a list of strings.
@pytest.mark.parametrize(
    ("overrides", "words"),
    [(None, "launch() takes a list of override strings, e.g. launch(['model=large', 'epochs=3']); got NoneType"),
     ([3], "launch() overrides must be strings like 'epochs=3'; got 3 (int)"),
     ("epochs=3", "launch() takes a list of overrides, e.g. ['epochs=3'], not a str")],
)
def test_launch_refuses_what_is_not_a_list_of_strings(overrides: object, words: str) -> None:
    with pytest.raises(TypeError) as raised:
        launch(overrides)  # type: ignore[arg-type]
    assert str(raised.value) == words


# 11. launch(output_dir=...) with characters Hydra's override grammar parses.
@pytest.mark.parametrize("name", ["a,b", "it's", 'say "hi"', "a b=c", "back\\slash\\", "日本"])
def test_launch_output_dir_may_hold_any_character(workdir: Path, name: str) -> None:
    result = launch(QUICK, output_dir=workdir / name)
    assert result.run_dir == workdir / name and result.weights_file.exists()


def test_launch_output_dir_with_an_interpolation_is_refused(workdir: Path) -> None:
    with pytest.raises(ConfigError, match=r"output_dir='run\$\{x\}': Hydra cannot use a path holding '\$\{'"):
        launch(QUICK, output_dir="run${x}")
    assert not list(workdir.iterdir())


# Clumsy inputs found while trying more: each was a traceback, two lines or a line naming nothing.
@pytest.mark.parametrize(
    ("arg", "line"),
    [
        ("model.hidden=[[1]]", "model.hidden=[[1]]: needs a list of whole numbers, e.g. [128, 64]"),
        ("=3", "=3: an override needs a key before '=', e.g. epochs=3"),
        ("dataset=null", "dataset=null: dataset needs an option, one of: cifar10, cifar100, diabetes, digits, fake, fashion_mnist, mnist"),
        ("model=", "model=: model needs an option, one of: cnn, large, small"),
        ("trainer=x", "trainer='x': trainer is a group of fields, not a value; set its fields, e.g. trainer.max_batches=2"),
        ("trainer=null", "trainer=None: trainer is a group of fields, not a value; set its fields, e.g. trainer.max_batches=2"),
        ("k" * 5000 + "=1", "k" * 160 + "…" + "k" * 40 + " (5000 characters): no such field or config group (a name of 5000 characters)"),
        ("tracker.description=ü", "cannot parse override 'tracker.description=ü': LexerNoViableAltException: tracker.description=ü; "
         "quote a value that holds spaces, quotes, commas, brackets or non-ASCII letters: key='value'"),
    ],
    ids=["nested list", "no key", "group=null", "group=", "node=str", "node=null", "5000-char key", "unquoted unicode"],
)
def test_clumsy_inputs_are_one_line(tmp_path: Path, arg: str, line: str) -> None:
    assert one_error(run_main([*QUICK, arg], tmp_path)) == line


def test_a_quoted_unicode_value_is_accepted(tmp_path: Path) -> None:
    done = run_main([*QUICK, "tracker.description='日本語 ü'"], tmp_path)
    assert done.returncode == 0, done.stderr


# Issue 22, part 5: lines that were a traceback, an exit code 0 or a message naming nothing.
def test_a_seed_torch_cannot_take_names_the_field_and_its_range(tmp_path: Path) -> None:
    assert one_error(run_main([*QUICK, f"seed={10**23}"], tmp_path)) == (
        f"seed={10**23}: must be a whole number from -2**63 to 2**64-1 (what torch.manual_seed takes), e.g. seed=0"
    )
    for edge in (2**64 - 1, -(2**63)):  # the ends of torch's range still train
        assert run_main([*QUICK, f"seed={edge}"], tmp_path).returncode == 0


@pytest.mark.parametrize(
    ("override", "line"),
    [("~trainer", "~trainer: trainer is part of every experiment and cannot be deleted (the run would quietly use "
                  "its defaults); set its fields instead, e.g. trainer.device=auto"),
     ("~epochs", "~epochs: epochs is part of every experiment and cannot be deleted (the run would quietly use "
                 "its default); set it instead, e.g. epochs=15")],
)
def test_deleting_a_field_of_the_experiment_is_refused_before_any_run_dir(tmp_path: Path, override: str, line: str) -> None:
    # Before the fix, `~trainer` exited 0 after training whole epochs: trainer.max_batches=2 was dropped with it.
    assert one_error(run_main([*QUICK, override], tmp_path)) == line
    assert not (tmp_path / "outputs").exists()


def test_deleting_an_optional_group_still_works(tmp_path: Path) -> None:
    assert run_main([*QUICK, "+experiment=digits_large", "~experiment"], tmp_path).returncode == 0


@pytest.mark.parametrize(
    ("run_dir", "line"),
    [("notes.txt", "hydra.run.dir=notes.txt: is a file; give a directory, or a path that does not exist yet"),
     ("notes.txt/run", "hydra.run.dir=notes.txt/run: cannot be created: {cwd}/notes.txt is a file; give a directory, "
                       "or a path that does not exist yet")],
)
def test_a_run_dir_that_is_a_file_names_it(tmp_path: Path, run_dir: str, line: str) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    assert one_error(run_main([*QUICK, f"hydra.run.dir={run_dir}"], tmp_path)) == line.format(cwd=tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_a_sweep_dir_that_is_a_file_names_it(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    assert one_error(run_main(["-m", *QUICK, "hydra.sweep.dir=notes.txt", "seed=1,2"], tmp_path)) == (
        "hydra.sweep.dir=notes.txt: is a file; give a directory, or a path that does not exist yet"
    )


def test_a_study_file_that_is_not_a_database_is_named(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "study.db").write_text("my notes, not a study\n")
    done = run_main(["-m", "hydra/sweeper=optuna", "optim.lr=choice(0.1,0.2)", *QUICK, "hydra.sweep.dir=s"], tmp_path)
    assert one_error(done) == (
        "hydra.sweeper.storage='sqlite:///study.db': s/study.db is not a study file (not a SQLite database); "
        "move it away, or keep this sweep elsewhere with hydra.sweep.dir=..."
    )
    assert (tmp_path / "s" / "study.db").read_text() == "my notes, not a study\n"
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["study.db"]  # no trial ran


def test_a_one_step_rise_of_onecycle_names_the_schedule_and_the_steps(tmp_path: Path) -> None:
    args = [*QUICK, "schedule=onecycle", "schedule.warmup_fraction=0.5", "epochs=2", "trainer.max_batches=1"]
    assert one_error(run_main(args, tmp_path)) == (
        "schedule=onecycle: schedule.warmup_fraction=0.5 of this run's 2 optimizer steps (epochs=2 x 1 per epoch) "
        "is a rise of exactly 1 step, which OneCycleLR cannot divide; change schedule.warmup_fraction, or train more steps"
    )
    assert run_main([*args[:-3], "epochs=1", "trainer.max_batches=1"], tmp_path).returncode == 0  # one step is fine
