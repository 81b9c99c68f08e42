"""Where the stages read and write: the files that connect the DAG (dvc.yaml declares the same paths)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

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
