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


def kd(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Pixel-wise knowledge distillation (Hinton et al.; as CIRKD's ``CriterionKD``).

    At every pixel, a softmax over the classes of ``z / T``; loss = ``T^2 *`` the mean over the
    N*H*W pixels of ``KL(p_teacher || p_student)``. Computed in float32.
    """
    if student.shape[2:] != teacher.shape[2:]:
        student = F.interpolate(student, teacher.shape[2:], mode="bilinear", align_corners=False)
    c = student.shape[1]
    log_s = F.log_softmax(student.float().movedim(1, -1).reshape(-1, c) / temperature, dim=-1)
    log_t = F.log_softmax(teacher.float().movedim(1, -1).reshape(-1, c) / temperature, dim=-1)
    return temperature**2 * (log_t.exp() * (log_t - log_s)).sum(-1).mean()


def pixel_pair_relation(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 0.1,
                        pool: bool = False) -> torch.Tensor:
    """CIRKD's mini-batch pixel-to-pixel relation loss (Yang et al., CVPR 2022).

    Features are L2-normalised along channels (optionally 2x2 average-pooled first). For every
    ordered pair of images (i, j) of the batch, the (HW x HW) similarity ``f_i^T f_j`` becomes one
    softmax per row at ``temperature``; loss = mean over the B^2 pairs of the row-averaged
    ``KL(p_teacher || p_student)``. One image at a time against the whole batch, so memory is
    B x (HW)^2, not B^2 x (HW)^2. Computed in float32.
    """
    if pool:
        student = F.avg_pool2d(student, 2, 2, ceil_mode=True)
        teacher = F.avg_pool2d(teacher, 2, 2, ceil_mode=True)
    b = student.shape[0]
    fs = F.normalize(student.float().flatten(2), dim=1)  # (B, C, HW)
    ft = F.normalize(teacher.float().flatten(2), dim=1)
    total = fs.new_zeros(())
    for i in range(b):
        log_s = F.log_softmax(torch.einsum("cp,bcq->bpq", fs[i], fs) / temperature, dim=-1)
        log_t = F.log_softmax(torch.einsum("cp,bcq->bpq", ft[i], ft) / temperature, dim=-1)
        total = total + (log_t.exp() * (log_t - log_s)).sum(-1).mean(-1).sum()
    return total / (b * b)
