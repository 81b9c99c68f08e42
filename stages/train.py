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
from typing import Any

import pandas as pd
import torch

from pipeline import dist
from pipeline.checkpoint import atomic_save, load_trained
from pipeline.config import Config
from pipeline.data import load_index, make_dataset
from pipeline.deploy import log_model
from pipeline.engine import SegData, TrainArgs, Trainer
from pipeline.io import atomic_write, git_commit, write_json
from pipeline.models import segmentor_from_config
from pipeline.roles import ROLES, make_step, schedule, skip_reason
from pipeline.tracking import stage_run
from stages.common import EXPERIMENT, INDEX, SeedPaths, run_stage, stage_args


def build(role: str, cfg: Config, index: dict[str, Any], paths: SeedPaths,
          device: torch.device = torch.device("cpu")) -> tuple[torch.nn.Module, Any]:
    """The network ``role`` trains (seeded: the same in every process) and its step."""
    r = ROLES[role]
    torch.manual_seed(paths.seed)  # the initial weights: same seed, same network in every process
    model = segmentor_from_config(getattr(cfg.model, r.net), len(index["classes"]), r.in_chans)
    if role == "baseline_ft" or (role == "student" and cfg.distill.init == "baseline"):
        base, _ = load_trained(paths.model("baseline"), index["classes"])  # warm start from the trained baseline
        if base.spec != model.spec:
            raise ValueError(f"distill.init: baseline needs {paths.model('baseline')} to match model.student; "
                             f"checkpoint has {base.spec}, params ask for {model.spec}")
        model.load_state_dict(base.state_dict())
    teacher = None
    if r.teacher:  # frozen, on the training device
        teacher = load_trained(paths.model(r.teacher), index["classes"])[0].to(device)
    return model, make_step(role, cfg, len(index["classes"]), index["ignore_index"], teacher)


def write_curves(role: str, history: dict[str, list[dict[str, float]]], paths: SeedPaths) -> None:
    for kind in ("train", "val"):
        rows = history.get(kind) or []
        df = pd.DataFrame(rows, columns=None if rows else ["step"])
        atomic_write(paths.curve(role, kind),
                     lambda tmp, df=df: df.to_csv(tmp, sep="\t", index=False, float_format="%.6g"))


def skip(role: str, reason: str, paths: SeedPaths) -> dict[str, Any]:
    """A stage with nothing to train: its outputs record why (DVC needs them to exist)."""
    out = paths.out(role)
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
    model, step = build(role, cfg, index, paths, ctx.device)
    iters, lr = schedule(role, cfg)
    t, d = cfg.train, cfg.data
    data = SegData(make_dataset(index, "train", d.mean, d.std, d.cache, d.channel_order, crop=t.crop_size,
                                scale_range=tuple(t.scale_range), flip=t.flip),
                   make_dataset(index, "val", d.mean, d.std, d.cache, d.channel_order), index["classes"],
                   index["ignore_index"])
    fingerprint = f"{role}-{seed}-{cfg.section_hash(*ROLES[role].sections)}"
    # only the params this stage reads: a checkpoint is then byte-identical whenever DVC would call
    # its inputs unchanged, so a forced rerun does not make everything downstream stale
    meta = {"spec": model.spec, "role": role, "seed": seed, "config": cfg.sections(*ROLES[role].sections),
            "classes": index["classes"]}
    trainer = Trainer(model, step, data, TrainArgs.from_config(t, seed, cfg.evaluate.batch_size, iters, lr),
                      resume_dir=paths.resume(role), fingerprint=fingerprint,
                      log_fn=run.log_metrics if run else None, meta=meta, desc=role, ctx=ctx)
    start = time.perf_counter()
    history = trainer.fit()
    elapsed = time.perf_counter() - start
    last_val = history["val"][-1] if history["val"] else {}
    summary = {"seed": seed, "iters": iters, "val_miou": last_val.get("val_miou"),
               "val_pixel_acc": last_val.get("val_pixel_acc"), "train_seconds": round(elapsed, 1),
               "resumed_from": trainer.resumed_from, "processes": ctx.world_size, "batch_per_process": t.batch_size,
               "effective_batch": trainer.effective_batch, "sync_bn": trainer.sync_bn, "device": ctx.device.type,
               "sec_per_iter": round(elapsed / max(iters - (trainer.resumed_from or 0), 1), 4),
               "mlflow_run_id": run.tracked_id if run else None}  # restored from the run cache: the run that trained it
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
        uri = log_model(run, model, "student", cfg.train.crop_size)
        run.set_tags({"model_uri": uri})
        print(f"student logged to MLflow as {uri}")


if __name__ == "__main__":
    args = stage_args(__doc__.splitlines()[0], sorted(ROLES))
    run_stage(lambda cfg: main(cfg, args.role, args.seed))
