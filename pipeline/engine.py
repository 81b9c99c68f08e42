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
from pipeline.evaluate import autocast, evaluate
from pipeline.io import atomic_write
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
    """``torch.save`` without ever leaving a half-written file at ``path``."""
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


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
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=(momentum, 0.999), weight_decay=weight_decay)
    raise ValueError(f"optimizer: expected one of {OPTIMIZERS}, got {name!r}")


def poly_lr(base: float, it: int, total: int, power: float) -> float:
    return base * (1 - it / total) ** power


class Trainer:
    """Trains ``model`` with ``step`` for ``iters`` iterations, resumable from ``resume_path``.

    Args:
        model: the network being trained.
        step: a role step from :data:`pipeline.steps.STEPS`.
        train_set: training dataset (with augmentation).
        val_set: validation dataset (whole images), or None.
        num_classes, ignore_index, class_names: for validation metrics.
        iters, batch_size: schedule length and batch.
        optimizer, lr, momentum, weight_decay, poly_power: optimisation.
        amp: ``none`` | ``bf16`` | ``fp16`` autocast.
        seed: seeds the sampler and torch's RNG (label noise, dropout).
        val_interval, log_interval, ckpt_interval: in iterations.
        resume_path: where the in-progress checkpoint lives; resumed from when its fingerprint matches.
        fingerprint: identifies the configuration; a checkpoint of another configuration is ignored.
        log_fn: called as ``log_fn(metrics, step)`` every log/validation step (e.g. MLflow).
        meta: saved into every checkpoint (resolved config, model spec, ...).
    """

    def __init__(self, model: nn.Module, step: Any, train_set: SegDataset, val_set: SegDataset | None,
                 num_classes: int, ignore_index: int, class_names: list[str], iters: int, batch_size: int,
                 optimizer: str = "adamw", lr: float = 1e-3, momentum: float = 0.9, weight_decay: float = 1e-4,
                 poly_power: float = 0.9, amp: str = "none", seed: int = 0, val_interval: int = 0,
                 log_interval: int = 10, ckpt_interval: int = 100, num_workers: int = 0,
                 resume_path: str | Path | None = None, fingerprint: str = "",
                 log_fn: Callable[[dict[str, float], int], None] | None = None, eval_batch_size: int = 16,
                 meta: dict[str, Any] | None = None, desc: str = "train") -> None:
        self.model, self.step = model, step
        self.train_set, self.val_set = train_set, val_set
        self.num_classes, self.ignore_index, self.class_names = num_classes, ignore_index, class_names
        self.iters, self.batch_size = iters, batch_size
        self.lr, self.poly_power = lr, poly_power
        self.optimizer = make_optimizer(optimizer, [p for p in model.parameters() if p.requires_grad],
                                        lr, momentum, weight_decay)
        self.autocast_dtype = AMP_DTYPES[amp]
        self.device = next(model.parameters()).device
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=amp == "fp16")
        self.seed, self.num_workers = seed, num_workers
        self.val_interval, self.log_interval, self.ckpt_interval = val_interval, log_interval, ckpt_interval
        self.resume_path = Path(resume_path) if resume_path else None
        self.fingerprint, self.log_fn, self.eval_batch_size = fingerprint, log_fn, eval_batch_size
        self.meta, self.desc = meta or {}, desc
        self.iteration = 0
        self.history: dict[str, list[dict[str, float]]] = {"train": [], "val": []}
        self.resumed_from: int | None = None

    # -- checkpoints -------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict(), "iteration": self.iteration,
                "rng": {"torch": torch.get_rng_state()},
                "history": self.history, "fingerprint": self.fingerprint, "git_commit": git_commit(), **self.meta}

    def try_resume(self) -> bool:
        """Load the in-progress checkpoint if it exists and belongs to this configuration."""
        if not self.resume_path or not self.resume_path.is_file():
            return False
        ckpt = load_checkpoint(self.resume_path)
        if ckpt.get("fingerprint") != self.fingerprint:
            tqdm.write(f"{self.resume_path}: checkpoint of another configuration, starting afresh")
            return False
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.iteration, self.history = ckpt["iteration"], ckpt["history"]
        torch.set_rng_state(ckpt["rng"]["torch"])
        self.resumed_from = self.iteration
        tqdm.write(f"resuming {self.desc} from {self.resume_path} at iteration {self.iteration}")
        return True

    # -- loop --------------------------------------------------------------------------------
    def validate(self) -> dict[str, float]:
        conf = evaluate(self.model, eval_loader(self.val_set, self.eval_batch_size), self.num_classes,
                        self.ignore_index, self.step.model_input, device=self.device,
                        autocast_dtype=self.autocast_dtype)
        s = scores(conf, self.class_names)
        return {"val_miou": s["miou"], "val_pixel_acc": s["pixel_acc"]}

    def fit(self) -> dict[str, list[dict[str, float]]]:
        """Run to ``iters``; returns the history ``{"train": [...], "val": [...]}``."""
        torch.manual_seed(self.seed)
        self.try_resume()
        self.model.train()
        batches = train_loader(self.train_set, self.batch_size, self.seed, self.iteration, self.num_workers)
        bar = tqdm(total=self.iters, initial=self.iteration, desc=self.desc, unit="it", dynamic_ncols=True)
        sums: dict[str, float] = {}
        t0, n0 = time.perf_counter(), self.iteration
        while self.iteration < self.iters:
            lr = poly_lr(self.lr, self.iteration, self.iters, self.poly_power)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            image, label = (t.to(self.device, non_blocking=True) for t in next(batches))
            with autocast(self.device, self.autocast_dtype):
                terms = self.step(self.model, image, label)
            loss = terms["loss"]
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"{self.desc}: loss is {loss.item()} at iteration {self.iteration}; "
                                         "lower the learning rate or check the data")
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.iteration += 1
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr:.2e}")
            if self.iteration % self.log_interval == 0 or self.iteration == self.iters:
                n = self.iteration - n0
                row = {"step": self.iteration, "lr": lr, **{k: v / n for k, v in sums.items()},
                       "sec_per_iter": (time.perf_counter() - t0) / n}
                self.history["train"].append(row)
                if self.log_fn:
                    self.log_fn({f"train_{k}": v for k, v in row.items() if k != "step"}, self.iteration)
                sums, t0, n0 = {}, time.perf_counter(), self.iteration
            last = self.iteration == self.iters
            if self.val_set is not None and (last or self.val_interval and self.iteration % self.val_interval == 0):
                row = {"step": self.iteration, **self.validate()}
                self.history["val"].append(row)
                bar.write(f"{self.desc} iteration {self.iteration}: val mIoU {row['val_miou']:.2f}")
                if self.log_fn:
                    self.log_fn({k: v for k, v in row.items() if k != "step"}, self.iteration)
            if self.resume_path and (self.iteration % self.ckpt_interval == 0) and not last:
                atomic_save(self.state(), self.resume_path)
        bar.close()
        return self.history


def load_trained(path: str | Path, num_classes: int | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a trained network from its final checkpoint; returns (model in eval mode, checkpoint).

    ``num_classes`` (the dataset's) is checked against the checkpoint's, naming both on mismatch.
    """
    from pipeline.models import segmentor_from_spec

    ckpt = load_checkpoint(path)
    if "spec" not in ckpt or "model" not in ckpt:
        raise ValueError(f"{path}: not a trained-model checkpoint of this project (no 'spec'/'model')")
    spec = ckpt["spec"]
    if num_classes is not None and spec["num_classes"] != num_classes:
        raise ValueError(f"{path}: model has {spec['num_classes']} classes, the dataset has {num_classes}")
    model = segmentor_from_spec(spec)
    model.load_state_dict(ckpt["model"])
    return model.eval(), ckpt
