"""The Label Noising Module (LNM) of LAD.

The label map becomes one extra input channel for the teacher: every class slot (the ignore value
gets its own slot ``K``) is replaced by a scalar code, pixel noise is added and the channel is
scaled to the image's numeric range. Vectorised: one (B, K+1) code matrix gathered with the label.
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.losses import DISTANCES, seg_terms

CODEBOOKS = ("random", "fixed")


def fixed_codes(num_slots: int) -> torch.Tensor:
    """Evenly spaced codes of the official code: ``(k - floor(n/2)) / 10`` for k in 0..n-1."""
    return (torch.arange(num_slots, dtype=torch.float32) - num_slots // 2) / 10.0


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


def dual_path_loss(model: nn.Module, image: torch.Tensor, label: torch.Tensor, num_classes: int,
                   ignore_index: int, codebook: str, noise_std: float, scale: float, w_aux: float,
                   w_cons: float, temperature: float, dual_path: bool = True,
                   distance: str = "cwd") -> dict[str, torch.Tensor]:
    """LAD teacher loss: two independently noised label paths, CE on both, symmetric stop-grad CWD.

    ``L = sum_i [CE(z_i, y) + w_aux CE(a_i, y)] + w_cons [CWD(z1, sg(z2)) + CWD(z2, sg(z1))]``.
    With ``dual_path=False`` a single path and no consistency term (the ablation); ``distance``
    (a key of ``losses.DISTANCES``) swaps CWD for pixel-wise KL (the other ablation).
    Returns the total as ``loss`` plus its terms (detached) for logging.
    """
    outs = []
    for _ in range(2 if dual_path else 1):
        x = teacher_input(image, label, num_classes, ignore_index, codebook, noise_std, scale)
        outs.append(model(x))
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
