"""The Label Noising Module (LNM) of LAD.

The label map becomes one extra input channel for the teacher: every class slot (the ignore value
gets its own slot ``K``) is replaced by a scalar code, pixel noise is added and the channel is
scaled to the image's numeric range. Vectorised: one (B, K+1) code matrix gathered with the label.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch

from pipeline.config import Codebook

if TYPE_CHECKING:
    from pipeline.config import DistillConfig, LADConfig

CODEBOOKS: tuple[Codebook, ...] = ("random", "fixed")


def fixed_codes(num_slots: int) -> torch.Tensor:
    """Evenly spaced codes of the official code: ``(k - floor(n/2)) / 10`` for k in 0..n-1."""
    return (torch.arange(num_slots, dtype=torch.float32) - num_slots // 2) / 10.0


CODE_SPAN = 3.0  # how far the scaled fixed code book reaches: the range of mean/std-normalised pixels


def scale_for(num_classes: int, span: float = CODE_SPAN) -> float:
    """The ``lad.scale`` at which the fixed code book of ``num_classes`` (+ the ignore slot) reaches
    ``±span``: 10 for the embedded set's 6 classes, 2.73 for VOC's 21, 3 for Cityscapes' 19, 5 for
    CamVid's 11, 0.4 for ADE20K's 150, 0.35 for COCO-Stuff's 171. The recipes set it by this rule."""
    return span / fixed_codes(num_classes + 1).abs().max().item()


def label_slots(label: torch.Tensor, num_classes: int, ignore_index: int) -> torch.Tensor:
    """Label (B, H, W) -> slot indices in 0..K; ignore (and any value out of 0..K-1) maps to K."""
    valid = (label >= 0) & (label < num_classes) & (label != ignore_index)
    return torch.where(valid, label, torch.full_like(label, num_classes))


def encode_label(label: torch.Tensor, num_classes: int, ignore_index: int = 255, codebook: str = "random",
                 noise_std: float = 0.03, scale: float = 1.0,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """The noised label channel ``scale * (v[y] + e)``, shape (B, 1, H, W), float32.

    Args:
        label: (B, H, W) integer class map.
        num_classes: K; slots are 0..K with K for ignore.
        ignore_index: the label's ignore value.
        codebook: ``random`` (fresh N(0, 1) codes per image and call) or ``fixed``.
        noise_std: sigma of the per-pixel Gaussian noise.
        scale: multiplier bringing the channel to the image's range.
        generator: torch RNG for the codes and the noise (default: the global one).
    """
    if codebook not in CODEBOOKS:
        raise ValueError(f"codebook: expected one of {CODEBOOKS}, got {codebook!r}")
    b, h, w = label.shape
    slots = label_slots(label, num_classes, ignore_index).reshape(b, h * w)
    if codebook == "random":
        codes = torch.randn(b, num_classes + 1, generator=generator, device=label.device)
    else:
        codes = fixed_codes(num_classes + 1).to(label.device).expand(b, -1)
    m = codes.gather(1, slots).reshape(b, 1, h, w)
    if noise_std > 0:
        m = m + noise_std * torch.randn(m.shape, generator=generator, device=label.device)
    return scale * m


def teacher_input(image: torch.Tensor, label: torch.Tensor, num_classes: int, ignore_index: int,
                  codebook: str | None, noise_std: float, scale: float,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """``concat(image, label channel)``; ``codebook=None`` gives an all-zero label channel."""
    if codebook is None:
        channel = torch.zeros_like(image[:, :1])
    else:
        channel = encode_label(label, num_classes, ignore_index, codebook, noise_std, scale,
                               generator).to(image.dtype)
    return torch.cat([image, channel], 1)


# What the teacher's label channel holds: while it trains (lad), as the student's teacher (distill),
# and the three ways it is evaluated (a random or the fixed code book, or an all-zero channel)
Channel = Literal["training", "distill", "random", "fixed", "zero"]


@dataclass(frozen=True)
class LabelChannel:
    """The LAD teacher's fourth input channel, built from params in this one place for training,
    distillation and evaluation: a code book (None: all zeros), its pixel noise and the scale."""

    codebook: Codebook | None
    noise_std: float
    scale: float

    @classmethod
    def of(cls, kind: Channel, lad: LADConfig, distill: DistillConfig) -> LabelChannel:
        """``training``: lad's code book and noise; ``distill``: what the distilling teacher sees;
        ``random`` / ``fixed``: that code book with the noise of its use; ``zero``: an empty channel."""
        book, noise = {"training": (lad.codebook, lad.noise_std), "distill": (distill.codebook, distill.noise_std),
                       "random": ("random", lad.noise_std), "fixed": ("fixed", distill.noise_std),
                       "zero": (None, 0.0)}[kind]
        return cls(book, noise, lad.scale)

    def __call__(self, image: torch.Tensor, label: torch.Tensor, num_classes: int, ignore_index: int,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """``concat(image, channel)``: the teacher's input."""
        return teacher_input(image, label, num_classes, ignore_index, self.codebook, self.noise_std, self.scale,
                             generator)
