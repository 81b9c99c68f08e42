"""Training one role for one seed: the network and step built from the roles table, the trainer run,
and the model, curves and summary written (``stages/train.py`` is its command line).

:func:`build` is the one way a role's network and step are made; the training stage, ``benchmarks/cost.py``
and ``benchmarks/gpu_check.py`` all use it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pandas as pd
import torch
from torch import nn

from pipeline import distributed
from pipeline.checkpoint import atomic_save, load_trained
from pipeline.config import Config
from pipeline.data import load_index, make_dataset
from pipeline.deploy import Preprocess, log_model
from pipeline.engine import Checkpoints, Job, Schedule, SegData, Trainer
from pipeline.io import atomic_write, cpu_name, git_commit, write_json
from pipeline.models import segmentor_from_config
from pipeline.paths import EXPERIMENT, INDEX, SeedPaths
from pipeline.roles import ROLES, Role
from pipeline.steps import Step, StepInputs, build_step
from pipeline.tracking import stage_run

Trained = Callable[[str], nn.Module]  # role -> its trained model (a checkpoint, or random weights in a benchmark)


def build(role: Role, cfg: Config, num_classes: int, ignore_index: int, trained: Trained, seed: int,
          device: torch.device = torch.device("cpu")) -> tuple[nn.Module, Step]:
    """The network ``role`` trains (seeded: the same in every process; warm-started as the role says)
    and its step, with its teacher from ``trained`` (frozen, on ``device``)."""
    torch.manual_seed(seed)  # the initial weights
    model = segmentor_from_config(role.net(cfg), num_classes, role.in_chans)
    warm = role.warm_start(cfg)
    if warm:
        base = trained(warm)
        if base.spec != model.spec:
            raise ValueError(f"{role.name}: its warm start {warm!r} must match model.{role.network}; the trained "
                             f"model has {base.spec}, params ask for {model.spec}")
        model.load_state_dict(base.state_dict())
    teacher = trained(role.teacher).to(device) if role.teacher else None
    return model, build_step(StepInputs(cfg, role, num_classes, ignore_index, teacher, model))


def write_curves(role: str, history: dict[str, list[dict[str, float]]], paths: SeedPaths) -> None:
    for kind in ("train", "val"):
        rows = history.get(kind) or []
        df = pd.DataFrame(rows, columns=None if rows else ["step"])
        atomic_write(paths.curve(role, kind),
                     lambda tmp, df=df: df.to_csv(tmp, sep="\t", index=False, float_format="%.6g"))


def train(role: Role, cfg: Config, seed: int = 0, run: Any = None,
          ctx: distributed.Context | None = None) -> dict[str, Any]:
    """Train ``role`` for ``seed`` to completion (resuming if interrupted); writes model, curves and summary."""
    ctx = ctx or distributed.Context()
    paths, index = SeedPaths(seed), load_index(INDEX)
    classes = index["classes"]
    model, step = build(role, cfg, len(classes), index["ignore_index"],
                        lambda r: load_trained(paths.model(r), classes)[0], seed, ctx.device)
    schedule = Schedule(*role.schedule(cfg))
    t, d, c = cfg.train, cfg.data, cfg.run.cache_images
    data = SegData(make_dataset(index, "train", d.mean, d.std, c, d.channel_order, crop=t.crop_size,
                                scale_range=tuple(t.scale_range), flip=t.flip),
                   make_dataset(index, "val", d.mean, d.std, c, d.channel_order), classes, index["ignore_index"])
    # only the params this stage reads: a checkpoint is then byte-identical whenever DVC would call
    # its inputs unchanged, so a forced rerun does not make everything downstream stale
    fingerprint = f"{role.name}-{seed}-{cfg.section_hash(*role.sections)}"
    # classes and palette: with the config's normalisation and crop, all a prediction needs (pipeline/predict.py)
    meta = {"spec": model.spec.to_dict(), "role": role.name, "seed": seed, "config": cfg.sections(*role.sections),
            "classes": classes, "palette": index["palette"]}
    job = Job(schedule, seed, role.name, cfg.evaluate.batch_size, run.log_metrics if run else None)
    trainer = Trainer(model, step, data, t, cfg.run, job, Checkpoints(paths.resume(role.name), fingerprint, meta), ctx)
    start = time.perf_counter()
    history = trainer.fit()
    elapsed = time.perf_counter() - start
    last_val = history["val"][-1] if history["val"] else {}
    summary = {"seed": seed, "iters": schedule.iters, "val_miou": last_val.get("val_miou"),
               "val_pixel_acc": last_val.get("val_pixel_acc"), "train_seconds": round(elapsed, 1),
               "resumed_from": trainer.resumed_from, "processes": ctx.world_size, "batch_per_process": t.batch_size,
               "effective_batch": trainer.effective_batch, "sync_bn": trainer.sync_bn, "device": ctx.device.type,
               "cpu": cpu_name(),  # the same seed gives other weights on another CPU model
               "sec_per_iter": round(elapsed / max(schedule.iters - (trainer.resumed_from or 0), 1), 4),
               "mlflow_run_id": run.tracked_id if run else None}  # restored from the run cache: the run that trained it
    if ctx.writes_files:
        final = {"model": trainer.module.state_dict(), "spec": model.spec.to_dict(), "iteration": trainer.iteration,
                 "fingerprint": fingerprint, "git_commit": git_commit(), **meta}
        atomic_save(final, paths.model(role.name))
        write_curves(role.name, history, paths)
        write_json(paths.train_report(role.name), summary)
    trainer.finish()  # done: nothing left to resume
    return summary


def log_summary(run: Any, role: Role, summary: dict[str, Any], paths: SeedPaths, val: dict[str, Any]) -> None:
    """The finished stage's summary, curves and its network as an MLflow 3 LoggedModel, at its last step with
    its validation metrics linked to it and to ``val``, the validation dataset (:mod:`pipeline.tracking.datasets`)."""
    if summary.get("resumed_from"):
        run.set_tags({"resumed_from": summary["resumed_from"]})
    run.log_metrics({k: v for k, v in summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
    run.log_artifact(paths.train_report(role.name))
    for kind in ("train", "val"):
        run.log_artifact(paths.curve(role.name, kind), "curves")
    if paths.model(role.name).is_file():
        model, ckpt = load_trained(paths.model(role.name))
        log_model(run, model, role.name, Preprocess.from_checkpoint(ckpt), summary["iters"],
                  {k: summary[k] for k in ("val_miou", "val_pixel_acc")}, val,
                  {"role": role.name, "seed": summary["seed"], "git_commit": ckpt.get("git_commit", "")})
        print(f"{role.name} logged to MLflow as a LoggedModel of run {run.tracked_id or '(journaled)'}")


def run_role(role_name: str, cfg: Config, seed: int) -> None:
    """The training stage of ``role_name`` (under torchrun when asked for), logged to MLflow."""
    role = ROLES[role_name]
    if (cfg.train.nproc > 1 or distributed.multi_node()) and not distributed.under_torchrun():
        raise SystemExit(distributed.relaunch(cfg.train.nproc, "stages.train", [role_name, "--seed", str(seed)]))
    ctx = distributed.setup(cfg.train.device, cfg.train.amp)
    params = {**cfg.sections(*role.sections), "seed": seed, "processes": ctx.world_size,
              "effective_batch": cfg.train.batch_size * ctx.world_size}
    try:
        with stage_run(role.run_name(seed), EXPERIMENT, params, {"role_model": role.network, "seed": seed},
                       enabled=ctx.is_main, system_metrics=True) as run:
            if run is not None:
                from pipeline.tracking.datasets import describe_all

                datasets = describe_all(load_index(INDEX), cfg.data)  # train, val
                run.log_inputs(datasets)
            summary = train(role, cfg, seed, run, ctx)
            if run is not None:
                log_summary(run, role, summary, SeedPaths(seed), datasets[-1])
    finally:
        distributed.teardown(ctx)
