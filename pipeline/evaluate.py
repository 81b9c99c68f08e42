"""Evaluation loop: confusion matrix over a split, single scale or multi-scale + flip."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.metrics import confusion
from pipeline.progress import bar

InputFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def autocast(device: torch.device | str, dtype: torch.dtype | None) -> torch.autocast:
    """Mixed precision in ``dtype`` on ``device``; ``dtype=None`` runs in float32."""
    device_type = torch.device(device).type
    return torch.autocast(device_type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


@torch.no_grad()
def slide_scores(model: nn.Module, x: torch.Tensor, crop: int, stride: int) -> torch.Tensor:
    """Softmax scores of ``x`` from overlapping ``crop`` x ``crop`` windows, ``stride`` apart, averaged
    where they overlap (an image smaller than a window is padded with zeros, the mean)."""
    b, _, h, w = x.shape
    ph, pw = max(crop - h, 0), max(crop - w, 0)
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph))
    hh, ww = x.shape[2:]
    total, count = None, x.new_zeros(1, 1, hh, ww)
    ys = sorted({min(y, hh - crop) for y in range(0, hh - crop + stride, stride)})
    xs = sorted({min(v, ww - crop) for v in range(0, ww - crop + stride, stride)})
    for y in ys:
        for v in xs:
            z = model(x[:, :, y:y + crop, v:v + crop])["out"].float()
            p = F.interpolate(z, (crop, crop), mode="bilinear", align_corners=False).softmax(1)
            if total is None:
                total = x.new_zeros(b, p.shape[1], hh, ww, dtype=torch.float32)
            total[:, :, y:y + crop, v:v + crop] += p
            count[:, :, y:y + crop, v:v + crop] += 1
    return (total / count)[:, :, :h, :w]


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, scales: Iterable[float] = (1.0,), flip: bool = False,
                   autocast_dtype: torch.dtype | None = None, mode: str = "whole", crop: int = 512,
                   stride: int = 341) -> torch.Tensor:
    """Class scores at the input size (the label's resolution), averaged over rescaled (and flipped)
    copies of ``x``; ``mode="slide"`` runs each copy in ``crop`` windows ``stride`` apart."""
    size = x.shape[2:]
    total = 0.0
    with autocast(x.device, autocast_dtype):
        for s in scales:
            xs = x if s == 1.0 else F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False)
            for flipped in ([False, True] if flip else [False]):
                xi = xs.flip(-1) if flipped else xs
                if mode == "slide":
                    p = F.interpolate(slide_scores(model, xi, crop, stride), size, mode="bilinear",
                                      align_corners=False)
                else:
                    z = model(xi)["out"].float()
                    p = F.interpolate(z, size, mode="bilinear", align_corners=False).softmax(1)
                total = total + (p.flip(-1) if flipped else p)
    return total


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, num_classes: int, ignore_index: int = 255,
             input_fn: InputFn | None = None, scales: Iterable[float] = (1.0,), flip: bool = False,
             device: torch.device | str = "cpu", autocast_dtype: torch.dtype | None = None,
             progress: str | None = None, mode: str = "whole", crop: int = 512, stride: int = 341) -> np.ndarray:
    """Accumulated (K, K) confusion matrix of ``model`` over ``loader``.

    Args:
        input_fn: (image, label) -> model input; the LAD teacher adds its label channel here.
        scales, flip: multi-scale / flip averaging of the upsampled softmax scores.
        mode, crop, stride: whole-image or sliding-window inference (see :func:`predict_logits`).
        progress: tqdm description (None: no bar).
    """
    was_training = model.training
    model.eval()
    conf = torch.zeros(num_classes, num_classes, dtype=torch.long)
    for image, label in bar(loader, enabled=progress is not None, desc=progress, leave=False, unit="batch"):
        image, label = image.to(device), label.to(device)
        x = input_fn(image, label) if input_fn else image
        pred = predict_logits(model, x, scales, flip, autocast_dtype, mode, crop, stride).argmax(1)
        conf += confusion(pred, label, num_classes, ignore_index).cpu()
    model.train(was_training)
    return conf.numpy()
