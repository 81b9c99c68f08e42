"""Slurm: one submission's shards as one job array (``sbatch``), and what ``squeue`` says of its tasks.

Each task runs ``python -m commands.paper shard MANIFEST $SLURM_ARRAY_TASK_ID``. ``--requeue`` lets Slurm put
a preempted task (or one on a failed node) back in the queue, ``--signal=B:USR1@<grace>`` warns a task before
its time limit so it requeues itself, and ``--open-mode=append`` keeps every attempt's output. A requeued task
starts its shard again in the same worktree: finished stages come back from DVC's run cache, the stage it was
in resumes from its last checkpoint. Job states come from ``squeue`` (``sacct`` needs accounting, which many
clusters, and the test's, do not run).
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from pipeline.config import ConfigError
from pipeline.launch import Launcher, Workdir

JOB_NAME = "lad-paper"
RUNNING = {"RUNNING", "CONFIGURING", "COMPLETING", "STAGE_OUT", "SIGNALING", "RESIZING"}
QUEUED = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "SUSPENDED", "RESV_DEL_HOLD"}


def command(name: str) -> str:
    path = shutil.which(name)
    if not path:
        raise ConfigError(f"--launcher slurm: `{name}` not found on PATH; run the table from a machine with "
                          "Slurm's client commands (a login node)")
    return path


def script(manifest: Path, tasks: int, cfg: Launcher, repo: Path, work: Workdir) -> str:
    """The batch script of an array of ``tasks`` shards."""
    flags = [f"--job-name={JOB_NAME}", f"--array=0-{tasks - 1}" + (f"%{cfg.jobs}" if cfg.jobs else ""),
             f"--output={work.root / 'logs'}/slurm-%A_%a.out", "--open-mode=append", "--requeue",
             f"--signal=B:USR1@{cfg.grace_s}", f"--chdir={repo}", "--ntasks=1"]
    flags += [f"--cpus-per-task={cfg.cpus}"] * bool(cfg.cpus) + [f"--gres=gpu:{cfg.gpus}"] * bool(cfg.gpus)
    flags += [f"--mem={cfg.mem}"] * bool(cfg.mem) + [f"--time={cfg.time}"] * bool(cfg.time)
    flags += [f"--partition={cfg.partition}"] * bool(cfg.partition) + list(cfg.sbatch_args)
    python = Path(sys.executable)
    return "\n".join(["#!/bin/bash", *(f"#SBATCH {f}" for f in flags),
                      "# a stage server of the submitting shell is not this node's: each task starts its own",
                      "unset LAD_STAGE_SERVER",
                      f"export PATH={shlex.quote(str(python.parent))}:\"$PATH\"",
                      f"exec {shlex.quote(str(python))} -m commands.paper shard {shlex.quote(str(manifest))} "
                      "\"$SLURM_ARRAY_TASK_ID\"", ""])


def submit(path: Path) -> str:
    """``sbatch`` the script at ``path``; the array's job id."""
    proc = subprocess.run([command("sbatch"), "--parsable", str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"sbatch {path} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout.strip().split(";")[0]


def queue() -> dict[str, tuple[str, str]]:
    """This user's tasks Slurm still knows: ``<array>_<task>`` (or a job's id) -> (state, reason)."""
    proc = subprocess.run([command("squeue"), "-h", "-r", "--me", "-o", "%i|%T|%r"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"squeue failed ({proc.returncode}): {proc.stderr.strip()}")
    rows = [line.split("|") for line in proc.stdout.splitlines() if line.count("|") == 2]
    return {job: (state, reason) for job, state, reason in rows}
