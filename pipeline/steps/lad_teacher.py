"""The LAD teacher's step: image + noised label channel, two paths, CE on both and a symmetric
stop-gradient consistency between them."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pipeline.config import Distance, LADConfig
from pipeline.lad import LabelChannel
from pipeline.losses import DISTANCES
from pipeline.seg_losses import seg_terms
from pipeline.steps import StepDefaults, StepInputs


@dataclass(frozen=True)
class DualPath:
    """The dual-path loss's weights (params.yaml ``lad``): the auxiliary head's, the consistency's and its
    temperature; ``dual_path: False`` trains one path without consistency and ``distance`` (a key of
    ``losses.DISTANCES``) swaps CWD for pixel-wise KL (the two ablations)."""

    w_aux: float
    w_cons: float
    temperature: float
    dual_path: bool = True
    distance: Distance = "cwd"

    @classmethod
    def of(cls, lad: LADConfig) -> DualPath:
        return cls(lad.w_aux, lad.w_cons, lad.temperature, lad.dual_path, lad.distance)


def dual_path_loss(model: nn.Module, image: torch.Tensor, label: torch.Tensor, num_classes: int,
                   ignore_index: int, channel: LabelChannel, weights: DualPath) -> dict[str, torch.Tensor]:
    """``L = sum_i [CE(z_i, y) + w_aux CE(a_i, y)] + w_cons [D(z1, sg(z2)) + D(z2, sg(z1))]``.

    Each path gets its own draw of ``channel`` (codes and noise); ``weights``: :class:`DualPath`. Returns
    the total as ``loss`` plus its terms (detached).
    """
    w_aux, w_cons, temperature, dual_path = weights.w_aux, weights.w_cons, weights.temperature, weights.dual_path
    outs = [model(channel(image, label, num_classes, ignore_index)) for _ in range(2 if dual_path else 1)]
    ce, aux = (sum(t) for t in zip(*(seg_terms(o, label, ignore_index) for o in outs)))
    terms = {"ce": ce, "aux": aux}
    loss = ce + w_aux * aux
    if dual_path:
        z1, z2 = outs[0]["out"], outs[1]["out"]
        dist = DISTANCES[weights.distance]
        cons = dist(z1, z2.detach(), temperature) + dist(z2, z1.detach(), temperature)
        terms["cons"] = cons
        loss = loss + w_cons * cons
    return {"loss": loss, **{k: v.detach() for k, v in terms.items()}}


class LADTeacherStep(StepDefaults):
    """Trains with ``lad``'s label channel; validation feeds the channel as the distilling teacher will
    see it (``distill.codebook``, ``distill.noise_std``), so the curve tracks the teacher the student
    learns from."""

    def __init__(self, num_classes: int, ignore_index: int, channel: LabelChannel, val_channel: LabelChannel,
                 weights: DualPath) -> None:
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.channel, self.val_channel, self.weights = channel, val_channel, weights

    @classmethod
    def from_inputs(cls, s: StepInputs) -> LADTeacherStep:
        lad, distill = s.cfg.lad, s.cfg.distill
        return cls(s.num_classes, s.ignore_index, LabelChannel.of("training", lad, distill),
                   LabelChannel.of("distill", lad, distill), DualPath.of(lad))

    def model_input(self, image: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return self.val_channel(image, label, self.num_classes, self.ignore_index)

    def __call__(self, model: nn.Module, image: torch.Tensor, label: torch.Tensor) -> dict[str, torch.Tensor]:
        return dual_path_loss(model, image, label, self.num_classes, self.ignore_index, self.channel, self.weights)


STEP = LADTeacherStep
