"""Training stages: ``python -m stages.train {baseline|teacher|student|baseline_ft} --seed N``.

* ``baseline``: the student architecture, cross-entropy only (the paper's Baseline row).
* ``teacher``: the LAD teacher (image + noised label), dual-path consistency.
* ``student``: the student distilled from the frozen LAD teacher (CWD).
* ``baseline_ft``: with ``distill.init: baseline``, the baseline trained on for the same extra
  iterations without a teacher, so a warm-started student is compared at equal budget.
* ``conventional_teacher``: with ``compare.enabled``, a large image-only teacher trained the usual way.
* ``distill_<method>``: with ``compare.enabled``, the student distilled from the conventional teacher
  with a method of ``pipeline.methods`` (KD, CWD, CIRKD, ...): the comparison rows of the paper.

With ``train.nproc > 1`` the stage re-executes itself under ``torchrun`` (DDP, one process per GPU,
or gloo processes on a CPU).
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from pipeline import dist
from pipeline.config import Config
from pipeline.data import load_index, make_dataset
from pipeline.engine import Trainer, atomic_save, git_commit, load_trained
from pipeline.io import atomic_write, write_json
from pipeline.models import create_segmentor
from pipeline.steps import STEPS
from pipeline.tracking import stage_run
from pipeline.methods import METHODS, create_method_loss
from stages.common import COMPARE_PREFIX, EXPERIMENT, INDEX, SeedPaths, run_stage, stage_args


@dataclass(frozen=True)
class Role:
    stage: str  # the DVC stage name (before ``@<seed>``) and the MLflow child run name, as in dvc.yaml
    net: str  # which network of params.yaml `model` it trains
    sections: tuple[str, ...]  # the params it reads; dvc.yaml lists the same
    method: str = ""  # comparison rows: the pipeline.methods key (the DVC matrix's second column)

    def run_name(self, seed: int) -> str:
        """The DVC stage (and MLflow run) name, e.g. ``train_baseline@0`` or ``distill_compare@0-kd``."""
        return f"{self.stage}@{seed}" + (f"-{self.method}" if self.method else "")


COMPARE_SECTIONS = ("data", "model.student", "model.conventional_teacher", "train", "compare")
ROLES: dict[str, Role] = {
    "baseline": Role("train_baseline", "student", ("data", "model.student", "train")),
    "teacher": Role("train_teacher", "teacher", ("data", "model.teacher", "train", "lad", "distill.codebook",
                                                 "distill.noise_std")),
    "student": Role("distill", "student", ("data", "model.student", "model.teacher", "train", "lad.scale",
                                           "distill")),
    "baseline_ft": Role("train_baseline_ft", "student", ("data", "model.student", "train", "distill.init",
                                                         "distill.iters", "distill.lr")),
    "conventional_teacher": Role("train_conventional_teacher", "conventional_teacher",
                                 ("data", "model.conventional_teacher", "train", "compare.enabled")),
    **{f"{COMPARE_PREFIX}{m}": Role("distill_compare", "student", COMPARE_SECTIONS, m) for m in METHODS},
}


def build(role: str, cfg: Config, index: dict[str, Any], paths: SeedPaths,
          device: torch.device = torch.device("cpu")) -> tuple[torch.nn.Module, Any, int, float]:
    """The network, its step, iterations and learning rate for ``role``."""
    k, ignore = len(index["classes"]), index["ignore_index"]
    net = getattr(cfg.model, ROLES[role].net)
    torch.manual_seed(paths.seed)  # the initial weights: same seed, same network in every process
    model = create_segmentor(net.arch, net.backbone, k, 4 if role == "teacher" else 3, net.output_stride,
                             net.head_channels, net.aux_channels, net.pretrained, net.dropout, net.aspp_rates,
                             pretrained_path=net.pretrained_path or None, label_init=net.label_init,
                             channels=net.channels, stem_width=net.stem_width)
    lad, dst = cfg.lad, cfg.distill
    if role in ("baseline", "conventional_teacher"):
        return model, STEPS["baseline"](k, ignore, cfg.train.w_aux), cfg.train.iters, cfg.train.lr
    if ROLES[role].method:  # a comparison row: the student from the conventional teacher
        teacher, _ = load_trained(paths.model("conventional_teacher"), index["classes"])
        c = cfg.compare
        loss = create_method_loss(ROLES[role].method, c.hparams.get(ROLES[role].method), net.head_channels,
                                  teacher.spec["head_channels"], k, ignore)
        return model, STEPS["method"](teacher.to(device), loss, ignore, c.w_aux), c.iters, c.lr
    if role == "teacher":
        step = STEPS["teacher"](k, ignore, lad.codebook, lad.noise_std, lad.scale, lad.w_aux, lad.w_cons,
                                lad.temperature, lad.dual_path, dst.codebook, dst.noise_std, lad.distance)
        return model, step, cfg.train.iters, cfg.train.lr
    if role == "baseline_ft" or dst.init == "baseline":  # warm start from the trained baseline
        base, _ = load_trained(paths.model("baseline"), index["classes"])
        if base.spec != model.spec:
            raise ValueError(f"distill.init: baseline needs {paths.model('baseline')} to match model.student; "
                             f"checkpoint has {base.spec}, params ask for {model.spec}")
        model.load_state_dict(base.state_dict())
    if role == "baseline_ft":
        return model, STEPS["baseline"](k, ignore, cfg.train.w_aux), dst.iters, dst.lr
    teacher, _ = load_trained(paths.model("teacher"), index["classes"])
    step = STEPS["distill"](teacher.to(device), k, ignore, dst.codebook, dst.noise_std, lad.scale, dst.w_kd,
                            dst.temperature, dst.w_aux, dst.distance)
    return model, step, dst.iters, dst.lr


def write_curves(role: str, history: dict[str, list[dict[str, float]]], paths: SeedPaths) -> None:
    for kind in ("train", "val"):
        rows = history.get(kind) or []
        df = pd.DataFrame(rows, columns=None if rows else ["step"])
        atomic_write(paths.curve(role, kind), lambda tmp: df.to_csv(tmp, sep="\t", index=False, float_format="%.6g"))


def skip_reason(role: str, cfg: Config) -> str | None:
    """Why ``role`` has nothing to train under ``cfg`` (None: it trains)."""
    if role == "baseline_ft" and cfg.distill.init != "baseline":
        return f"distill.init is {cfg.distill.init!r}: the baseline itself is the equal-budget control"
    if (role == "conventional_teacher" or ROLES[role].method) and not cfg.compare.enabled:
        return "compare.enabled is false: no comparison rows (they are on in the paper recipes)"
    if ROLES[role].method and ROLES[role].method not in cfg.compare.methods:
        return f"{ROLES[role].method!r} is not in compare.methods {cfg.compare.methods}"
    return None


def skip(role: str, reason: str, paths: SeedPaths) -> dict[str, Any]:
    """A stage with nothing to train: its outputs record why (DVC needs them to exist)."""
    out = paths.model(role).parent
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    (out / "SKIPPED").write_text(reason + "\n")
    write_curves(role, {}, paths)
    summary = {"skipped": True, "reason": reason}
    write_json(paths.train_report(role), summary)
    print(f"{role}: skipped ({reason})")
    return summary


def train(role: str, cfg: Config, seed: int = 0, run: Any = None, ctx: dist.Context | None = None) -> dict[str, Any]:
    """Train ``role`` for ``seed`` to completion (resuming if interrupted); writes model, curves and summary."""
    ctx = ctx or dist.Context()
    paths = SeedPaths(seed)
    index = load_index(INDEX)
    reason = skip_reason(role, cfg)
    if reason:
        return skip(role, reason, paths) if ctx.writes_files else {"skipped": True}
    model, step, iters, lr = build(role, cfg, index, paths, ctx.device)
    t = cfg.train
    mean, std = cfg.data.mean, cfg.data.std
    train_set = make_dataset(index, "train", mean, std, cfg.data.cache, cfg.data.channel_order,
                             crop=t.crop_size, scale_range=tuple(t.scale_range), flip=t.flip)
    val_set = make_dataset(index, "val", mean, std, cfg.data.cache, cfg.data.channel_order)
    fingerprint = f"{role}-{seed}-{cfg.section_hash(*ROLES[role].sections)}"
    # only the params this stage reads: a checkpoint is then byte-identical whenever DVC would call
    # its inputs unchanged, so a forced rerun does not make everything downstream stale
    meta = {"spec": model.spec, "role": role, "seed": seed, "config": cfg.sections(*ROLES[role].sections),
            "classes": index["classes"]}
    trainer = Trainer(model, step, train_set, val_set, len(index["classes"]), index["ignore_index"],
                      index["classes"], iters, t.batch_size, t.optimizer, lr, t.momentum, t.weight_decay,
                      t.poly_power, t.amp, seed, t.val_interval, t.log_interval, t.ckpt_interval,
                      t.num_workers, paths.resume(role), fingerprint,
                      run.log_metrics if run else None, cfg.evaluate.batch_size, meta, desc=role, ctx=ctx)
    start = time.perf_counter()
    history = trainer.fit()
    elapsed = time.perf_counter() - start
    last_val = history["val"][-1] if history["val"] else {}
    summary = {"seed": seed, "iters": iters, "val_miou": last_val.get("val_miou"),
               "val_pixel_acc": last_val.get("val_pixel_acc"), "train_seconds": round(elapsed, 1),
               "resumed_from": trainer.resumed_from, "processes": ctx.world_size, "batch_per_process": t.batch_size,
               "effective_batch": trainer.effective_batch, "sync_bn": trainer.sync_bn, "device": ctx.device.type,
               "sec_per_iter": round(elapsed / max(iters - (trainer.resumed_from or 0), 1), 4)}
    if ctx.writes_files:
        final = {"model": trainer.module.state_dict(), "spec": model.spec, "iteration": trainer.iteration,
                 "fingerprint": fingerprint, "git_commit": git_commit(), **meta}
        atomic_save(final, paths.model(role))
        write_curves(role, history, paths)
        write_json(paths.train_report(role), summary)
    trainer.finish()  # done: nothing left to resume
    return summary


def main(cfg: Config, role: str, seed: int) -> None:
    if (cfg.train.nproc > 1 or dist.multi_node()) and not dist.under_torchrun():
        sys.exit(dist.relaunch(cfg.train.nproc, "stages.train", [role, "--seed", str(seed)]))
    ctx = dist.setup(cfg.train.device)
    spec, paths = ROLES[role], SeedPaths(seed)
    params = {**cfg.sections(*spec.sections), "seed": seed, "processes": ctx.world_size,
              "effective_batch": cfg.train.batch_size * ctx.world_size}
    try:
        with stage_run(spec.run_name(seed), EXPERIMENT, params, {"role_model": spec.net, "seed": seed},
                       enabled=ctx.is_main) as run:
            summary = train(role, cfg, seed, run, ctx)
            if run is not None:
                log_summary(run, role, summary, paths, cfg)
    finally:
        dist.teardown(ctx)


def log_summary(run: Any, role: str, summary: dict[str, Any], paths: SeedPaths, cfg: Config) -> None:
    """The finished stage's summary, curves and (for the student) the MLflow model."""
    if summary.get("resumed_from"):
        run.set_tags({"resumed_from": summary["resumed_from"]})
    run.log_metrics({k: v for k, v in summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
    run.log_artifact(paths.train_report(role))
    for kind in ("train", "val"):
        run.log_artifact(paths.curve(role, kind), "curves")
    if role == "student":
        model, _ = load_trained(paths.model(role))
        example = np.zeros((1, 3, cfg.train.crop_size, cfg.train.crop_size), np.float32)
        uri = run.log_pytorch_model(model, "student", example)
        run.set_tags({"model_uri": uri})
        print(f"student logged to MLflow as {uri}")


if __name__ == "__main__":
    args = stage_args(__doc__.splitlines()[0], sorted(ROLES))
    run_stage(lambda cfg: main(cfg, args.role, args.seed))
