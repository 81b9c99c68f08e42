"""Stage ``report``: the paper-style table, per-class IoU and figures in ``reports/report.md``.

Also summarises the whole pipeline run in MLflow: headline metrics, the report and its figures
go onto the parent run (a DVC cache hit runs no stage, so this is the one place that sees all).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline import documents, figures
from pipeline.checkpoint import load_trained
from pipeline.config import Config, flatten, load_yaml
from pipeline.deploy import Preprocess, log_model, weights_digest
from pipeline.io import atomic_write, git_commit, write_json
from pipeline.paths import EXPERIMENT, INDEX, METRICS, SeedPaths
from pipeline.results import Results
from pipeline.roles import HEADLINE, ROLES
from pipeline.tracking import stage_run
from pipeline.tracking.datasets import describe
from pipeline.tracking.journal import WEIGHTS_TAG
from stages.common import run_stage

REPORT = Path("reports/report.md")
FIGURES = Path("reports/figures")
PER_CLASS = Path("reports/per_class_iou.tsv")
ALIAS = "candidate"  # the registry alias of the latest report's student: models:/lad-student@candidate
# the params this stage reads (dvc.yaml lists the same; tests/test_roles.py checks)
SECTIONS = ("seeds", "data.name", "data.root", "data.val_split", "synthetic.seed", "compare",
            "evaluate.multi_scale", "evaluate.flip", "evaluate.mode", "evaluate.crop", "evaluate.stride",
            "evaluate.registered_model", "train.crop_size")


def headline(summary: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """The first entry of ``reports/metrics.json``, so the first columns of ``dvc exp show`` are the results."""
    return {"headline_miou": {col: summary[name]["miou"] for col, name in HEADLINE.items() if name in summary}}


def per_class_frame(res: Results) -> pd.DataFrame:
    """Per-class IoU, mean over seeds: rows = classes, columns = evaluated models."""
    frame = pd.DataFrame({n: pd.DataFrame([r["per_class_iou"] for r in runs]).astype(float).mean()
                          for n, runs in res.eval.items()})
    frame.index.name = "class"
    return frame


def draw_figures(res: Results, index: dict[str, Any], per_class: pd.DataFrame) -> None:
    """Per-class bars, training curves and the prediction grid of the first seed, in reports/figures."""
    FIGURES.mkdir(parents=True, exist_ok=True)
    first = SeedPaths(res.seeds[0])
    figures.plot_per_class(per_class, FIGURES / "per_class_iou.png")
    curves = {r: {k: pd.read_csv(first.curve(r, k), sep="\t") for k in ("train", "val")}
              for r in ROLES if first.curve(r, "train").is_file()}
    figures.plot_curves({r: c for r, c in curves.items() if len(c["train"])}, FIGURES / "training_curves.png")
    examples = dict(np.load(first.eval / "examples.npz"))
    if "image" in examples:
        figures.plot_examples(examples, [("image", "image"), ("label", "ground truth"), ("baseline", "baseline"),
                                         ("teacher_fixed", "teacher + label"), ("lad_student", "LAD student")],
                              figures.full_palette(index["palette"]), FIGURES / "examples.png")


def build_report(cfg: Config) -> dict[str, float]:
    """Write report.md, metrics.json, figures and per-class TSV; returns every model's mIoU."""
    res = Results.load(cfg)
    if not INDEX.is_file():
        raise FileNotFoundError(f"{INDEX}: missing; run the stages before the report (dvc repro)")
    index = json.loads(INDEX.read_text())
    summary = res.summary()
    write_json(METRICS, {**headline(summary), **summary})
    per_class = per_class_frame(res)
    per_class.round(3).to_csv(PER_CLASS, sep="\t")
    draw_figures(res, index, per_class)
    text = documents.report_md(res, index, per_class.to_dict(orient="index"))
    atomic_write(REPORT, lambda tmp: tmp.write_text(text))
    return {f"{n}_miou": r["miou"] for n, r in summary.items()}


def description(cfg: Config, ckpt: dict[str, Any], index: dict[str, Any], miou: float, seed: int) -> str:
    """The registered version's description: what the model is (the first paragraph, also the registered model's
    own description), then its data, score and commit."""
    spec, commit = ckpt["spec"], ckpt.get("git_commit") or git_commit()
    return (f"The student of Label Assisted Distillation (LAD, ECCV 2024): a {spec['arch']}-{spec['backbone']} "
            f"segmentation network that sees the image only, distilled from a teacher that also saw a noised copy "
            f"of the label. Predict with `lad-predict photos/ --model models:/{cfg.evaluate.registered_model}@"
            f"{ALIAS} --out masks/`.\n\n"
            f"Trained on {index['name']} ({index['stats']['train']['images']} training images, "
            f"{len(index['classes'])} classes) for {ckpt.get('iteration', '?')} steps, seed {seed}; mIoU "
            f"{miou:.2f} on its {index['stats']['val']['images']} validation images; commit {commit[:10]}"
            + (f", DVC experiment {os.environ['DVC_EXP_NAME']}" if os.environ.get("DVC_EXP_NAME") else "") + ".")


def register_student(run: Any, cfg: Config, miou: float) -> None:
    """Register the LAD student of the first seed under ``evaluate.registered_model``: the LoggedModel its
    distillation stage logged (found by its weights digest; logged here when that stage's run is not in this
    store, e.g. restored from another clone's cache), tagged with the experiment, commit, mIoU and weights
    digest, described. A new version only when the weights differ from the latest version's; the alias
    :data:`ALIAS` names the version either way."""
    name = cfg.evaluate.registered_model
    if not name or run is None:
        return
    seed, role = cfg.seeds[0], next(r for r in ROLES.values() if r.registered)
    model, ckpt = load_trained(SeedPaths(seed).model(role.name))
    digest, index = weights_digest(model), json.loads(INDEX.read_text())
    logged = run.find_model({WEIGHTS_TAG: digest})
    if logged is None:
        logged = log_model(run, model, role.name, Preprocess.from_checkpoint(ckpt), ckpt.get("iteration", 0),
                           {"miou": miou}, describe(index, "val", cfg.data),
                           {"role": role.name, "seed": seed, "git_commit": ckpt.get("git_commit", "")})
    tags = {"dvc_exp_name": os.environ.get("DVC_EXP_NAME", ""), "git_commit": git_commit(), "miou": f"{miou:.3f}",
            "seed": seed, WEIGHTS_TAG: digest}
    run.register_model(name, logged, {k: v for k, v in tags.items() if v != ""}, ALIAS,
                       description(cfg, ckpt, index, miou, seed))
    print(f"LAD student registered in MLflow as models:/{name}@{ALIAS}")


def changed_params(path: str = "params.yaml") -> dict[str, Any]:
    """The params whose value differs from the commit's params.yaml (what a DVC experiment varies), flat;
    empty outside a git repository."""
    head = subprocess.run(["git", "show", f"HEAD:{path}"], capture_output=True, text=True)
    if head.returncode or not Path(path).is_file():
        return {}
    before, now = flatten(load_yaml(head.stdout) or {}), flatten(load_yaml(Path(path).read_text()) or {})
    return {k: v for k, v in now.items() if before.get(k) != v}


def main(cfg: Config) -> None:
    with stage_run("report", EXPERIMENT, cfg.sections(*SECTIONS)) as run:
        mious = build_report(cfg)
        run.log_metrics(mious)
        # the parent run: headline metrics and what this experiment changed, side by side in the MLflow UI
        run.log_metrics(mious, parent=True)
        # one parent holds every seed's run of an experiment (commands.paper runs the table seed by seed), and
        # MLflow keeps a param's first value: the seeds are each stage's own params
        run.log_params({k: v for k, v in changed_params().items() if k != "seeds"}, parent=True)
        register_student(run, cfg, mious["lad_student_miou"])
        for target_parent in (False, True):
            run.log_artifact(REPORT, parent=target_parent)
            run.log_artifact(FIGURES, "figures", parent=target_parent)
            run.log_artifact(METRICS, parent=target_parent)
        print(f"wrote {REPORT}")


if __name__ == "__main__":
    run_stage(main)
