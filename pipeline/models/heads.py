"""Decode heads: DeepLabV3 (ASPP), PSPNet (pyramid pooling), FCN, OCRNet and STDC.

A head maps the backbone's feature maps ``[c2, c3, c4]`` (strides 8, 16, 32 without dilation) to
``{"out": logits, "feat": embedding}`` at the resolution of its input; ``feat`` is the last hidden
map before the classifier (``head_channels`` wide), which feature distillation (CWD on features,
CIRKD) compares between teacher and student. Upsampling to the label size is left to the loss and
the predictor.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn_relu(cin: int, cout: int, k: int = 3, dilation: int = 1, stride: int = 1) -> nn.Sequential:
    pad = dilation * (k // 2)
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, padding=pad, dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class FCNHead(nn.Module):
    """3x3 conv-BN-ReLU, dropout, 1x1 classifier (also the auxiliary head)."""

    def __init__(self, in_channels: int, channels: int, num_classes: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.block = conv_bn_relu(in_channels, channels)
        self.cls = nn.Sequential(nn.Dropout2d(dropout), nn.Conv2d(channels, num_classes, 1))

    def classify(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feat = self.block(x)
        return {"out": self.cls(feat), "feat": feat}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cls(self.block(x))


class FCN(nn.Module):
    """FCN decode head on the last feature map."""

    def __init__(self, in_channels: list[int], channels: int, num_classes: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.head = FCNHead(in_channels[-1], channels, num_classes, dropout)

    def forward(self, feats: list[torch.Tensor], regions: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        return self.head.classify(feats[-1])


class ASPPHead(nn.Module):
    """DeepLabV3: atrous spatial pyramid pooling (1x1, three dilated 3x3, image pooling)."""

    def __init__(self, in_channels: list[int], channels: int, num_classes: int, dropout: float = 0.1,
                 rates: tuple[int, ...] = (12, 24, 36)) -> None:
        super().__init__()
        cin = in_channels[-1]
        self.branches = nn.ModuleList([conv_bn_relu(cin, channels, 1)] +
                                      [conv_bn_relu(cin, channels, 3, r) for r in rates])
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, channels, 1, bias=False),
                                  nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
        self.project = conv_bn_relu(channels * (len(rates) + 2), channels, 1)
        self.head = FCNHead(channels, channels, num_classes, dropout)

    def forward(self, feats: list[torch.Tensor], regions: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        x = feats[-1]
        pooled = self.pool(x).expand(-1, -1, *x.shape[2:])
        return self.head.classify(self.project(torch.cat([b(x) for b in self.branches] + [pooled], 1)))


class PSPHead(nn.Module):
    """PSPNet: average pooling at several grid sizes, upsampled and concatenated with the input."""

    def __init__(self, in_channels: list[int], channels: int, num_classes: int, dropout: float = 0.1,
                 bins: tuple[int, ...] = (1, 2, 3, 6)) -> None:
        super().__init__()
        cin = in_channels[-1]
        reduced = max(channels // len(bins), 8)
        self.stages = nn.ModuleList(nn.Sequential(nn.AdaptiveAvgPool2d(b), conv_bn_relu(cin, reduced, 1))
                                    for b in bins)
        self.head = FCNHead(cin + reduced * len(bins), channels, num_classes, dropout)

    def forward(self, feats: list[torch.Tensor], regions: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        x = feats[-1]
        size = x.shape[2:]
        pyramid = [F.interpolate(s(x), size, mode="bilinear", align_corners=False) for s in self.stages]
        return self.head.classify(torch.cat([x] + pyramid, 1))


class OCRHead(nn.Module):
    """OCRNet (Yuan et al., ECCV 2020): object-contextual representations.

    The auxiliary head's logits on the stage-3 features are the soft object regions (as
    mmsegmentation's cascade: FCN on stage 3, OCR on stage 4). Each region's representation is the
    region-weighted mean of the pixel features; every pixel attends over the K region
    representations, and the context it gathers is fused with its own feature before the classifier.
    """

    needs_regions = True

    def __init__(self, in_channels: list[int], channels: int, num_classes: int, dropout: float = 0.1,
                 key_channels: int | None = None) -> None:
        super().__init__()
        kc = key_channels or max(channels // 2, 8)
        self.bottleneck = conv_bn_relu(in_channels[-1], channels)
        self.query = nn.Sequential(conv_bn_relu(channels, kc, 1), conv_bn_relu(kc, kc, 1))
        self.key = nn.Sequential(conv_bn_relu(channels, kc, 1), conv_bn_relu(kc, kc, 1))
        self.value = conv_bn_relu(channels, kc, 1)
        self.up = conv_bn_relu(kc, channels, 1)
        self.fuse = conv_bn_relu(2 * channels, channels, 1)
        self.cls = nn.Sequential(nn.Dropout2d(dropout), nn.Conv2d(channels, num_classes, 1))

    def forward(self, feats: list[torch.Tensor], regions: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        if regions is None:
            raise ValueError("ocrnet needs the auxiliary head's soft object regions (aux: true)")
        x = self.bottleneck(feats[-1])
        b, c, h, w = x.shape
        if regions.shape[2:] != x.shape[2:]:
            regions = F.interpolate(regions, (h, w), mode="bilinear", align_corners=False)
        probs = regions.flatten(2).softmax(-1)  # (B, K, HW): each region a distribution over pixels
        objects = torch.einsum("bkp,bcp->bck", probs, x.flatten(2)).unsqueeze(-1)  # (B, C, K, 1)
        q = self.query(x).flatten(2)  # (B, kc, HW)
        k = self.key(objects).flatten(2)  # (B, kc, K)
        v = self.value(objects).flatten(2)  # (B, kc, K)
        attn = (torch.einsum("bcp,bck->bpk", q, k) * q.shape[1] ** -0.5).softmax(-1)
        context = self.up(torch.einsum("bpk,bck->bcp", attn, v).reshape(b, -1, h, w))
        feat = self.fuse(torch.cat([context, x], 1))
        return {"out": self.cls(feat), "feat": feat}


class AttentionRefinement(nn.Module):
    """BiSeNet/STDC attention refinement: a 3x3 conv, reweighted by its global channel attention."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = conv_bn_relu(cin, cout)
        self.attention = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cout, cout, 1, bias=False),
                                       nn.BatchNorm2d(cout), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return x * self.attention(x)


class STDCHead(nn.Module):
    """STDC-Seg (Fan et al., CVPR 2021): context path and feature fusion, plus the detail head.

    Context: attention-refined stage-4 and stage-3 features with a global-pooling context, upsampled
    step by step to stage 2 (stride 8 on an STDC backbone); a feature fusion module joins them with
    the stage-2 features (the spatial path). In training the head also returns ``detail``: boundary
    logits from the stage-2 features, supervised by the Laplacian detail target (losses.detail_loss).
    """

    def __init__(self, in_channels: list[int], channels: int, num_classes: int, dropout: float = 0.1) -> None:
        super().__init__()
        c2, c3, c4 = in_channels
        self.global_context = nn.Sequential(nn.AdaptiveAvgPool2d(1), conv_bn_relu(c4, channels, 1))
        self.arm4, self.arm3 = AttentionRefinement(c4, channels), AttentionRefinement(c3, channels)
        self.refine4, self.refine3 = conv_bn_relu(channels, channels), conv_bn_relu(channels, channels)
        self.fuse = conv_bn_relu(c2 + channels, channels, 1)
        self.fuse_attention = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, channels // 4 or 1, 1),
                                            nn.ReLU(inplace=True), nn.Conv2d(channels // 4 or 1, channels, 1),
                                            nn.Sigmoid())
        self.head = FCNHead(channels, channels, num_classes, dropout)
        self.detail = nn.Sequential(conv_bn_relu(c2, channels), nn.Conv2d(channels, 1, 1))

    def forward(self, feats: list[torch.Tensor], regions: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        f2, f3, f4 = feats
        up = lambda t, ref: F.interpolate(t, ref.shape[2:], mode="nearest")  # noqa: E731 - as STDC
        x = self.arm4(f4) + self.global_context(f4)
        x = self.refine4(up(x, f3))
        x = self.refine3(up(self.arm3(f3) + x, f2))
        fused = self.fuse(torch.cat([f2, x], 1))
        fused = fused + fused * self.fuse_attention(fused)
        out = self.head.classify(fused)
        if self.training:
            out["detail"] = self.detail(f2)
        return out
