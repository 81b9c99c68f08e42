"""Evaluation loop: confusion matrix over a split, single scale or multi-scale + flip."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.metrics import confusion
from pipeline.progress import bar

if TYPE_CHECKING:
    from pipeline.config import EvaluateConfig

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


@dataclass(frozen=True)
class Inference:
    """How a model is run on an image: scales, flip, whole image or sliding window, precision
    (one object built from params.yaml ``evaluate``; the defaults are single-scale, whole, float32)."""

    scales: tuple[float, ...] = (1.0,)
    flip: bool = False
    mode: str = "whole"  # whole | slide
    crop: int = 512  # slide window side, pixels
    stride: int = 341  # slide window step, pixels
    autocast_dtype: torch.dtype | None = None

    @classmethod
    def from_config(cls, ev: EvaluateConfig, autocast_dtype: torch.dtype | None = None) -> Inference:
        return cls(tuple(ev.multi_scale), ev.flip, ev.mode, ev.crop, ev.stride, autocast_dtype)


WHOLE = Inference()


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, inference: Inference = WHOLE) -> torch.Tensor:
    """Class scores at the input size (the label's resolution), averaged over rescaled (and flipped)
    copies of ``x``; ``mode="slide"`` runs each copy in ``crop`` windows ``stride`` apart."""
    inf, size = inference, x.shape[2:]
    total = 0.0
    with autocast(x.device, inf.autocast_dtype):
        for s in inf.scales:
            xs = x if s == 1.0 else F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False)
            for flipped in ([False, True] if inf.flip else [False]):
                xi = xs.flip(-1) if flipped else xs
                if inf.mode == "slide":
                    p = F.interpolate(slide_scores(model, xi, inf.crop, inf.stride), size, mode="bilinear",
                                      align_corners=False)
                else:
                    z = model(xi)["out"].float()
                    p = F.interpolate(z, size, mode="bilinear", align_corners=False).softmax(1)
                total = total + (p.flip(-1) if flipped else p)
    return total


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, num_classes: int, ignore_index: int = 255,
             input_fn: InputFn | None = None, inference: Inference = WHOLE, device: torch.device | str = "cpu",
             progress: str | None = None) -> np.ndarray:
    """Accumulated (K, K) confusion matrix of ``model`` over ``loader``.

    Args:
        input_fn: (image, label) -> model input; the LAD teacher adds its label channel here.
        inference: scales, flip, whole image or sliding window, precision (:class:`Inference`).
        progress: tqdm description (None: no bar).
    """
    was_training = model.training
    model.eval()
    conf = torch.zeros(num_classes, num_classes, dtype=torch.long)
    for image, label in bar(loader, enabled=progress is not None, desc=progress, leave=False, unit="batch"):
        image, label = image.to(device), label.to(device)
        x = input_fn(image, label) if input_fn else image
        pred = predict_logits(model, x, inference).argmax(1)
        conf += confusion(pred, label, num_classes, ignore_index).cpu()
    model.train(was_training)
    return conf.numpy()
