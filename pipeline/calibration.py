"""Calibration of the table's distillation weights on seeds it never reports (docs/protocol.md).

Every tuned method gets the same probes: its distillation weights, all multiplied by one factor ``s`` of
:data:`PROBES` (``s = 1``: the committed, official values). One DVC experiment per factor trains every
tuned student at once on the calibration seeds of another generated dataset (generator seed 1); the
teachers and baselines are the same in all three, so DVC's run cache trains them once. A method's score
for a probe is its student's mean mIoU over the calibration seeds; :func:`choose` picks the best factor
(the official one on a tie within :data:`TIE`), and the table then sets the chosen weights (:func:`chosen_sets`).

    python -m stages.paper run --part calibration   # the three experiments, collected in reports/paper/calibration
    python -m stages.paper calibrate                # reports/calibration.md and reports/calibration.json
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, get_args

import numpy as np

from pipeline.config import MethodName, select
from pipeline.results import Results, load_collected

PROBES = (1 / 3, 1.0, 3.0)  # factors on a method's distillation weights; 1 = the committed values
SEEDS = (100, 101)  # training seeds never reported
GENERATOR_SEED = 1  # synthetic.seed of the calibration data (the table's is 0)
TIE = 0.5  # mIoU: within this of the best, the committed weights stay
RUNS = Path("reports/paper/calibration")  # one folder per probe experiment (as pipeline.paper.RUNS)
CHOSEN = Path("reports/calibration.json")
REPORT = Path("reports/calibration.md")

CONTEXT = ("baseline", "teacher_fixed", "conventional_teacher", "baseline_matched")  # listed beside the probes
# method -> (its evaluation, the params.yaml keys of its distillation weights)
TUNED: dict[str, tuple[str, tuple[str, ...]]] = {
    "lad": ("lad_student", ("distill.w_kd",)),
    "label": ("label_student", ("controls.w_kd",)),
    "kd": ("distill_kd", ("compare.hparams.kd.w_kd",)),
    "cwd": ("distill_cwd", tuple(f"compare.hparams.cwd.{k}" for k in ("w_logits", "w_features", "w_kd"))),
    "cirkd": ("distill_cirkd", tuple(f"compare.hparams.cirkd.{k}" for k in ("w_kd", "w_pair", "w_memory_pixel",
                                                                              "w_memory_region"))),
    "dist": ("distill_dist", ("compare.hparams.dist.w_dist",)),
    "afdcd": ("distill_afdcd", tuple(f"compare.hparams.afdcd.{k}" for k in ("w_kd", "w_fd", "w_ctr"))),
}


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
            "compare.methods": list(get_args(MethodName)), "controls.enabled": True, "evaluate.latency_reps": 0}


def choose(probes: dict[float, Results]) -> dict[str, dict[str, Any]]:
    """Per tuned method: each probe's mean student mIoU, and the chosen factor (best; 1 on a tie within TIE)."""
    out = {}
    for method, (evaluation, keys) in TUNED.items():
        scores = {s: float(np.mean(r.miou(evaluation))) for s, r in sorted(probes.items()) if evaluation in r.eval}
        if not scores:
            continue
        best = max(scores.values())
        scale = 1.0 if scores.get(1.0, -np.inf) >= best - TIE else max(scores, key=scores.get)
        out[method] = {"evaluation": evaluation, "scores": {f"{s:.4g}": round(v, 2) for s, v in scores.items()},
                       "scale": scale, "keys": list(keys)}
    return out


def chosen_sets(params: dict[str, Any], path: Path = CHOSEN) -> dict[str, Any]:
    """The ``-S`` sets of the calibrated weights for the table (none before the calibration is written)."""
    if not path.is_file():
        return {}
    chosen = json.loads(path.read_text())["methods"]
    return {k: v for c in chosen.values() if c["scale"] != 1.0
            for k, v in scaled(params, c["keys"], c["scale"]).items()}


def collected(root: Path = Path(".")) -> dict[float, Results]:
    """The collected probe experiments by factor."""
    runs = load_collected(root / RUNS)
    by_name = {probe_name(s): s for s in PROBES}
    return {by_name[r.meta["name"]]: r for r in runs.values() if r.meta["name"] in by_name}


def markdown(chosen: dict[str, dict[str, Any]], probes: dict[float, Results]) -> str:
    first = next(iter(probes.values()))
    cpus = sorted({r.meta.get("cpu", "?") for r in probes.values()})
    lines = ["# Calibration of the distillation weights", "",
             f"Written by `python -m stages.paper calibrate` from the {len(probes)} probe experiments of "
             f"`{RUNS}` (docs/protocol.md): generator seed {GENERATOR_SEED}, training seeds "
             f"{', '.join(map(str, first.seeds))}, never reported. Each probe multiplies every method's "
             f"distillation weights by one factor; a cell is the student's mIoU, mean over the seeds. Chosen: the "
             f"best factor, or 1 (the committed weights) when 1 is within {TIE} mIoU of the best. CPU: "
             f"{'; '.join(cpus)}; {sum(r.meta['seconds'] for r in probes.values()) / 60:.1f} min of wall time.", "",
             "| method | weights scaled | " + " | ".join(f"x{s:.3g}" for s in sorted(probes)) + " | chosen |",
             "|---|---|" + "---|" * len(probes) + "---|"]
    for method, c in chosen.items():
        cells = " | ".join(str(c["scores"].get(f"{s:.4g}", "—")) for s in sorted(probes))
        keys = ", ".join(f"`{k}`" for k in c["keys"])
        lines.append(f"| {method} | {keys} | {cells} | x{c['scale']:.3g} |")
    untuned = [k for k in CONTEXT if k in first.eval]  # the same in every probe: no weight of theirs is scaled
    if untuned:
        lines += ["", "The models no probe changes, on the same data and seeds (mean mIoU): " + ", ".join(
            f"{k} {np.mean(first.miou(k)):.2f}" for k in untuned) + "."]
    return "\n".join(lines) + "\n"


def write(root: Path = Path(".")) -> str:
    """reports/calibration.md and reports/calibration.json from the collected probes; returns the markdown."""
    from pipeline.io import atomic_write, write_json

    probes = collected(root)
    if not probes:
        raise FileNotFoundError(f"{root / RUNS}: no calibration probe was collected "
                                "(python -m stages.paper run --part calibration)")
    chosen = choose(probes)
    text = markdown(chosen, probes)
    write_json(root / CHOSEN, {"probes": [probe_name(s) for s in sorted(probes)], "methods": chosen})
    atomic_write(root / REPORT, lambda tmp: tmp.write_text(text))
    return text
