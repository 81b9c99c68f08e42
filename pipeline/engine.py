"""The one training loop: iterations, poly LR, AMP, validation, checkpoints, resume, progress.

What a role computes per batch is its *step* (:mod:`pipeline.steps`); everything else lives here.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from tqdm import tqdm

from pipeline import progress
from pipeline.checkpoint import atomic_save, load_checkpoint
from pipeline.data import SegDataset, eval_loader, train_loader
from pipeline.distributed import Context, all_gather_object, all_reduce_sum, resolve_amp
from pipeline.evaluate import Inference, autocast, evaluate
from pipeline.io import git_commit, write_json
from pipeline.metrics import scores
from pipeline.optim import AMP_DTYPES, make_optimizer, poly_lr

if TYPE_CHECKING:
    from pipeline.config import RunConfig, TrainConfig
    from pipeline.steps import Step


CURVE_POINTS = 50  # rows of a training curve (reports/curves): a grid of the schedule, whatever run.log_interval is


@dataclass(frozen=True)
class Schedule:
    """A role's iterations and peak learning rate (distillation and the comparison rows have their own)."""

    iters: int
    lr: float

    @property
    def curve_every(self) -> int:
        """Steps averaged into one row of the training curve."""
        return max(1, -(-self.iters // CURVE_POINTS))


@dataclass(frozen=True)
class SegData:
    """What a model trains and validates on: the datasets and their label space."""

    train: SegDataset  # with augmentation
    val: SegDataset | None  # whole images; None: no validation
    classes: list[str]
    ignore_index: int = 255

    @property
    def num_classes(self) -> int:
        return len(self.classes)


@dataclass(frozen=True)
class Job:
    """One training run: its schedule, seed and name, the validation batch, and where its logs go.

    Attributes:
        schedule: the role's iterations and peak learning rate.
        seed: seeds the sampler and torch's RNG (label noise, dropout; offset by rank).
        desc: the progress bar's and the log lines' label.
        eval_batch_size: images per validation batch.
        log_fn: called as ``log_fn(metrics, step)`` every log/validation step (e.g. MLflow).
    """

    schedule: Schedule
    seed: int = 0
    desc: str = "train"
    eval_batch_size: int = 16
    log_fn: Callable[[dict[str, float], int], None] | None = None


class Checkpoints:
    """Where an interrupted training resumes from: ``<folder>/checkpoint.pt`` (the full training state) and
    ``status.json`` (how far it got). A checkpoint counts only for the same ``fingerprint`` (the
    configuration) and number of processes; ``meta`` goes into every checkpoint (resolved config, model
    spec, ...). Only the process that writes files (``ctx.writes_files``) writes."""

    def __init__(self, folder: str | Path, fingerprint: str = "", meta: dict[str, Any] | None = None) -> None:
        self.folder, self.fingerprint, self.meta = Path(folder), fingerprint, meta or {}
        self.path = self.folder / "checkpoint.pt"

    def save(self, state: dict[str, Any], ctx: Context) -> None:
        if ctx.writes_files:
            atomic_save({**state, "fingerprint": self.fingerprint, "git_commit": git_commit(), **self.meta}, self.path)

    def load(self, ctx: Context, desc: str) -> dict[str, Any] | None:
        """The in-progress checkpoint, if there is one of this configuration and process count."""
        if not self.path.is_file():
            return None
        ckpt = load_checkpoint(self.path)
        if ckpt.get("fingerprint") != self.fingerprint or ckpt.get("world_size", 1) != ctx.world_size:
            if ctx.is_main:
                tqdm.write(f"{self.path}: checkpoint of another configuration, starting afresh")
            return None
        if ctx.is_main:
            tqdm.write(f"resuming {desc} from {self.path} at iteration {ckpt['iteration']}")
        return ckpt

    def status(self, iteration: int, iters: int, complete: bool, ctx: Context) -> None:
        """``status.json`` beside the checkpoint (it also keeps the DVC output non-empty)."""
        if ctx.writes_files:
            write_json(self.folder / "status.json", {"iteration": iteration, "iters": iters, "complete": complete,
                                                     "fingerprint": self.fingerprint})

    def finish(self, iters: int, ctx: Context) -> None:
        """The run is complete: the in-progress checkpoint goes, the status says complete."""
        if ctx.writes_files:
            self.path.unlink(missing_ok=True)
        self.status(iters, iters, True, ctx)


class Trainer:
    """Trains ``model`` with ``step`` on ``data`` as params.yaml ``train`` says, resumable from ``checkpoints``.

    Under torchrun (``ctx.distributed``) the model is wrapped in DistributedDataParallel (with
    SyncBatchNorm on CUDA; torch has no CPU SyncBatchNorm), every process takes its share of each
    global batch (``batch_size`` per process), validation splits the val images between processes
    without duplicates, and only the main process logs; checkpoints are written by local rank 0.

    Args:
        model: the network being trained (on ``ctx.device``).
        step: a step of :mod:`pipeline.steps` (:class:`pipeline.steps.Step`: all the trainer reads of it).
        data: the training and validation sets and their classes.
        train: params.yaml ``train``: batch, optimiser, schedule shape, precision, validation interval.
        run: params.yaml ``run``: logging and checkpoint intervals, DataLoader workers (no effect on results).
        job: its schedule, seed, name, validation batch and log function.
        checkpoints: where it resumes from (None: no resume checkpoints).
        ctx: this process's place among the torchrun processes (default: one process on CPU).
    """

    def __init__(self, model: nn.Module, step: Step, data: SegData, train: TrainConfig, run: RunConfig,
                 job: Job, checkpoints: Checkpoints | None = None, ctx: Context | None = None) -> None:
        self.ctx = ctx or Context(device=next(model.parameters()).device)
        self.device = self.ctx.device
        self.module = model.to(self.device)  # the bare network: what checkpoints hold
        # GPU speed switches (params.yaml run): NHWC tensors, cuDNN autotuning, torch.compile
        self.channels_last = run.channels_last is True or (run.channels_last == "auto" and self.device.type == "cuda")
        if self.channels_last:
            self.module.to(memory_format=torch.channels_last)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = run.cudnn_benchmark
        # torch's SyncBatchNorm runs on CUDA only: on CPU (gloo) each process normalises its own batch
        self.sync_bn = self.ctx.distributed and self.device.type == "cuda"
        if self.sync_bn:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(self.module)
        if self.ctx.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        if run.compile:
            model = torch.compile(model)
        self.model, self.step, self.data, self.job = model, step, data, job
        self.train_cfg, self.run_cfg, self.schedule, self.seed = train, run, job.schedule, job.seed
        self.desc, self.log_fn, self.checkpoints = job.desc, job.log_fn, checkpoints
        self.extra, self.step_rng = step.module, step.generator  # Step's attributes: see pipeline.steps.Step
        if self.extra is not None:
            self.extra.to(self.device)
        trainable = list(model.parameters()) + (list(self.extra.parameters()) if self.extra is not None else [])
        self.optimizer = make_optimizer(train.optimizer, [p for p in trainable if p.requires_grad],
                                        self.schedule.lr, train.momentum, train.weight_decay)
        self.amp = resolve_amp(train.amp, self.device)
        self.autocast_dtype = AMP_DTYPES[self.amp]
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp == "fp16")
        self.iteration = 0
        self.history: dict[str, list[dict[str, float]]] = {"train": [], "val": []}
        self.resumed_from: int | None = None

    @property
    def effective_batch(self) -> int:
        return self.train_cfg.batch_size * self.ctx.world_size

    # -- checkpoints -------------------------------------------------------------------------
    def _rng_state(self) -> dict[str, Any]:
        state = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        if self.step_rng is not None:
            state["step"] = self.step_rng.get_state()
        return state

    def state(self) -> dict[str, Any]:
        """The full training state; collective under DDP (every rank's RNG state is gathered)."""
        return {"model": self.module.state_dict(), "optimizer": self.optimizer.state_dict(),
                "step_module": self.extra.state_dict() if self.extra is not None else None,
                "scaler": self.scaler.state_dict(), "iteration": self.iteration,
                "rng": all_gather_object(self._rng_state(), self.ctx), "world_size": self.ctx.world_size,
                "history": self.history}

    def save_checkpoint(self) -> None:
        state = self.state()  # collective: every process gathers
        if self.checkpoints is not None:
            self.checkpoints.save(state, self.ctx)
            self.checkpoints.status(self.iteration, self.schedule.iters, False, self.ctx)

    def try_resume(self) -> bool:
        """Load the in-progress checkpoint if it exists and belongs to this configuration."""
        ckpt = self.checkpoints.load(self.ctx, self.desc) if self.checkpoints is not None else None
        if ckpt is None:
            return False
        self.module.load_state_dict(ckpt["model"])
        if self.extra is not None:
            self.extra.load_state_dict(ckpt["step_module"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.iteration, self.history = ckpt["iteration"], ckpt["history"]
        rng = ckpt["rng"][self.ctx.rank]
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], self.device)
        if self.step_rng is not None:
            self.step_rng.set_state(rng["step"])
        self.resumed_from = self.iteration
        return True

    def finish(self) -> None:
        """The run is complete: drop the in-progress checkpoint, mark the status complete."""
        if self.checkpoints is not None:
            self.checkpoints.finish(self.iteration, self.ctx)

    # -- loop --------------------------------------------------------------------------------
    def validate(self) -> dict[str, float]:
        # validation draws random numbers (the loader's seed, a teacher's label noise) from a fork of
        # torch's stream, so how often it runs never changes the training that follows
        cuda = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            loader = eval_loader(self.data.val, self.job.eval_batch_size, rank=self.ctx.rank,
                                 world_size=self.ctx.world_size)
            conf = evaluate(self.module, loader, self.data.num_classes, self.data.ignore_index, self.step.model_input,
                            Inference(autocast_dtype=self.autocast_dtype), self.device)
        conf = all_reduce_sum(torch.from_numpy(conf).to(self.device), self.ctx).cpu().numpy()
        s = scores(conf, self.data.classes)
        return {"val_miou": s["miou"], "val_pixel_acc": s["pixel_acc"]}

    def train_step(self, image: torch.Tensor, label: torch.Tensor, lr: float) -> dict[str, torch.Tensor]:
        """One optimisation step at learning rate ``lr``; returns the step's (detached) loss terms."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if self.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        with autocast(self.device, self.autocast_dtype):
            terms = self.step(self.model, image, label)
        loss = terms["loss"]
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"{self.desc}: loss is {loss.item()} at iteration {self.iteration}; "
                                     "lower the learning rate or check the data")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.extra is not None and self.ctx.distributed:  # outside DDP: average its gradients here
            for p in self.extra.parameters():
                if p.grad is not None:
                    p.grad.copy_(all_reduce_sum(p.grad, self.ctx) / self.ctx.world_size)
        if self.extra is not None and self.step.max_grad_norm:  # a method's own layers (Af-DCD)
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.extra.parameters(), self.step.max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.iteration += 1
        return {k: v.detach() for k, v in terms.items()}

    def _row(self, sums: dict[str, float], lr: float, n: int, seconds: float) -> dict[str, float]:
        """Mean loss terms over the last ``n`` steps and all processes."""
        keys = list(sums)  # the same order on every process: the step returns the same terms
        mean = all_reduce_sum(torch.tensor([sums[k] for k in keys], dtype=torch.float64, device=self.device),
                              self.ctx) / (n * self.ctx.world_size)
        return {"step": self.iteration, "lr": lr, **dict(zip(keys, mean.tolist())), "sec_per_iter": seconds / n}

    def _seed(self) -> None:
        torch.manual_seed(self.seed + self.ctx.rank)  # per process: label noise and dropout differ by rank
        if self.step_rng is not None:  # not the stream of the model's dropout
            self.step_rng.manual_seed(self.seed + self.ctx.rank + 104729)

    def fit(self) -> dict[str, list[dict[str, float]]]:
        """Run to the schedule's end; returns the history ``{"train": [...], "val": [...]}``."""
        t, sched = self.train_cfg, self.schedule
        self._seed()
        self.try_resume()
        self.model.train()
        if self.extra is not None:
            self.extra.train()
        batches = train_loader(self.data.train, t.batch_size, self.seed, self.iteration, self.run_cfg.num_workers,
                               self.ctx.rank, self.ctx.world_size)
        bar = progress.bar(total=sched.iters, initial=self.iteration, desc=self.desc, unit="it", dynamic_ncols=True,
                           enabled=self.ctx.is_main)
        # two windows of mean losses: the curve's (a fixed grid of the schedule) and the log's (run.log_interval)
        self._windows = {"curve": Window(self.iteration), "log": Window(self.iteration)}
        try:
            while self.iteration < sched.iters:
                lr = poly_lr(sched.lr, self.iteration, sched.iters, t.poly_power)
                image, label = (x.to(self.device, non_blocking=True) for x in next(batches))
                terms = self.train_step(image, label, lr)
                for w in self._windows.values():
                    w.add(terms)
                bar.update(1)
                # no forced redraw per step: the bar refreshes at its own pace (0.1 s), which costs far less
                bar.set_postfix(loss=f"{float(terms['loss']):.3f}", lr=f"{lr:.2e}", refresh=False)
                self._after_step(lr, bar)
        finally:
            bar.close()  # also on an error, so the error message starts on its own line
        return self.history

    def _after_step(self, lr: float, bar: Any) -> None:
        """The curve's row, the log line, validation and the resume checkpoint, each when it is due."""
        t, sched, it = self.train_cfg, self.schedule, self.iteration
        last = it == sched.iters
        if it % sched.curve_every == 0 or last:
            self.history["train"].append(self._windows["curve"].row(self, lr))
        if it % self.run_cfg.log_interval == 0 or last:
            row = self._windows["log"].row(self, lr)
            if self.ctx.is_main and not progress.interactive():  # a log: one plain line per logging step
                print(f"{self.desc} {it}/{sched.iters}: loss {row['loss']:.4f}, lr {lr:.2e}, "
                      f"{row['sec_per_iter']:.3f} s/it", flush=True)
            if self.log_fn:
                self.log_fn({f"train_{k}": v for k, v in row.items() if k != "step"}, it)
        if self.data.val is not None and (last or t.val_interval and it % t.val_interval == 0):
            row = {"step": it, **self.validate()}
            self.history["val"].append(row)
            if self.ctx.is_main:
                bar.write(f"{self.desc} iteration {it}: val mIoU {row['val_miou']:.2f}")
            if self.log_fn:
                self.log_fn({k: v for k, v in row.items() if k != "step"}, it)
        if self.checkpoints is not None and it % self.run_cfg.ckpt_interval == 0 and not last:
            self.save_checkpoint()


class Window:
    """Sums of the loss terms since ``start``: one row of means when read, then empty again."""

    def __init__(self, start: int) -> None:
        self.sums: dict[str, float] = {}
        self.start, self.t0 = start, time.perf_counter()

    def add(self, terms: dict[str, torch.Tensor]) -> None:
        for k, v in terms.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v)

    def row(self, trainer: Trainer, lr: float) -> dict[str, float]:
        row = trainer._row(self.sums, lr, trainer.iteration - self.start, time.perf_counter() - self.t0)
        self.sums, self.start, self.t0 = {}, trainer.iteration, time.perf_counter()
        return row
