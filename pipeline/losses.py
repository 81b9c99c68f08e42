"""Segmentation and distillation losses."""

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
    """``(CE of the main logits, CE of the auxiliary logits)``; the latter is 0 without an aux head."""
    ce = seg_ce(out["out"], label, ignore_index)
    aux = seg_ce(out["aux"], label, ignore_index) if "aux" in out else ce.new_zeros(())
    return ce, aux


def cwd(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 4.0) -> torch.Tensor:
    """Channel-wise distillation (Shu et al., ICCV 2021).

    For each image n and channel c, a softmax over the H*W positions of ``z / T``;
    loss = ``T^2 / (N*C) * sum_{n,c} KL(p_teacher || p_student)``. Computed in float32. The caller
    decides what carries gradient (detach the teacher for a one-way loss).
    """
    if student.shape[2:] != teacher.shape[2:]:
        student = F.interpolate(student, teacher.shape[2:], mode="bilinear", align_corners=False)
    n, c = student.shape[:2]
    log_s = F.log_softmax(student.float().reshape(n, c, -1) / temperature, dim=-1)
    log_t = F.log_softmax(teacher.float().reshape(n, c, -1) / temperature, dim=-1)
    kl = (log_t.exp() * (log_t - log_s)).sum(-1)
    return temperature**2 * kl.sum() / (n * c)
