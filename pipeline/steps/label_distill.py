"""The label-only control's step: the LAD student's loss with the label itself in the teacher's place,
``CE + w_aux CE_aux + w_kd D_T(z_s, log q)`` (``controls.w_kd``; the rest ``distill``'s), q the label smoothed
by ``controls.label_smoothing`` (:func:`pipeline.losses.label_logits`). It asks whether the LAD teacher
teaches more than the label it sees."""

from __future__ import annotations

import torch
from torch import nn

from pipeline.config import Distance
from pipeline.losses import DISTANCES, label_logits
from pipeline.seg_losses import seg_terms
from pipeline.steps import StepDefaults, StepInputs


class LabelDistillStep(StepDefaults):
    """No teacher network and no random draws of its own: with ``w_kd: 0`` the student is the baseline."""

    def __init__(self, num_classes: int, ignore_index: int, smoothing: float, w_kd: float, temperature: float,
                 w_aux: float, distance: Distance) -> None:
        self.num_classes, self.ignore_index, self.smoothing = num_classes, ignore_index, smoothing
        self.w_kd, self.temperature, self.w_aux, self.distance = w_kd, temperature, w_aux, DISTANCES[distance]

    @classmethod
    def from_inputs(cls, s: StepInputs) -> LabelDistillStep:
        d, c = s.cfg.distill, s.cfg.controls
        return cls(s.num_classes, s.ignore_index, c.label_smoothing, c.w_kd, d.temperature, d.w_aux, d.distance)

    def __call__(self, model: nn.Module, image: torch.Tensor, label: torch.Tensor) -> dict[str, torch.Tensor]:
        out = model(image)
        ce, aux = seg_terms(out, label, self.ignore_index)
        target = label_logits(label, out["out"].shape[2:], self.num_classes, self.ignore_index, self.smoothing)
        kd = self.distance(out["out"], target, self.temperature)
        return {"loss": ce + self.w_aux * aux + self.w_kd * kd, "ce": ce.detach(), "aux": aux.detach(),
                "kd": kd.detach()}


STEP = LabelDistillStep
