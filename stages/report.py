"""Stage ``report``: the paper-style table, per-class IoU and figures in ``reports/report.md``.

Also summarises the whole pipeline run in MLflow: headline metrics, the report and its figures
go onto the parent run (a DVC cache hit runs no stage, so this is the one place that sees all).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.config import Config
from pipeline.engine import git_commit
from pipeline.io import atomic_write, write_json
from pipeline.methods import METHODS, describe
from pipeline.report import (PUBLISHED_NOTE, full_palette, markdown_table, fmt, mean_std, model_name, plot_curves,
                             plot_examples, plot_per_class, published)
from pipeline.tracking import stage_run
from stages.ablations import ablation_section
from stages.common import COMPARE_PREFIX, EXPERIMENT, INDEX, METRICS, SeedPaths, run_stage
from stages.evaluate import EVALUATIONS
from stages.train import ROLES

REPORT = Path("reports/report.md")
FIGURES = Path("reports/figures")
PER_CLASS = Path("reports/per_class_iou.tsv")
SECTIONS = ["seeds", "distill.init", "distill.iters", "compare", "evaluate.multi_scale", "evaluate.flip", "evaluate.mode",
            "evaluate.crop", "evaluate.stride"]
TRAINED = tuple(ROLES)  # the trained models, in DAG order
SCORES = ("miou", "pixel_acc", "mean_acc")


def read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; run the stages before the report (dvc repro)")
    return json.loads(path.read_text())


def load_results(seeds: list[int]) -> dict[str, list[dict[str, Any]]]:
    """Evaluation name -> its result for every seed (names evaluated for some seeds only are dropped)."""
    per_seed = [{n: read_json(SeedPaths(s).eval / f"{n}.json") for n in EVALUATIONS
                 if (SeedPaths(s).eval / f"{n}.json").is_file()} for s in seeds]
    return {n: [r[n] for r in per_seed] for n in EVALUATIONS if all(n in r for r in per_seed)}


HEADLINE = {"lad_student": "lad_student", "baseline": "baseline", "teacher": "teacher_fixed"}  # column -> model


def headline(summary: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """The first entry of ``reports/metrics.json``, so the first columns of ``dvc exp show`` are the results."""
    return {"headline_miou": {col: summary[name]["miou"] for col, name in HEADLINE.items() if name in summary}}


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


def build_report(cfg: Config) -> dict[str, float]:
    """Write report.md, metrics.json, figures and per-class TSV; returns the headline metrics."""
    index = read_json(INDEX)
    seeds, first = cfg.seeds, SeedPaths(cfg.seeds[0])
    res = load_results(seeds)
    summary = summarise(res)
    write_json(METRICS, {**headline(summary), **summary})
    train = {r: [json.loads(p.read_text()) for s in seeds if (p := SeedPaths(s).train_report(r)).is_file()]
             for r in TRAINED}
    FIGURES.mkdir(parents=True, exist_ok=True)

    student = model_name(res["baseline"][0])
    lad_teacher = model_name(res["teacher_fixed"][0]) + " + label (LAD)"
    conventional = model_name(res["conventional_teacher"][0]) if "conventional_teacher" in res else "—"
    init = cfg.distill.init
    dataset = index["name"]

    def miou(key: str) -> str:
        s = summary[key]
        return fmt(s["miou"]) + (f" ± {fmt(s['miou_std'])}" if s["seeds"] > 1 else "")

    def seconds(key: str) -> float | None:
        secs = [t["train_seconds"] for t in train.get(res[key][0]["model"], []) if "train_seconds" in t]
        return mean_std(secs)[0] if secs else None

    def row(teacher_name: str, method: str, key: str, teacher_key: str | None, paper_key: str) -> list[str]:
        r = res[key][0]
        paper = published(dataset, paper_key, r["arch"], r["backbone"])
        return [teacher_name, model_name(r), method, miou(key), fmt(summary[key]["pixel_acc"]), fmt(r["params_m"]),
                fmt(r["gflops"]), str(r["iterations"]), fmt(seconds(key), 0),
                miou(teacher_key) if teacher_key else "—", fmt(seconds(teacher_key), 0) if teacher_key else "—",
                fmt(paper)]

    header = ["Teacher", "Student", "Method", "mIoU", "pixel acc", "params (M)", "GFLOPs", "iterations", "train s",
              "teacher mIoU", "teacher train s", "published mIoU"]
    rows = [row("—", "Baseline", "baseline", None, "baseline")]
    if "baseline_ft" in res:
        rows.append(row("—", f"Baseline + {cfg.distill.iters} more iterations (equal-budget control)", "baseline_ft",
                        None, "baseline_ft"))
    for m in cfg.compare.methods:
        if f"{COMPARE_PREFIX}{m}" in res:
            rows.append(row(conventional, METHODS[m].title, f"{COMPARE_PREFIX}{m}", "conventional_teacher", m))
    rows.append(row(lad_teacher, f"LAD (init: {init})", "lad_student", "teacher_fixed", "lad"))
    t_header = ["Teacher", "input at evaluation", "mIoU", "pixel acc", "params (M)", "GFLOPs", "train s",
                "published mIoU"]
    t_keys = [(k, lad_teacher, desc) for k, desc in (("teacher_random", "image + label, random code book (as trained)"),
                                                     ("teacher_fixed", "image + label, fixed code book (as distilling)"),
                                                     ("teacher_zero", "image + all-zero label channel"))]
    if "conventional_teacher" in res:
        t_keys.insert(0, ("conventional_teacher", conventional, "image only (conventional teacher)"))
    t_rows = [[name, desc, miou(k), fmt(summary[k]["pixel_acc"]), fmt(res[k][0]["params_m"]), fmt(res[k][0]["gflops"]),
               fmt(seconds(k), 0), fmt(published(dataset, k, res[k][0]["arch"], res[k][0]["backbone"]))]
              for k, name, desc in t_keys]
    compare_note = ("; ".join(f"{METHODS[m].title}: {describe(m, cfg.compare.hparams.get(m))}"
                              for m in cfg.compare.methods) if cfg.compare.enabled else
                    "off (`compare.enabled: false`): no conventional teacher or earlier methods ran")
    seed_rows = [[str(s)] + [fmt(res[n][i]["miou"]) for n in res] for i, s in enumerate(seeds)]

    per_class = pd.DataFrame({n: pd.DataFrame([r["per_class_iou"] for r in runs]).astype(float).mean()
                              for n, runs in res.items()})
    per_class.index.name = "class"
    per_class.round(3).to_csv(PER_CLASS, sep="\t")
    plot_per_class(per_class, FIGURES / "per_class_iou.png")
    curves = {r: {k: pd.read_csv(first.curve(r, k), sep="\t") for k in ("train", "val")}
              for r in TRAINED if first.curve(r, "train").is_file()}
    plot_curves({r: c for r, c in curves.items() if len(c["train"])}, FIGURES / "training_curves.png")
    examples = dict(np.load(first.eval / "examples.npz"))
    if "image" in examples:
        plot_examples(examples, [("image", "image"), ("label", "ground truth"), ("baseline", "baseline"),
                                 ("teacher_fixed", "teacher + label"), ("lad_student", "LAD student")],
                      full_palette(index["palette"]), FIGURES / "examples.png")

    pc_rows = [[c] + [fmt(per_class.loc[c, n]) for n in per_class.columns] for c in per_class.index]
    ev = cfg.evaluate
    inference = (f"sliding window {ev.crop}x{ev.crop}, stride {ev.stride}" if ev.mode == "slide"
                 else "whole image")
    text = f"""# LAD report: {index['name']}

Generated by `dvc repro` (stage `report`) at commit `{git_commit()[:10]}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.
Val split: {index['stats']['val']['images']} images, {len(index['classes'])} classes. mIoU is the nanmean of
per-class IoU over classes present in the prediction or the ground truth (as mmsegmentation), from one
confusion matrix over the split; the checkpoint evaluated is the last one (no best-on-val selection).
Seeds: {', '.join(map(str, seeds))}{' (mean ± sample std over seeds)' if len(seeds) > 1 else ''}; curves, examples
and per-seed columns below; per-class IoU is the mean over seeds.
Evaluation: {inference}, scales {', '.join(f'{s:g}' for s in cfg.evaluate.multi_scale)}{', with flip' if cfg.evaluate.flip else ''}, scores upsampled to the
original label resolution. FLOPs: one forward at
{res['baseline'][0]['flops_input']}x{res['baseline'][0]['flops_input']} (2 x multiply-adds). Data: {data_line(index)}.

{verdict(summary)}

## Students

{markdown_table(header, rows)}

Comparison methods from the conventional teacher: {compare_note}.
"published mIoU": {PUBLISHED_NOTE}

## Teachers

{markdown_table(t_header, t_rows)}
{ablation_section()}
## mIoU of each seed

{markdown_table(["seed"] + list(res), seed_rows)}

## Per-class IoU (%)

{markdown_table(["class"] + list(per_class.columns), pc_rows)}

![per-class IoU](figures/per_class_iou.png)

## Training curves (seed {seeds[0]})

![training curves](figures/training_curves.png)

## Val examples (seed {seeds[0]})

![examples](figures/examples.png)
"""
    atomic_write(REPORT, lambda tmp: tmp.write_text(text))
    return {f"{n}_miou": r["miou"] for n, r in summary.items()}


def main(cfg: Config) -> None:
    with stage_run("report", EXPERIMENT, cfg.sections(*SECTIONS)) as run:
        headline = build_report(cfg)
        run.log_metrics(headline)
        run.log_metrics(headline, parent=True)
        for target_parent in (False, True):
            run.log_artifact(REPORT, parent=target_parent)
            run.log_artifact(FIGURES, "figures", parent=target_parent)
            run.log_artifact(METRICS, parent=target_parent)
        print(f"wrote {REPORT}")


if __name__ == "__main__":
    run_stage(main)
