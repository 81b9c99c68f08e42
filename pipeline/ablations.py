"""The LAD ablations: what each one changes, its table and its figure.

They run as DVC experiments of the paper's table (:mod:`pipeline.paper`, ``make paper``; ``make ablations``
runs only them), each from params.yaml with its params set, on the first seed. Each changes only LAD
params, so DVC's run cache restores the baseline and reruns the teacher (or only the student),
evaluation and the report. Their table is ``reports/ablations.md`` and a section of ``reports/paper.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.overlays import Overlay, yaml_value
from pipeline.report import fmt

ABLATIONS_MD = Path("reports/ablations.md")  # git-tracked, written by `stages.paper report` (no DVC stage reads it)
ABLATIONS_PNG = Path("reports/ablations.png")

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
# needs ImageNet weights: run only with `stages.paper run --imagenet PATH` (a timm weights file of the student's
# backbone); the student then has the backbone's full widths, the only ones the weights exist for
IMAGENET = ("init-imagenet", "student backbone from ImageNet weights at its full width (the baseline too: the "
                             "same model.student)")


def imagenet_sets(path: str) -> dict[str, Any]:
    return {"model.student.pretrained": True, "model.student.pretrained_path": path, "model.student.channels": [],
            "model.student.stem_width": 0}
Entry = tuple[dict[str, Any], dict[str, float]]  # an experiment's meta data and its mIoU per evaluation
SHOWN = (("teacher_fixed", "LAD teacher (fixed code)", "#ff7f0e"), ("lad_student", "LAD student", "#1f77b4"))


def ordered(entries: list[Entry]) -> list[Entry]:
    """The reference (params.yaml as committed) first, then the ablations by name."""
    return sorted(entries, key=lambda e: (e[0]["ablation"] != "reference", e[0]["ablation"]))


def ablation_rows(entries: list[Entry]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the ablations' table, Δ against the reference, which ``entries`` must hold.

    ``entries``: per experiment, its meta data (``name``, ``ablation``, ``what``, ``sets``) and its mIoU per
    evaluation.
    """
    entries = ordered(entries)
    ref = entries[0][1]
    header = ["ablation", "what it tests", "params set", "teacher mIoU (fixed code)", "Δ teacher", "LAD student mIoU",
              "Δ student", "DVC experiment"]

    def delta(m: dict[str, float], key: str, is_ref: bool) -> str:
        return "—" if is_ref or key not in m or key not in ref else f"{m[key] - ref[key]:+.2f}"

    rows = []
    for meta, m in entries:
        is_ref = meta["ablation"] == "reference"
        sets = {k: v for k, v in meta["sets"].items() if k != "seeds"}
        rows.append([meta["ablation"], meta["what"], ", ".join(f"`{k}={yaml_value(v)}`" for k, v in sets.items())
                     or "none", *[c for key, _, _ in SHOWN for c in (fmt(m.get(key)), delta(m, key, is_ref))],
                     f"`{meta['name']}`"])
    return header, rows


def plot_ablations(entries: list[Entry], path: Path) -> None:
    """Bars of the teacher's and the student's mIoU per ablation, in the table's order."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    entries = ordered(entries)[::-1]  # barh draws bottom-up: the reference on top
    y = np.arange(len(entries))
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(entries) + 1.4))
    for offset, (key, label, colour) in zip((0.2, -0.2), SHOWN, strict=True):
        values = [m.get(key, np.nan) for _, m in entries]
        ax.barh(y + offset, values, height=0.38, color=colour, label=label)
        ax.axvline(values[-1], color=colour, lw=0.8, ls="--")  # the reference
    ax.set(yticks=y, yticklabels=[meta["ablation"] for meta, _ in entries], xlabel="val mIoU (%)",
           title="LAD ablations (dashed: the reference)")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
