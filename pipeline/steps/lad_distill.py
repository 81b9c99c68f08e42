"""The LAD student's step: ``CE + w_aux CE_aux + w_kd D_T(z_s, z_t)`` from the frozen LAD teacher."""

from __future__ import annotations

import torch
from torch import nn

from pipeline.config import Distance
from pipeline.lad import LabelChannel
from pipeline.losses import DISTANCES
from pipeline.seg_losses import seg_terms
from pipeline.steps import StepDefaults, StepInputs


class DistillStep(StepDefaults):
    """The teacher (eval mode, no grad) sees the image and the noised label; the student the image only.

    ``distance: kl`` uses pixel-wise KL instead of CWD (the ablation). The teacher's label noise is
    drawn from ``generator``, a stream of its own (seeded and checkpointed by the trainer), so the
    student's own random draws (dropout) are those of the baseline with the same seed: with
    ``w_kd: 0`` the student *is* the baseline.
    """

    def __init__(self, teacher: nn.Module, num_classes: int, ignore_index: int, channel: LabelChannel,
                 w_kd: float, temperature: float, w_aux: float, distance: Distance) -> None:
        self.generator = torch.Generator(next(teacher.parameters()).device)
        self.distance = DISTANCES[distance]
        self.teacher = teacher.eval().requires_grad_(False)
        self.num_classes, self.ignore_index, self.channel = num_classes, ignore_index, channel
        self.w_kd, self.temperature, self.w_aux = w_kd, temperature, w_aux

    @classmethod
    def from_inputs(cls, s: StepInputs) -> DistillStep:
        d = s.cfg.distill
        return cls(s.teacher, s.num_classes, s.ignore_index, LabelChannel.of("distill", s.cfg.lad, d), d.w_kd,
                   d.temperature, d.w_aux, d.distance)

    def __call__(self, model: nn.Module, image: torch.Tensor, label: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            z_t = self.teacher(self.channel(image, label, self.num_classes, self.ignore_index, self.generator))["out"]
        out = model(image)
        ce, aux = seg_terms(out, label, self.ignore_index)
        kd = self.distance(out["out"], z_t, self.temperature)
        return {"loss": ce + self.w_aux * aux + self.w_kd * kd, "ce": ce.detach(), "aux": aux.detach(),
                "kd": kd.detach()}


STEP = DistillStep
