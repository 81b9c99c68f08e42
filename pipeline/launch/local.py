"""The local launcher: ``jobs`` shards at once on the driver's machine, each a ``commands.paper shard`` process.

A job gets its own GPU (``CUDA_VISIBLE_DEVICES``: the GPUs this process sees, ``gpus`` per job) when CUDA is
there; on a CPU its torch thread count is fixed at ``cores // jobs`` (``LAD_THREADS``: N processes of all
cores each would slow every one of them several times). Each job is its own process group, so stopping the
driver stops its jobs (their shards stay ``interrupted``, their checkpoints in place).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path


def visible_gpus() -> list[str]:
    """The CUDA devices this process may use, as ``CUDA_VISIBLE_DEVICES`` names them (none: [])."""
    import torch

    if not torch.cuda.is_available():
        return []
    named = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return named or [str(i) for i in range(torch.cuda.device_count())]


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class Pool:
    """Runs shards ``0..tasks-1`` of a manifest, ``jobs`` at a time; :meth:`step` starts what fits and
    returns the ``(index, exit status)`` of every job that ended since."""

    def __init__(self, manifest: Path, tasks: int, jobs: int, logs: list[Path], repo: Path,
                 gpus: list[str], gpus_per_job: int = 1) -> None:
        if gpus and jobs * gpus_per_job > len(gpus):
            raise ValueError(f"--jobs {jobs} x {gpus_per_job} GPU(s) each: only {len(gpus)} GPU(s) visible "
                             f"({','.join(gpus)})")
        self.manifest, self.logs, self.repo = manifest, logs, repo
        self.waiting = list(range(tasks))
        self.slots = [",".join(gpus[i * gpus_per_job:(i + 1) * gpus_per_job]) for i in range(jobs)] if gpus \
            else [""] * jobs
        self.running: dict[int, tuple[subprocess.Popen, str]] = {}

    def start(self, index: int, slot: str) -> None:
        env = dict(os.environ)
        if slot:
            env["CUDA_VISIBLE_DEVICES"] = slot
        self.logs[index].parent.mkdir(parents=True, exist_ok=True)
        with self.logs[index].open("a") as log:
            proc = subprocess.Popen([sys.executable, "-m", "commands.paper", "shard", str(self.manifest), str(index)],
                                    cwd=self.repo, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self.running[index] = (proc, slot)

    def step(self) -> list[tuple[int, int]]:
        ended = [(i, p.returncode) for i, (p, _) in self.running.items() if p.poll() is not None]
        for i, _ in ended:
            self.slots.append(self.running.pop(i)[1])
        while self.waiting and self.slots:
            self.start(self.waiting.pop(0), self.slots.pop(0))
        return ended

    @property
    def busy(self) -> bool:
        return bool(self.waiting or self.running)

    def stop(self) -> None:
        """SIGTERM every running job's group and wait for it; the waiting ones never start."""
        self.waiting.clear()
        for proc, _ in self.running.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc, _ in self.running.values():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
