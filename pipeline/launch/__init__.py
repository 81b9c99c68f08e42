"""Launchers of the paper's table: where its shards, one (experiment, seed) each, run.

* ``serial`` (the default): ``dvc exp run`` in the workspace, one shard after the other (commands/paper.py).
* ``local``: ``--jobs N`` shards at once on the driver's machine, each pinned to its own GPU (``CUDA_VISIBLE_DEVICES``)
  or, on a CPU, to ``cores // N`` torch threads (:mod:`~pipeline.launch.local`).
* ``slurm``: one Slurm job array, a task per shard, submitted with ``sbatch --requeue``
  (:mod:`~pipeline.launch.slurm`).

Every launched shard runs ``dvc repro`` in its own persistent git worktree under ``<workdir>/shards/`` (a
requeued job finds its checkpoints there), all of them on one DVC cache (the repository's: a stage one shard
trained is restored from the run cache by the next) and one MLflow tracking server; the driver collects each
finished shard into ``reports/paper/...`` (:mod:`~pipeline.launch.driver`). This module holds what every part
shares: the launcher's settings, the workdir's layout and the state files a shard leaves.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from pipeline.config import ConfigError, load_yaml
from pipeline.experiments import Experiment
from pipeline.io import write_json

KINDS = ("serial", "local", "slurm")
Kind = Literal["serial", "local", "slurm"]


@dataclass(frozen=True)
class Launcher:
    """How shards are launched: flags of ``commands.paper run``, or the ``launcher`` section of ``--config``."""

    kind: Kind = "serial"
    jobs: int = 0  # local: shards at once (0: one per GPU, else 1); slurm: tasks running at once, %N (0: no cap)
    gpus: int = 0  # per shard: slurm --gpus-per-task; local: one per job when CUDA is there
    cpus: int = 0  # torch threads per shard, and slurm --cpus-per-task (0: local cores // jobs; Slurm's default)
    mem: str = ""  # slurm --mem, e.g. 32G ("" : the partition's default)
    time: str = ""  # slurm --time, e.g. 12:00:00 (a task past it requeues itself, see grace_s)
    partition: str = ""  # slurm --partition ("": the cluster's default)
    sbatch_args: tuple[str, ...] = ()  # more sbatch flags, e.g. ["--account=lab", "--qos=normal"]
    grace_s: int = 120  # seconds before the time limit Slurm warns a task, which then requeues itself
    workdir: str = ".paper"  # worktrees, logs and state; on storage every node shares
    mlflow_host: str = "127.0.0.1"  # where the driver's MLflow server listens (a name the nodes reach)
    wait: bool = True  # stay, collect and commit each shard as it finishes (False: submit and return)

    @classmethod
    def from_file(cls, path: Path) -> dict[str, Any]:
        """The ``launcher`` section of a YAML file, its keys checked (flags given on the command line win)."""
        if not path.is_file():
            raise ConfigError(f"--config: {path}: file not found")
        section = (load_yaml(path.read_text()) or {}).get("launcher")
        if not isinstance(section, dict):
            raise ConfigError(f"{path}: expected a `launcher:` section (a mapping of {sorted(cls.keys())})")
        if unknown := set(section) - cls.keys():
            raise ConfigError(f"{path}: launcher.{sorted(unknown)[0]}: unknown key; expected some of "
                              f"{sorted(cls.keys())}")
        return section

    @classmethod
    def keys(cls) -> set[str]:
        return {f.name for f in fields(cls)}

    def checked(self) -> Launcher:
        if self.kind not in KINDS:
            raise ConfigError(f"launcher.kind: expected one of {list(KINDS)}, got {self.kind!r}")
        for name in ("jobs", "gpus", "cpus", "grace_s"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ConfigError(f"launcher.{name}: expected a whole number >= 0, got {getattr(self, name)!r}")
        return self


@dataclass(frozen=True)
class Workdir:
    """``<workdir>/shards/<folder>`` (a shard's worktree), ``logs/<folder>.log``, ``state/<folder>.json``,
    ``submitted/<folder>.json`` (which job runs it) and ``manifests/<id>.json`` (what a submission runs)."""

    root: Path

    def worktree(self, exp: Experiment) -> Path:
        return self.root / "shards" / exp.folder

    def log(self, exp: Experiment) -> Path:
        return self.root / "logs" / f"{exp.folder}.log"

    def state(self, exp: Experiment) -> Path:
        return self.root / "state" / f"{exp.folder}.json"

    def submitted(self, exp: Experiment) -> Path:
        return self.root / "submitted" / f"{exp.folder}.json"

    def manifest(self, submission: str) -> Path:
        return self.root / "manifests" / f"{submission}.json"


def read_json(path: Path) -> dict[str, Any]:
    """A state file's content ({} when absent or half-written by a process killed meanwhile)."""
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def update_json(path: Path, **values: Any) -> dict[str, Any]:
    """Merge ``values`` into a JSON state file (atomically) and return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    new = {**read_json(path), **values, "updated": time.time()}
    write_json(path, new)
    return new


def exp_to_dict(exp: Experiment) -> dict[str, Any]:
    return {**asdict(exp), "runs": str(exp.runs)}


def exp_from_dict(d: dict[str, Any]) -> Experiment:
    seeds = d.get("default_seeds")
    return Experiment(**{**d, "runs": Path(d["runs"]), "seeds": tuple(d["seeds"]),
                         "default_seeds": None if seeds is None else tuple(seeds)})


def pid_alive(pid: int, host: str) -> bool:
    """Whether process ``pid`` of ``host`` still runs (only a process of this host can be checked)."""
    if host != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def log_tail(path: Path, lines: int = 15) -> str:
    """The last ``lines`` non-empty lines of a log (progress bars' carriage returns folded)."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    rows = [r.rsplit("\r", 1)[-1] for r in text.splitlines()]
    return "\n".join([r for r in rows if r.strip()][-lines:])


def error_line(path: Path) -> str:
    """Why a run failed, from its log: the last line that names an error (the stages print ``error: ...``;
    Python, ``SomeError: ...``), else the last line."""
    rows = log_tail(path, 60).splitlines()
    named = [r for r in rows if re.match(r"\s*(error:|[A-Za-z_.]*(Error|Exception)\b:)", r)]
    return (named or rows or [""])[-1].strip()


@dataclass
class Manifest:
    """What one submission runs: the repository and commit, the tracking server, each shard's experiment."""

    id: str
    repo: str
    commit: str
    launcher: str
    tracking_uri: str
    experiment_name: str  # the MLflow experiment
    workdir: str
    threads: int | None
    shards: list[dict[str, Any]] = field(default_factory=list)

    def save(self) -> Path:
        path = Workdir(Path(self.workdir)).manifest(self.id)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, asdict(self))
        return path

    @classmethod
    def load(cls, path: Path) -> Manifest:
        return cls(**json.loads(path.read_text()))

    def experiment(self, index: int) -> Experiment:
        if not 0 <= index < len(self.shards):
            raise ValueError(f"shard index {index}: expected 0..{len(self.shards) - 1} for {self.id}")
        return exp_from_dict(self.shards[index]["exp"])
