"""Stage ``report``: the paper-style table, per-class IoU and figures in ``reports/report.md``.

Also summarises the whole pipeline run in MLflow: headline metrics, the report and its figures
go onto the parent run (a DVC cache hit runs no stage, so this is the one place that sees all).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from pipeline.checkpoint import load_trained
from pipeline.config import Config, flatten
from pipeline.deploy import log_model
from pipeline.io import atomic_write, git_commit, write_json
from pipeline.paths import EXPERIMENT, INDEX, METRICS, SeedPaths
from pipeline.report import (
    PUBLISHED_NOTE,
    TEMPLATE,
    describe,
    fmt,
    full_palette,
    markdown_table,
    mean_std,
    method_title,
    model_name,
    plot_curves,
    plot_examples,
    plot_per_class,
    published,
)
from pipeline.roles import COMPARE_PREFIX, EVALUATIONS, HEADLINE, ROLES
from pipeline.tracking import stage_run
from stages.common import run_stage

REPORT = Path("reports/report.md")
FIGURES = Path("reports/figures")
PER_CLASS = Path("reports/per_class_iou.tsv")
# the params this stage reads (dvc.yaml lists the same; tests/test_roles.py checks)
SECTIONS = ("seeds", "distill.init", "distill.iters", "compare", "evaluate.multi_scale", "evaluate.flip",
            "evaluate.mode", "evaluate.crop", "evaluate.stride", "evaluate.registered_model", "train.crop_size")
SCORES = ("miou", "pixel_acc", "mean_acc")


def read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; run the stages before the report (dvc repro)")
    return json.loads(path.read_text())


# -- data ---------------------------------------------------------------------------------------
def load_results(seeds: list[int]) -> dict[str, list[dict[str, Any]]]:
    """Evaluation name -> its result for every seed (names evaluated for some seeds only are dropped)."""
    per_seed = [{n: read_json(SeedPaths(s).eval / f"{n}.json") for n in EVALUATIONS
                 if (SeedPaths(s).eval / f"{n}.json").is_file()} for s in seeds]
    return {n: [r[n] for r in per_seed] for n in EVALUATIONS if all(n in r for r in per_seed)}


def summarise(res: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, float]]:
    """Mean (and std over seeds) of each score of each model."""
    out = {}
    for name, runs in res.items():
        row: dict[str, float] = {"seeds": len(runs)}
        for m in SCORES:
            mean, std = mean_std([r[m] for r in runs])
            row[m], row[f"{m}_std"] = round(mean, 3), round(std, 3)
        out[name] = row
    return out


def headline(summary: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """The first entry of ``reports/metrics.json``, so the first columns of ``dvc exp show`` are the results."""
    return {"headline_miou": {col: summary[name]["miou"] for col, name in HEADLINE.items() if name in summary}}


@dataclass
class Results:
    """What the report reads: the prepared index and, per evaluated model, every seed's result."""

    index: dict[str, Any]
    seeds: list[int]
    res: dict[str, list[dict[str, Any]]]  # evaluation -> one result per seed
    summary: dict[str, dict[str, float]]  # evaluation -> mean and std of each score
    train: dict[str, list[dict[str, Any]]]  # role -> one training summary per seed

    @classmethod
    def load(cls, seeds: list[int]) -> Results:
        res = load_results(seeds)
        train = {r: [json.loads(p.read_text()) for s in seeds if (p := SeedPaths(s).train_report(r)).is_file()]
                 for r in ROLES}
        return cls(read_json(INDEX), seeds, res, summarise(res), train)

    def miou(self, key: str) -> str:
        s = self.summary[key]
        return fmt(s["miou"]) + (f" ± {fmt(s['miou_std'])}" if s["seeds"] > 1 else "")

    def seconds(self, key: str | None) -> str:
        """Mean training seconds of the model behind evaluation ``key``."""
        secs = [t["train_seconds"] for t in self.train.get(self.res[key][0]["model"], []) if "train_seconds" in t] \
            if key else []
        return fmt(mean_std(secs)[0] if secs else None, 0)

    def latency(self, key: str) -> str:
        """Batch-1 latency of evaluation ``key`` (first seed): ``median (p90)`` ms."""
        lat = self.res[key][0].get("latency")
        return f"{fmt(lat['median_ms'])} ({fmt(lat['p90_ms'])})" if lat else "—"

    def onnx(self, key: str) -> list[str]:
        """The ONNX check of evaluation ``key`` (first seed): largest logit difference, onnxruntime ms."""
        o = self.res[key][0].get("onnx")
        return [f"{o['max_abs_diff']:.1e}", fmt(o["ort_median_ms"])] if o else ["—", "—"]

    def published(self, key: str, row: str) -> str:
        r = self.res[key][0]
        return fmt(published(self.index["name"], row, r["arch"], r["backbone"]))


# -- tables -------------------------------------------------------------------------------------
def student_table(d: Results, cfg: Config) -> str:
    """The paper's table: the baseline, the comparison rows and the LAD student."""
    conventional = model_name(d.res["conventional_teacher"][0]) if "conventional_teacher" in d.res else "—"

    def row(teacher_name: str, method: str, key: str, teacher_key: str | None, paper_key: str) -> list[str]:
        r = d.res[key][0]
        return [teacher_name, model_name(r), method, d.miou(key), fmt(d.summary[key]["pixel_acc"]), fmt(r["params_m"]),
                fmt(r["gflops"]), d.latency(key), *d.onnx(key), str(r["iterations"]), d.seconds(key),
                d.miou(teacher_key) if teacher_key else "—", d.seconds(teacher_key) if teacher_key else "—",
                d.published(key, paper_key)]

    rows = [row("—", "Baseline", "baseline", None, "baseline")]
    if "baseline_ft" in d.res:
        rows.append(row("—", f"Baseline + {cfg.distill.iters} more iterations (equal-budget control)", "baseline_ft",
                        None, "baseline_ft"))
    for m in cfg.compare.methods:
        if f"{COMPARE_PREFIX}{m}" in d.res:
            rows.append(row(conventional, method_title(m), f"{COMPARE_PREFIX}{m}", "conventional_teacher", m))
    rows.append(row(lad_teacher_name(d), f"LAD (init: {cfg.distill.init})", "lad_student", "teacher_fixed", "lad"))
    return markdown_table(["Teacher", "Student", "Method", "mIoU", "pixel acc", "params (M)", "GFLOPs", "latency ms",
                           "ONNX max abs diff", "ONNX ms", "iterations", "train s", "teacher mIoU", "teacher train s",
                           "published mIoU"], rows)


def lad_teacher_name(d: Results) -> str:
    return model_name(d.res["teacher_fixed"][0]) + " + label (LAD)"


def teacher_table(d: Results) -> str:
    """Every teacher, the LAD teacher with each label channel it can be given."""
    name = lad_teacher_name(d)
    keys = [(k, name, desc) for k, desc in (("teacher_random", "image + label, random code book (as trained)"),
                                            ("teacher_fixed", "image + label, fixed code book (as distilling)"),
                                            ("teacher_zero", "image + all-zero label channel"))]
    if "conventional_teacher" in d.res:
        keys.insert(0, ("conventional_teacher", model_name(d.res["conventional_teacher"][0]),
                        "image only (conventional teacher)"))
    rows = [[n, desc, d.miou(k), fmt(d.summary[k]["pixel_acc"]), fmt(d.res[k][0]["params_m"]),
             fmt(d.res[k][0]["gflops"]), d.latency(k), d.seconds(k), d.published(k, k)] for k, n, desc in keys]
    return markdown_table(["Teacher", "input at evaluation", "mIoU", "pixel acc", "params (M)", "GFLOPs", "latency ms",
                           "train s", "published mIoU"], rows)


def per_class_frame(d: Results) -> pd.DataFrame:
    """Per-class IoU, mean over seeds: rows = classes, columns = evaluated models."""
    frame = pd.DataFrame({n: pd.DataFrame([r["per_class_iou"] for r in runs]).astype(float).mean()
                          for n, runs in d.res.items()})
    frame.index.name = "class"
    return frame


def verdict(summary: dict[str, dict[str, float]]) -> str:
    """What the run shows, in plain words: the student against the baseline, the teacher against itself."""
    s, b, t, z = (summary[k] for k in ("lad_student", "baseline", "teacher_fixed", "teacher_zero"))

    def against(a: float, b: float, what: str) -> str:
        return f"{'+' if a >= b else ''}{fmt(a - b)}, {'above' if a > b else 'below' if a < b else 'level with'} {what}"

    spread = (f" The seeds' sample std is {fmt(b['miou_std'])} (baseline) and {fmt(s['miou_std'])} (student)."
              if b["seeds"] > 1 else " One seed: the spread between seeds is not measured here.")
    return (f"The LAD student scores {fmt(s['miou'])} mIoU against the baseline's {fmt(b['miou'])}: "
            f"{against(s['miou'], b['miou'], 'the baseline')}.{spread} The teacher scores {fmt(t['miou'])} with the "
            f"fixed code book it distils with ({against(t['miou'], b['miou'], 'the baseline')}) and "
            f"{fmt(z['miou'])} with an all-zero label channel "
            f"({against(t['miou'], z['miou'], 'itself with the channel empty')}).")


def data_line(index: dict[str, Any]) -> str:
    """The prepared splits in one line: images, skipped samples, ignored pixels, background share."""
    parts = []
    for split, st in index["stats"].items():
        freq = dict(zip(index["classes"], st["class_frequency"]))
        parts.append(f"{split} {st['images']} images ({st.get('skipped', 0)} skipped), "
                     f"{fmt(100 * st['ignore_fraction'])} % pixels ignored, "
                     f"{fmt(100 * freq.get(index['classes'][0], 0))} % {index['classes'][0]}")
    return "; ".join(parts)


def deployment_line(d: Results) -> str:
    """How latency and the ONNX check were measured (from the baseline's evaluation)."""
    r = d.res["baseline"][0]
    lat, onnx = r.get("latency"), r.get("onnx")
    if not lat:
        return "Latency: not measured (`evaluate.latency_reps: 0`)."
    shape = "x".join(map(str, lat["input"][2:]))
    text = (f"Latency: one {shape} image (batch 1) on {lat['device']}, {lat['dtype']}, {lat['threads']} threads; "
            f"median (p90) of {lat['reps']} forwards after 10 warm-up ones, first seed.")
    if onnx:
        text += (f" ONNX: each student exported with a dynamic batch and size (`models/seed{d.seeds[0]}/onnx/`), run "
                 f"by onnxruntime {onnx['onnxruntime']} on the CPU with the same threads: the largest absolute "
                 f"difference of its logits from PyTorch's over {onnx['images']} val images, and its median latency.")
    return text


# -- template -----------------------------------------------------------------------------------
def render(d: Results, cfg: Config, per_class: pd.DataFrame) -> str:
    """report.md: the tables and the figures' links filled into :data:`pipeline.report.TEMPLATE`."""
    ev, seeds = cfg.evaluate, d.seeds
    compare_note = ("; ".join(describe(m, getattr(cfg.compare.hparams, m))
                              for m in cfg.compare.methods) if cfg.compare.enabled else
                    "off (`compare.enabled: false`): no conventional teacher or earlier methods ran")
    seed_rows = [[str(s)] + [fmt(d.res[n][i]["miou"]) for n in d.res] for i, s in enumerate(seeds)]
    pc_rows = [[c] + [fmt(per_class.loc[c, n]) for n in per_class.columns] for c in per_class.index]
    size = d.res["baseline"][0]["flops_input"]
    return TEMPLATE.format(
        dataset=d.index["name"], commit=git_commit()[:10], when=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        val_images=d.index["stats"]["val"]["images"], classes=len(d.index["classes"]),
        seeds=", ".join(map(str, seeds)), over_seeds=" (mean ± sample std over seeds)" if len(seeds) > 1 else "",
        inference=f"sliding window {ev.crop}x{ev.crop}, stride {ev.stride}" if ev.mode == "slide" else "whole image",
        scales=", ".join(f"{s:g}" for s in ev.multi_scale), flip=", with flip" if ev.flip else "",
        flops_size=f"{size}x{size}", data=data_line(d.index), verdict=verdict(d.summary),
        deployment=deployment_line(d),
        students=student_table(d, cfg), compare_note=compare_note, published_note=PUBLISHED_NOTE,
        teachers=teacher_table(d), first_seed=seeds[0],
        seed_table=markdown_table(["seed"] + list(d.res), seed_rows),
        per_class=markdown_table(["class"] + list(per_class.columns), pc_rows))


# -- figures ------------------------------------------------------------------------------------
def draw_figures(d: Results, per_class: pd.DataFrame) -> None:
    """Per-class bars, training curves and the prediction grid of the first seed, in reports/figures."""
    FIGURES.mkdir(parents=True, exist_ok=True)
    first = SeedPaths(d.seeds[0])
    plot_per_class(per_class, FIGURES / "per_class_iou.png")
    curves = {r: {k: pd.read_csv(first.curve(r, k), sep="\t") for k in ("train", "val")}
              for r in ROLES if first.curve(r, "train").is_file()}
    plot_curves({r: c for r, c in curves.items() if len(c["train"])}, FIGURES / "training_curves.png")
    examples = dict(np.load(first.eval / "examples.npz"))
    if "image" in examples:
        plot_examples(examples, [("image", "image"), ("label", "ground truth"), ("baseline", "baseline"),
                                 ("teacher_fixed", "teacher + label"), ("lad_student", "LAD student")],
                      full_palette(d.index["palette"]), FIGURES / "examples.png")


def build_report(cfg: Config) -> dict[str, float]:
    """Write report.md, metrics.json, figures and per-class TSV; returns the headline metrics."""
    d = Results.load(cfg.seeds)
    write_json(METRICS, {**headline(d.summary), **d.summary})
    per_class = per_class_frame(d)
    per_class.round(3).to_csv(PER_CLASS, sep="\t")
    draw_figures(d, per_class)
    text = render(d, cfg, per_class)
    atomic_write(REPORT, lambda tmp: tmp.write_text(text))
    return {f"{n}_miou": r["miou"] for n, r in d.summary.items()}


def register_student(run: Any, cfg: Config, miou: float) -> None:
    """Log the LAD student of the first seed as an MLflow model (signature, input example) and register it
    as a new version of ``evaluate.registered_model``, tagged with the experiment, commit and mIoU."""
    name = cfg.evaluate.registered_model
    if not name or run is None:
        return
    model, _ = load_trained(SeedPaths(cfg.seeds[0]).model("student"))
    log_model(run, model, "lad_student", cfg.train.crop_size)
    run.register_model(name, "lad_student", {"dvc_exp_name": os.environ.get("DVC_EXP_NAME", ""),
                                               "git_commit": git_commit(), "miou": f"{miou:.3f}",
                                               "seed": cfg.seeds[0]})
    print(f"LAD student registered in MLflow as a new version of {name!r}")


def changed_params(path: str = "params.yaml") -> dict[str, Any]:
    """The params whose value differs from the commit's params.yaml (what a DVC experiment varies), flat;
    empty outside a git repository."""
    head = subprocess.run(["git", "show", f"HEAD:{path}"], capture_output=True, text=True)
    if head.returncode or not Path(path).is_file():
        return {}
    before, now = flatten(yaml.safe_load(head.stdout) or {}), flatten(yaml.safe_load(Path(path).read_text()) or {})
    return {k: v for k, v in now.items() if before.get(k) != v}


def main(cfg: Config) -> None:
    with stage_run("report", EXPERIMENT, cfg.sections(*SECTIONS)) as run:
        mious = build_report(cfg)
        run.log_metrics(mious)
        # the parent run: headline metrics and what this experiment changed, side by side in the MLflow UI
        run.log_metrics(mious, parent=True)
        run.log_params(changed_params(), parent=True)
        register_student(run, cfg, mious["lad_student_miou"])
        for target_parent in (False, True):
            run.log_artifact(REPORT, parent=target_parent)
            run.log_artifact(FIGURES, "figures", parent=target_parent)
            run.log_artifact(METRICS, parent=target_parent)
        print(f"wrote {REPORT}")


if __name__ == "__main__":
    run_stage(main)
