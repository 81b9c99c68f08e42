"""Distillation losses: CWD, pixel-wise KD, DIST's relations, CIRKD's pair relation and memory contrast,
Af-DCD's omni-contrast.

The supervised terms (cross-entropy, STDC's detail loss) live in :mod:`pipeline.seg_losses`, so a
model trained without a teacher does not depend on this module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributed as tdist
import torch.nn.functional as F
from torch import nn

from pipeline.config import Distance


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


def pearson(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Pearson correlation of the rows of ``a`` and ``b`` (``(R, D)`` each): one value per row. A row with no
    variance correlates 0 (the ``eps`` in the denominator, as DIST's code)."""
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + eps)


def dist(student: torch.Tensor, teacher: torch.Tensor, beta: float = 1.0, gamma: float = 1.0) -> torch.Tensor:
    """DIST (Huang et al., NeurIPS 2022) on ``(N, C, H, W)`` logits, as its segmentation code: every pixel
    of the batch is a sample, class probabilities by a softmax at temperature 1.

    inter = 1 - the mean over pixels of the Pearson correlation of the two class distributions;
    intra = 1 - the mean over classes of the Pearson correlation of a class's probabilities over the
    batch's pixels; loss = ``beta * inter + gamma * intra``. Computed in float32.
    """
    if student.shape[2:] != teacher.shape[2:]:
        student = F.interpolate(student, teacher.shape[2:], mode="bilinear", align_corners=False)
    c = student.shape[1]
    p_s = student.float().movedim(1, -1).reshape(-1, c).softmax(-1)
    p_t = teacher.float().movedim(1, -1).reshape(-1, c).softmax(-1)
    inter = 1 - pearson(p_s, p_t).mean()
    intra = 1 - pearson(p_s.t(), p_t.t()).mean()
    return beta * inter + gamma * intra


def hint(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """FitNets' hint loss (Romero et al., ICLR 2015): the mean squared error between the (adapted) student map
    and the teacher's, over every element; the student's map resized to the teacher's first. Float32."""
    if student.shape[2:] != teacher.shape[2:]:
        student = F.interpolate(student, teacher.shape[2:], mode="bilinear", align_corners=False)
    return F.mse_loss(student.float(), teacher.float())


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


def label_logits(label: torch.Tensor, size: tuple[int, ...], num_classes: int, ignore_index: int = 255,
                 smoothing: float = 0.1) -> torch.Tensor:
    """The label as logits of ``size``: ``log((1 - e) q + e / K)``, q each class's share of the labelled
    pixels of each cell (the one-hot label area-averaged to ``size``; uniform where a cell has none)."""
    valid = label != ignore_index
    onehot = F.one_hot(torch.where(valid, label, 0), num_classes).movedim(-1, 1).float() * valid[:, None]
    shares = F.adaptive_avg_pool2d(onehot, size)
    total = shares.sum(1, keepdim=True)
    q = torch.where(total > 0, shares / total.clamp_min(1e-12), torch.full_like(shares, 1 / num_classes))
    return ((1 - smoothing) * q + smoothing / num_classes).log()


# distance between two logit maps, ``f(student, teacher, temperature)``: the LAD ablation "distance loss"
DISTANCES: dict[Distance, Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]] = {"cwd": cwd, "kl": kd}


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


def omni_contrast(student: torch.Tensor, teacher: torch.Tensor, groups: int = 16, patch: int = 4,
                  temperature: float = 0.07) -> torch.Tensor:
    """Af-DCD's omni-contrastive term (Fan et al., NeurIPS 2023), summed over the batch.

    Both ``(N, C, H, W)`` maps are cut into ``patch`` x ``patch`` patches and their channels into ``groups``
    groups of consecutive channels: within a patch, one vector of ``C / groups`` values per (position,
    group). Similarity is the negative L1 distance. Each student vector's positive is the teacher's at the
    same position and group; its negatives are the teacher's vectors of every other group, at any position
    of the patch. Loss = the summed cross-entropy of the positive against them at ``temperature``, divided
    by ``H * W`` (as the official code, which then divides by the batch size). Computed in float32.
    """
    n, c, h, w = teacher.shape
    if h % patch or w % patch:
        raise ValueError(f"omni_contrast: maps of {h}x{w} do not split into {patch}x{patch} patches")

    def vectors(x: torch.Tensor) -> torch.Tensor:  # (patches, patch * patch * groups, C / groups)
        x = x.float().reshape(n, groups, c // groups, h // patch, patch, w // patch, patch)
        return x.permute(0, 3, 5, 4, 6, 1, 2).reshape(-1, patch * patch * groups, c // groups)

    sim = -torch.cdist(vectors(student), vectors(teacher), p=1) / temperature
    group = torch.arange(sim.shape[-1], device=sim.device) % groups
    same = group[:, None] == group[None, :]
    others = sim.masked_fill(same & ~torch.eye(len(group), dtype=torch.bool, device=sim.device), float("-inf"))
    return (torch.logsumexp(others, -1) - sim.diagonal(dim1=1, dim2=2)).sum() / (h * w)


def _gather(t: torch.Tensor) -> torch.Tensor:
    """``t`` of every DDP process, concatenated along dim 0 (just ``t`` in a single process)."""
    if not (tdist.is_available() and tdist.is_initialized()) or tdist.get_world_size() == 1:
        return t
    parts = [torch.empty_like(t) for _ in range(tdist.get_world_size())]
    tdist.all_gather(parts, t.contiguous())
    return torch.cat(parts)


def similarity_kd(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``T^2 * KL(softmax(t/T) || softmax(s/T))`` over rows, averaged over rows (CIRKD's ``batchmean``)."""
    log_s = F.log_softmax(student.float() / temperature, dim=1)
    log_t = F.log_softmax(teacher.float() / temperature, dim=1)
    return temperature**2 * (log_t.exp() * (log_t - log_s)).sum(1).mean()


@dataclass(frozen=True)
class Queues:
    """The sizes of :class:`MemoryContrast`'s queues (CIRKD's defaults)."""

    pixel_memory: int = 20000  # teacher pixel embeddings kept per class
    region_memory: int = 2000  # teacher region embeddings kept per class
    pixel_contrast: int = 4096  # pixels sampled from the queue per step, over all classes
    region_contrast: int = 1024  # regions sampled per step, over all classes
    pixel_update: int = 16  # new pixels enqueued per image and class


class MemoryContrast(nn.Module):
    """CIRKD's memory-based pixel-to-pixel and pixel-to-region distillation (Yang et al., CVPR 2022).

    Per class, a queue of teacher pixel embeddings (``pixel_memory`` long, ``pixel_update`` new
    pixels per image and class) and one of teacher region embeddings (the class mean of an image,
    ``region_memory`` long), all L2-normalised. For every labelled pixel, the similarities of the
    student's embedding (through a 1x1-BN-ReLU-1x1 projection to the teacher's width) and of the
    teacher's to a random sample of each queue (``pixel_contrast`` / ``region_contrast`` per class)
    become two distributions at ``temperature``; the losses are their KL at ``kd_temperature``.
    The queues are buffers: they travel with the checkpoint, so a resumed run continues exactly.
    Under DDP every process enqueues the teacher embeddings of the whole global batch.
    """

    def __init__(self, student_channels: int, teacher_channels: int, num_classes: int, ignore_index: int = 255,
                 queues: Queues | None = None, temperature: float = 0.1, kd_temperature: float = 1.0) -> None:
        super().__init__()
        q = queues or Queues()
        pixel_memory, region_memory, pixel_contrast, region_contrast, pixel_update = (
            q.pixel_memory, q.region_memory, q.pixel_contrast, q.region_contrast, q.pixel_update)
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.pixel_contrast = pixel_contrast // num_classes + 1  # per class, as CIRKD
        self.region_contrast = region_contrast // num_classes + 1
        self.temperature, self.kd_temperature, self.pixel_update = temperature, kd_temperature, pixel_update
        self.project = nn.Sequential(nn.Conv2d(student_channels, teacher_channels, 1, bias=False),
                                     nn.BatchNorm2d(teacher_channels), nn.ReLU(inplace=True),
                                     nn.Conv2d(teacher_channels, teacher_channels, 1, bias=False))
        self.register_buffer("pixel_queue",
                             F.normalize(torch.randn(num_classes, pixel_memory, teacher_channels), dim=2))
        self.register_buffer("pixel_ptr", torch.zeros(num_classes, dtype=torch.long))
        self.register_buffer("region_queue",
                             F.normalize(torch.randn(num_classes, region_memory, teacher_channels), dim=2))
        self.register_buffer("region_ptr", torch.zeros(num_classes, dtype=torch.long))

    @torch.no_grad()
    def enqueue(self, feats: torch.Tensor, labels: torch.Tensor) -> None:
        """Push the (normalised) teacher embeddings ``feats`` (B, C, h, w) with ``labels`` (B, h, w)."""
        feats, labels = _gather(feats), _gather(labels)
        size, region_size = self.pixel_queue.shape[1], self.region_queue.shape[1]
        for f, y in zip(feats.flatten(2), labels.flatten(1)):
            for c in y.unique().tolist():
                if c == self.ignore_index:
                    continue
                idx = (y == c).nonzero().squeeze(1)
                ptr = int(self.region_ptr[c])
                self.region_queue[c, ptr] = F.normalize(f[:, idx].mean(1), dim=0)
                self.region_ptr[c] = (ptr + 1) % region_size
                k = min(len(idx), self.pixel_update)
                sample = F.normalize(f[:, idx[torch.randperm(len(idx), device=idx.device)[:k]]].T, dim=1)
                ptr = int(self.pixel_ptr[c])
                if ptr + k >= size:  # CIRKD: the last slots, then start over
                    self.pixel_queue[c, -k:] = sample
                    self.pixel_ptr[c] = 0
                else:
                    self.pixel_queue[c, ptr:ptr + k] = sample
                    self.pixel_ptr[c] = ptr + k

    def _sample(self, queue: torch.Tensor, per_class: int) -> torch.Tensor:
        idx = torch.randperm(queue.shape[1], device=queue.device)[:per_class]
        return queue[:, idx].reshape(-1, queue.shape[2])  # (K * per_class, C), class by class

    def forward(self, student: torch.Tensor, teacher: torch.Tensor, label: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(pixel-to-pixel, pixel-to-region)`` losses of student/teacher embeddings (B, C, h, w)."""
        t = F.normalize(teacher.float().detach(), dim=1)
        s = F.normalize(self.project(student).float(), dim=1)
        if s.shape[2:] != t.shape[2:]:
            s = F.interpolate(s, t.shape[2:], mode="bilinear", align_corners=False)
        y = F.interpolate(label.unsqueeze(1).float(), t.shape[2:], mode="nearest").squeeze(1).long()
        self.enqueue(t, y)
        keep = y.flatten() != self.ignore_index
        s_rows = s.permute(0, 2, 3, 1).reshape(-1, s.shape[1])[keep]
        t_rows = t.permute(0, 2, 3, 1).reshape(-1, t.shape[1])[keep]
        if not len(s_rows):  # nothing labelled: zero, but keep the graph
            zero = 0.0 * s.pow(2).mean()
            return zero, zero
        losses = []
        for queue, n in ((self.pixel_queue, self.pixel_contrast), (self.region_queue, self.region_contrast)):
            bank = self._sample(queue, n)
            losses.append(similarity_kd(s_rows @ bank.T / self.temperature, t_rows @ bank.T / self.temperature,
                                        self.kd_temperature))
        return losses[0], losses[1]
