"""Stand-ins for Slurm's ``sbatch``, ``srun`` and ``sacct``, so a submitit sweep runs without a cluster.

``install(bin_dir, record_dir)`` writes three executables into ``bin_dir`` (put it first on PATH):

- ``sbatch SCRIPT`` copies SCRIPT to ``record_dir/sbatch-<job id>.sh``, answers ``Submitted batch
  job <id>`` as Slurm does, and starts a detached runner. The runner waits until submitit has
  moved each array task's pickle into its folder (submitit does that after sbatch answers), then
  runs SCRIPT with bash once per task, with the ``SLURM_*`` variables Slurm would set: the
  generated script is what runs the job, as on a cluster.
- ``srun [--flag value ...] COMMAND`` runs COMMAND with its output in the ``--output``/``--error``
  files the script names (``%A``, ``%a``, ``%t`` filled in).
- ``sacct`` answers with no jobs ("not known yet"): submitit then keeps polling for the result
  files, which the runner's tasks write.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

FIRST_JOB_ID = 4242
PATIENCE_S = 120.0  # a runner whose submission never appears gives up (a failed test leaves nothing)


def install(bin_dir: Path, record_dir: Path) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    record_dir.mkdir(parents=True, exist_ok=True)
    root = Path(__file__).resolve().parent.parent
    for name in ("sbatch", "srun", "sacct"):
        path = bin_dir / name
        path.write_text(
            f"#!/bin/sh\nPYTHONPATH={shlex.quote(str(root))}${{PYTHONPATH:+:$PYTHONPATH}} "
            f"exec {shlex.quote(sys.executable)} -m tests.fake_slurm {name} {shlex.quote(str(record_dir))} \"$@\"\n"
        )
        path.chmod(0o755)


def sbatch(record_dir: Path, script: Path) -> None:
    job_id = FIRST_JOB_ID + len(list(record_dir.glob("sbatch-*.sh")))
    text = script.read_text()
    (record_dir / f"sbatch-{job_id}.sh").write_text(text)
    array = re.search(r"^#SBATCH --array=0-(\d+)", text, re.M)
    tasks = int(array.group(1)) + 1 if array else 1
    log = (record_dir / f"runner-{job_id}.log").open("w")
    subprocess.Popen(
        [sys.executable, "-m", "tests.fake_slurm", "run", str(record_dir), str(script), str(job_id), str(tasks)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=os.environ.copy(),
    )
    print(f"Submitted batch job {job_id}")


def run(script: Path, job_id: str, tasks: int) -> None:
    """Run each array task of ``script`` once submitit has put its pickle in place."""
    (command,) = [line for line in script.read_text().splitlines() if "submitit.core._submit" in line]
    folder = shlex.split(command)[-1]  # `srun ... python -u -m submitit.core._submit FOLDER`
    for task in range(tasks):
        task_id = f"{job_id}_{task}" if tasks > 1 else job_id
        submitted = Path(folder.replace("%j", task_id)) / f"{task_id}_submitted.pkl"
        deadline = time.monotonic() + PATIENCE_S
        while not submitted.exists() and time.monotonic() < deadline:
            time.sleep(0.05)  # polling a condition, not a fixed wait
        env = {
            **os.environ, "SLURM_JOB_ID": str(int(job_id) + 1 + task), "SLURM_ARRAY_JOB_ID": job_id,
            "SLURM_ARRAY_TASK_ID": str(task), "SLURM_NTASKS": "1", "SLURM_JOB_NUM_NODES": "1", "SLURM_NODEID": "0",
            "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_JOB_NODELIST": "node1",
        }
        if tasks == 1:
            for name in ("SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
                env.pop(name)
        subprocess.run(["bash", str(script)], env=env, check=False)


def srun(args: list[str]) -> None:
    files: dict[str, str] = {}
    while args and args[0].startswith("--"):
        flag = args.pop(0)
        if flag in ("--output", "--error"):
            files[flag] = args.pop(0)
    task_id = os.environ.get("SLURM_ARRAY_TASK_ID")
    job = os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ["SLURM_JOB_ID"]

    def filled(pattern: str) -> str:
        return pattern.replace("%A", job).replace("%a", task_id or "").replace("%j", job).replace("%t", "0")

    with open(filled(files.get("--output", os.devnull)), "a") as out, open(filled(files.get("--error", os.devnull)), "a") as err:
        sys.exit(subprocess.run(args, stdout=out, stderr=err, check=False).returncode)


def main(argv: list[str]) -> None:
    command, record_dir, rest = argv[0], Path(argv[1]), argv[2:]
    if command == "sbatch":
        sbatch(record_dir, Path(rest[-1]))
    elif command == "run":
        run(Path(rest[0]), rest[1], int(rest[2]))
    elif command == "srun":
        srun(rest)
    elif command == "sacct":
        print("JobID|State|NodeList")


if __name__ == "__main__":
    main(sys.argv[1:])
