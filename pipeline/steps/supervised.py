"""The supervised step: ``CE(z, y) + w_aux * CE(a, y)`` on the image alone (the baselines and the
conventional teacher)."""

from __future__ import annotations

import torch
from torch import nn

from pipeline.seg_losses import seg_terms
from pipeline.steps import StepDefaults, StepInputs


class SupervisedStep(StepDefaults):
    def __init__(self, num_classes: int, ignore_index: int = 255, w_aux: float = 0.4) -> None:
        self.num_classes, self.ignore_index, self.w_aux = num_classes, ignore_index, w_aux

    @classmethod
    def from_inputs(cls, s: StepInputs) -> SupervisedStep:
        return cls(s.num_classes, s.ignore_index, s.cfg.train.w_aux)

    def __call__(self, model: nn.Module, image: torch.Tensor, label: torch.Tensor) -> dict[str, torch.Tensor]:
        ce, aux = seg_terms(model(image), label, self.ignore_index)
        return {"loss": ce + self.w_aux * aux, "ce": ce.detach(), "aux": aux.detach()}


STEP = SupervisedStep
