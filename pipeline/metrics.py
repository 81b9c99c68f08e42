"""Confusion matrix -> mIoU, pixel accuracy, per-class IoU.

mIoU is the *nanmean* over classes (as mmsegmentation): a class absent from both the prediction
and the ground truth of the whole split has no IoU and is skipped, not counted as 0 (CIRKD).
"""

from __future__ import annotations

import numpy as np
import torch


def confusion(pred: torch.Tensor, label: torch.Tensor, num_classes: int, ignore_index: int = 255) -> torch.Tensor:
    """(K, K) int64 matrix, rows = ground truth, columns = prediction; ignore pixels excluded."""
    keep = label != ignore_index
    idx = label[keep] * num_classes + pred[keep]
    return torch.bincount(idx, minlength=num_classes**2).reshape(num_classes, num_classes)


def scores(conf: np.ndarray | torch.Tensor, class_names: list[str] | None = None) -> dict:
    """mIoU (nanmean, %), pixel accuracy (%), mean class accuracy (%) and per-class IoU (%)."""
    conf = np.asarray(conf, dtype=np.float64)
    tp = np.diag(conf)
    union = conf.sum(0) + conf.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
        acc = np.where(conf.sum(1) > 0, tp / conf.sum(1), np.nan)
    names = class_names or [str(i) for i in range(len(tp))]
    return {
        "miou": float(np.nanmean(iou) * 100) if np.isfinite(iou).any() else float("nan"),
        "pixel_acc": float(tp.sum() / max(conf.sum(), 1) * 100),
        "mean_acc": float(np.nanmean(acc) * 100) if np.isfinite(acc).any() else float("nan"),
        "per_class_iou": {n: (None if np.isnan(v) else float(v * 100)) for n, v in zip(names, iou)},
    }
