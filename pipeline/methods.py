"""Distillation methods of the comparison table: a registry of losses from a conventional teacher.

Each method is a loss module that maps the student's and the frozen teacher's outputs
(``{"out": logits, "feat": head embedding, "backbone": the backbone's last map}``) and the label to weighted
loss terms, with the hyper-parameters of its section of ``params.yaml`` ``compare.hparams``. The module may
have weights (projections) and buffers (CIRKD's memory queues): the trainer optimises and checkpoints them
with the student, and clips their gradient norm to the module's ``max_grad_norm`` when it has one (Af-DCD).
Adding a method: docs/extending.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.config import (
    AfDCDHparams,
    CIRKDHparams,
    CWDHparams,
    DISTHparams,
    FitNetHparams,
    KDHparams,
    MethodName,
    Section,
)
from pipeline.losses import MemoryContrast, Queues, cwd, dist, hint, kd, omni_contrast, pixel_pair_relation

Terms = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Widths:
    """Channel counts of the maps a method may distil: the head embeddings (``feat``) and the backbone's
    last maps (``backbone``), the student's and the teacher's."""

    s_feat: int
    t_feat: int
    s_backbone: int
    t_backbone: int

    @classmethod
    def of(cls, student: nn.Module, teacher: nn.Module) -> Widths:
        """From two :class:`pipeline.models.Segmentor` networks."""
        return cls(student.spec.head_channels, teacher.spec.head_channels, student.feature_channels[-1],
                   teacher.feature_channels[-1])


class MethodLoss(nn.Module):
    """A method's loss module: ``(student outputs, teacher outputs, label) -> weighted terms``; its own layers'
    gradient norm is clipped to ``max_grad_norm`` (None: not clipped)."""

    max_grad_norm: float | None = None


def match(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """The student's map resized to the teacher's (their output strides may differ)."""
    if student.shape[2:] == teacher.shape[2:]:
        return student
    return F.interpolate(student, teacher.shape[2:], mode="bilinear", align_corners=False)


class KDLoss(MethodLoss):
    """Pixel-wise KD (Hinton et al. 2015) on the logits, as CIRKD's ``CriterionKD``."""

    def __init__(self, hp: KDHparams, widths: Widths, num_classes: int, ignore_index: int):
        super().__init__()
        self.w, self.t = hp.w_kd, hp.temperature

    def forward(self, s: Terms, t: Terms, label: torch.Tensor) -> Terms:
        return {"kd": self.w * kd(s["out"], t["out"], self.t)}


class DISTLoss(MethodLoss):
    """DIST (Huang et al., NeurIPS 2022) on the logits, and at ``w_aux`` of it on the auxiliary head's when
    both networks have one, as DIST's segmentation ``train_kd.py`` (hunto/DIST_KD)."""

    def __init__(self, hp: DISTHparams, widths: Widths, num_classes: int, ignore_index: int):
        super().__init__()
        self.w, self.beta, self.gamma, self.w_aux = hp.w_dist, hp.beta, hp.gamma, hp.w_aux

    def forward(self, s: Terms, t: Terms, label: torch.Tensor) -> Terms:
        terms = {"dist": self.w * dist(s["out"], t["out"], self.beta, self.gamma)}
        if self.w_aux and "aux" in s and "aux" in t:
            terms["dist_aux"] = self.w_aux * self.w * dist(s["aux"], t["aux"], self.beta, self.gamma)
        return terms


class FitNetLoss(MethodLoss):
    """Feature distillation, FitNet-style (Romero et al., ICLR 2015, as the canonical feature baseline of
    segmentation distillation): a 1x1 conv adapter (the hint regressor) maps the student's last backbone map
    to the teacher's width, and :func:`pipeline.losses.hint` (mean squared error) pulls it to the teacher's
    last backbone map, in one stage with the task loss (no separate hint stage)."""

    def __init__(self, hp: FitNetHparams, widths: Widths, num_classes: int, ignore_index: int):
        super().__init__()
        self.w = hp.w_hint
        self.adapter = nn.Conv2d(widths.s_backbone, widths.t_backbone, 1, bias=False)

    def forward(self, s: Terms, t: Terms, label: torch.Tensor) -> Terms:
        return {"hint": self.w * hint(self.adapter(s["backbone"]), t["backbone"])}


class CWDLoss(MethodLoss):
    """Channel-wise distillation (Shu et al., ICCV 2021) on the logits and on the head embeddings, plus
    pixel-wise KD on the logits, as CIRKD's ``train_cwd.sh`` runs it (without its adversarial term).

    The student's embedding goes through a 1x1 conv when the widths differ. As CIRKD's ``CriterionCWD``,
    the feature term sums the KL over the teacher's channels (after the projection) but divides by the
    student's channel count (before it): with a teacher twice as wide the term weighs twice as much as a
    mean over channels would. ``w_features: 0`` gives CWD on logits only, ``w_kd: 0`` no pixel KD.
    """

    def __init__(self, hp: CWDHparams, widths: Widths, num_classes: int, ignore_index: int):
        super().__init__()
        self.w_logits, self.w_features, self.t = hp.w_logits, hp.w_features, hp.temperature
        self.w_kd, self.kd_t = hp.w_kd, hp.kd_temperature
        s_channels, t_channels = widths.s_feat, widths.t_feat
        self.align = nn.Conv2d(s_channels, t_channels, 1, bias=False) if s_channels != t_channels else nn.Identity()
        self.feature_scale = t_channels / s_channels  # cwd() means over t_channels; CIRKD divides by s_channels

    def forward(self, s: Terms, t: Terms, label: torch.Tensor) -> Terms:
        terms = {"cwd_logits": self.w_logits * cwd(s["out"], t["out"], self.t)}
        if self.w_features:
            terms["cwd_features"] = self.w_features * self.feature_scale * cwd(match(self.align(s["feat"]), t["feat"]),
                                                                               t["feat"], self.t)
        if self.w_kd:
            terms["kd"] = self.w_kd * kd(s["out"], t["out"], self.kd_t)
        return terms


class CIRKDLoss(MethodLoss):
    """CIRKD (Yang et al., CVPR 2022): pixel KD + mini-batch pixel-pair relation + memory contrast."""

    def __init__(self, hp: CIRKDHparams, widths: Widths, num_classes: int, ignore_index: int):
        super().__init__()
        self.hp = hp
        queues = Queues(int(hp.pixel_memory), int(hp.region_memory), int(hp.pixel_contrast), int(hp.region_contrast))
        self.memory = MemoryContrast(widths.s_feat, widths.t_feat, num_classes, ignore_index, queues,
                                     hp.contrast_temperature, hp.contrast_kd_temperature)

    def forward(self, s: Terms, t: Terms, label: torch.Tensor) -> Terms:
        hp = self.hp
        pixel, region = self.memory(s["feat"], t["feat"], label)
        return {"kd": hp.w_kd * kd(s["out"], t["out"], hp.kd_temperature),
                "pair": hp.w_pair * pixel_pair_relation(match(s["feat"], t["feat"]), t["feat"],
                                                           hp.contrast_temperature),
                "memory_pixel": hp.w_memory_pixel * pixel,
                "memory_region": hp.w_memory_region * region}


class AfDCDLoss(MethodLoss):
    """Af-DCD (Fan et al., NeurIPS 2023; OSVAI/Af-DCD ``losses/ocmgd.py``, ``train_ocmgd.py``): pixel KD on
    the logits, plus a masked feature generation and an omni-contrastive term on the backbone's last maps.

    The student's map goes through a 1x1 conv (with bias) to the teacher's width; a random ``mask_ratio``
    of its positions is zeroed and a projector (conv3x3, ReLU, conv3x3) generates the teacher's map from
    the rest. ``fd``: the summed squared error of the generated map against the teacher's, per image.
    ``ctr``: :func:`pipeline.losses.omni_contrast` of the generated and the teacher's maps, max-pooled by
    ``pool``, per image. The official code clips the gradient norm of these layers at 15 (``max_grad_norm``).
    """

    def __init__(self, hp: AfDCDHparams, widths: Widths, num_classes: int, ignore_index: int):
        super().__init__()
        self.hp = hp
        c = widths.t_backbone
        if c % int(hp.groups):
            raise ValueError(f"afdcd: the teacher's backbone width {c} is not divisible by groups={hp.groups}")
        self.align = nn.Conv2d(widths.s_backbone, c, 1) if widths.s_backbone != c else nn.Identity()
        self.projector = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.ReLU(inplace=True),
                                       nn.Conv2d(c, c, 3, padding=1))
        self.max_grad_norm = hp.max_grad_norm

    def forward(self, s: Terms, t: Terms, label: torch.Tensor) -> Terms:
        hp, target = self.hp, t["backbone"].float()
        x = match(self.align(s["backbone"]), target)
        n, _, h, w = x.shape
        keep = (torch.rand(n, 1, h, w, device=x.device) <= 1 - hp.mask_ratio).to(x.dtype)
        generated = self.projector(x * keep).float()
        fd = (generated - target).pow(2).sum() / n
        if hp.pool > 1:
            generated, target = (F.max_pool2d(m, int(hp.pool)) for m in (generated, target))
        ctr = omni_contrast(generated, target, int(hp.groups), int(hp.patch), hp.temperature) / n
        return {"kd": hp.w_kd * kd(s["out"], t["out"], hp.kd_temperature), "fd": hp.w_fd * fd,
                "ctr": hp.w_ctr * ctr}


# name -> its loss module (hp, student width, teacher width, classes, ignore index) -> nn.Module. Each
# name's hyper-parameters, their official values' source and its title are params.yaml's
# compare.hparams.<name> and its section in pipeline/config.py (MethodsHparams).
METHODS: dict[MethodName, Callable[..., MethodLoss]] = {
    "kd": KDLoss,
    # CIRKD's script also trains a discriminator against the student's logits (lambda-adv 0.001 for the
    # student, lambda-d 0.1 for the discriminator, hinge loss): not implemented, it needs a second
    # optimiser stepping in turn with the student's, which the trainer's single objective does not have
    "cwd": CWDLoss,
    "cirkd": CIRKDLoss,
    "dist": DISTLoss,
    # the official code also has an "enhanced" projector (two conv blocks averaged), off by default: not ported
    "afdcd": AfDCDLoss,
    "fitnet": FitNetLoss,
}


def create_method_loss(name: MethodName, hp: Section, widths: Widths, num_classes: int,
                       ignore_index: int = 255) -> MethodLoss:
    """The loss module of method ``name`` with hyper-parameters ``hp`` (its section of params.yaml
    ``compare.hparams``) for maps of ``widths``."""
    return METHODS[name](hp, widths, num_classes, ignore_index)
