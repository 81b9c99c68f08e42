"""Supervised segmentation losses: cross-entropy with ignore pixels, STDC's detail loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def seg_ce(logits: torch.Tensor, label: torch.Tensor, ignore_index: int = 255) -> torch.Tensor:
    """Cross-entropy of logits (upsampled bilinearly to the label size) with ignore pixels excluded."""
    if logits.shape[2:] != label.shape[1:]:
        logits = F.interpolate(logits, label.shape[1:], mode="bilinear", align_corners=False)
    return F.cross_entropy(logits.float(), label, ignore_index=ignore_index)


def seg_terms(out: dict[str, torch.Tensor], label: torch.Tensor, ignore_index: int = 255
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(CE of the main logits, CE of the auxiliary logits)``; the latter is 0 without an aux head.

    An STDC head's ``detail`` logits add their detail loss (weight 1, as in STDC) to the main term.
    """
    ce = seg_ce(out["out"], label, ignore_index)
    if "detail" in out:
        ce = ce + detail_loss(out["detail"], label, ignore_index)
    aux = seg_ce(out["aux"], label, ignore_index) if "aux" in out else ce.new_zeros(())
    return ce, aux


# the 3x3 Laplacian STDC convolves the label map with to find boundaries
LAPLACIAN = torch.tensor([[-1.0, -1.0, -1.0], [-1.0, 8.0, -1.0], [-1.0, -1.0, -1.0]]).reshape(1, 1, 3, 3)
DETAIL_FUSION = (0.6, 0.3, 0.1)  # weights of the stride 1, 2 and 4 boundary maps (STDC, as mmsegmentation)


def detail_target(label: torch.Tensor, ignore_index: int = 255, threshold: float = 0.1) -> torch.Tensor:
    """STDC's binary detail ground truth (B, 1, H, W): Laplacian boundaries of the label map at
    strides 1, 2 and 4, upsampled, fused with :data:`DETAIL_FUSION` and thresholded. Ignore pixels
    count as class 0, so only real class edges (and edges of ignore regions) are details."""
    y = label.masked_fill(label == ignore_index, 0).unsqueeze(1).float()
    lap = LAPLACIAN.to(y.device)
    maps = []
    for stride in (1, 2, 4):
        b = (F.conv2d(y, lap, stride=stride, padding=1).clamp(min=0) > threshold).float()
        maps.append(F.interpolate(b, y.shape[2:], mode="nearest") if stride > 1 else b)
    fused = sum(w * m for w, m in zip(DETAIL_FUSION, maps))
    return (fused > threshold).float()


def detail_loss(logits: torch.Tensor, label: torch.Tensor, ignore_index: int = 255) -> torch.Tensor:
    """STDC's detail loss: binary cross-entropy + Dice of the detail head's logits (upsampled to the
    label) against :func:`detail_target`. Dice per image with smoothing 1, averaged."""
    target = detail_target(label, ignore_index)
    logits = F.interpolate(logits.float(), label.shape[1:], mode="bilinear", align_corners=False)
    bce = F.binary_cross_entropy_with_logits(logits, target)
    p, t = logits.sigmoid().flatten(1), target.flatten(1)
    dice = 1 - (2 * (p * t).sum(1) + 1) / (p.sum(1) + t.sum(1) + 1)
    return bce + dice.mean()
