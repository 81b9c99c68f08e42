"""Segmentors from timm backbones and a registry of decode heads: ``create_segmentor(NetworkSpec(...))``."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import timm
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.config import Arch, LabelInit, check_backbone
from pipeline.models.heads import FCN, ASPPHead, FCNHead, OCRHead, PSPHead, STDCHead
from pipeline.models.stdc import STDC_LAYERS, STDCNet

if TYPE_CHECKING:
    from pipeline.config import ModelConfig

# name -> factory(in_channels of [c2, c3, c4], channels, num_classes, dropout, aspp_rates) -> nn.Module
HEADS: dict[Arch, Callable[..., nn.Module]] = {
    "deeplabv3": lambda cin, ch, k, p, rates: ASPPHead(cin, ch, k, p, tuple(rates)),
    "pspnet": lambda cin, ch, k, p, rates: PSPHead(cin, ch, k, p),
    "fcn": lambda cin, ch, k, p, rates: FCN(cin, ch, k, p),
    "ocrnet": lambda cin, ch, k, p, rates: OCRHead(cin, ch, k, p),
    "stdc": lambda cin, ch, k, p, rates: STDCHead(cin, ch, k, p),
}


class Segmentor(nn.Module):
    """Backbone + decode head + auxiliary FCN head on the second-to-last feature stage.

    ``forward`` returns ``{"out": logits, "feat": embedding, "backbone": the backbone's last map, "aux":
    aux_logits}`` at feature resolution (``aux``, and STDC's ``detail``, only in training mode); :meth:`predict` returns
    logits upsampled to the input size. OCRNet reads its soft object regions from the auxiliary head,
    so there the auxiliary head also runs at inference.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, aux_head: nn.Module | None, spec: NetworkSpec,
                 feature_channels: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.backbone, self.head, self.aux_head = backbone, head, aux_head
        self.spec = spec  # enough to rebuild the network (checkpoints hold spec.to_dict())
        self.feature_channels = feature_channels  # widths of the backbone's maps [c2, c3, c4]

    def forward(self, x: torch.Tensor, with_aux: bool = False) -> dict[str, torch.Tensor]:
        """``with_aux``: the auxiliary logits in eval mode too (a frozen teacher's, for DIST)."""
        feats = self.backbone(x)  # [c2, c3, c4]
        regions = getattr(self.head, "needs_regions", False)
        wanted = self.training or with_aux
        aux = self.aux_head(feats[-2]) if self.aux_head is not None and (wanted or regions) else None
        out = self.head(feats, aux if regions else None)
        out["backbone"] = feats[-1]  # the backbone's last map (Af-DCD distils it)
        if wanted and aux is not None:
            out["aux"] = aux
        return out

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self(x)["out"], x.shape[2:], mode="bilinear", align_corners=False)


LABEL_INITS: tuple[LabelInit, ...] = ("official", "timm")


def widen_first_conv(body: nn.Module, in_chans: int, std: float = 0.1) -> None:
    """Give the first 3-channel convolution ``in_chans`` inputs: RGB weights kept, the new channels
    drawn from N(0, std^2) (the official LAD teacher's label channel; it uses std 0.1)."""
    name, conv = next((n, m) for n, m in body.named_modules() if isinstance(m, nn.Conv2d) and m.in_channels == 3)
    wide = nn.Conv2d(in_chans, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
                     conv.groups, conv.bias is not None, padding_mode=conv.padding_mode)
    with torch.no_grad():
        wide.weight.normal_(0, std)
        wide.weight[:, :3] = conv.weight
        if conv.bias is not None:
            wide.bias.copy_(conv.bias)
    parent = body.get_submodule(name.rpartition(".")[0]) if "." in name else body
    setattr(parent, name.rpartition(".")[2], wide)


def create_body(backbone: str, in_chans: int, *, output_stride: int, pretrained: bool, pretrained_path: str | None,
                label_init: str, channels: list[int] | None = None, stem_width: int | None = None) -> nn.Module:
    """The feature extractor (last three stages); timm's ImageNet weights from the hub or a local file.

    With ``in_chans=4`` and pretrained weights, ``label_init`` decides the extra channel's first
    convolution: ``official`` (RGB weights copied, extra channel small random) or ``timm`` (timm's
    own adaptation, which tiles the RGB weights). ``channels`` (per stage) and ``stem_width`` narrow a
    timm ResNet (``None``: the backbone's own widths), e.g. a quarter-width ResNet-18-D for CPUs.
    """
    if backbone in STDC_LAYERS:
        if channels or stem_width:
            raise ValueError(f"backbone {backbone!r}: STDC has fixed widths; channels/stem_width narrow timm ResNets")
        if output_stride != 32 or pretrained:
            raise ValueError(f"backbone {backbone!r}: STDC is built here without ImageNet weights or dilation; "
                             f"set output_stride: 32 and pretrained: false (got {output_stride}, {pretrained})")
        return STDCNet(STDC_LAYERS[backbone], in_chans)
    kwargs: dict[str, Any] = dict(features_only=True, out_indices=(-3, -2, -1))
    if output_stride != 32:
        kwargs["output_stride"] = output_stride
    if pretrained_path:
        kwargs["pretrained_cfg_overlay"] = dict(file=str(pretrained_path))  # offline: timm reads this file
    widths = {k: v for k, v in (("channels", tuple(channels or ())), ("stem_width", stem_width)) if v}
    if widths and pretrained:
        raise ValueError(f"backbone {backbone!r}: {sorted(widths)} change the network's widths, so ImageNet weights "
                         "cannot load; set pretrained: false or leave channels/stem_width at their defaults")
    kwargs.update(widths)
    widen = pretrained and in_chans > 3 and label_init == "official"
    try:
        body = timm.create_model(backbone, pretrained=pretrained, in_chans=3 if widen else in_chans, **kwargs)
    except TypeError as err:
        if not widths:
            raise
        raise ValueError(f"backbone {backbone!r} does not take {sorted(widths)} (timm's ResNets do): "
                         f"{str(err).splitlines()[0]}") from err
    except Exception as err:  # noqa: BLE001 - timm raises many kinds for an offline hub or a bad file
        if not pretrained:
            raise
        source = f"the file {pretrained_path}" if pretrained_path else "the Hugging Face hub (needs internet)"
        raise RuntimeError(f"pretrained: true could not load ImageNet weights for {backbone!r} from {source} "
                           f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}). Offline, "
                           "download timm's weights elsewhere and set pretrained_path to the file, "
                           "or set pretrained: false.") from err
    if widen:
        widen_first_conv(body, in_chans)
    return body


@dataclass(frozen=True)
class NetworkSpec:
    """A network, whole: its ``model.*`` section's shape (pipeline/config.py), its classes and its input
    channels. Checkpoints, ONNX files and MLflow models store it as plain data (:meth:`to_dict`, loaded with
    ``weights_only=True``); every spec written before loads (:meth:`from_dict`).

    Attributes:
        arch: decode head, a key of :data:`HEADS`.
        backbone: timm model name (must support ``features_only``), or ``stdc1`` / ``stdc2``.
        num_classes: output classes.
        in_chans: 3 for images, 4 for the LAD teacher (image + label channel).
        output_stride: 8 or 16 (dilated last stages) or 32 (STDC: 32 only).
        head_channels: width of the decode head.
        aux_channels: width of the auxiliary head.
        dropout: dropout before the classifiers.
        aspp_rates: ASPP dilations (DeepLabV3 at stride 8: 12, 24, 36).
        aux: build the auxiliary head.
        channels: widths of a timm ResNet's four stages (None: its own).
        stem_width: width of a timm ResNet's stem (None: its own).
    """

    arch: str
    backbone: str
    num_classes: int
    in_chans: int = 3
    output_stride: int = 8
    head_channels: int = 256
    aux_channels: int = 64
    dropout: float = 0.1
    aspp_rates: tuple[int, ...] = (12, 24, 36)
    aux: bool = True
    channels: tuple[int, ...] | None = None
    stem_width: int | None = None

    def __post_init__(self) -> None:  # one form for equal networks: lists as tuples, "no narrowing" as None
        object.__setattr__(self, "aspp_rates", tuple(self.aspp_rates))
        object.__setattr__(self, "channels", tuple(self.channels) if self.channels else None)
        object.__setattr__(self, "stem_width", self.stem_width or None)

    @classmethod
    def from_config(cls, net: ModelConfig, num_classes: int, in_chans: int = 3) -> NetworkSpec:
        """The network a params.yaml ``model.*`` section describes, for ``num_classes`` and ``in_chans``."""
        return cls(net.arch, net.backbone, num_classes, in_chans, net.output_stride, net.head_channels,
                   net.aux_channels, net.dropout, tuple(net.aspp_rates), True, net.channels or None, net.stem_width)

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> NetworkSpec:
        """From :meth:`to_dict`'s plain data (``pretrained``, which older checkpoints hold, is no part of it)."""
        return cls(**{k: v for k, v in spec.items() if k != "pretrained"})

    def to_dict(self) -> dict[str, Any]:
        """Plain data, as every checkpoint holds it (the keys and types they always had)."""
        return dict(arch=self.arch, backbone=self.backbone, num_classes=self.num_classes, in_chans=self.in_chans,
                    output_stride=self.output_stride, head_channels=self.head_channels,
                    aux_channels=self.aux_channels, pretrained=False, dropout=self.dropout,
                    aspp_rates=list(self.aspp_rates), aux=self.aux,
                    channels=list(self.channels) if self.channels else None, stem_width=self.stem_width)


@dataclass(frozen=True)
class Pretrained:
    """Start from timm's ImageNet weights: from the hub, or a local file (``path``: offline clusters);
    ``label_init``: ``official`` | ``timm``, how they meet the LAD teacher's 4th input channel."""

    path: str | None = None
    label_init: str = "official"

    @classmethod
    def from_config(cls, net: ModelConfig) -> Pretrained | None:
        return cls(net.pretrained_path or None, net.label_init) if net.pretrained else None


def create_segmentor(spec: NetworkSpec, pretrained: Pretrained | None = None) -> Segmentor:
    """Build the network ``spec`` describes, from random weights or ``pretrained`` ones; the stages build
    theirs from params.yaml with :func:`segmentor_from_config`."""
    if spec.arch not in HEADS:
        raise ValueError(f"arch: expected one of {sorted(HEADS)}, got {spec.arch!r}")
    label_init = pretrained.label_init if pretrained else "official"
    if label_init not in LABEL_INITS:
        raise ValueError(f"label_init: expected one of {LABEL_INITS}, got {label_init!r}")
    try:
        check_backbone(spec.backbone)
    except ValueError as err:
        raise ValueError(f"backbone: {err}") from None
    body = create_body(spec.backbone, spec.in_chans, output_stride=spec.output_stride,
                       pretrained=pretrained is not None,
                       pretrained_path=pretrained.path if pretrained else None, label_init=label_init,
                       channels=list(spec.channels) if spec.channels else None, stem_width=spec.stem_width)
    channels = body.channels if isinstance(body, STDCNet) else body.feature_info.channels()
    head = HEADS[spec.arch](channels, spec.head_channels, spec.num_classes, spec.dropout, spec.aspp_rates)
    if getattr(head, "needs_regions", False) and not spec.aux:
        raise ValueError(f"arch {spec.arch!r} needs the auxiliary head (its soft object regions); aux must be true")
    aux_head = FCNHead(channels[-2], spec.aux_channels, spec.num_classes, spec.dropout) if spec.aux else None
    return Segmentor(body, head, aux_head, spec, tuple(channels))


def segmentor_from_config(net: ModelConfig, num_classes: int, in_chans: int = 3) -> Segmentor:
    """The network a params.yaml ``model.*`` section describes, for ``num_classes`` and ``in_chans`` inputs."""
    return create_segmentor(NetworkSpec.from_config(net, num_classes, in_chans), Pretrained.from_config(net))


def segmentor_from_spec(spec: dict[str, Any] | NetworkSpec) -> Segmentor:
    """Rebuild a network saved with its spec (plain data or a :class:`NetworkSpec`; weights loaded apart)."""
    return create_segmentor(spec if isinstance(spec, NetworkSpec) else NetworkSpec.from_dict(spec))


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_flops(model: Segmentor, size: int) -> int:
    """Floating point operations (2 x multiply-adds) of one inference forward at ``size`` x ``size``."""
    from torch.utils.flop_counter import FlopCounterMode

    twin = copy.deepcopy(model).to("meta").eval()  # counted from shapes on the meta device: nothing is computed
    x = torch.zeros(1, model.spec.in_chans, size, size, device="meta")
    with FlopCounterMode(display=False) as counter:
        twin.predict(x)
    return int(counter.get_total_flops())
