"""The LAD teacher's step: image + noised label channel, two paths, CE on both and a symmetric
stop-gradient consistency between them."""

from __future__ import annotations

import torch
from torch import nn

from pipeline.config import Distance
from pipeline.lad import LabelChannel
from pipeline.losses import DISTANCES
from pipeline.seg_losses import seg_terms
from pipeline.steps import StepInputs


def dual_path_loss(model: nn.Module, image: torch.Tensor, label: torch.Tensor, num_classes: int,
                   ignore_index: int, channel: LabelChannel, w_aux: float, w_cons: float, temperature: float,
                   dual_path: bool = True, distance: Distance = "cwd") -> dict[str, torch.Tensor]:
    """``L = sum_i [CE(z_i, y) + w_aux CE(a_i, y)] + w_cons [D(z1, sg(z2)) + D(z2, sg(z1))]``.

    Each path gets its own draw of ``channel`` (codes and noise). With ``dual_path=False`` a single path
    and no consistency term (the ablation); ``distance`` (a key of ``losses.DISTANCES``) swaps CWD for
    pixel-wise KL (the other ablation). Returns the total as ``loss`` plus its terms (detached).
    """
    outs = [model(channel(image, label, num_classes, ignore_index)) for _ in range(2 if dual_path else 1)]
    ce, aux = (sum(t) for t in zip(*(seg_terms(o, label, ignore_index) for o in outs)))
    terms = {"ce": ce, "aux": aux}
    loss = ce + w_aux * aux
    if dual_path:
        z1, z2 = outs[0]["out"], outs[1]["out"]
        dist = DISTANCES[distance]
        cons = dist(z1, z2.detach(), temperature) + dist(z2, z1.detach(), temperature)
        terms["cons"] = cons
        loss = loss + w_cons * cons
    return {"loss": loss, **{k: v.detach() for k, v in terms.items()}}


class LADTeacherStep:
    """Trains with ``lad``'s label channel; validation feeds the channel as the distilling teacher will
    see it (``distill.codebook``, ``distill.noise_std``), so the curve tracks the teacher the student
    learns from."""

    def __init__(self, num_classes: int, ignore_index: int, channel: LabelChannel, val_channel: LabelChannel,
                 w_aux: float, w_cons: float, temperature: float, dual_path: bool, distance: Distance) -> None:
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.channel, self.val_channel = channel, val_channel
        self.kwargs = dict(w_aux=w_aux, w_cons=w_cons, temperature=temperature, dual_path=dual_path,
                           distance=distance)

    @classmethod
    def from_inputs(cls, s: StepInputs) -> LADTeacherStep:
        lad, distill = s.cfg.lad, s.cfg.distill
        return cls(s.num_classes, s.ignore_index, LabelChannel.of("training", lad, distill),
                   LabelChannel.of("distill", lad, distill), lad.w_aux, lad.w_cons, lad.temperature, lad.dual_path,
                   lad.distance)

    def model_input(self, image: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return self.val_channel(image, label, self.num_classes, self.ignore_index)

    def __call__(self, model: nn.Module, image: torch.Tensor, label: torch.Tensor) -> dict[str, torch.Tensor]:
        return dual_path_loss(model, image, label, self.num_classes, self.ignore_index, self.channel, **self.kwargs)


STEP = LADTeacherStep
