"""Training stages: ``python -m stages.train {baseline|teacher|student|baseline_ft}``.

* ``baseline``: the student architecture, cross-entropy only (the paper's Baseline row).
* ``teacher``: the LAD teacher (image + noised label), dual-path consistency.
* ``student``: the student distilled from the frozen LAD teacher (CWD).
* ``baseline_ft``: with ``distill.init: baseline``, the baseline trained on for the same extra
  iterations without a teacher, so a warm-started student is compared at equal budget.
"""

from __future__ import annotations

import argparse
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from pipeline.config import Config
from pipeline.data import load_index, make_dataset
from pipeline.engine import Trainer, atomic_save, git_commit, load_trained
from pipeline.models import create_segmentor
from pipeline.steps import STEPS
from pipeline.io import write_json
from pipeline.tracking import stage_run
from stages.common import CURVES, EXPERIMENT, INDEX, MODELS, RESUME, TRAIN_REPORTS, run_stage



@dataclass(frozen=True)
class Role:
    stage: str  # the DVC stage (and MLflow child run) name, as in dvc.yaml
    net: str  # which network of params.yaml `model` it trains
    sections: tuple[str, ...]  # the params it reads; dvc.yaml lists the same


ROLES: dict[str, Role] = {
    "baseline": Role("train_baseline", "student", ("seed", "data", "model.student", "train")),
    "teacher": Role("train_teacher", "teacher", ("seed", "data", "model.teacher", "train", "lad",
                                                 "distill.codebook", "distill.noise_std")),
    "student": Role("distill", "student", ("seed", "data", "model.student", "model.teacher", "train",
                                           "lad.scale", "distill")),
    "baseline_ft": Role("train_baseline_ft", "student", ("seed", "data", "model.student", "train", "distill.init",
                                                         "distill.iters", "distill.lr")),
}


def model_path(role: str) -> Path:
    return MODELS / "baseline_ft" / "model.pt" if role == "baseline_ft" else MODELS / f"{role}.pt"


def build(role: str, cfg: Config, index: dict[str, Any]) -> tuple[torch.nn.Module, Any, int, float]:
    """The network, its step, iterations and learning rate for ``role``."""
    k, ignore = len(index["classes"]), index["ignore_index"]
    net = getattr(cfg.model, ROLES[role].net)
    torch.manual_seed(cfg.seed)  # the initial weights: same seed, same network in every process
    model = create_segmentor(net.arch, net.backbone, k, 4 if role == "teacher" else 3, net.output_stride,
                             net.head_channels, net.aux_channels, net.pretrained, net.dropout, net.aspp_rates)
    lad, dst = cfg.lad, cfg.distill
    if role == "baseline":
        return model, STEPS["baseline"](k, ignore, cfg.train.w_aux), cfg.train.iters, cfg.train.lr
    if role == "teacher":
        step = STEPS["teacher"](k, ignore, lad.codebook, lad.noise_std, lad.scale, lad.w_aux, lad.w_cons,
                                lad.temperature, lad.dual_path, dst.codebook, dst.noise_std)
        return model, step, cfg.train.iters, cfg.train.lr
    if role == "baseline_ft" or dst.init == "baseline":  # warm start from the trained baseline
        base, _ = load_trained(model_path("baseline"), k)
        if base.spec != model.spec:
            raise ValueError(f"distill.init: baseline needs models/baseline.pt to match model.student; "
                             f"checkpoint has {base.spec}, params ask for {model.spec}")
        model.load_state_dict(base.state_dict())
    if role == "baseline_ft":
        return model, STEPS["baseline"](k, ignore, cfg.train.w_aux), dst.iters, dst.lr
    teacher, _ = load_trained(model_path("teacher"), k)
    step = STEPS["distill"](teacher, k, ignore, dst.codebook, dst.noise_std, lad.scale, dst.w_kd,
                            dst.temperature, dst.w_aux)
    return model, step, dst.iters, dst.lr


def write_curves(role: str, history: dict[str, list[dict[str, float]]]) -> None:
    CURVES.mkdir(parents=True, exist_ok=True)
    for kind in ("train", "val"):
        rows = history.get(kind) or []
        df = pd.DataFrame(rows, columns=None if rows else ["step"])
        df.to_csv(CURVES / f"{role}_{kind}.tsv", sep="\t", index=False, float_format="%.6g")


def train(role: str, cfg: Config, run: Any = None) -> dict[str, Any]:
    """Train ``role`` to completion (resuming if interrupted); writes model, curves and summary."""
    index = load_index(INDEX)
    sections = ROLES[role].sections
    if role == "baseline_ft" and cfg.distill.init != "baseline":
        reason = f"distill.init is {cfg.distill.init!r}: the baseline itself is the equal-budget control"
        out = MODELS / "baseline_ft"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        (out / "SKIPPED").write_text(reason + "\n")
        write_curves(role, {})
        summary = {"skipped": True, "reason": reason}
        write_json(TRAIN_REPORTS / f"{role}.json", summary)
        print(f"{role}: skipped ({reason})")
        return summary
    model, step, iters, lr = build(role, cfg, index)
    t = cfg.train
    mean, std = cfg.data.mean, cfg.data.std
    train_set = make_dataset(index, "train", mean, std, cfg.data.cache, crop=t.crop_size,
                             scale_range=tuple(t.scale_range), flip=t.flip)
    val_set = make_dataset(index, "val", mean, std, cfg.data.cache)
    fingerprint = f"{role}-{cfg.section_hash(*sections)}"
    meta = {"spec": model.spec, "role": role, "config": cfg.to_dict(), "classes": index["classes"]}
    trainer = Trainer(model, step, train_set, val_set, len(index["classes"]), index["ignore_index"],
                      index["classes"], iters, t.batch_size, t.optimizer, lr, t.momentum, t.weight_decay,
                      t.poly_power, t.amp, cfg.seed, t.val_interval, t.log_interval, t.ckpt_interval,
                      t.num_workers, RESUME / f"{role}.pt", fingerprint,
                      run.log_metrics if run else None, cfg.evaluate.batch_size, meta, desc=role)
    start = time.perf_counter()
    history = trainer.fit()
    elapsed = time.perf_counter() - start
    final = {"model": model.state_dict(), "spec": model.spec, "iteration": trainer.iteration,
             "fingerprint": fingerprint, "git_commit": git_commit(), **meta}
    atomic_save(final, model_path(role))
    write_curves(role, history)
    last_val = history["val"][-1] if history["val"] else {}
    summary = {"iters": iters, "val_miou": last_val.get("val_miou"), "val_pixel_acc": last_val.get("val_pixel_acc"),
               "train_seconds": round(elapsed, 1), "resumed_from": trainer.resumed_from,
               "sec_per_iter": round(elapsed / max(iters - (trainer.resumed_from or 0), 1), 4)}
    write_json(TRAIN_REPORTS / f"{role}.json", summary)
    (RESUME / f"{role}.pt").unlink(missing_ok=True)  # done: nothing left to resume
    return summary


def main(cfg: Config, role: str) -> None:
    spec = ROLES[role]
    with stage_run(spec.stage, EXPERIMENT, cfg.sections(*spec.sections), {"role_model": spec.net}) as run:
        summary = train(role, cfg, run)
        if run is not None:
            if summary.get("resumed_from"):
                run.set_tags({"resumed_from": summary["resumed_from"]})
            run.log_metrics({k: v for k, v in summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
            run.log_artifact(TRAIN_REPORTS / f"{role}.json")
            for kind in ("train", "val"):
                run.log_artifact(CURVES / f"{role}_{kind}.tsv", "curves")
            if role == "student" and not summary.get("skipped"):
                model, _ = load_trained(model_path(role))
                example = np.zeros((1, 3, cfg.train.crop_size, cfg.train.crop_size), np.float32)
                uri = run.log_pytorch_model(model, "student", example)
                run.set_tags({"model_uri": uri})
                print(f"student logged to MLflow as {uri}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=sorted(ROLES))
    args = parser.parse_args()
    run_stage(lambda cfg: main(cfg, args.role))
