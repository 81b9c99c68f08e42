"""Optimisers, the poly learning-rate schedule and autocast dtypes: the registries params.yaml names."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from pipeline.config import Optimizer, Precision

# foreach: one kernel per step for all parameters; torch's CPU default loops over them in Python
# (about a tenth of a small model's step)
OPTIMIZERS: dict[Optimizer, Callable[..., torch.optim.Optimizer]] = {
    "sgd": lambda params, lr, momentum, weight_decay: torch.optim.SGD(
        params, lr=lr, momentum=momentum, weight_decay=weight_decay, foreach=True),
    "adamw": lambda params, lr, momentum, weight_decay: torch.optim.AdamW(
        params, lr=lr, betas=(momentum, 0.999), weight_decay=weight_decay, foreach=True),
}
AMP_DTYPES: dict[Precision, torch.dtype | None] = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def make_optimizer(name: str, params: Any, lr: float, momentum: float, weight_decay: float) -> torch.optim.Optimizer:
    """``sgd`` (momentum, L2 weight decay) or ``adamw`` (beta1 = momentum, decoupled weight decay)."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer: expected one of {list(OPTIMIZERS)}, got {name!r}")
    return OPTIMIZERS[name](params, lr, momentum, weight_decay)


def poly_lr(base: float, it: int, total: int, power: float) -> float:
    """``base * (1 - it / total) ** power``: the paper's schedule."""
    return base * (1 - it / total) ** power
