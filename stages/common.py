"""What every stage shares: paths of the DAG's files, config loading and clear input errors."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipeline.config import Config, ConfigError, load_config
from pipeline.roles import ROLES

# The files that connect the stages (dvc.yaml declares the same paths).
INDEX = Path("data/prepared/index.json")
MODELS = Path("models")
CHECKPOINTS = Path("checkpoints")  # in-progress checkpoints: git- and DVC-ignored, not a DVC output
TRAIN_REPORTS = Path("reports/train")
CURVES = Path("reports/curves")
EVAL = Path("reports/eval")
METRICS = Path("reports/metrics.json")
EXPERIMENT = os.environ.get("MLFLOW_EXPERIMENT_NAME", "lad")


@dataclass(frozen=True)
class SeedPaths:
    """Where the stages of one seed (one column of the DVC matrix) read and write."""

    seed: int

    @property
    def models(self) -> Path:
        return MODELS / f"seed{self.seed}"

    def model(self, role: str) -> Path:
        """The final checkpoint of a trained model (``role``: a key of :data:`pipeline.roles.ROLES`).

        Models a stage may skip (``baseline_ft``, the comparison rows) live in a folder of their own,
        the DVC output, which holds ``model.pt`` or a ``SKIPPED`` note.
        """
        return self.models / ROLES[role].model_file

    def out(self, role: str) -> Path:
        """The DVC output of ``role``'s stage: its checkpoint, or the folder that holds it."""
        return self.models / ROLES[role].out

    def resume(self, role: str) -> Path:
        """In-progress checkpoint and status of ``role``: no DVC output (DVC deletes only those before a
        rerun), so an interrupted stage resumes, and every output stays cacheable for the run cache."""
        return CHECKPOINTS / f"seed{self.seed}" / role

    def train_report(self, role: str) -> Path:
        return TRAIN_REPORTS / f"seed{self.seed}" / f"{role}.json"

    def curve(self, role: str, kind: str) -> Path:
        return CURVES / f"seed{self.seed}" / f"{role}_{kind}.tsv"

    def onnx(self, name: str) -> Path:
        """The ONNX export of an evaluated student (``name``: a key of :data:`pipeline.roles.EVALUATIONS`)."""
        return self.models / "onnx" / f"{name}.onnx"

    @property
    def eval(self) -> Path:
        return EVAL / f"seed{self.seed}"

    @property
    def eval_metrics(self) -> Path:
        return EVAL / f"seed{self.seed}.json"


def stage_args(description: str, roles: list[str] | None = None) -> argparse.Namespace:
    """The command line of a per-seed stage: ``[role] --seed N``."""
    parser = argparse.ArgumentParser(description=description)
    if roles:
        parser.add_argument("role", choices=roles)
    parser.add_argument("--seed", type=int, default=0, help="the seed of this run (an entry of params.yaml seeds)")
    return parser.parse_args()


def error_line(err: BaseException) -> str:
    """One readable line for an input error, also when it was raised inside a DataLoader worker.

    A worker's exception reaches the main process with the worker's whole traceback in its message;
    its last line is the original error, which names the file.
    """
    text = str(err).strip()
    if "Original Traceback" in text:
        text = text.splitlines()[-1].split(": ", 1)[-1]
    return text


THREADS_ENV = "LAD_THREADS"  # torch threads per stage process: cores / parallel jobs (`dvc exp run -j N`)


def set_threads(env: dict[str, str] = os.environ) -> int | None:
    """Apply ``LAD_THREADS`` to torch (intra-op) and OpenCV; returns it (None: torch's default, all cores).

    Parallel experiments (``dvc exp run --run-all -j N``) must divide the cores: processes that each
    use every core fight over them (docs/experiments.md).
    """
    value = env.get(THREADS_ENV, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"{THREADS_ENV}: expected a whole number of threads >= 1, got {value!r}")
    import cv2
    import torch

    torch.set_num_threads(int(value))
    cv2.setNumThreads(int(value))
    return int(value)


def run_stage(body: Callable[[Config], None], params_file: str = "params.yaml") -> None:
    """Load and validate the config, run ``body``, and turn input errors into one clear line."""
    try:
        set_threads()
        cfg = load_config(params_file)
        body(cfg)
    except (ConfigError, FileNotFoundError, ValueError, RuntimeError) as err:
        if os.environ.get("LAD_DEBUG"):
            traceback.print_exc()
        print(f"error: {error_line(err)}", file=sys.stderr)
        sys.exit(2)
