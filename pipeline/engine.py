"""The one training loop: iterations, poly LR, AMP, validation, checkpoints, resume, progress.

What a role computes per batch is its *step* (:mod:`pipeline.steps`); everything else lives here.
"""

from __future__ import annotations

import math
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from tqdm import tqdm

from pipeline.data import SegDataset, eval_loader, train_loader
from pipeline.dist import Context, all_gather_object, all_reduce_sum
from pipeline.evaluate import autocast, evaluate
from pipeline.io import atomic_write, write_json
from pipeline.metrics import scores

OPTIMIZERS = ("sgd", "adamw")
AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def git_commit() -> str:
    """The current git commit (``unknown`` outside a repository)."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` without ever leaving a half-written file at ``path``.

    Saved through a file object: given a path, torch names the archive's root folder after the
    (temporary) file name, so equal weights would give different bytes and DVC would rerun
    everything downstream of a reproduced model.
    """
    def write(tmp: Path) -> None:
        with tmp.open("wb") as f:
            torch.save(obj, f)

    atomic_write(path, write)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only=True``); the error names the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - unpickling errors come in many types
        raise ValueError(f"{path}: not a loadable checkpoint ({type(err).__name__}: {err})") from err


def make_optimizer(name: str, params: Any, lr: float, momentum: float, weight_decay: float) -> torch.optim.Optimizer:
    # foreach: one kernel per step for all parameters; torch's CPU default loops over them in Python
    # (about a tenth of a small model's step)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, foreach=True)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=(momentum, 0.999), weight_decay=weight_decay, foreach=True)
    raise ValueError(f"optimizer: expected one of {OPTIMIZERS}, got {name!r}")


def poly_lr(base: float, it: int, total: int, power: float) -> float:
    return base * (1 - it / total) ** power


class Trainer:
    """Trains ``model`` with ``step`` for ``iters`` iterations, resumable from ``resume_dir``.

    Under torchrun (``ctx.distributed``) the model is wrapped in DistributedDataParallel (with
    SyncBatchNorm on CUDA; torch has no CPU SyncBatchNorm), every process takes its share of each global batch (``batch_size`` per process),
    validation splits the val images between processes without duplicates, and only the main
    process logs; checkpoints are written by local rank 0.

    Args:
        model: the network being trained (on ``ctx.device``).
        step: a role step from :data:`pipeline.steps.STEPS`.
        train_set: training dataset (with augmentation).
        val_set: validation dataset (whole images), or None.
        num_classes, ignore_index, class_names: for validation metrics.
        iters, batch_size: schedule length and per-process batch.
        optimizer, lr, momentum, weight_decay, poly_power: optimisation.
        amp: ``none`` | ``bf16`` | ``fp16`` autocast (fp16 with a GradScaler).
        seed: seeds the sampler and torch's RNG (label noise, dropout; offset by rank).
        val_interval, log_interval, ckpt_interval: in iterations.
        resume_dir: holds ``checkpoint.pt`` (in progress) and ``status.json``; resumed from when the
            checkpoint's fingerprint matches.
        fingerprint: identifies the configuration; a checkpoint of another configuration is ignored.
        log_fn: called as ``log_fn(metrics, step)`` every log/validation step (e.g. MLflow).
        meta: saved into every checkpoint (resolved config, model spec, ...).
        ctx: this process's place among the torchrun processes (default: one process on CPU).
    """

    def __init__(self, model: nn.Module, step: Any, train_set: SegDataset, val_set: SegDataset | None,
                 num_classes: int, ignore_index: int, class_names: list[str], iters: int, batch_size: int,
                 optimizer: str = "adamw", lr: float = 1e-3, momentum: float = 0.9, weight_decay: float = 1e-4,
                 poly_power: float = 0.9, amp: str = "none", seed: int = 0, val_interval: int = 0,
                 log_interval: int = 10, ckpt_interval: int = 100, num_workers: int = 0,
                 resume_dir: str | Path | None = None, fingerprint: str = "",
                 log_fn: Callable[[dict[str, float], int], None] | None = None, eval_batch_size: int = 16,
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
        self.model, self.step = model, step
        # a step's own trainable module (a distillation method's projections and memory queues):
        # optimised and checkpointed with the network, its gradients averaged over processes by hand
        self.extra: nn.Module | None = getattr(step, "module", None)
        # a step's own random stream (the distilling teacher's label noise): seeded and checkpointed here
        self.step_rng: torch.Generator | None = getattr(step, "generator", None)
        if self.extra is not None:
            self.extra.to(self.device)
        self.train_set, self.val_set = train_set, val_set
        self.num_classes, self.ignore_index, self.class_names = num_classes, ignore_index, class_names
        self.iters, self.batch_size = iters, batch_size
        self.lr, self.poly_power = lr, poly_power
        trainable = list(model.parameters()) + (list(self.extra.parameters()) if self.extra is not None else [])
        self.optimizer = make_optimizer(optimizer, [p for p in trainable if p.requires_grad],
                                        lr, momentum, weight_decay)
        self.autocast_dtype = AMP_DTYPES[amp]
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=amp == "fp16")
        self.seed, self.num_workers = seed, num_workers
        self.val_interval, self.log_interval, self.ckpt_interval = val_interval, log_interval, ckpt_interval
        self.resume_dir = Path(resume_dir) if resume_dir else None
        self.fingerprint, self.log_fn, self.eval_batch_size = fingerprint, log_fn, eval_batch_size
        self.meta, self.desc = meta or {}, desc
        self.iteration = 0
        self.history: dict[str, list[dict[str, float]]] = {"train": [], "val": []}
        self.resumed_from: int | None = None

    @property
    def effective_batch(self) -> int:
        return self.batch_size * self.ctx.world_size

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
            write_json(self.resume_dir / "status.json", {"iteration": self.iteration, "iters": self.iters,
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
            loader = eval_loader(self.val_set, self.eval_batch_size, rank=self.ctx.rank,
                                 world_size=self.ctx.world_size)
            conf = evaluate(self.module, loader, self.num_classes, self.ignore_index, self.step.model_input,
                            device=self.device, autocast_dtype=self.autocast_dtype)
        conf = all_reduce_sum(torch.from_numpy(conf).to(self.device), self.ctx).cpu().numpy()
        s = scores(conf, self.class_names)
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
        """Run to ``iters``; returns the history ``{"train": [...], "val": [...]}``."""
        torch.manual_seed(self.seed + self.ctx.rank)  # per process: label noise and dropout differ by rank
        if self.step_rng is not None:  # not the stream of the model's dropout
            self.step_rng.manual_seed(self.seed + self.ctx.rank + 104729)
        self.try_resume()
        self.model.train()
        if self.extra is not None:
            self.extra.train()
        batches = train_loader(self.train_set, self.batch_size, self.seed, self.iteration, self.num_workers,
                               self.ctx.rank, self.ctx.world_size)
        bar = tqdm(total=self.iters, initial=self.iteration, desc=self.desc, unit="it", dynamic_ncols=True,
                   disable=not self.ctx.is_main)
        sums: dict[str, float] = {}
        t0, n0 = time.perf_counter(), self.iteration
        try:
            while self.iteration < self.iters:
                lr = poly_lr(self.lr, self.iteration, self.iters, self.poly_power)
                image, label = (t.to(self.device, non_blocking=True) for t in next(batches))
                terms = self.train_step(image, label, lr)
                for k, v in terms.items():
                    sums[k] = sums.get(k, 0.0) + float(v)
                bar.update(1)
                # no forced redraw per step: the bar refreshes at its own pace (0.1 s), which costs far less
                bar.set_postfix(loss=f"{float(terms['loss']):.3f}", lr=f"{lr:.2e}", refresh=False)
                last = self.iteration == self.iters
                if self.iteration % self.log_interval == 0 or last:
                    row = self._log_row(sums, lr, self.iteration - n0, time.perf_counter() - t0)
                    self.history["train"].append(row)
                    if self.log_fn:
                        self.log_fn({f"train_{k}": v for k, v in row.items() if k != "step"}, self.iteration)
                    sums, t0, n0 = {}, time.perf_counter(), self.iteration
                if self.val_set is not None and (last or self.val_interval and self.iteration % self.val_interval == 0):
                    row = {"step": self.iteration, **self.validate()}
                    self.history["val"].append(row)
                    if self.ctx.is_main:
                        bar.write(f"{self.desc} iteration {self.iteration}: val mIoU {row['val_miou']:.2f}")
                    if self.log_fn:
                        self.log_fn({k: v for k, v in row.items() if k != "step"}, self.iteration)
                if self.resume_dir and self.iteration % self.ckpt_interval == 0 and not last:
                    self.save_checkpoint()
        finally:
            bar.close()  # also on an error, so the error message starts on its own line
        return self.history


def load_trained(path: str | Path, classes: list[str] | int | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a trained network from its final checkpoint; returns (model in eval mode, checkpoint).

    ``classes`` (the dataset's class names, or just their count) is checked against the
    checkpoint's, naming both on mismatch: a model made for another dataset is refused.
    """
    from pipeline.models import segmentor_from_spec

    ckpt = load_checkpoint(path)
    if "spec" not in ckpt or "model" not in ckpt:
        raise ValueError(f"{path}: not a trained-model checkpoint of this project (no 'spec'/'model')")
    spec = ckpt["spec"]
    count = classes if isinstance(classes, int) or classes is None else len(classes)
    if count is not None and spec["num_classes"] != count:
        raise ValueError(f"{path}: model has {spec['num_classes']} classes, the dataset has {count}")
    if isinstance(classes, list) and ckpt.get("classes") not in (None, classes):
        raise ValueError(f"{path}: model was trained on classes {ckpt['classes']}, the dataset has {classes}")
    model = segmentor_from_spec(spec)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as err:
        raise ValueError(f"{path}: weights do not fit the architecture its spec names ({spec['arch']}-"
                         f"{spec['backbone']}, {spec['in_chans']} input channels): {str(err).splitlines()[0]}") from err
    return model.eval(), ckpt
