"""More than one process: the rank's place in the group, its share of each batch, the DDP step.

A run with ``trainer.devices * trainer.nodes > 1`` trains one model copy per process
(DistributedDataParallel). Every rank holds the whole resident dataset and draws the same seeded
permutation as a single process would; each global batch of ``batch_size`` examples is cut into
``world`` contiguous slices (``torch.tensor_split``: sizes differ by at most one) and rank ``r``
trains on slice ``r``. The loss each rank back-propagates is its *summed* loss times
``world / global batch``, so DDP's gradient average is exactly the global batch's mean gradient,
even when the batch does not divide (the last one of an epoch, or a ``batch_size`` that does not).
So the weights match a single process over the same batches to float rounding.

Metrics are reduced before anyone logs them: the loss x count and correct sums of a logging window
are summed over ranks (one ``all_reduce`` of 3 numbers per logged point), so rank 0 logs what one
process over the global batches would log. Validation runs whole on every rank (the same weights
give the same numbers): no collective, and the code path is the single-process one.

A stop (SIGINT/SIGTERM) must happen at the same step on every rank, or the others wait forever in
their next gradient all-reduce. A rank's request is therefore agreed (an ``all_reduce(MAX)`` of
one int) every ``log_every`` steps, at steps all ranks share; the checkpoint and the stop follow.

Nothing here imports ``torch.distributed`` at module level: with one process it is never
initialised, and ``fit`` takes ``world=None``, which is the unchanged single-process path.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from typedexp.engine.checkpoint import Checkpointer, LoopPosition
from typedexp.engine.settings import Precision, TrainerSettings
from typedexp.core.errors import ConfigError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from typedexp.data.augment import Augmentation
    from typedexp.data.tensors import Split
    from typedexp.engine.tasks import Task

# What torchrun (and torch's elastic agent) sets in each worker's environment.
TORCHRUN_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


class StopFlag(Protocol):
    """A signal number that the launching process sets (0: none); a shared-memory int."""

    value: int


@dataclass
class World:
    """This process's place in the group (after ``init_process_group``) and its batch shares."""

    rank: int  # 0 .. size-1 over all nodes
    size: int  # processes in the run
    local_rank: int  # 0 .. devices-1 on this node: the GPU index on CUDA
    device: torch.device
    handles_signals: bool  # torchrun workers catch signals themselves; spawned ranks leave them to the parent
    stop_flag: StopFlag | None = None  # spawned ranks: set by the parent's signal handler
    task: Task | None = None  # whose loss ``training_step`` computes (``fit`` sets it); None: classification
    global_size: int = field(default=0, init=False)  # examples in the current global batch

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes files and talks to the tracker."""
        return self.rank == 0

    def batch(
        self, train: Split, index: torch.Tensor, augment: Augmentation | None, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's slice of the global batch ``index`` (images (b, C, H, W), labels (b,)).

        With augmentation, the whole global batch is augmented (the same random draws, in the
        same order, as one process) and then sliced; without, only the slice is gathered.
        """
        import torch

        self.global_size = int(index.shape[0])
        mine = torch.tensor_split(torch.arange(self.global_size), self.size)[self.rank]  # contiguous
        if augment is None:
            local = index[mine].to(self.device, non_blocking=True)
            return train.images[local], train.labels[local]
        whole = index.to(self.device, non_blocking=True)
        images = augment(train.images[whole], generator)
        return images[mine.to(self.device)], train.labels[whole][mine.to(self.device)]

    def sum(self, values: list[float]) -> list[float]:
        """``values`` summed over all ranks (float64, so counts up to 2**53 stay exact)."""
        import torch
        import torch.distributed as dist

        tensor = torch.tensor(values, dtype=torch.float64, device=self.collective_device)
        dist.all_reduce(tensor)
        return [float(x) for x in tensor.tolist()]

    def sum_tensor(self, tensor: torch.Tensor) -> torch.Tensor:
        """A copy of ``tensor`` summed elementwise over all ranks."""
        import torch.distributed as dist

        total = tensor.detach().to(self.collective_device, copy=True)
        dist.all_reduce(total)
        return total.to(tensor.device)

    def agree_stop(self, requested: int) -> int:
        """The largest signal any rank was asked to stop with (0: none); a collective."""
        import torch
        import torch.distributed as dist

        flag = requested or (self.stop_flag.value if self.stop_flag is not None else 0)
        tensor = torch.tensor([flag], dtype=torch.int64, device=self.collective_device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return int(tensor.item())

    @property
    def collective_device(self) -> torch.device:
        return self.device  # NCCL reduces CUDA tensors; gloo CPU ones

    def training_step(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, settings: TrainerSettings
    ) -> Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        """forward, the task's loss summed and scaled to the global mean, backward (DDP all-reduces), step.

        Returns (this rank's mean loss, logits) like ``loop.training_step``; the window weights
        the loss by this rank's batch size, so the reduced window sums the global batch's losses.
        """
        import torch

        from typedexp.engine.tasks import Classification

        loss_of = (self.task or Classification()).loss
        clip = settings.clip_grad_norm
        mixed = settings.precision is not Precision.fp32
        dtype = torch.bfloat16 if settings.precision is Precision.bf16 else torch.float16
        scaler = torch.amp.GradScaler(self.device.type, enabled=settings.precision is Precision.fp16)

        def step(images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            autocast = torch.autocast(self.device.type, dtype=dtype) if mixed else nullcontext()
            with autocast:
                logits = model(images)  # (b, outputs): this rank's share
                # The task's mean x b: the rank's summed loss (a task defines only its mean). A
                # rank whose slice is empty (a last batch smaller than the ranks) adds zeros, not nan.
                size = int(labels.shape[0])
                total = loss_of(logits, labels) * size if size else logits.sum() * 0.0
            optimizer.zero_grad(set_to_none=True)
            # DDP divides the summed gradients by `size`: x size / global makes it the global mean.
            torch.autograd.backward(scaler.scale(total * (self.size / self.global_size)))
            if clip is not None:  # the gradients are all-reduced by now: every rank clips alike
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            scaler.step(optimizer)
            scaler.update()
            return total.detach() / max(int(labels.shape[0]), 1), logits

        return step


class DistributedCheckpointer(Checkpointer):
    """A ``Checkpointer`` for one rank: agrees on stops, sums the window, only rank 0 writes.

    ``save`` is called by every rank at the same steps (``due`` is a function of the step and of
    the agreed stop), so the window's all-reduce inside it is matched on every rank.
    """

    def __init__(
        self,
        world: World,
        directory: Path,
        *,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        generator: torch.Generator,
        settings: TrainerSettings,
        config: Mapping[str, object],
        metrics_file: Path | None = None,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
        task: Task | None = None,
    ) -> None:
        self.world = world
        self.requested: int | None = None  # a signal this rank caught, not yet agreed
        self.agreed: int | None = None
        super().__init__(
            directory, model=model, optimizer=optimizer, generator=generator, settings=settings,
            config=config, metrics_file=metrics_file, scheduler=scheduler, task=task,
        )

    # The base's plain attribute, here the agreed signal: a rank's own request (from a signal
    # handler, at any step) goes through the setter, so no rank stops before the others agree.
    @property
    def stop_signal(self) -> int | None:
        return self.agreed

    @stop_signal.setter
    def stop_signal(self, signum: int | None) -> None:  # pyright: ignore[reportIncompatibleVariableOverride]  # int | None read and written, as in the base
        self.requested = signum

    def due(self, step: int) -> bool:
        if step % self.settings.log_every == 0:  # the same steps on every rank
            agreed = self.world.agree_stop(self.requested or 0)
            self.agreed = agreed or None
        return super().due(step)

    def stop_now(self) -> bool:
        # Every rank validates the same batches, so each asks here at the same point: a collective.
        self.agreed = self.world.agree_stop(self.requested or 0) or None
        return self.agreed is not None

    def save(self, position: LoopPosition, *, epoch_end: bool = False) -> None:
        if position.window is not None:  # the checkpoint holds the global window, summed over ranks
            weighted, tally, count = position.window
            summed = self.world.sum_tensor(weighted), self.world.sum_tensor(tally)
            total = int(self.world.sum([float(count)])[0])
            position = LoopPosition(position.epoch, position.batch, position.step, position.order, (*summed, total), position.latest)
        super().save(position, epoch_end=epoch_end)

    def write(self, position: LoopPosition, improved: bool) -> None:
        if self.world.is_main:
            super().write(position, improved)
        else:
            self.saved = self.last  # rank 0 wrote it; named in this rank's (unprinted) stop line


def from_environment(environ: dict[str, str] | None = None) -> tuple[int, int, int, int] | None:
    """(rank, world size, local rank, local world size) when torchrun started this process, else None."""
    env = dict(os.environ if environ is None else environ)
    if "RANK" not in env or "WORLD_SIZE" not in env:
        return None
    try:
        rank, size = int(env["RANK"]), int(env["WORLD_SIZE"])
        local = int(env.get("LOCAL_RANK", "0"))
        local_size = int(env.get("LOCAL_WORLD_SIZE", str(size)))
    except ValueError as exc:
        raise ConfigError(f"torchrun's RANK/WORLD_SIZE/LOCAL_RANK are not integers ({exc})") from exc
    return rank, size, local, local_size


def check_launched_shape(settings: TrainerSettings, size: int, local_size: int) -> None:
    """Under torchrun, the typed config must say what torchrun started (it is saved with the run)."""
    if settings.devices != local_size or settings.world_size != size:
        raise ConfigError(
            f"trainer.devices={settings.devices} trainer.nodes={settings.nodes}, but torchrun started "
            f"{local_size} processes per node, {size} in all; set trainer.devices={local_size} "
            f"trainer.nodes={size // max(local_size, 1)}"
        )


def rank_device(settings_device: torch.device, local_rank: int, devices: int) -> torch.device:
    """The device of this rank: ``cuda:<local rank>`` on CUDA, else the CPU (gloo)."""
    import torch

    if settings_device.type == "cuda":
        available = torch.cuda.device_count()
        if devices > available:
            raise ConfigError(f"trainer.devices={devices}: this machine has {available} CUDA GPUs")
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    if settings_device.type != "cpu":
        raise ConfigError(
            f"trainer.devices={devices} on {settings_device.type}: more than one process needs CPU (gloo) "
            "or CUDA (NCCL); set trainer.device=cpu or cuda"
        )
    return torch.device("cpu")


def join_group(
    *, rank: int, size: int, device: torch.device, settings: TrainerSettings, store_port: int | None
) -> None:
    """``init_process_group``: gloo on CPU, NCCL on CUDA; through the launching process's store
    (``store_port``), or torchrun's environment (``None``).

    A rendezvous that does not answer within ``trainer.timeout_s`` is one ``ConfigError`` line
    naming the host and port tried; torch's own report of each failed try (a C++ stack trace,
    about 40 lines per rank) is kept off the terminal (``native_stderr_quiet``).
    """
    from datetime import timedelta

    import torch.distributed as dist

    backend = "nccl" if device.type == "cuda" else "gloo"
    timeout = timedelta(seconds=settings.timeout_s)
    if store_port is None:
        where = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
    else:
        where = f"{settings.master_addr}:{store_port}"
    try:
        with native_stderr_quiet():
            if store_port is None:
                dist.init_process_group(backend, init_method="env://", rank=rank, world_size=size, timeout=timeout)
                return
            store = dist.TCPStore(  # type: ignore[attr-defined]  # documented; torch re-exports it without `as`
                settings.master_addr, store_port, is_master=False, timeout=timeout)
            dist.init_process_group(backend, store=store, rank=rank, world_size=size, timeout=timeout)
    except RuntimeError as exc:  # torch's DistNetworkError, DistStoreError: a timeout, a refused connection
        raise ConfigError(rendezvous_failure(settings, rank, where, exc)) from exc


def rendezvous_failure(settings: TrainerSettings, rank: int, where: str, exc: BaseException) -> str:
    """One line for a rank that could not meet the others at ``where`` (host:port)."""
    reason = " ".join(str(exc).split()).partition(". ")[0][:160].rstrip(".")  # torch's first sentence
    hint = (
        "start node 0 (trainer.node_rank=0) with the same trainer.master_addr and trainer.master_port, "
        "and check that this machine can reach that address"
        if settings.node_rank != 0
        else "the other ranks did not arrive in time; raise trainer.timeout_s on a loaded machine"
    )
    return (
        f"rank {rank} could not meet the others at {where} within trainer.timeout_s={settings.timeout_s:g} s "
        f"({reason}); {hint}"
    )


@contextmanager
def native_stderr_quiet() -> Iterator[None]:
    """File descriptor 2 to /dev/null for the block: torch's C++ side logs every failed connection
    try straight to it (not through Python), with a stack trace each time."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def leave_group(*, wait: bool) -> None:
    """Tear the group down while the interpreter is whole; with ``wait``, after every rank got here.

    Without this, the default process group and its gloo threads are left to interpreter exit,
    which destroys them in whatever order it tears things down; then a rank sometimes dies with
    SIGABRT after training correctly: "terminate called without an active exception", the C++
    runtime's message for a ``std::thread`` destroyed while still joinable. Measured on the 2-core
    VM, 2 gloo ranks: 3 aborted runs in 70 without this call, 0 in 60 with it. The barrier keeps a
    fast rank from tearing down while a slow one still talks to it. After a failure
    (``wait=False``) the others may never arrive, so it is skipped.
    """
    import torch.distributed as dist

    if not dist.is_initialized():
        return
    try:
        if wait:
            dist.barrier()
    finally:
        dist.destroy_process_group()


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """DistributedDataParallel around ``model`` (it broadcasts rank 0's weights once)."""
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def die_with_parent() -> None:
    """Linux: SIGKILL this process when the process that started it dies (even by SIGKILL)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes  # here: 5 ms of import that the single-process path does not need

    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


@contextmanager
def ignoring_signals() -> Iterator[None]:
    """SIGINT/SIGTERM ignored: a spawned rank stops when its parent says so, at an agreed step.

    A terminal's Ctrl-C reaches every process of the foreground group; the parent alone decides.
    """
    previous = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    for number in previous:
        signal.signal(number, signal.SIG_IGN)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def uneven_warning(batch_size: int, size: int) -> str | None:
    """The one warning line for a global batch that does not divide by the world size."""
    if batch_size % size == 0:
        return None
    small = batch_size // size
    return (
        f"batch_size={batch_size} does not divide by {size} processes: ranks take {small + 1} or {small} "
        "examples of each batch (the gradients still equal one process's over the whole batch)"
    )


def enter_world(
    settings: TrainerSettings,
    *,
    rank: int,
    size: int,
    local_rank: int,
    store_port: int | None,
    stop_flag: StopFlag | None = None,
) -> World:
    """Pick this rank's device and join the group; ``store_port`` None: torchrun's environment."""
    from typedexp.engine.runtime import resolve_device

    device = rank_device(resolve_device(settings.device), local_rank, settings.devices)
    if device.type == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        import torch

        # N ranks with torch's default of one thread per core would oversubscribe the cores N
        # times; torchrun sets OMP_NUM_THREADS=1 for the same reason. Share them out instead.
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // settings.devices))
    join_group(rank=rank, size=size, device=device, settings=settings, store_port=store_port)
    return World(rank, size, local_rank, device, handles_signals=store_port is None, stop_flag=stop_flag)
