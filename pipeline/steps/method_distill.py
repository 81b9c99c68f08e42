"""A comparison row's step: ``CE + w_aux CE_aux +`` the terms of a :mod:`pipeline.methods` loss, from a
frozen conventional (image-only) teacher."""

from __future__ import annotations

import torch
from torch import nn

from pipeline.methods import MethodLoss, Widths, create_method_loss
from pipeline.seg_losses import seg_terms
from pipeline.steps import StepDefaults, StepInputs


class MethodDistillStep(StepDefaults):
    """``module`` is the method's loss module: its weights (projections) are trained and its buffers
    (memory queues) checkpointed with the student by the trainer."""

    def __init__(self, teacher: nn.Module, loss: MethodLoss, ignore_index: int, w_aux: float) -> None:
        self.teacher = teacher.eval().requires_grad_(False)
        self.module, self.ignore_index, self.w_aux = loss, ignore_index, w_aux
        self.max_grad_norm = loss.max_grad_norm

    @classmethod
    def from_inputs(cls, s: StepInputs) -> MethodDistillStep:
        c = s.cfg.compare
        loss = create_method_loss(s.role.method, getattr(c.hparams, s.role.method), Widths.of(s.model, s.teacher),
                                  s.num_classes, s.ignore_index)
        return cls(s.teacher, loss, s.ignore_index, c.w_aux)

    def __call__(self, model: nn.Module, image: torch.Tensor, label: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():  # the teacher in eval mode, with its auxiliary logits as the official codes return them
            t_out = self.teacher(image, with_aux=True)
        out = model(image)
        ce, aux = seg_terms(out, label, self.ignore_index)
        terms = self.module(out, t_out, label)
        loss = ce + self.w_aux * aux + sum(terms.values())
        return {"loss": loss, "ce": ce.detach(), "aux": aux.detach(), **{k: v.detach() for k, v in terms.items()}}


STEP = MethodDistillStep
