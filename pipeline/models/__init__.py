"""Segmentors from timm backbones and a registry of decode heads (``create_segmentor``)."""

from __future__ import annotations

import difflib
from typing import Any, Callable

import timm
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.models.heads import ASPPHead, FCNHead, PSPHead

# name -> factory(in_channels, channels, num_classes, dropout, aspp_rates) -> nn.Module
HEADS: dict[str, Callable[..., nn.Module]] = {
    "deeplabv3": lambda cin, ch, k, p, rates: ASPPHead(cin, ch, k, p, tuple(rates)),
    "pspnet": lambda cin, ch, k, p, rates: PSPHead(cin, ch, k, p),
    "fcn": lambda cin, ch, k, p, rates: FCNHead(cin, ch, k, p),
}


def check_backbone(name: str, key: str = "backbone") -> None:
    """Raise ValueError naming ``key`` if timm does not know ``name``."""
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
        raise ValueError(f"{key}: unknown timm model {name!r} (close matches: {close or 'none'}; "
                         "see timm.list_models())")


class Segmentor(nn.Module):
    """Backbone + decode head + auxiliary FCN head on the second-to-last feature stage.

    ``forward`` returns ``{"out": logits, "aux": aux_logits}`` at feature resolution (``aux``
    only in training mode); :meth:`predict` returns logits upsampled to the input size.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, aux_head: nn.Module | None, spec: dict[str, Any]) -> None:
        super().__init__()
        self.backbone, self.head, self.aux_head = backbone, head, aux_head
        self.spec = spec  # the arguments of create_segmentor: enough to rebuild the network

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        c3, c4 = self.backbone(x)
        out = {"out": self.head(c4)}
        if self.training and self.aux_head is not None:
            out["aux"] = self.aux_head(c3)
        return out

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self(x)["out"], x.shape[2:], mode="bilinear", align_corners=False)


def create_segmentor(arch: str, backbone: str, num_classes: int, in_chans: int = 3, output_stride: int = 8,
                     head_channels: int = 256, aux_channels: int = 64, pretrained: bool = False,
                     dropout: float = 0.1, aspp_rates: tuple[int, ...] = (12, 24, 36),
                     aux: bool = True) -> Segmentor:
    """Build a segmentor by name.

    Args:
        arch: decode head, a key of :data:`HEADS`.
        backbone: timm model name (must support ``features_only``).
        num_classes: output classes.
        in_chans: 3 for images, 4 for the LAD teacher (image + label channel).
        output_stride: 8 or 16 (dilated last stages) or 32.
        head_channels: width of the decode head.
        aux_channels: width of the auxiliary head.
        pretrained: load timm's ImageNet weights.
        dropout: dropout before the classifiers.
        aspp_rates: ASPP dilations (DeepLabV3 at stride 8: 12, 24, 36).
        aux: build the auxiliary head.
    """
    if arch not in HEADS:
        raise ValueError(f"arch: expected one of {sorted(HEADS)}, got {arch!r}")
    check_backbone(backbone)
    spec = dict(arch=arch, backbone=backbone, num_classes=num_classes, in_chans=in_chans,
                output_stride=output_stride, head_channels=head_channels, aux_channels=aux_channels,
                pretrained=False, dropout=dropout, aspp_rates=list(aspp_rates), aux=aux)
    kwargs = dict(features_only=True, in_chans=in_chans, out_indices=(-2, -1))
    if output_stride != 32:
        kwargs["output_stride"] = output_stride
    try:
        body = timm.create_model(backbone, pretrained=pretrained, **kwargs)
    except Exception as err:  # noqa: BLE001 - timm raises many kinds for an offline hub
        if not pretrained:
            raise
        raise RuntimeError(f"pretrained: true could not load ImageNet weights for {backbone!r} ({type(err).__name__}: "
                           f"{err}). This needs internet access to the Hugging Face hub, or set pretrained: false.") from err
    c3, c4 = body.feature_info.channels()
    head = HEADS[arch](c4, head_channels, num_classes, dropout, aspp_rates)
    aux_head = FCNHead(c3, aux_channels, num_classes, dropout) if aux else None
    return Segmentor(body, head, aux_head, spec)


def segmentor_from_spec(spec: dict[str, Any]) -> Segmentor:
    """Rebuild a network saved with its ``spec`` (weights loaded separately)."""
    return create_segmentor(**{**spec, "pretrained": False})


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_flops(model: Segmentor, size: int) -> int:
    """Floating point operations (2 x multiply-adds) of one inference forward at ``size`` x ``size``."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    x = torch.zeros(1, model.spec["in_chans"], size, size)
    with FlopCounterMode(display=False) as counter:
        model.predict(x)
    model.train(was_training)
    return int(counter.get_total_flops())
