"""What every stage shares: paths of the DAG's files, config loading and clear input errors."""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Callable

from pipeline.config import Config, ConfigError, load_config

# The files that connect the stages (dvc.yaml declares the same paths).
INDEX = Path("data/prepared/index.json")
MODELS = Path("models")
RESUME = MODELS / ".resume"  # in-progress checkpoints: not DVC outputs, so a rerun keeps them
TRAIN_REPORTS = Path("reports/train")
CURVES = Path("reports/curves")
EVAL = Path("reports/eval")
METRICS = Path("reports/metrics.json")
EXPERIMENT = os.environ.get("MLFLOW_EXPERIMENT_NAME", "lad")


def run_stage(body: Callable[[Config], None], params_file: str = "params.yaml") -> None:
    """Load and validate the config, run ``body``, and turn input errors into one clear line."""
    try:
        cfg = load_config(params_file)
        body(cfg)
    except (ConfigError, FileNotFoundError, ValueError, RuntimeError) as err:
        if os.environ.get("LAD_DEBUG"):
            traceback.print_exc()
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
