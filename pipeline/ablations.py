"""The LAD ablations as DVC experiments: the plan, their queue commands, and their table.

    python -m stages.ablations list                 # the plan: name -> params it changes
    python -m stages.ablations queue [--only NAME]  # dvc exp run --queue, one per ablation
    dvc exp run --run-all                           # run the queue (only the stages a change touches rerun)
    python -m stages.ablations report               # dvc exp show --json -> reports/ablations.md (+ .png)
    dvc repro report                                # the report's "Ablations" section includes it

``make ablations`` does all four. Each experiment changes only LAD params, so DVC's run cache
restores the baseline and the comparison rows and reruns the teacher, the student, evaluation and
the report. The table compares every experiment of the current commit with the commit's own run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.config import flatten
from pipeline.io import atomic_write
from pipeline.report import fmt, markdown_table

ABLATIONS_MD = Path("reports/ablations.md")  # git-tracked; the report stage inlines it (a declared dep)
ABLATIONS_PNG = Path("reports/ablations.png")
PREFIX = "abl-"  # experiment names: abl-<ablation>

# name -> (what it tests, the params it sets); every other param as in params.yaml
ABLATIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "noise-0": ("label noise sigma 0 (the teacher sees a clean label code)", {"lad.noise_std": 0.0}),
    "noise-0.1": ("label noise sigma 0.1", {"lad.noise_std": 0.1}),
    "codebook-fixed": ("fixed code book while training the teacher (official: random)", {"lad.codebook": "fixed"}),
    "single-path": ("dual path off: one noised path, no consistency", {"lad.dual_path": False}),
    "w-cons-5": ("consistency weight 5 (official; the default's 1 suits its 1200 steps)", {"lad.w_cons": 5.0}),
    "distance-kl": ("pixel-wise KL instead of CWD, consistency and distillation",
                    {"lad.distance": "kl", "distill.distance": "kl"}),
    "init-baseline": ("student warm-started from the baseline (official), with the equal-budget control",
                      {"distill.init": "baseline"}),
}
# needs ImageNet weights: queued only with --imagenet PATH (a timm weights file for the student backbone)
IMAGENET = ("init-imagenet", "student backbone from ImageNet weights at its full width, the only one they exist "
                             "for (baseline too: same model.student)")
ROWS = ("lad_student", "teacher_fixed", "baseline")  # reports/metrics.json entries shown per experiment


def yaml_value(v: Any) -> str:
    return json.dumps(v) if isinstance(v, (bool, int, float)) else str(v)


def queue_commands(names: list[str], imagenet: str | None = None) -> list[list[str]]:
    """The ``dvc exp run --queue`` command of each ablation."""
    plan = {n: ABLATIONS[n][1] for n in names}
    if imagenet:
        plan[IMAGENET[0]] = {"model.student.pretrained": True, "model.student.pretrained_path": imagenet,
                             "model.student.channels": [], "model.student.stem_width": 0}
    return [["dvc", "exp", "run", "--queue", "-n", PREFIX + name] + [a for k, v in sets.items()
                                                                      for a in ("-S", f"{k}={yaml_value(v)}")]
            for name, sets in plan.items()]


def parse_experiments(show: list[dict[str, Any]], metrics_file: str = "reports/metrics.json"
                      ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``dvc exp show --json`` -> (the commit's own run, its finished experiments), each as
    ``{"name", "params": flat params.yaml, "metrics": metrics_file's data}``; the commit's metrics
    are None when its results were not committed."""
    def entry(rev: dict[str, Any]) -> dict[str, Any]:
        data = rev.get("data") or {}
        metrics = ((data.get("metrics") or {}).get(metrics_file) or {}).get("data")
        params = ((data.get("params") or {}).get("params.yaml") or {}).get("data") or {}
        return {"name": rev.get("name") or rev.get("rev", "")[:7], "params": flatten(params), "metrics": metrics}

    commits = [r for r in show if r.get("rev") != "workspace"]
    if not commits:
        raise ValueError("dvc exp show: no commit in the output (run this in the project's git repository)")
    base = commits[0]
    exps = [e for group in base.get("experiments") or [] for rev in group.get("revs", [])[:1]
            if (e := entry(rev))["metrics"] is not None]  # no metrics: failed, or still queued
    return entry(base), exps


def ablation_table(main: dict[str, Any], exps: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and rows: the reference run, then each experiment with the params it changed."""
    header = ["experiment", "what it tests", "changed params"] + [f"{r} mIoU" for r in ROWS] + ["Δ LAD student"]
    ref = (main["metrics"] or {}).get("lad_student", {}).get("miou")

    def cells(e: dict[str, Any]) -> list[str]:
        m = e["metrics"] or {}
        vals = [fmt(m.get(r, {}).get("miou")) for r in ROWS]
        s = m.get("lad_student", {}).get("miou")
        delta = f"{s - ref:+.2f}" if s is not None and ref is not None and e is not main else "—"
        return vals + [delta]

    rows = [["(this commit)", "params.yaml as committed" + ("" if main["metrics"] else " (results not committed)"),
             "—"] + cells(main)]
    for e in sorted(exps, key=lambda e: e["name"]):
        changed = {k: v for k, v in e["params"].items() if main["params"].get(k) != v}
        what = ABLATIONS.get(e["name"].removeprefix(PREFIX), ("",))[0] or (IMAGENET[1]
                                                                           if e["name"] == PREFIX + IMAGENET[0]
                                                                           else "")
        rows.append([e["name"], what, ", ".join(f"`{k}={yaml_value(v)}`" for k, v in changed.items()) or "none"]
                    + cells(e))
    return header, rows


def plot_ablations(rows: list[list[str]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r[0] for r in rows]
    values = [float(r[3]) if r[3] != "—" else 0.0 for r in rows]
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(rows) + 1.2))
    ax.barh(names[::-1], values[::-1], color=["#888"] * (len(rows) - 1) + ["#1f77b4"])
    ax.set(xlabel="LAD student val mIoU (%)", title="LAD ablations")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_ablations(show: list[dict[str, Any]]) -> str:
    """Write reports/ablations.md and .png from ``dvc exp show --json`` output; returns the markdown."""
    main, exps = parse_experiments(show)
    header, rows = ablation_table(main, exps)
    plot_ablations(rows, ABLATIONS_PNG)
    text = (f"{len(exps)} experiment(s) of this commit, from `dvc exp show --json` "
            "(`python -m stages.ablations report`). Δ: LAD student mIoU minus this commit's.\n\n"
            f"{markdown_table(header, rows)}\n\n![ablations](ablations.png)\n")
    atomic_write(ABLATIONS_MD, lambda tmp: tmp.write_text(text))
    return text


def ablation_section() -> str:
    """The report's "Ablations" section: reports/ablations.md, or how to produce it."""
    body = ABLATIONS_MD.read_text() if ABLATIONS_MD.is_file() else ""
    if not body.strip() or body.startswith("not run"):
        body = ("Not run for this commit. `make ablations` queues and runs them as DVC experiments "
                f"({', '.join(ABLATIONS)}) and fills this section.\n")
    return "\n## Ablations\n\n" + body  # report.md sits beside ablations.png: the image link holds
