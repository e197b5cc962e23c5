"""Which fields of a Hydra launcher's config a config file may set (README: Safety).

A launcher's config is more than resources. Fields of the installed plugins run commands or code:

- submitit (``submitit_slurm``): ``setup`` and ``teardown`` are shell lines copied into the sbatch
  script; ``srun_args`` go to ``srun`` (``--prolog``, ``--export=LD_PRELOAD=...``);
  ``additional_parameters`` become ``#SBATCH`` flags with their keys unquoted (a key holding a
  newline starts a shell line). ``submitit_folder`` is where submitit writes each job's pickled
  function and reads its pickled result back: a folder someone else can write to is their code
  run in this process. Any other submitit parameter reaches ``sbatch`` through ``+hydra.launcher.x``.
- joblib: ``backend`` names a joblib backend (dask's connects to a scheduler); ``temp_folder`` is
  where arrays are memory-mapped.
- Ray (``ray``): ``ray.init.address`` sends every job to that cluster and unpickles what comes
  back; ``runtime_env`` installs packages and runs setup hooks; ``dashboard_host`` opens job
  submission to the network. ``ray_aws`` is almost all shell commands and rsync paths.

So each known launcher has a list of plain fields (resources, names, counts) that any config may
set. Every other field (and every field of a launcher not listed here) must keep the value the
plugin registered, or hold exactly what the person typed on the command line or passed to
``launch()`` (``hydra.launcher.setup=[...]``): typed, it is theirs, as a line in their own shell
script would be. A preset, a ``--config-dir`` file, ``+experiment=`` or a run directory cannot
set it. No string in a launcher's config may hold a control character: submitit quotes values
with ``shlex.quote``, which leaves a newline in place, and a newline ends the ``#SBATCH`` comment.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from enum import Enum
from pathlib import Path

from typedexp.core.errors import ConfigError

SECTION = "hydra.launcher"
JOBLIB = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
SUBMITIT_LOCAL = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher"
SUBMITIT_SLURM = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
RAY = "hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher"

# hydra-submitit-launcher 1.2's BaseQueueConf and SlurmQueueConf, less the fields above: each
# becomes one shlex-quoted `#SBATCH --flag=value` line, or a number submitit uses itself.
SUBMITIT_PLAIN = frozenset(
    {"timeout_min", "cpus_per_task", "gpus_per_node", "tasks_per_node", "mem_gb", "nodes", "name", "stderr_to_stdout"}
)
SLURM_PLAIN = SUBMITIT_PLAIN | frozenset(
    {
        "partition", "qos", "comment", "constraint", "exclude", "gres", "cpus_per_gpu", "gpus_per_task",
        "mem_per_gpu", "mem_per_cpu", "account", "signal_delay_s", "max_num_timeout", "array_parallelism",
    }
)
# hydra-joblib-launcher 1.2's JobLibLauncherConf less backend and temp_folder. joblib evaluates
# pre_dispatch ("2*n_jobs") with its own arithmetic-only evaluator (joblib._utils.eval_expr).
JOBLIB_PLAIN = frozenset(
    {"n_jobs", "prefer", "require", "verbose", "timeout", "pre_dispatch", "batch_size", "max_nbytes", "mmap_mode"}
)
RAY_PLAIN = frozenset(
    {"ray.init.num_cpus", "ray.init.num_gpus", "ray.remote.num_cpus", "ray.remote.num_gpus", "ray.remote.memory"}
)
PLAIN_FIELDS: Mapping[str, frozenset[str]] = {
    JOBLIB: JOBLIB_PLAIN,
    SUBMITIT_LOCAL: SUBMITIT_PLAIN,
    SUBMITIT_SLURM: SLURM_PLAIN,
    RAY: RAY_PLAIN,
}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# Where a run's ranks meet (the rendezvous; docs/ddp.md), with the value they have unless typed.
# A preset or config file that set trainer.master_addr would send a one-node run's rendezvous,
# and so its ranks' connections, to a host of its choosing. Like the launcher fields above, only
# the command line (or launch()'s overrides) may set them; resume= does not re-apply them.
RENDEZVOUS_DEFAULTS: Mapping[str, str] = {"trainer.master_addr": "127.0.0.1", "trainer.master_port": "0"}


def check_rendezvous(key: str, value: object, typed: Mapping[str, str]) -> None:
    """Refuse a rendezvous field that holds neither its default nor what the person typed."""
    text = as_text(value)
    if text == RENDEZVOUS_DEFAULTS[key] or typed.get(key) == text:
        return
    raise ConfigError(
        f"{key}={text}: refused, where the ranks meet (the rendezvous) comes only from the command line "
        f"(or launch()'s overrides), not from a preset, a config file or a resumed run; type {key}=... yourself"
    )


def as_text(value: object) -> str:
    """A leaf's value as compared here: ``60``, ``'60'`` and an enum's name all read the same."""
    return value.name if isinstance(value, Enum) else str(value)


def flatten(value: object, path: str) -> dict[str, str]:
    """``{path: text}`` for every leaf of ``value`` (dicts as ``a.b``, lists as ``a[0]``)."""
    if isinstance(value, Mapping):
        nested = [flatten(item, f"{path}.{key}" if path else str(key)) for key, item in value.items()]
    elif isinstance(value, (list, tuple)):
        nested = [flatten(item, f"{path}[{index}]") for index, item in enumerate(value)]
    else:
        return {path: as_text(value)}
    return {key: text for part in nested for key, text in part.items()}


def override_key(path: str) -> str:
    """The key a person types to set the leaf at ``path``: ``setup`` for ``setup[0]`` (a list is typed whole)."""
    return path.partition("[")[0]


def check_launcher_leaf(
    path: str,
    value: object,
    written: object,
    *,
    target: str,
    typed: Mapping[str, str],
    defaults: tuple[Mapping[str, str], ...],
) -> None:
    """Refuse, with one line, a leaf of ``hydra.launcher`` that a config may not set.

    ``path`` is relative to ``hydra.launcher`` (``setup[0]``); ``value`` is the leaf resolved where
    it resolves, ``written`` as written (``${hydra.sweep.dir}/.submitit/%j``); ``typed`` is what
    the person typed, flattened the same way; ``defaults`` what the plugins registered for
    ``target``.
    """
    where = f"{SECTION}.{path}"
    for text in (path, value, written):
        if isinstance(text, str) and _CONTROL.search(text):
            raise ConfigError(
                f"{where}={text!r}: refused, a launcher setting cannot hold a newline or another control "
                "character (it would end the #SBATCH line it is written into)"
            )
    if path == "submitit_folder" and target in (SUBMITIT_LOCAL, SUBMITIT_SLURM) and isinstance(value, str):
        check_pickle_folder(where, value)  # wherever it came from: the folder's permissions decide
    if path == "_target_" or path in PLAIN_FIELDS.get(target, frozenset()):
        return  # the target has its own rule (config_guard)
    text = as_text(written)
    if typed.get(path) == text or any(default.get(path) == text for default in defaults):
        return
    raise ConfigError(
        f"{where}={text}: refused, a launcher setting that can run commands or send jobs elsewhere comes "
        f"only from the command line (or launch()'s overrides); type {SECTION}.{override_key(path)}=... yourself "
        "if you trust it (docs/launchers.md lists what a config file may set)"
    )


def check_pickle_folder(where: str, folder: str) -> None:
    """Refuse a submitit folder that another user could put files in.

    submitit writes each job's pickled function there and this process unpickles each job's
    result from there: a file someone else writes in it is their code run as you. The folder
    (``%j`` and the like name one folder per job below it) and every folder above it that exists
    must belong to you or root, and none may be writable by others, except a sticky one (``/tmp``)
    above a folder of yours: in a sticky folder nobody else can rename or replace what you own,
    but they can create a missing folder before you do.
    """
    user = getattr(os, "getuid", None)
    if user is None:  # Windows: no Slurm, no submitit folders shared with other accounts
        return
    path = Path(os.path.abspath(folder.partition("%")[0]))  # "%j" alone: abspath("") is the working directory
    below_is_mine = False  # the folder checked just before (one level down) exists and is yours
    for directory in (path, *path.parents):
        try:
            link, info = os.lstat(directory), os.stat(directory)  # the link itself, and where it leads
        except FileNotFoundError:
            continue  # to be created: by you, if nobody else can write where it will be made
        owners = {link.st_uid, info.st_uid} - {user(), 0}
        open_to_others = info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        if owners or (open_to_others and not (info.st_mode & stat.S_ISVTX and below_is_mine)):
            problem = "belongs to another user" if owners else "is writable by other users"
            raise ConfigError(
                f"{where}={folder}: refused, {directory} {problem}; submitit exchanges pickled code with "
                "each job there; keep hydra.sweep.dir in a folder only you can write to, or type "
                "hydra.launcher.submitit_folder=<a folder of yours>/%j"
            )
        below_is_mine = True
