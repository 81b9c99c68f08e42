"""The calibration probes of the table's distillation weights, on seeds it never reports (docs/protocol.md).

Every tuned role gets the same probes: its distillation weights (:attr:`pipeline.roles.Role.tuned`; a
comparison method declares them in its section of ``pipeline/config.py``), all multiplied by one factor
``s`` of :data:`PROBES` (``s = 1``: the committed, official values). One DVC experiment per factor trains
every tuned student at once on the calibration seeds of another generated dataset (generator seed 1); the
teachers and baselines are the same in all three, so DVC's run cache trains them once.
:func:`pipeline.statistics.choose` picks each role's factor, and the table sets the chosen weights
(:func:`chosen_sets`).

    python -m commands.paper run --part calibration   # the three experiments, in reports/paper/calibration
    python -m commands.paper calibrate                # reports/calibration.md and reports/calibration.json
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.config import select
from pipeline.experiments import TABLE_METHODS, Experiment
from pipeline.roles import EVALUATION_OF, ROLES

PROBES = (1 / 3, 1.0, 3.0)  # factors on a method's distillation weights; 1 = the committed values
SEEDS = (100, 101)  # training seeds never reported
GENERATOR_SEED = 1  # synthetic.seed of the calibration data (the table's is 0)
TIE = 0.5  # mIoU: within this of the best, the committed weights stay
RUNS = Path("reports/paper/calibration")  # one folder per probe experiment
CHOSEN = Path("reports/calibration.json")
REPORT = Path("reports/calibration.md")

CONTEXT = ("baseline", "teacher_fixed", "conventional_teacher", "baseline_matched")  # listed beside the probes
# calibrated name -> (its evaluation, the params.yaml keys of its distillation weights), from the roles table
# (the from-scratch table's methods only: TABLE_METHODS)
TUNED: dict[str, tuple[str, tuple[str, ...]]] = {
    r.calibrated: (EVALUATION_OF[r.name], r.tuned) for r in ROLES.values()
    if r.tuned and (not r.method or r.method in TABLE_METHODS)}


def probe_name(scale: float) -> str:
    return f"calib-x{scale:.2f}".rstrip("0").rstrip(".")


def scaled(params: dict[str, Any], keys: list[str] | tuple[str, ...], scale: float) -> dict[str, float]:
    """The ``-S`` sets of ``keys`` of ``params`` (params.yaml as a dict) times ``scale``, to 6 digits."""
    return {key: float(f"{select(params, key) * scale:.6g}") for key in keys}


def probe_sets(params: dict[str, Any], scale: float) -> dict[str, Any]:
    """Every tuned weight of ``params`` times ``scale``."""
    return scaled(params, [key for _, keys in TUNED.values() for key in keys], scale)


def base_sets(seeds: tuple[int, ...] = SEEDS) -> dict[str, Any]:
    """What every probe sets besides the weights: its seeds and data, every tuned row on, no latency loops."""
    return {"seeds": list(seeds), "synthetic.seed": GENERATOR_SEED, "compare.enabled": True,
            "compare.methods": list(TABLE_METHODS), "controls.enabled": True, "evaluate.latency_reps": 0}


def plan(params: dict[str, Any], seeds: tuple[int, ...] = SEEDS) -> list[Experiment]:
    """The calibration probes (``params``: params.yaml as a dict), the committed weights' first."""
    return [Experiment(probe_name(s), {**base_sets(seeds), **probe_sets(params, s)}, "calibration", RUNS, seeds,
                       what=f"every tuned method's distillation weights x{s:.3g}", default_seeds=SEEDS)
            for s in sorted(PROBES, key=lambda s: s != 1.0)]


def chosen_sets(params: dict[str, Any], path: Path = CHOSEN) -> dict[str, Any]:
    """The ``-S`` sets of the calibrated weights for the table (none before the calibration is written)."""
    if not path.is_file():
        return {}
    chosen = json.loads(path.read_text())["methods"]
    return {k: v for c in chosen.values() if c["scale"] != 1.0
            for k, v in scaled(params, c["keys"], c["scale"]).items()}
