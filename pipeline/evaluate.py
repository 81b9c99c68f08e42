"""Evaluation loop: confusion matrix over a split, single scale or multi-scale + flip."""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from pipeline.metrics import confusion

InputFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def autocast(device: torch.device | str, dtype: torch.dtype | None) -> torch.autocast:
    """Mixed precision in ``dtype`` on ``device``; ``dtype=None`` runs in float32."""
    device_type = torch.device(device).type
    return torch.autocast(device_type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, scales: Iterable[float] = (1.0,), flip: bool = False,
                   autocast_dtype: torch.dtype | None = None) -> torch.Tensor:
    """Class scores at the input size, averaged over rescaled (and flipped) copies of ``x``."""
    size = x.shape[2:]
    total = 0.0
    with autocast(x.device, autocast_dtype):
        for s in scales:
            xs = x if s == 1.0 else F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False)
            for flipped in ([False, True] if flip else [False]):
                xi = xs.flip(-1) if flipped else xs
                z = model(xi)["out"].float()
                z = F.interpolate(z, size, mode="bilinear", align_corners=False)
                total = total + (z.flip(-1) if flipped else z).softmax(1)
    return total


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, num_classes: int, ignore_index: int = 255,
             input_fn: InputFn | None = None, scales: Iterable[float] = (1.0,), flip: bool = False,
             device: torch.device | str = "cpu", autocast_dtype: torch.dtype | None = None,
             progress: str | None = None) -> np.ndarray:
    """Accumulated (K, K) confusion matrix of ``model`` over ``loader``.

    Args:
        input_fn: (image, label) -> model input; the LAD teacher adds its label channel here.
        scales, flip: multi-scale / flip averaging of the upsampled softmax scores.
        progress: tqdm description (None: no bar).
    """
    was_training = model.training
    model.eval()
    conf = torch.zeros(num_classes, num_classes, dtype=torch.long)
    for image, label in tqdm(loader, desc=progress, disable=progress is None, leave=False, unit="batch"):
        image, label = image.to(device), label.to(device)
        x = input_fn(image, label) if input_fn else image
        pred = predict_logits(model, x, scales, flip, autocast_dtype).argmax(1)
        conf += confusion(pred, label, num_classes, ignore_index).cpu()
    model.train(was_training)
    return conf.numpy()
