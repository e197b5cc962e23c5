"""Engine settings: the spec behind the ``trainer`` config node."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Optional

from typedexp.core.checks import require_finite
from typedexp.core.errors import ConfigError


MAX_MEDIA_SAMPLES = 256  # a 16 x 16 grid; more would not be readable


class Device(enum.Enum):
    auto = "auto"  # cuda if available, else mps, else cpu
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


class Precision(enum.Enum):
    """Autocast dtype for the forward pass and loss; weights and optimizer stay float32."""

    fp32 = "fp32"  # no autocast
    bf16 = "bf16"  # CPU or CUDA
    fp16 = "fp16"  # CUDA only; gradients go through a GradScaler


class BestMode(enum.Enum):
    """Whether a larger or a smaller ``best_metric`` is better."""

    max = "max"  # accuracies
    min = "min"  # losses


class Progress(enum.Enum):
    auto = "auto"  # a live bar only when stdout is a terminal
    on = "on"
    off = "off"


@dataclass(frozen=True)
class TrainerSettings:
    device: Device = Device.auto
    # Stop each epoch after this many batches (the seed's `if i > 5: break`); None: whole epoch.
    max_batches: Optional[int] = None
    # Steps between logged training points. Each point costs one device->host sync, the only
    # one in the training loop, so this bounds the syncs to 1 per `log_every` steps.
    log_every: int = 10
    eval_batch_size: int = 1024  # examples per forward pass during validation (no gradients)
    progress: Progress = Progress.auto
    precision: Precision = Precision.fp32
    channels_last: bool = False  # NHWC memory layout for model and images; helps convs on CUDA
    compile: bool = False  # torch.compile the model; the first steps are slow while it compiles
    # Steps between mid-epoch checkpoints (checkpoints/last.pt); None: only at each epoch's end,
    # which always saves. Each save copies the model and optimizer to disk (a host sync).
    checkpoint_every: Optional[int] = None
    # checkpoints/best.pt holds the epoch with the best value of this validation metric; None:
    # the task's (val/acc for classification, val/loss for regression).
    best_metric: Optional[str] = None
    # Whether larger or smaller is better; None: the task's direction for the metric (min for a loss).
    best_mode: Optional[BestMode] = None
    # Clip the global L2 norm of the gradients to this before each step; None: no clipping.
    clip_grad_norm: Optional[float] = None
    # Train on this many batches of the training split only, the same examples every epoch
    # (debug=overfit: a model that cannot drive their loss to ~0 has a bug); None: all of it.
    overfit_batches: Optional[int] = None
    # Epochs between grids of validation images with predicted and true labels (the last epoch
    # always has one), and a confusion matrix of the validation split at the end; 0: neither.
    # Each costs one forward pass (the grid's images, then the whole split) and a PNG in
    # <run dir>/media/, never anything per step.
    media_every: int = 5
    media_samples: int = 16  # validation images in each grid: the split's first N, every time
    # Processes per node, each training a copy of the model on its share of every global batch
    # (DistributedDataParallel: gloo on CPU, NCCL on CUDA; one GPU each). 1: no torch.distributed.
    # batch_size stays the global batch: each rank takes its contiguous slice (docs/ddp.md).
    devices: int = 1
    nodes: int = 1  # machines; each runs `typedexp` with its own trainer.node_rank
    node_rank: int = 0  # this machine's place, 0 .. nodes-1; node 0 hosts the rendezvous
    # Where the ranks meet: node 0's address and a TCP port there. Port 0 picks a free port, which
    # only works on one node (the other nodes could not know it).
    master_addr: str = "127.0.0.1"
    master_port: int = 0
    # Seconds a rank waits for the others (rendezvous, every collective) before failing.
    timeout_s: float = 300.0

    @property
    def world_size(self) -> int:
        """Processes in the whole run: ``devices`` on each of ``nodes`` machines."""
        return self.devices * self.nodes

    def __post_init__(self) -> None:
        require_finite(self, "trainer")
        if self.max_batches is not None and self.max_batches < 1:
            raise ConfigError(f"trainer.max_batches={self.max_batches}: must be >= 1 or null")
        if self.log_every < 1:
            raise ConfigError(f"trainer.log_every={self.log_every}: must be >= 1")
        if self.eval_batch_size < 1:
            raise ConfigError(f"trainer.eval_batch_size={self.eval_batch_size}: must be >= 1")
        if self.checkpoint_every is not None and self.checkpoint_every < 1:
            raise ConfigError(f"trainer.checkpoint_every={self.checkpoint_every}: must be >= 1 or null")
        if self.overfit_batches is not None and self.overfit_batches < 1:
            raise ConfigError(f"trainer.overfit_batches={self.overfit_batches}: must be >= 1 or null")
        if self.media_every < 0:
            raise ConfigError(f"trainer.media_every={self.media_every}: must be >= 0 epochs (0: no media)")
        if not 1 <= self.media_samples <= MAX_MEDIA_SAMPLES:
            raise ConfigError(f"trainer.media_samples={self.media_samples}: must be 1-{MAX_MEDIA_SAMPLES} images")
        if self.clip_grad_norm is not None and not self.clip_grad_norm > 0:
            raise ConfigError(f"trainer.clip_grad_norm={self.clip_grad_norm}: must be > 0 or null")
        self._check_distributed()

    def _check_distributed(self) -> None:
        if self.devices < 1:
            raise ConfigError(f"trainer.devices={self.devices}: must be >= 1 processes per node")
        if self.nodes < 1:
            raise ConfigError(f"trainer.nodes={self.nodes}: must be >= 1")
        if not 0 <= self.node_rank < self.nodes:
            raise ConfigError(f"trainer.node_rank={self.node_rank}: must be 0 .. trainer.nodes-1 ({self.nodes - 1})")
        if not 0 <= self.master_port <= 65535:
            raise ConfigError(f"trainer.master_port={self.master_port}: must be a TCP port, 1-65535, or 0 for a free one")
        if self.nodes > 1 and self.master_port == 0:
            raise ConfigError(
                f"trainer.nodes={self.nodes} needs trainer.master_port: a port on node 0 that every node "
                "can reach (0 picks a free port, which only one node would know)"
            )
        if not self.master_addr.strip() or any(c.isspace() or not c.isprintable() for c in self.master_addr):
            raise ConfigError(f"trainer.master_addr={self.master_addr!r}: must be a host name or an IP address")
        if not self.timeout_s > 0:
            raise ConfigError(f"trainer.timeout_s={self.timeout_s}: must be > 0 seconds")
        if self.world_size > 1 and self.compile:
            raise ConfigError(
                f"trainer.compile=true with trainer.devices={self.devices}: torch.compile under DDP is not supported "
                "by typedexp yet; use one or the other"
            )
