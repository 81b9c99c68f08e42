"""Shared fixtures: tiny configs, a tiny prepared dataset, and a shrunk copy of the repository."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.tracking.server import MlflowServer as _Server

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test` runs two workers: one torch thread each, as in their stages
    os.environ.setdefault("LAD_THREADS", "1")
    import torch

    torch.set_num_threads(int(os.environ["LAD_THREADS"]))

# The real params.yaml shrunk to seconds on a CPU: tiny images, a handful of iterations.
TINY = {
    "synthetic": {"num_train": 16, "num_val": 6, "size": 32},
    "model": {r: {"head_channels": 16, "aux_channels": 8} for r in ("student", "teacher", "conventional_teacher")},
    "train": {"iters": 4, "batch_size": 2, "crop_size": 32, "val_interval": 2},
    "run": {"log_interval": 2, "ckpt_interval": 2},
    "distill": {"iters": 4},
    "compare": {"iters": 4, "teacher_iters": 4, "hparams": {"cirkd": {"pixel_memory": 64, "region_memory": 16},
                                                            "afdcd": {"pool": 1}}},  # 4x4 maps: one 4x4 patch
    "controls": {"matched_iters": 4},
    "evaluate": {"batch_size": 4, "num_examples": 2, "latency_reps": 3},
}


def section(name: str, **update):
    """A section of the real params.yaml (``"lad"``, ``"distill"``), with ``update`` applied."""
    from pipeline.config import load_config

    return getattr(load_config(REPO / "params.yaml"), name).model_copy(update=update)


def trainer_config(iters: int, lr: float = 1e-3, val_interval: int = 0, desc: str = "test", **run: int) -> tuple:
    """``(train, run, job)`` of a Trainer: the real sections with ``iters`` at batch 2 in float32
    (``run``: e.g. ``log_interval=1``)."""
    from pipeline.engine import Job, Schedule

    train = section("train", iters=iters, batch_size=2, optimizer="adamw", lr=lr, amp="none",
                    val_interval=val_interval)
    run_section = section("run", **{"log_interval": 1, "ckpt_interval": 10**6, **run})
    return train, run_section, Job(Schedule(iters, lr), desc=desc)


def deep_update(base: dict, new: dict) -> dict:
    for k, v in new.items():
        base[k] = deep_update(base.get(k, {}), v) if isinstance(v, dict) else v
    return base


def tiny_params(**overrides: dict) -> dict:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    return deep_update(deep_update(params, TINY), overrides)


def command_env(env: dict | None = None) -> dict:
    """The environment of a pipeline command: this venv first on PATH, the project's own MLflow store
    unless ``env`` names another."""
    full_env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return {**full_env, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **(env or {})}


def run(cmd: list[str], cwd: Path, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=command_env(env), capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n"
                             f"{proc.stderr[-4000:]}")
    return proc


def copy_repo(dest: Path, params: dict) -> Path:
    """The repository's tracked files (as in the working tree, no run outputs) in ``dest`` with ``params`` as
    its params.yaml, committed in a fresh git repo (:func:`pipeline.io.copy_repo`)."""
    from pipeline.io import copy_repo as copy

    return copy(REPO, dest, params)


def runs(repo: Path, **filters: str):
    """The MLflow runs (pandas) of ``repo``'s own store, filtered by tag values (``dvc_exp_name="noise-01"``)."""
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{repo / '.mlflow' / 'mlflow.db'}")
    df = mlflow.search_runs(experiment_names=["lad"], output_format="pandas")
    for k, v in filters.items():
        df = df[df[f"tags.{k}"] == v]
    return df


def weights(path: Path) -> dict:
    """The state dict of a trained-model checkpoint."""
    import torch

    return torch.load(path, weights_only=True)["model"]


def assert_same_weights(before: dict, after: dict) -> None:
    import torch

    for name, tensor in before.items():
        assert torch.equal(tensor, after[name]), name


@pytest.fixture(scope="session")
def tiny_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A shrunk copy of the repo after one full ``dvc repro`` (shared by the end-to-end tests), as ``make run``
    runs it: under ``make test`` the stages hand themselves to its stage server, and no id variable is set."""
    repo = copy_repo(tmp_path_factory.mktemp("repo"), tiny_params())
    proc = run(["dvc", "repro"], repo, env={"PIPELINE_RUN_ID": ""})
    (repo / "first_repro.log").write_text(proc.stdout + proc.stderr)
    return repo


@pytest.fixture(scope="session")
def tiny_index(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A prepared tiny synthetic dataset (index dict) for library-level tests."""
    from pipeline.data import prepare_index

    root = tmp_path_factory.mktemp("data") / "synthetic"
    cwd = os.getcwd()
    os.chdir(root.parent)
    try:
        params = section("synthetic", seed=0, num_train=12, num_val=4, size=32, max_objects=3, min_scale=0.3,
                         max_scale=0.6, clutter=2, noise_std=10.0, ignore_border=1)
        index = prepare_index("synthetic", root, {"train": "train", "val": "val"}, params)
    finally:
        os.chdir(cwd)
    index["root"] = str(root)
    return index


class MlflowServer(_Server):
    """``mlflow server`` on 127.0.0.1 with its own store, started and stopped by the test (with this venv's
    environment); ``stop()`` is an outage, not a clean shutdown."""

    def __init__(self, root: Path) -> None:
        super().__init__(root, env=command_env())

    def stop(self, sig: int = signal.SIGKILL) -> None:
        super().stop(sig)
