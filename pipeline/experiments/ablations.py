"""The LAD ablations: what each one changes.

They run as DVC experiments of the paper's table (:func:`pipeline.experiments.protocol.plan`, ``make paper``;
``make ablations`` runs only them), each from params.yaml with its params set, seed by seed right after
the reference of the same seed. Each changes only LAD params, so DVC's run cache restores the baseline
and reruns the teacher (or only the student), evaluation and the report. Their paired differences from
the reference are a section of ``reports/paper.md`` (:func:`pipeline.words.tables.ablations_section`).
"""

from __future__ import annotations

from typing import Any

from pipeline.overlays import Overlay

# name -> what it tests and the params it sets; every other param as in params.yaml
ABLATIONS: dict[str, Overlay] = {o.name: o for o in [
    Overlay("noise-0", {"lad.noise_std": 0.0}, "label noise sigma 0 (the teacher sees a clean label code)"),
    Overlay("noise-0.1", {"lad.noise_std": 0.1}, "label noise sigma 0.1"),
    Overlay("codebook-fixed", {"lad.codebook": "fixed"},
            "fixed code book while training the teacher (official: random)"),
    Overlay("single-path", {"lad.dual_path": False}, "dual path off: one noised path, no consistency"),
    Overlay("w-cons-5", {"lad.w_cons": 5.0}, "consistency weight 5 (official; the default's 1 suits its 1200 steps)"),
    Overlay("distance-kl", {"lad.distance": "kl", "distill.distance": "kl"},
            "pixel-wise KL instead of CWD, consistency and distillation"),
    Overlay("init-baseline", {"distill.init": "baseline"},
            "student warm-started from the baseline (official), with the equal-budget control"),
]}
# needs ImageNet weights: run only with `commands.paper run --imagenet PATH` (a timm weights file of the student's
# backbone); the student then has the backbone's full widths, the only ones the weights exist for
IMAGENET = ("init-imagenet", "student backbone from ImageNet weights at its full width (the baseline too: the "
                             "same model.student)")


def imagenet_sets(path: str) -> dict[str, Any]:
    return {"model.student.pretrained": True, "model.student.pretrained_path": path, "model.student.channels": [],
            "model.student.stem_width": 0}
