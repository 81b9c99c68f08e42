"""Per-role training steps: what differs between baseline, LAD teacher and distilled student.

A step turns a batch into loss terms (``loss`` is the one to minimise) and says what the model
sees at validation time. The training loop in :mod:`pipeline.engine` is the same for every role.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from pipeline.lad import dual_path_loss, teacher_input
from pipeline.losses import DISTANCES, seg_terms

if TYPE_CHECKING:
    from pipeline.config import DistillConfig, LADConfig


class SupervisedStep:
    """Baseline: ``CE(z, y) + w_aux * CE(a, y)`` on the image alone."""

    def __init__(self, num_classes: int, ignore_index: int = 255, w_aux: float = 0.4) -> None:
        self.num_classes, self.ignore_index, self.w_aux = num_classes, ignore_index, w_aux

    def model_input(self, image: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return image

    def __call__(self, model: nn.Module, image: torch.Tensor, label: torch.Tensor) -> dict[str, torch.Tensor]:
        ce, aux = seg_terms(model(image), label, self.ignore_index)
        return {"loss": ce + self.w_aux * aux, "ce": ce.detach(), "aux": aux.detach()}


class LADTeacherStep:
    """LAD teacher: image + noised label channel, dual-path consistency (see ``dual_path_loss``).

    Validation feeds the label channel as the distilling teacher will see it (``distill.codebook``,
    ``distill.noise_std``), so the curve tracks the teacher the student learns from.
    """

    def __init__(self, num_classes: int, ignore_index: int, lad: LADConfig, distill: DistillConfig) -> None:
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.kwargs = dict(codebook=lad.codebook, noise_std=lad.noise_std, scale=lad.scale, w_aux=lad.w_aux,
                           w_cons=lad.w_cons, temperature=lad.temperature, dual_path=lad.dual_path,
                           distance=lad.distance)
        self.scale, self.val_codebook, self.val_noise_std = lad.scale, distill.codebook, distill.noise_std

    def model_input(self, image: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return teacher_input(image, label, self.num_classes, self.ignore_index, self.val_codebook,
                             self.val_noise_std, self.scale)

    def __call__(self, model: nn.Module, image: torch.Tensor, label: torch.Tensor) -> dict[str, torch.Tensor]:
        return dual_path_loss(model, image, label, self.num_classes, self.ignore_index, **self.kwargs)


class DistillStep:
    """Student from a frozen LAD teacher: ``CE + w_aux CE_aux + w_kd CWD_T(z_s, z_t)``.

    The teacher (eval mode, no grad) sees the image and the noised label; the student the image only.
    ``distance: kl`` uses pixel-wise KL instead of CWD (the ablation). The teacher's label noise is
    drawn from ``generator``, a stream of its own (seeded and checkpointed by the trainer), so the
    student's own random draws (dropout) are those of the baseline with the same seed: with
    ``w_kd: 0`` the student *is* the baseline.
    """

    def __init__(self, teacher: nn.Module, num_classes: int, ignore_index: int, distill: DistillConfig,
                 scale: float) -> None:
        self.generator = torch.Generator(next(teacher.parameters()).device)
        self.distance = DISTANCES[distill.distance]
        self.teacher = teacher.eval().requires_grad_(False)
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.codebook, self.noise_std, self.scale = distill.codebook, distill.noise_std, scale  # scale: lad.scale
        self.w_kd, self.temperature, self.w_aux = distill.w_kd, distill.temperature, distill.w_aux

    def model_input(self, image: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return image

    def __call__(self, model: nn.Module, image: torch.Tensor, label: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            x_t = teacher_input(image, label, self.num_classes, self.ignore_index, self.codebook,
                                self.noise_std, self.scale, self.generator)
            z_t = self.teacher(x_t)["out"]
        out = model(image)
        ce, aux = seg_terms(out, label, self.ignore_index)
        kd = self.distance(out["out"], z_t, self.temperature)
        return {"loss": ce + self.w_aux * aux + self.w_kd * kd, "ce": ce.detach(), "aux": aux.detach(),
                "kd": kd.detach()}


class MethodDistillStep:
    """Student from a frozen conventional (image-only) teacher with a method of :mod:`pipeline.methods`:
    ``CE + w_aux CE_aux + sum of the method's weighted terms``.

    ``module`` is the method's loss module: its weights (projections) are trained and its buffers
    (memory queues) checkpointed with the student by the trainer.
    """

    def __init__(self, teacher: nn.Module, loss: nn.Module, ignore_index: int, w_aux: float) -> None:
        self.teacher = teacher.eval().requires_grad_(False)
        self.module, self.ignore_index, self.w_aux = loss, ignore_index, w_aux

    def model_input(self, image: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return image

    def __call__(self, model: nn.Module, image: torch.Tensor, label: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            t_out = self.teacher(image)
        out = model(image)
        ce, aux = seg_terms(out, label, self.ignore_index)
        terms = self.module(out, t_out, label)
        loss = ce + self.w_aux * aux + sum(terms.values())
        return {"loss": loss, "ce": ce.detach(), "aux": aux.detach(), **{k: v.detach() for k, v in terms.items()}}


# role name -> step class; a new kind of training is one more entry (distillation methods from a
# conventional teacher are entries of pipeline.methods.METHODS instead, all run by MethodDistillStep).
STEPS: dict[str, Callable[..., Any]] = {
    "baseline": SupervisedStep,
    "teacher": LADTeacherStep,
    "distill": DistillStep,
    "method": MethodDistillStep,
}
