"""Start a run's ranks from inside the task, after Hydra composed the config once.

``trainer.devices=N`` (N > 1) reaches ``task.run_experiment`` in one process, which holds the run
dir's lock. ``spawn_ranks`` starts N processes with ``torch.multiprocessing.start_processes``
(spawn); each joins the group and runs ``pipeline.train`` as one rank in that same run dir; rank 0
writes every file. So all ranks share one run dir and one set of overrides, and a ``-m`` sweep
runs one job (N ranks) after another. We chose torch.multiprocessing over the elastic launch API
(torchrun's agent) because the parent must stay in charge: it holds the lock, writes
``result.json``, turns a rank's failure into one line, and decides when to stop; the agent adds a
rendezvous, restarts and its own logging that a single run does not need. Multi-node runs start
typedexp once per node (``trainer.node_rank``), or under torchrun (``train_under_torchrun``).

Signals: SIGINT/SIGTERM reach the parent (a terminal's Ctrl-C reaches every process, but the ranks
ignore it). The parent sets a shared stop flag; the ranks agree on it at their next logging step,
rank 0 saves the checkpoint and all stop with ``Interrupted`` (exit 130/143 through the CLI). A
second signal kills the ranks at once. A rank dies with its parent (``PR_SET_PDEATHSIG``), so none
is orphaned even by SIGKILL.

Spawning starts fresh interpreters (torch is imported again, ~2.5 s each here) rather than forking:
a fork of a process that has already run torch's OpenMP thread pool (an earlier sweep job) can
hang, and CUDA cannot be forked at all.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Union

from typedexp.engine.capacity import check_process_count, torch_cuda_devices
from typedexp.engine.distributed import (
    StopFlag, World, check_launched_shape, die_with_parent, enter_world, from_environment, ignoring_signals, leave_group,
    uneven_warning,
)
from typedexp.app.error_messages import error_line
from typedexp.core.errors import ConfigError, Interrupted
from typedexp.engine.runtime import resolve_device
from typedexp.engine.settings import Device, TrainerSettings
from typedexp.engine.signals import held_while_closing, stop_on_signals
from typedexp.specs.experiment import Experiment
from typedexp.core.report import print_error, warn
from typedexp.runs.layout import CHECKPOINT_DIR, LAST
from typedexp.app.pipeline import JobFacts, RunResult, Stage, train

if TYPE_CHECKING:
    import torch
    from torch import nn
    from torch._C._distributed_c10d import TCPStore  # where torch defines it; re-exported without `as`

    from typedexp.data import DatasetSpec
    from typedexp.data.tensors import DataBundle
    from typedexp.engine.checkpoint import Checkpointer
    from typedexp.engine.loop import EpochCheck

    from multiprocessing.process import BaseProcess
    from multiprocessing.queues import SimpleQueue

GRACE_S = 10.0  # how long ranks get to finish on their own once one has failed, before SIGTERM/SIGKILL


@dataclass(frozen=True)
class RankJob:
    """Everything a spawned rank needs: the built experiment and what the task read from Hydra."""

    experiment: Experiment
    config: dict[str, object]
    run_dir: Path
    job: JobFacts
    store_port: int


@dataclass(frozen=True)
class Started:
    """This node's first rank began training: rank 0 writes to the run dir from here (a refused
    resume never gets here)."""


@dataclass(frozen=True)
class Finished:
    result: RunResult


@dataclass(frozen=True)
class Stopped:
    rank: int
    signum: int
    line: str


@dataclass(frozen=True)
class Failed:
    rank: int
    line: str
    error: bytes | None  # the pickled exception, when it pickles
    traceback: str


Message = Union[Started, Finished, Stopped, Failed]


def spawn_ranks(experiment: Experiment, config: dict[str, object], run_dir: Path, stage: Stage, job: JobFacts) -> RunResult:
    """Run ``experiment`` on ``trainer.devices`` processes of this node; rank 0's result."""
    import torch.multiprocessing as mp

    settings = experiment.trainer
    # Again, with torch's own GPU count and the device `auto` resolves to: a sweep's values and
    # launch(experiment=...) reach here without the check made before Hydra started.
    check_process_count(
        devices=settings.devices, nodes=settings.nodes, device=resolve_device(settings.device).type,
        master_addr=settings.master_addr, cuda_devices=torch_cuda_devices,
    )
    uneven = uneven_warning(experiment.batch_size, settings.world_size)
    if uneven is not None:
        warn(uneven)
    store = rendezvous_store(settings) if settings.node_rank == 0 else None  # node 0 hosts it
    port = settings.master_port if store is None else int(store.port)
    context = mp.get_context("spawn")
    inbox: SimpleQueue[Message] = context.SimpleQueue()
    flag = context.Value("i", 0, lock=False)
    rank_job = RankJob(experiment, config, run_dir, job, port)
    processes = [
        context.Process(target=rank_main, args=(local, rank_job, inbox, flag), name=f"typedexp-rank-{local}")
        for local in range(settings.devices)
    ]
    messages: list[Message] = []
    with forwarding_signals(flag, processes):
        for process in processes:
            if flag.value:  # SIGINT/SIGTERM while they start: start no more; watch() stops the rest
                break
            process.start()
        crash = watch([process for process in processes if process.pid is not None], inbox, messages, flag)
    messages.extend(receive(inbox))
    del store  # the ranks are gone; close the rendezvous port
    stage.writing = any(isinstance(message, Started) for message in messages)
    return outcome(messages, crash, flag.value, run_dir)


def rendezvous_store(settings: TrainerSettings) -> TCPStore:
    """The rendezvous store node 0 hosts, listening only where ``trainer.master_addr`` says.

    torch's ``TCPStore`` server listens on every interface whatever host it is given, so a
    one-node run's store was reachable from the network for the whole run. Here the socket is
    bound to ``master_addr`` itself (127.0.0.1 by default: loopback only) and handed to the store
    (``master_listen_fd``). Port 0 lets the OS pick a free one.
    """
    import socket
    from datetime import timedelta

    import torch.distributed as dist

    where = f"{settings.master_addr}:{settings.master_port}"
    try:
        family = socket.getaddrinfo(settings.master_addr, settings.master_port, type=socket.SOCK_STREAM)[0][0]
        listener = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:
        raise ConfigError(f"trainer.master_addr={settings.master_addr}: cannot listen there ({exc.strerror or exc})") from exc
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((settings.master_addr, settings.master_port))
        listener.listen(128)
        port = int(listener.getsockname()[1])
        # Connections queue on the listening socket until the store accepts them (libuv server).
        return dist.TCPStore(  # type: ignore[attr-defined]  # documented; torch re-exports it without `as`
            settings.master_addr, port, is_master=True, wait_for_workers=False,
            timeout=timedelta(seconds=settings.timeout_s), master_listen_fd=listener.detach(),
        )
    except (OSError, RuntimeError) as exc:  # a taken port, an address not on this host; torch's DistNetworkError
        listener.close()
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else " ".join(str(exc).split())[:160]
        raise ConfigError(
            f"trainer.master_port={settings.master_port}: cannot listen on {where} ({reason}); choose a free "
            "port, or 0 for any on one node"
        ) from exc


def watch(
    processes: Sequence[BaseProcess], inbox: SimpleQueue[Message], messages: list[Message], flag: StopFlag
) -> str | None:
    """Wait for every rank; returns how the first failed rank ended, or None.

    When one exits non-zero, the others get ``GRACE_S`` to end on their own (they see the failure
    in their next collective) before they are killed. After a signal (``flag``), ranks that are
    training get ``GRACE_S`` to agree on the stop and save (they agree every ``trainer.log_every``
    steps and every validation batch, so it takes seconds); ranks that are still starting (importing
    torch, at the rendezvous, loading data: nothing to save yet) are killed at once.
    """
    from multiprocessing.connection import wait

    crash: str | None = None
    deadline: float | None = None
    while any(process.is_alive() for process in processes):
        wait([process.sentinel for process in processes if process.is_alive()], timeout=0.2)
        messages.extend(receive(inbox))  # keeps the pipe drained while the ranks run
        for rank, process in enumerate(processes):
            code = process.exitcode
            if crash is None and code is not None and code != 0:
                how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
                crash = f"rank {rank} (pid {process.pid}) ended with {how}"
                deadline = time.monotonic() + GRACE_S
        if flag.value and deadline is None:
            training = any(isinstance(message, Started) for message in messages)
            deadline = time.monotonic() + (GRACE_S if training else 0.0)
        if deadline is not None and time.monotonic() >= deadline:
            for process in processes:
                process.kill()
    for process in processes:
        process.join()
    return crash


def receive(inbox: SimpleQueue[Message]) -> list[Message]:
    received = []
    while not inbox.empty():
        received.append(inbox.get())
    return received


def outcome(messages: list[Message], crash: str | None, signum: int = 0, run_dir: Path | None = None) -> RunResult:
    """Rank 0's result, or the one error that explains the run's end (rank 0's first).

    ``signum``: the signal the parent was sent. When the ranks stopped at an agreed step, rank
    0's line says where it saved; when they were killed first, a peer's broken collective is no
    failure of its own, and the line says so.
    """
    stops = sorted((m for m in messages if isinstance(m, Stopped)), key=lambda m: m.rank)
    failures = sorted((m for m in messages if isinstance(m, Failed)), key=lambda m: m.rank)
    if stops:
        raise Interrupted(stops[0].signum, stops[0].line)
    if signum:
        raise Interrupted(signum, killed_line(signum, any(isinstance(m, Started) for m in messages), run_dir))
    if failures:
        first = failures[0]
        rebuilt = None if first.error is None else pickle.loads(first.error)
        if isinstance(rebuilt, Exception):
            raise rebuilt from RankCrash(first.traceback)
        raise RankCrash(f"rank {first.rank}: {first.line}")
    results = [m.result for m in messages if isinstance(m, Finished)]
    if crash is not None or not results:
        raise RankCrash(f"{crash or 'no rank reported a result'}; the run dir keeps the last checkpoint")
    return results[0]


def killed_line(signum: int, training: bool, run_dir: Path | None) -> str:
    """The line for ranks stopped by the parent (before training, or not within ``GRACE_S``)."""
    name = signal.Signals(signum).name
    how = (
        f"; the ranks did not stop within {GRACE_S:.0f} s and were killed" if training
        else " while the ranks were starting (nothing trained in this attempt)"
    )
    last = None if run_dir is None else run_dir / CHECKPOINT_DIR / LAST
    kept = f"; kept {last}; continue with: typedexp resume={run_dir}" if last is not None and last.is_file() else ""
    return f"interrupted by {name}{how}{kept}"


class RankCrash(RuntimeError):
    """A rank died without reporting (killed, aborted), or raised what does not pickle."""


def rank_main(local_rank: int, job: RankJob, inbox: SimpleQueue[Message], flag: StopFlag) -> None:
    """One spawned rank: join the group, train as ``pipeline.train``, report to the parent."""
    die_with_parent()
    for number in (signal.SIGINT, signal.SIGTERM):  # the parent decides; see the module docstring
        signal.signal(number, signal.SIG_IGN)
    settings = job.experiment.trainer
    rank = settings.node_rank * settings.devices + local_rank
    # This node's first rank tells the parent when training begins (after the rendezvous, the data
    # and DDP's first broadcast): from then on a stop is agreed and saved, before it is killed.
    stage = Stage(on_writing=(lambda: inbox.put(Started())) if local_rank == 0 else None)
    try:
        world = enter_world(
            settings, rank=rank, size=settings.world_size, local_rank=local_rank, store_port=job.store_port, stop_flag=flag
        )
    except BaseException as exc:
        inbox.put(failed(rank, exc))
        sys.exit(1)
    message: Message | None = None
    try:
        result = train(job.experiment, job.config, job.run_dir, stage, job.job, RankPlace(world))
        # Every rank's result holds the same (reduced) numbers; this node's first rank reports it.
        message = Finished(result) if local_rank == 0 else None
    except Interrupted as exc:  # every rank stops at the agreed step; rank 0's line is printed
        message = Stopped(rank, exc.signum, str(exc))
    except BaseException as exc:
        message = failed(rank, exc)
    if message is not None:
        inbox.put(message)
    # After a failure the others may be inside a collective: leave without waiting for them.
    leave_group(wait=not isinstance(message, Failed))
    if isinstance(message, Failed):
        sys.exit(1)


def failed(rank: int, exc: BaseException) -> Failed:
    from traceback import format_exception

    payload: bytes | None
    try:
        pickled = pickle.dumps(exc)
        pickle.loads(pickled)  # an exception type with its own constructor arguments fails here
        payload = pickled
    except Exception:
        payload = None
    return Failed(rank, error_line(exc), payload, "".join(format_exception(exc)))


class forwarding_signals:
    """In the parent: the first SIGINT/SIGTERM sets ``flag`` for the ranks; a second kills them."""

    def __init__(self, flag: StopFlag, processes: Sequence[BaseProcess]) -> None:
        self.flag, self.processes = flag, processes
        self.previous: dict[int, object] = {}

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if self.flag.value:
            for process in self.processes:
                if process.pid is not None:
                    process.kill()
            print_error(f"{signal.Signals(signum).name} again; stopped the ranks at once")
            os._exit(128 + signum)
        self.flag.value = signum

    def __enter__(self) -> forwarding_signals:
        import threading

        if threading.current_thread() is threading.main_thread():
            for number in (signal.SIGINT, signal.SIGTERM):
                self.previous[number] = signal.getsignal(number)
                signal.signal(number, self.handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for number, handler in self.previous.items():
            signal.signal(number, handler)  # type: ignore[arg-type]  # what getsignal returned


def train_under_torchrun(
    experiment: Experiment, config: dict[str, object], run_dir: Path, stage: Stage, job: JobFacts
) -> RunResult:
    """This process is one of torchrun's workers: join its group (env://) and train as that rank."""
    launched = from_environment()
    assert launched is not None  # the task asked torchrun_rank() first
    rank, size, local_rank, local_size = launched
    check_launched_shape(experiment.trainer, size, local_size)
    if rank == 0:
        uneven = uneven_warning(experiment.batch_size, size)
        if uneven is not None:
            warn(uneven)
    world: World = enter_world(experiment.trainer, rank=rank, size=size, local_rank=local_rank, store_port=None)
    wait = False
    try:
        result = train(experiment, config, run_dir, stage, job, RankPlace(world))
        wait = True
        return result
    except Interrupted:
        wait = True  # every rank stopped at the same step
        raise
    finally:
        leave_group(wait=wait)


@dataclass(frozen=True)
class RankPlace:
    """``pipeline.Place`` for one rank of a group: its own device, DDP around the model, rank 0
    alone writing; a spawned rank leaves signals to its parent, which sets the flag all agree on."""

    world: World

    @property
    def is_main(self) -> bool:
        return self.world.is_main

    def device(self, setting: Device) -> torch.device:
        return self.world.device

    def load(self, dataset: DatasetSpec, job: JobFacts) -> DataBundle:
        return dataset.load()  # each rank is its own process: no earlier job's bundle to share

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        from typedexp.engine.distributed import wrap

        return wrap(model, device)

    def signals(self, checkpointer: Checkpointer) -> AbstractContextManager[None]:
        return stop_on_signals(checkpointer) if self.world.handles_signals else ignoring_signals()

    def closing(self, aborted: bool, line: Callable[[int], str]) -> AbstractContextManager[None]:
        return held_while_closing(aborted, line) if self.world.handles_signals else nullcontext()

    def pruner(self, job: JobFacts) -> EpochCheck | None:
        return None  # a sweeper's per-epoch check runs in single-process jobs only
