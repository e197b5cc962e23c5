"""How many rank processes this machine can hold, checked before the first one is started.

``trainer.devices=1000000`` (one key held too long) would otherwise start rank processes one
after another: on a 2-core VM, 270 processes, a load average of 250 and 10 GB in five minutes.
So the count is checked against the machine, in plain Python (no torch: the check runs before
Hydra starts, in well under a second, ``preflight.prepare_overrides``) and again, with torch's own
GPU count, right before the ranks are spawned (``ranks.spawn_ranks``, which a sweep's values reach).

- On the CPU each rank is a process that wants at least one core: more ranks than the cores this
  process may run on (``os.sched_getaffinity``, which honours ``taskset`` and cgroup cpusets)
  only share them and slow the run. ``TYPEDEXP_OVERSUBSCRIBE=1`` in the environment starts more
  on purpose (testing a 4-rank job on a 2-core laptop). It is an environment variable, not a
  config field, so that no preset, config file or saved run can set it for you.
- On CUDA each rank takes one GPU: at most the visible GPUs, with no override.
- With ``trainer.nodes > 1`` and a loopback ``trainer.master_addr``, every node runs on this
  machine (no other machine can reach 127.0.0.1), so it must hold ``nodes x devices`` processes.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from collections.abc import Callable
from pathlib import Path

from typedexp.core.errors import ConfigError

OVERSUBSCRIBE_ENV = "TYPEDEXP_OVERSUBSCRIBE"


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask), or all of them where there is none."""
    affinity = getattr(os, "sched_getaffinity", None)  # Linux; macOS and Windows lack it
    if affinity is not None:
        return max(1, len(affinity(0)))
    return os.cpu_count() or 1


def visible_cuda_devices() -> int | None:
    """The CUDA GPUs torch would see, without importing torch; None where that cannot be told.

    ``CUDA_VISIBLE_DEVICES`` decides when set (torch stops at the first entry that is not a
    device, such as ``-1``). Otherwise NVIDIA's Linux driver lists one folder per GPU in
    /proc/driver/nvidia/gpus; a Linux machine without it (and without ROCm's /dev/kfd) has none,
    and macOS has no CUDA.
    """
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        count = 0
        for entry in (part.strip() for part in listed.split(",")):
            if not entry or entry.startswith("-"):
                break
            count += 1
        return count
    if sys.platform == "darwin":
        return 0
    gpus = Path("/proc/driver/nvidia/gpus")
    if gpus.is_dir():
        return sum(1 for _ in gpus.iterdir())
    if sys.platform.startswith("linux") and not Path("/dev/kfd").exists():
        return 0
    return None


def torch_cuda_devices() -> int:
    import torch

    return int(torch.cuda.device_count())


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def oversubscribing(environ: dict[str, str] | None = None) -> bool:
    return (os.environ if environ is None else environ).get(OVERSUBSCRIBE_ENV, "") == "1"


def check_process_count(
    *,
    devices: int,
    nodes: int,
    device: str,
    master_addr: str,
    cores: Callable[[], int] = usable_cores,
    cuda_devices: Callable[[], int | None] = visible_cuda_devices,
    oversubscribe: bool | None = None,
) -> None:
    """Refuse, in one line, more rank processes than this machine holds (see the module docstring).

    ``device`` is ``trainer.device``'s value (``auto`` is CUDA where a GPU is visible, else the
    CPU); ``cuda_devices`` may answer None (unknown), and then torch is asked.
    """
    here = devices * nodes if nodes > 1 and is_loopback(master_addr) else devices
    if here <= 1:
        return
    asked = (
        f"trainer.devices={devices} x trainer.nodes={nodes}: {here} processes on this machine "
        f"(trainer.master_addr={master_addr} puts every node here)"
        if here != devices
        else f"trainer.devices={devices}"
    )
    gpus: int | None = None
    if device in ("cuda", "auto"):
        gpus = cuda_devices()
        if gpus is None:
            gpus = torch_cuda_devices()
    if device == "cuda" or (device == "auto" and gpus):
        if here > (gpus or 0):
            raise ConfigError(
                f"{asked}: this machine has {gpus or 0} visible CUDA GPU{'' if gpus == 1 else 's'} and each rank "
                f"takes one; set trainer.devices={max(gpus or 0, 1)} or fewer"
            )
        return
    available = cores()
    if here > available and not (oversubscribing() if oversubscribe is None else oversubscribe):
        fits = max(1, available // (here // devices))  # devices per node that fit, every node here
        raise ConfigError(
            f"{asked}: this process may run on {available} CPU core{'' if available == 1 else 's'}, and each rank "
            f"is a process that needs one (more only share them and slow the run); set trainer.devices="
            f"{fits} or fewer, or {OVERSUBSCRIBE_ENV}=1 in the environment to start more on purpose"
        )
