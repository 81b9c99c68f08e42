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
from pipeline.dist import Context, all_gather_object, all_reduce_sum
from pipeline.evaluate import autocast, evaluate
from pipeline.io import git_commit, write_json
from pipeline.metrics import scores
from pipeline.optim import AMP_DTYPES, OPTIMIZERS, make_optimizer, poly_lr

if TYPE_CHECKING:
    from pipeline.config import TrainConfig


@dataclass(frozen=True)
class TrainArgs:
    """How one model is trained: params.yaml ``train``, with its role's iterations and learning rate.

    Args:
        iters, batch_size: schedule length and per-process batch.
        optimizer, lr, momentum, weight_decay, poly_power: optimisation (``pipeline.optim``).
        amp: ``none`` | ``bf16`` | ``fp16`` autocast (fp16 with a GradScaler).
        seed: seeds the sampler and torch's RNG (label noise, dropout; offset by rank).
        val_interval, log_interval, ckpt_interval: in iterations (``val_interval`` 0: at the end only).
        num_workers: DataLoader workers.
        eval_batch_size: images per validation batch.
    """

    iters: int
    batch_size: int
    optimizer: str = "adamw"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 1e-4
    poly_power: float = 0.9
    amp: str = "none"
    seed: int = 0
    val_interval: int = 0
    log_interval: int = 10
    ckpt_interval: int = 100
    num_workers: int = 0
    eval_batch_size: int = 16

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer: expected one of {list(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.amp not in AMP_DTYPES:
            raise ValueError(f"amp: expected one of {list(AMP_DTYPES)}, got {self.amp!r}")
        if min(self.iters, self.batch_size, self.log_interval, self.ckpt_interval) < 1:
            raise ValueError(f"iters, batch_size, log_interval and ckpt_interval must be >= 1: {self}")

    @classmethod
    def from_config(cls, train: TrainConfig, seed: int, eval_batch_size: int, iters: int | None = None,
                    lr: float | None = None) -> TrainArgs:
        """From params.yaml ``train``; ``iters`` and ``lr`` replace its own (distillation has its own)."""
        t = train
        return cls(iters=iters or t.iters, batch_size=t.batch_size, optimizer=t.optimizer, lr=lr or t.lr,
                   momentum=t.momentum, weight_decay=t.weight_decay, poly_power=t.poly_power, amp=t.amp, seed=seed,
                   val_interval=t.val_interval, log_interval=t.log_interval, ckpt_interval=t.ckpt_interval,
                   num_workers=t.num_workers, eval_batch_size=eval_batch_size)


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


class Trainer:
    """Trains ``model`` with ``step`` on ``data`` as ``args`` say, resumable from ``resume_dir``.

    Under torchrun (``ctx.distributed``) the model is wrapped in DistributedDataParallel (with
    SyncBatchNorm on CUDA; torch has no CPU SyncBatchNorm), every process takes its share of each
    global batch (``batch_size`` per process), validation splits the val images between processes
    without duplicates, and only the main process logs; checkpoints are written by local rank 0.

    Args:
        model: the network being trained (on ``ctx.device``).
        step: a role step from :data:`pipeline.steps.STEPS`.
        data: the training and validation sets and their classes.
        args: schedule, optimiser, intervals and seed.
        resume_dir: holds ``checkpoint.pt`` (in progress) and ``status.json``; resumed from when the
            checkpoint's fingerprint matches.
        fingerprint: identifies the configuration; a checkpoint of another configuration is ignored.
        log_fn: called as ``log_fn(metrics, step)`` every log/validation step (e.g. MLflow).
        meta: saved into every checkpoint (resolved config, model spec, ...).
        desc: the progress bar's label.
        ctx: this process's place among the torchrun processes (default: one process on CPU).
    """

    def __init__(self, model: nn.Module, step: Any, data: SegData, args: TrainArgs, *,
                 resume_dir: str | Path | None = None, fingerprint: str = "",
                 log_fn: Callable[[dict[str, float], int], None] | None = None,
                 meta: dict[str, Any] | None = None, desc: str = "train", ctx: Context | None = None) -> None:
        self.ctx = ctx or Context(device=next(model.parameters()).device)
        self.device = self.ctx.device
        self.module = model.to(self.device)  # the bare network: what checkpoints hold
        # torch's SyncBatchNorm runs on CUDA only: on CPU (gloo) each process normalises its own batch
        self.sync_bn = self.ctx.distributed and self.device.type == "cuda"
        if self.sync_bn:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(self.module)
        if self.ctx.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        self.model, self.step, self.data, self.args = model, step, data, args
        # a step's own trainable module (a distillation method's projections and memory queues):
        # optimised and checkpointed with the network, its gradients averaged over processes by hand
        self.extra: nn.Module | None = getattr(step, "module", None)
        # a step's own random stream (the distilling teacher's label noise): seeded and checkpointed here
        self.step_rng: torch.Generator | None = getattr(step, "generator", None)
        if self.extra is not None:
            self.extra.to(self.device)
        trainable = list(model.parameters()) + (list(self.extra.parameters()) if self.extra is not None else [])
        self.optimizer = make_optimizer(args.optimizer, [p for p in trainable if p.requires_grad],
                                        args.lr, args.momentum, args.weight_decay)
        self.autocast_dtype = AMP_DTYPES[args.amp]
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=args.amp == "fp16")
        self.resume_dir = Path(resume_dir) if resume_dir else None
        self.fingerprint, self.log_fn = fingerprint, log_fn
        self.meta, self.desc = meta or {}, desc
        self.iteration = 0
        self.history: dict[str, list[dict[str, float]]] = {"train": [], "val": []}
        self.resumed_from: int | None = None

    @property
    def effective_batch(self) -> int:
        return self.args.batch_size * self.ctx.world_size

    # -- checkpoints -------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path | None:
        return self.resume_dir / "checkpoint.pt" if self.resume_dir else None

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
                "history": self.history, "fingerprint": self.fingerprint, "git_commit": git_commit(), **self.meta}

    def write_status(self, complete: bool) -> None:
        """``status.json`` beside the checkpoint: how far this model got (also keeps the DVC output non-empty)."""
        if self.resume_dir and self.ctx.writes_files:
            write_json(self.resume_dir / "status.json", {"iteration": self.iteration, "iters": self.args.iters,
                                                         "complete": complete, "fingerprint": self.fingerprint})

    def save_checkpoint(self) -> None:
        state = self.state()
        if self.ctx.writes_files:
            atomic_save(state, self.checkpoint_path)
        self.write_status(complete=False)

    def try_resume(self) -> bool:
        """Load the in-progress checkpoint if it exists and belongs to this configuration."""
        path = self.checkpoint_path
        if not path or not path.is_file():
            return False
        ckpt = load_checkpoint(path)
        if ckpt.get("fingerprint") != self.fingerprint or ckpt.get("world_size", 1) != self.ctx.world_size:
            if self.ctx.is_main:
                tqdm.write(f"{path}: checkpoint of another configuration, starting afresh")
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
        if self.ctx.is_main:
            tqdm.write(f"resuming {self.desc} from {path} at iteration {self.iteration}")
        return True

    def finish(self) -> None:
        """The run is complete: drop the in-progress checkpoint, mark the status complete."""
        if self.ctx.writes_files and self.checkpoint_path:
            self.checkpoint_path.unlink(missing_ok=True)
        self.write_status(complete=True)

    # -- loop --------------------------------------------------------------------------------
    def validate(self) -> dict[str, float]:
        # validation draws random numbers (the loader's seed, a teacher's label noise) from a fork of
        # torch's stream, so how often it runs never changes the training that follows
        cuda = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            loader = eval_loader(self.data.val, self.args.eval_batch_size, rank=self.ctx.rank,
                                 world_size=self.ctx.world_size)
            conf = evaluate(self.module, loader, self.data.num_classes, self.data.ignore_index, self.step.model_input,
                            device=self.device, autocast_dtype=self.autocast_dtype)
        conf = all_reduce_sum(torch.from_numpy(conf).to(self.device), self.ctx).cpu().numpy()
        s = scores(conf, self.data.classes)
        return {"val_miou": s["miou"], "val_pixel_acc": s["pixel_acc"]}

    def _log_row(self, sums: dict[str, float], lr: float, n: int, seconds: float) -> dict[str, float]:
        """Mean loss terms over the last ``n`` steps and all processes."""
        keys = list(sums)  # the same order on every process: the step returns the same terms
        mean = all_reduce_sum(torch.tensor([sums[k] for k in keys], dtype=torch.float64, device=self.device),
                              self.ctx) / (n * self.ctx.world_size)
        return {"step": self.iteration, "lr": lr, **dict(zip(keys, mean.tolist())), "sec_per_iter": seconds / n}

    def train_step(self, image: torch.Tensor, label: torch.Tensor, lr: float) -> dict[str, torch.Tensor]:
        """One optimisation step at learning rate ``lr``; returns the step's (detached) loss terms."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr
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
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.iteration += 1
        return {k: v.detach() for k, v in terms.items()}

    def fit(self) -> dict[str, list[dict[str, float]]]:
        """Run to ``args.iters``; returns the history ``{"train": [...], "val": [...]}``."""
        a = self.args
        torch.manual_seed(a.seed + self.ctx.rank)  # per process: label noise and dropout differ by rank
        if self.step_rng is not None:  # not the stream of the model's dropout
            self.step_rng.manual_seed(a.seed + self.ctx.rank + 104729)
        self.try_resume()
        self.model.train()
        if self.extra is not None:
            self.extra.train()
        batches = train_loader(self.data.train, a.batch_size, a.seed, self.iteration, a.num_workers,
                               self.ctx.rank, self.ctx.world_size)
        bar = progress.bar(total=a.iters, initial=self.iteration, desc=self.desc, unit="it", dynamic_ncols=True,
                           enabled=self.ctx.is_main)
        lines = self.ctx.is_main and not progress.interactive()  # a log: one plain line per logging step
        sums: dict[str, float] = {}
        t0, n0 = time.perf_counter(), self.iteration
        try:
            while self.iteration < a.iters:
                lr = poly_lr(a.lr, self.iteration, a.iters, a.poly_power)
                image, label = (t.to(self.device, non_blocking=True) for t in next(batches))
                terms = self.train_step(image, label, lr)
                for k, v in terms.items():
                    sums[k] = sums.get(k, 0.0) + float(v)
                bar.update(1)
                # no forced redraw per step: the bar refreshes at its own pace (0.1 s), which costs far less
                bar.set_postfix(loss=f"{float(terms['loss']):.3f}", lr=f"{lr:.2e}", refresh=False)
                last = self.iteration == a.iters
                if self.iteration % a.log_interval == 0 or last:
                    row = self._log_row(sums, lr, self.iteration - n0, time.perf_counter() - t0)
                    self.history["train"].append(row)
                    if lines:
                        print(f"{self.desc} {self.iteration}/{a.iters}: loss {row['loss']:.4f}, lr {lr:.2e}, "
                              f"{row['sec_per_iter']:.3f} s/it", flush=True)
                    if self.log_fn:
                        self.log_fn({f"train_{k}": v for k, v in row.items() if k != "step"}, self.iteration)
                    sums, t0, n0 = {}, time.perf_counter(), self.iteration
                if self.data.val is not None and (last or a.val_interval and self.iteration % a.val_interval == 0):
                    row = {"step": self.iteration, **self.validate()}
                    self.history["val"].append(row)
                    if self.ctx.is_main:
                        bar.write(f"{self.desc} iteration {self.iteration}: val mIoU {row['val_miou']:.2f}")
                    if self.log_fn:
                        self.log_fn({k: v for k, v in row.items() if k != "step"}, self.iteration)
                if self.resume_dir and self.iteration % a.ckpt_interval == 0 and not last:
                    self.save_checkpoint()
        finally:
            bar.close()  # also on an error, so the error message starts on its own line
        return self.history
