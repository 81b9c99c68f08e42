"""One launched shard: its worktree (made by the driver) and the run in it (what a Slurm task or a local job
executes, ``python -m commands.paper shard MANIFEST [INDEX]``; on Slurm the index is the array task's id).

The run writes the experiment's params into the worktree's params.yaml (the committed file with the shard's
sets, as ``dvc exp run -S`` would), runs ``dvc repro`` there with the experiment's name and a parent-run key
that stays the same across requeues, then collects the results into the worktree's own
``reports/paper/...`` for the driver to bring home. A SIGTERM (``scontrol requeue``, preemption, ``scancel``,
the driver stopping) leaves the shard ``interrupted``, its checkpoints in place; Slurm's warning before the
time limit (SIGUSR1, ``--signal``) makes the task requeue itself. Every step goes to the shard's log.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pipeline.launch import Manifest, Workdir, error_line, read_json, update_json
from pipeline.overlays import Overlay, apply_text

SLURM_TASK = ("SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID")


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def prepare_worktree(repo: Path, worktree: Path, commit: str, cache_dir: str) -> None:
    """``worktree`` at ``commit`` (added, or moved there with its ignored files kept: checkpoints, DVC's
    outputs), on the DVC cache ``cache_dir``. The driver makes every worktree before submitting, one by one."""
    if (worktree / ".git").exists():
        git("checkout", "-q", "--detach", "--force", commit, cwd=worktree)
    else:
        git("worktree", "prune", cwd=repo)  # a worktree deleted by hand leaves its record behind
        worktree.parent.mkdir(parents=True, exist_ok=True)
        git("worktree", "add", "-q", "--detach", "--force", str(worktree), commit, cwd=repo)
    subprocess.run(["dvc", "config", "--local", "cache.dir", cache_dir], cwd=worktree, check=True,
                   capture_output=True)


def job_name() -> str:
    """``<array job>_<task>`` under Slurm, else ``pid <N>@<host>``."""
    if all(k in os.environ for k in SLURM_TASK):
        return "_".join(os.environ[k] for k in SLURM_TASK)
    return f"pid {os.getpid()}@{socket.gethostname()}"


def repro_command() -> list[str]:
    """``dvc repro``, under a stage server of its own unless one that can be reached is named already."""
    from pipeline import stage_server

    if os.path.exists(os.environ.get(stage_server.ENV, "") or "/nonexistent"):
        return ["dvc", "repro"]
    return [sys.executable, "-m", "pipeline.stage_server", "--", "dvc", "repro"]


def repro(tree: Path, env: dict[str, str], out: Any) -> tuple[int, int]:
    """``dvc repro`` in ``tree``, its output to ``out``; ``(exit status, the signal that stopped it or 0)``.
    SIGTERM and SIGINT reach the children too (Slurm signals the whole job, the driver the job's group), so
    this process only notes them; SIGUSR1, Slurm's warning before the time limit, requeues the task."""
    stop = {"signal": 0}

    def interrupted(signum: int, _frame: object) -> None:
        stop["signal"] = signum

    def requeue(signum: int, _frame: object) -> None:
        subprocess.run(["scontrol", "requeue", os.environ.get("SLURM_JOB_ID", "")], check=False)

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGUSR1, requeue)
    proc = subprocess.Popen(repro_command(), cwd=tree, env=env, stdout=out, stderr=subprocess.STDOUT)
    return proc.wait(), stop["signal"]


def run(manifest_path: Path, index: int) -> int:
    """Run shard ``index`` of a manifest; its exit status (0: collected in its worktree)."""
    from pipeline.results import collect
    from pipeline.tracking import invocation, parent_run_id

    m = Manifest.load(manifest_path)
    exp, work = m.experiment(index), Workdir(Path(m.workdir))
    tree, state, log = work.worktree(exp), work.state(exp), work.log(exp)
    if git("rev-parse", "HEAD", cwd=tree) != m.commit:  # resubmitted since, at another commit: not ours
        print(f"{exp.folder}: its worktree moved on from {m.commit[:10]}; nothing to do", flush=True)
        return 0
    before = read_json(state)
    spent = before.get("seconds", 0.0) if before.get("submission") == m.id else 0.0
    restarts = int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)
    threads = m.threads or int(os.environ.get("SLURM_CPUS_PER_TASK", "0") or 0) or None
    update_json(state, state="running", submission=m.id, host=socket.gethostname(), pid=os.getpid(), job=job_name(),
                restarts=restarts, threads=threads, started=time.time(), exit=None, why="")
    committed = git("show", f"{m.commit}:params.yaml", cwd=tree)
    (tree / "params.yaml").write_text(apply_text(committed + "\n", Overlay(exp.name, exp.sets)))
    env = {**os.environ, "DVC_EXP_NAME": exp.name, invocation.ENV: m.shards[index]["run_key"],
           "MLFLOW_TRACKING_URI": m.tracking_uri, **({"LAD_THREADS": str(threads)} if threads else {})}
    t0 = time.perf_counter()
    with log.open("a") as out:
        out.write(f"\n== {exp.folder}: attempt {restarts + 1}, {job_name()}, torch threads: {threads or 'default'}, "
                  f"commit {m.commit[:10]}, {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        out.flush()
        code, stopped = repro(tree, env, out)
    seconds = spent + time.perf_counter() - t0
    if stopped:
        update_json(state, state="interrupted", exit=code, seconds=seconds,
                    why=f"signal {signal.Signals(stopped).name} (requeued, preempted or stopped)")
        return 128 + stopped
    if code != 0:
        update_json(state, state="failed", exit=code, seconds=seconds,
                    why=f"`dvc repro` exit {code}: {error_line(log)}")
        return code
    os.environ["MLFLOW_TRACKING_URI"] = m.tracking_uri
    os.chdir(tree)  # the commit and the params collected are the worktree's
    extra = {"launcher": m.launcher, "job": job_name(), "threads": threads, "restarts": restarts,
             "host": socket.gethostname()}
    dest = collect(exp, seconds, parent_run_id(m.experiment_name, m.shards[index]["run_key"]), Path("."), extra)
    update_json(state, state="done", exit=0, seconds=seconds, collected=str(tree / dest))
    with log.open("a") as out:
        out.write(f"== {exp.folder}: collected in {tree / dest} ({seconds:.0f} s)\n")
    return 0
