"""More than one process (trainer.devices=N): settings, the 2-rank proof on CPU, the CLI paths.

The proof: two gloo ranks end with identical weights, and those equal one process's over the same
global batches to float rounding, with an uneven last batch and with augmentation. The CLI tests
(slow: each starts two fresh interpreters that import torch) check one shared run dir, rank-0-only
files, resume, signals and torchrun.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from tests.helpers import QUICK, RecordingTracker, run_cli, run_main, wait_for
from typedexp.data import DataBundle, FakeData
from typedexp.data.augment import Augmentation
from typedexp.engine import TrainerSettings, fit, seed_everything
from typedexp.engine.distributed import enter_world, leave_group, uneven_warning, wrap
from typedexp.engine.settings import Device, Progress
from typedexp.core.errors import ConfigError
from typedexp.specs.models import MLP
from typedexp.specs.optim import SGD

EPOCHS, BATCH = 3, 50  # 240 training examples: batches of 50, then 40; 50 and 40 split 25/25 and 20/20
LOG_EVERY = 2


def proof_data(augmented: bool) -> DataBundle:
    data = FakeData(num_samples=300, noise=2.0).load()
    # 240 of the 300 are training examples; a last batch of 40 and one of 37 examples (below)
    # exercise uneven global batches.
    if augmented:
        data = dataclasses.replace(data, augmentation=Augmentation(crop_padding=1, horizontal_flip=True))
    return data


def train_copy(data: DataBundle, batch_size: int, world_rank: tuple[int, int] | None) -> tuple[torch.nn.Module, RecordingTracker]:
    """The engine on ``data``: one process (``world_rank`` None) or one rank of a group on ``port``."""
    settings = TrainerSettings(device=Device.cpu, log_every=LOG_EVERY, progress=Progress.off, media_every=0)
    generator = seed_everything(0)
    model = MLP(hidden=(16,)).build(data.input_shape, data.num_classes)
    optimizer = SGD().build(model.parameters())
    tracker = RecordingTracker()
    world = None
    trained: torch.nn.Module = model
    if world_rank is not None:
        rank, port = world_rank
        world = enter_world(dataclasses.replace(settings, devices=2), rank=rank, size=2, local_rank=rank, store_port=port)
        trained = wrap(model, world.device)
    fit(trained, optimizer, data, epochs=EPOCHS, batch_size=batch_size, settings=settings, tracker=tracker,
        generator=generator, world=world)
    if world is not None:
        leave_group(wait=True)
    return model, tracker


def rank_process(rank: int, port: int, out: str, batch_size: int, augmented: bool) -> None:
    """One spawned rank: train, then save its weights and logged points for the test to compare."""
    torch.set_num_threads(1)
    model, tracker = train_copy(proof_data(augmented), batch_size, (rank, port))
    torch.save({"weights": model.state_dict(), "points": tracker.points}, Path(out) / f"rank{rank}.pt")


def run_two_ranks(tmp_path: Path, batch_size: int, augmented: bool) -> list[dict[str, object]]:
    store = torch.distributed.TCPStore(  # type: ignore[attr-defined]  # documented; re-exported without `as`
        "127.0.0.1", 0, is_master=True, wait_for_workers=False, timeout=timedelta(seconds=60)
    )
    context = mp.get_context("spawn")
    processes = [
        context.Process(target=rank_process, args=(rank, store.port, str(tmp_path), batch_size, augmented))
        for rank in range(2)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    codes = [process.exitcode for process in processes]
    for process in processes:
        process.kill()  # a no-op for ranks that ended
    assert codes == [0, 0], f"ranks ended with {codes}; a negative code is the signal (-6: SIGABRT at exit)"
    return [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(2)]


@pytest.mark.parametrize(
    ("batch_size", "augmented"),
    [(BATCH, False), pytest.param(37, True, marks=pytest.mark.slow, id="uneven-augmented")],
)
def test_two_gloo_ranks_equal_one_process(tmp_path: Path, batch_size: int, augmented: bool) -> None:
    ranks = run_two_ranks(tmp_path, batch_size, augmented)
    single, tracker = train_copy(proof_data(augmented), batch_size, None)
    zero, one = ranks[0]["weights"], ranks[1]["weights"]
    assert isinstance(zero, dict) and isinstance(one, dict)
    for name, tensor in single.state_dict().items():
        assert torch.equal(zero[name], one[name]), f"ranks differ in {name}"
        assert torch.allclose(zero[name], tensor, rtol=0, atol=1e-6), f"{name}: {(zero[name] - tensor).abs().max()}"
    # Every rank logs the reduced numbers (only rank 0 has a real tracker in a run): what one
    # process over the same global batches logs.
    for points in (ranks[0]["points"], ranks[1]["points"]):
        assert isinstance(points, list) and len(points) == len(tracker.points)
        for (step, epoch, metrics), (step_1, epoch_1, metrics_1) in zip(points, tracker.points):
            assert (step, epoch, sorted(metrics)) == (step_1, epoch_1, sorted(metrics_1))
            for key, value in metrics.items():
                assert value == pytest.approx(metrics_1[key], rel=1e-6, abs=1e-7), (step, key)


def test_settings_refuse_impossible_process_counts() -> None:
    bad: dict[str, Callable[[], TrainerSettings]] = {
        "trainer.devices=0": lambda: TrainerSettings(devices=0),
        "trainer.nodes=0": lambda: TrainerSettings(nodes=0),
        "trainer.node_rank=2": lambda: TrainerSettings(nodes=2, node_rank=2, master_port=29500),
        "trainer.master_port=70000": lambda: TrainerSettings(master_port=70000),
        "trainer.nodes=2 needs trainer.master_port": lambda: TrainerSettings(nodes=2),
        "trainer.compile=true with trainer.devices=2": lambda: TrainerSettings(devices=2, compile=True),
        "trainer.master_addr='a b'": lambda: TrainerSettings(master_addr="a b"),
        "trainer.timeout_s=0": lambda: TrainerSettings(timeout_s=0.0),
    }
    for start, make in bad.items():
        with pytest.raises(ConfigError, match="^" + start):
            make()
    assert TrainerSettings(devices=2, nodes=2, node_rank=1, master_port=29500).world_size == 4


def test_uneven_batch_warning_names_the_shares() -> None:
    assert uneven_warning(64, 2) is None
    assert uneven_warning(65, 2) == (
        "batch_size=65 does not divide by 2 processes: ranks take 33 or 32 examples of each batch "
        "(the gradients still equal one process's over the whole batch)"
    )


def test_bad_devices_is_one_line_on_the_command_line(tmp_path: Path) -> None:
    run = run_main(["trainer.devices=0", *QUICK], tmp_path)
    assert run.returncode == 2
    assert run.stderr_lines == ["typedexp: error: trainer.devices=0: must be >= 1 processes per node"]


def test_more_devices_than_gpus_is_refused_on_cuda() -> None:
    from typedexp.engine.distributed import rank_device

    if torch.cuda.is_available():
        pytest.skip("this machine has GPUs")
    with pytest.raises(ConfigError, match=r"^trainer.devices=2 on mps"):
        rank_device(torch.device("mps"), 0, 2)
    # On a machine without CUDA, device_count() is 0: asking for CUDA ranks is refused by count.
    with pytest.raises(ConfigError, match=r"^trainer.devices=2: this machine has 0 CUDA GPUs"):
        rank_device(torch.device("cuda"), 0, 2)


def test_one_process_never_loads_the_rank_launcher(tmp_path: Path) -> None:
    """devices=1 is the single-process path: neither DDP module of typedexp, no process group.

    (``import torch`` itself already imports ``torch.distributed`` and DDP's module; nothing more.)
    """
    code = (
        "import sys, torch.distributed as dist\n"
        "from typedexp import launch\n"
        f"launch({[*QUICK, 'hydra.run.dir=' + str(tmp_path / 'run')]!r})\n"
        "assert 'typedexp.app.ranks' not in sys.modules, 'ranks imported'\n"
        "assert 'typedexp.engine.distributed' not in sys.modules, 'engine/distributed.py imported'\n"
        "assert not dist.is_initialized()\n"
        "print('single-process path')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "single-process path" in done.stdout


# --- the CLI: two spawned ranks (slow: each rank imports torch afresh) ---------------------------


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


# The one-process run that 2-rank runs are compared with: trained once per worker and settings, in
# this process (~1 s: one process is not what these tests are about), and only read. Cheap enough
# that the tests sharing it need not wait for one another on one xdist worker.
REFERENCE = ("tracker=disabled", "trainer.progress=off", "epochs=2", "trainer.media_every=0")


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    trained: dict[tuple[str, ...], Path] = {}

    def run_dir(*overrides: str) -> Path:
        if overrides not in trained:
            workdir = tmp_path_factory.mktemp("reference")
            single = run_main(["hydra.run.dir=one", *overrides], workdir)
            assert single.returncode == 0, single.stderr
            trained[overrides] = workdir / "one"
        return trained[overrides]

    return run_dir


def close_weights(a: Path, b: Path) -> float:
    first, second = torch.load(a), torch.load(b)
    assert first.keys() == second.keys()
    return max(float((first[k] - second[k]).abs().max()) for k in first)


@pytest.mark.slow
def test_two_ranks_from_the_cli_share_one_run_dir(tmp_path: Path) -> None:
    common = ["trainer.progress=off", "epochs=2", "batch_size=65"]
    two = run_cli(["trainer.devices=2", "hydra.run.dir=two", "tracker=offline", *common], tmp_path)
    assert two.returncode == 0, two.stderr
    assert two.stderr_lines == [
        "typedexp: warning: batch_size=65 does not divide by 2 processes: ranks take 33 or 32 examples of "
        "each batch (the gradients still equal one process's over the whole batch)"
    ]
    assert two.stdout.count("done: ") == 1 and two.stdout.count("run dir") == 2  # rank 0 speaks
    one = run_main(["hydra.run.dir=one", "tracker=disabled", *common], tmp_path)  # one process: in this one
    assert one.returncode == 0, one.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "swanlog", "two"]  # no per-rank run dirs
    assert len(list((tmp_path / "swanlog").glob("run-*"))) == 1  # one SwanLab run: rank 0's
    assert close_weights(tmp_path / "one" / "model.pt", tmp_path / "two" / "model.pt") < 1e-6
    import json

    ones = [json.loads(line) for line in lines(tmp_path / "one" / "metrics.jsonl")]
    twos = [json.loads(line) for line in lines(tmp_path / "two" / "metrics.jsonl")]
    assert len(ones) == len(twos)  # written once, by rank 0
    for a, b in zip(ones, twos):
        assert a.keys() == b.keys()
        assert all(a[k] == pytest.approx(b[k], rel=1e-6) for k in a)
    result = json.loads((tmp_path / "two" / "result.json").read_text())
    assert result["state"] == "done"
    assert (tmp_path / "two" / "checkpoints" / "last.pt").is_file()


def child_pids(parent: int) -> list[int]:
    """The parent's child processes, from /proc: its ranks and multiprocessing's resource tracker."""
    children = Path(f"/proc/{parent}/task/{parent}/children")
    return [int(pid) for pid in children.read_text().split()] if children.exists() else []


def rank_pids(parent: int) -> list[int]:
    """The ranks among them (multiprocessing's spawn entry point, not its resource tracker)."""
    return [pid for pid in child_pids(parent) if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text()


def start_long_run(tmp_path: Path, run: str, *extra: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SWANLAB_API_KEY", "HYDRA_FULL_ERROR")}
    return subprocess.Popen(
        [sys.executable, "-m", "typedexp", "trainer.devices=2", "tracker=disabled", "trainer.progress=off",
         "epochs=400", "trainer.media_every=0", f"hydra.run.dir={run}", *extra],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def logged_steps(metrics: Path) -> int:
    return len(metrics.read_text().splitlines()) if metrics.exists() else 0


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_every_rank_and_the_run_resumes(
    tmp_path: Path, reference: Callable[..., Path], signum: int, code: int
) -> None:
    process = start_long_run(tmp_path, "run")
    metrics = tmp_path / "run" / "metrics.jsonl"
    wait_for(lambda: logged_steps(metrics) >= 3 or process.poll() is not None)
    ranks = rank_pids(process.pid)
    assert len(ranks) == 2, ranks
    ranks = child_pids(process.pid)  # the resource tracker must not outlive the run either
    process.send_signal(signum)
    _, err = process.communicate(timeout=120)
    assert process.returncode == code, err
    lines_ = [line for line in err.splitlines() if line.strip()]
    assert len(lines_) == 1 and lines_[0].startswith(f"typedexp: interrupted by {signal.Signals(signum).name}"), err
    assert "continue with: typedexp resume=" in lines_[0]
    wait_for(lambda: not any(alive(pid) for pid in ranks), timeout_s=10)
    assert (tmp_path / "run" / "checkpoints" / "last.pt").is_file()
    # The same N continues it; another N is refused in one line, before anything is touched.
    other = run_main(["resume=run", "trainer.devices=1"], tmp_path)  # refused before any process starts
    assert other.returncode == 2
    assert len(other.stderr_lines) == 1 and "trainer.devices=2 there, 1 here" in other.stderr_lines[0], other.stderr
    resumed = run_cli(["resume=run", "epochs=2"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    one = reference(*REFERENCE)
    assert close_weights(one / "model.pt", tmp_path / "run" / "model.pt") < 1e-6
    assert logged_steps(metrics) == logged_steps(one / "metrics.jsonl")  # no step twice


@pytest.mark.slow
def test_killing_the_parent_takes_its_ranks_along(tmp_path: Path) -> None:
    process = start_long_run(tmp_path, "run")
    wait_for(lambda: logged_steps(tmp_path / "run" / "metrics.jsonl") >= 1 or process.poll() is not None)
    assert len(rank_pids(process.pid)) == 2
    ranks = child_pids(process.pid)
    process.kill()
    process.communicate(timeout=60)
    wait_for(lambda: not any(alive(pid) for pid in ranks), timeout_s=10)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None, reason="no torchrun")
def test_torchrun_workers_join_one_group_and_one_run_dir(tmp_path: Path, reference: Callable[..., Path]) -> None:
    torchrun = str(Path(sys.executable).parent / "torchrun")
    env = {k: v for k, v in os.environ.items() if k not in ("SWANLAB_API_KEY", "HYDRA_FULL_ERROR")}
    common = list(REFERENCE)
    done = subprocess.run(
        [torchrun, "--nproc-per-node", "2", "-m", "typedexp", "trainer.devices=2", "hydra.run.dir=run", *common],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("done: ") == 1
    one = reference(*common)
    assert close_weights(one / "model.pt", tmp_path / "run" / "model.pt") < 1e-6
    assert logged_steps(tmp_path / "run" / "metrics.jsonl") == logged_steps(one / "metrics.jsonl")
    # What torchrun started must be what the config says (it is saved with the run).
    wrong = subprocess.run(
        [torchrun, "--nproc-per-node", "2", "-m", "typedexp", "hydra.run.dir=wrong", *common],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert wrong.returncode != 0
    assert "typedexp: error: trainer.devices=1 trainer.nodes=1, but torchrun started 2 processes per node" in wrong.stderr


@pytest.mark.slow
def test_two_nodes_meet_at_the_rendezvous_address(tmp_path: Path) -> None:
    """Two `typedexp` commands as two one-process nodes (here on one machine), one shared run dir."""
    import socket

    with socket.socket() as probe:  # a free port for node 0's rendezvous
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in ("SWANLAB_API_KEY", "HYDRA_FULL_ERROR")}
    common = ["tracker=disabled", "trainer.progress=off", "epochs=2", "trainer.media_every=0", "trainer.device=cpu",
              "trainer.nodes=2", "trainer.master_addr=127.0.0.1", f"trainer.master_port={port}", "hydra.run.dir=run"]
    nodes = [
        subprocess.Popen([sys.executable, "-m", "typedexp", f"trainer.node_rank={rank}", *common], cwd=tmp_path,
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for rank in (1, 0)  # node 1 first: it waits for node 0's rendezvous
    ]
    outputs = [node.communicate(timeout=300) for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs
    assert outputs[0][0].count("done: ") == 0 and outputs[1][0].count("done: ") == 1  # node 0 speaks
    single = run_main(["hydra.run.dir=one", *common[:5]], tmp_path)  # one process: in this one
    assert single.returncode == 0, single.stderr
    assert close_weights(tmp_path / "one" / "model.pt", tmp_path / "run" / "model.pt") < 1e-6


def test_where_ranks_meet_may_change_on_resume_but_not_how_many() -> None:
    from typedexp.runs.session import may_differ
    from typedexp.app.task import run_name

    assert all(may_differ(f"trainer.{key}") for key in ("master_addr", "master_port", "node_rank", "timeout_s"))
    assert not may_differ("trainer.devices") and not may_differ("trainer.nodes")
    assert run_name(["trainer.devices=2", "trainer.master_port=29500", "trainer.node_rank=1"]) == "trainer.devices=2"


def test_a_taken_rendezvous_port_is_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = run_main(["trainer.devices=2", f"trainer.master_port={port}", *QUICK], tmp_path)
    assert run.returncode == 2
    assert len(run.stderr_lines) == 1, run.stderr
    assert run.stderr_lines[0].startswith(f"typedexp: error: trainer.master_port={port}: cannot listen on 127.0.0.1:{port} (")


# --- what the machine holds: checked before anything starts (engine/capacity.py) ----------------


def test_a_typo_in_devices_is_one_line_before_torch_or_any_process(tmp_path: Path) -> None:
    """`trainer.devices=1000000` once started ranks until the machine stopped answering."""
    code = (
        "import sys\n"
        "from typedexp.app.cli import main\n"
        "try:\n"
        "    main(['trainer.devices=1000000', 'tracker=disabled'])\n"
        "except SystemExit as exc:\n"
        "    print(exc.code, 'torch' in sys.modules, 'multiprocessing' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("SWANLAB_API_KEY", "HYDRA_FULL_ERROR", "TYPEDEXP_OVERSUBSCRIBE")}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["2", "False", "False"], done  # exit 2; torch never imported, nothing spawned
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("typedexp: error: trainer.devices=1000000: this process may run on "), lines
    assert "TYPEDEXP_OVERSUBSCRIBE=1" in lines[0]
    assert list(tmp_path.iterdir()) == []  # no run dir


def test_the_process_count_is_checked_against_cores_gpus_and_nodes_here(monkeypatch: pytest.MonkeyPatch) -> None:
    from typedexp.engine.capacity import check_process_count

    monkeypatch.delenv("TYPEDEXP_OVERSUBSCRIBE", raising=False)

    def check(devices: int, device: str = "cpu", *, nodes: int = 1, addr: str = "127.0.0.1", gpus: int | None = 0,
              oversubscribe: bool | None = None) -> str:
        try:
            check_process_count(devices=devices, nodes=nodes, device=device, master_addr=addr, cores=lambda: 4,
                                cuda_devices=lambda: gpus, oversubscribe=oversubscribe)
        except ConfigError as exc:
            return str(exc)
        return "ok"

    assert check(4) == "ok" and check(1, nodes=64, addr="10.0.0.1") == "ok"
    assert check(5).startswith("trainer.devices=5: this process may run on 4 CPU cores, and each rank is a process")
    assert check(5, oversubscribe=True) == "ok"
    monkeypatch.setenv("TYPEDEXP_OVERSUBSCRIBE", "1")
    assert check(5) == "ok"
    monkeypatch.setenv("TYPEDEXP_OVERSUBSCRIBE", "0")
    assert check(5) != "ok"
    # Every node on this machine (loopback): nodes x devices processes here.
    assert check(2, nodes=3).startswith(
        "trainer.devices=2 x trainer.nodes=3: 6 processes on this machine (trainer.master_addr=127.0.0.1 puts every node here)"
    )
    assert "set trainer.devices=1 or fewer" in check(2, nodes=3)
    assert check(2, nodes=3, addr="10.0.0.1") == "ok"  # the other nodes are other machines
    # CUDA: one GPU per rank, whatever the cores; auto is CUDA where a GPU is visible, else the CPU.
    assert check(3, "cuda", gpus=2).startswith("trainer.devices=3: this machine has 2 visible CUDA GPUs and each rank takes one")
    assert check(3, "cuda", gpus=2, oversubscribe=True) != "ok"
    assert check(2, "cuda", gpus=2) == "ok" and check(3, "auto", gpus=4) == "ok"
    assert check(5, "auto", gpus=4).startswith("trainer.devices=5: this machine has 4 visible CUDA GPUs")
    assert check(5, "auto", gpus=0).startswith("trainer.devices=5: this process may run on 4 CPU cores")
    assert check(2, "cuda", gpus=0).startswith("trainer.devices=2: this machine has 0 visible CUDA GPUs")


@pytest.mark.parametrize(("listed", "count"), [("0,1", 2), ("", 0), ("1,-1,0", 1), ("GPU-8c1e,GPU-77ab", 2)])
def test_visible_gpus_are_counted_from_cuda_visible_devices(monkeypatch: pytest.MonkeyPatch, listed: str, count: int) -> None:
    from typedexp.engine.capacity import visible_cuda_devices

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", listed)
    assert visible_cuda_devices() == count


def test_oversubscribing_on_purpose_passes_the_check_before_hydra(monkeypatch: pytest.MonkeyPatch, workdir: Path) -> None:
    from hydra.core.hydra_config import HydraConfig

    from typedexp.engine.capacity import usable_cores
    from typedexp.app.preflight import prepare_overrides
    from typedexp.app.store import register_configs

    register_configs()
    more = [f"trainer.devices={usable_cores() + 1}", "trainer.device=cpu", "hydra.run.dir=run"]
    monkeypatch.delenv("TYPEDEXP_OVERSUBSCRIBE", raising=False)
    try:
        with pytest.raises(ConfigError, match=f"^trainer.devices={usable_cores() + 1}: this process may run on"):
            prepare_overrides(more)
        monkeypatch.setenv("TYPEDEXP_OVERSUBSCRIBE", "1")
        assert prepare_overrides(more) == more
    finally:
        HydraConfig.instance().cfg = None  # prepare_overrides sets it for the config it composed


# --- the rendezvous: loopback for one node, only from the command line, one line on a timeout ----


def listening_on(port: int) -> list[str]:
    """The local addresses of the sockets listening on ``port``, from /proc/net/tcp and tcp6 (Linux)."""
    import ipaddress

    found = []
    for table in ("tcp", "tcp6"):
        for row in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            local, state = row.split()[1], row.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(address)  # each 32-bit word in host (little-endian) order
                ordered = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
                found.append(str(ipaddress.ip_address(ordered)))
    return found


def test_a_one_node_rendezvous_listens_on_loopback_only() -> None:
    """torch's TCPStore server listens on every interface (::) whatever host it is given."""
    from typedexp.app.ranks import rendezvous_store

    store = rendezvous_store(TrainerSettings(devices=2))
    try:
        assert listening_on(int(store.port)) == ["127.0.0.1"]
    finally:
        del store


def test_the_rendezvous_defaults_are_the_settings_defaults() -> None:
    from typedexp.core.safety.launchers import RENDEZVOUS_DEFAULTS

    defaults = TrainerSettings()
    assert RENDEZVOUS_DEFAULTS == {"trainer.master_addr": defaults.master_addr, "trainer.master_port": str(defaults.master_port)}


@pytest.fixture
def remote_rendezvous_preset(tmp_path: Path) -> Path:
    configs = tmp_path / "configs"
    (configs / "experiment").mkdir(parents=True)
    (configs / "experiment" / "remote.yaml").write_text(
        "# @package _global_\ntrainer:\n  master_addr: 203.0.113.7\n  master_port: 29500\n"
    )
    return configs


def test_a_preset_cannot_send_the_rendezvous_elsewhere(remote_rendezvous_preset: Path, tmp_path: Path) -> None:
    args = ["--config-dir", str(remote_rendezvous_preset), "+experiment=remote", "--cfg", "job"]
    refused = run_main(args, tmp_path)
    assert refused.returncode == 2
    assert refused.stderr_lines == [
        "typedexp: error: trainer.master_addr=203.0.113.7: refused, where the ranks meet (the rendezvous) comes only "
        "from the command line (or launch()'s overrides), not from a preset, a config file or a resumed run; "
        "type trainer.master_addr=... yourself"
    ]
    typed = run_main([*args, "trainer.master_addr=203.0.113.7", "trainer.master_port=29500"], tmp_path)
    assert typed.returncode == 0, typed.stderr
    assert "master_addr: 203.0.113.7" in typed.stdout


def test_resume_does_not_reapply_the_rendezvous(tmp_path: Path) -> None:
    from typedexp.runs.resume import original_overrides

    hydra = tmp_path / "run" / ".hydra"
    hydra.mkdir(parents=True)
    (hydra / "overrides.yaml").write_text("- trainer.devices=2\n- trainer.master_addr=10.0.0.1\n- trainer.master_port=29500\n")
    assert [o.input_line for o in original_overrides(tmp_path / "run")] == ["trainer.devices=2"]


@pytest.mark.slow
def test_a_rendezvous_that_never_answers_is_one_line_naming_host_and_port(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = run_cli(["trainer.nodes=2", "trainer.node_rank=1", f"trainer.master_port={port}", "trainer.timeout_s=1",
                    "trainer.device=cpu", *QUICK], tmp_path)
    assert done.returncode == 2
    assert len(done.stderr_lines) == 1, done.stderr  # not torch's C++ report of every try
    assert done.stderr_lines[0].startswith(
        f"typedexp: error: rank 1 could not meet the others at 127.0.0.1:{port} within trainer.timeout_s=1 s ("
    )
    assert done.stderr_lines[0].endswith("start node 0 (trainer.node_rank=0) with the same trainer.master_addr and "
                                         "trainer.master_port, and check that this machine can reach that address")
