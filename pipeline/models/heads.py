"""Decode heads: DeepLabV3 (ASPP), PSPNet (pyramid pooling) and FCN.

Each head maps the last backbone feature map (B, C, h, w) to class logits (B, K, h, w) at the
feature resolution; upsampling to the label size is left to the loss and the predictor.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn_relu(cin: int, cout: int, k: int = 3, dilation: int = 1) -> nn.Sequential:
    pad = dilation * (k // 2)
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=pad, dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class FCNHead(nn.Module):
    """3x3 conv-BN-ReLU, dropout, 1x1 classifier (also the auxiliary head)."""

    def __init__(self, in_channels: int, channels: int, num_classes: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.block = conv_bn_relu(in_channels, channels)
        self.cls = nn.Sequential(nn.Dropout2d(dropout), nn.Conv2d(channels, num_classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cls(self.block(x))


class ASPPHead(nn.Module):
    """DeepLabV3: atrous spatial pyramid pooling (1x1, three dilated 3x3, image pooling)."""

    def __init__(self, in_channels: int, channels: int, num_classes: int, dropout: float = 0.1,
                 rates: tuple[int, ...] = (12, 24, 36)) -> None:
        super().__init__()
        self.branches = nn.ModuleList([conv_bn_relu(in_channels, channels, 1)] +
                                      [conv_bn_relu(in_channels, channels, 3, r) for r in rates])
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(in_channels, channels, 1, bias=False),
                                  nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
        self.project = conv_bn_relu(channels * (len(rates) + 2), channels, 1)
        self.head = FCNHead(channels, channels, num_classes, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.pool(x).expand(-1, -1, *x.shape[2:])
        return self.head(self.project(torch.cat([b(x) for b in self.branches] + [pooled], 1)))


class PSPHead(nn.Module):
    """PSPNet: average pooling at several grid sizes, upsampled and concatenated with the input."""

    def __init__(self, in_channels: int, channels: int, num_classes: int, dropout: float = 0.1,
                 bins: tuple[int, ...] = (1, 2, 3, 6)) -> None:
        super().__init__()
        reduced = max(channels // len(bins), 8)
        self.stages = nn.ModuleList(nn.Sequential(nn.AdaptiveAvgPool2d(b), conv_bn_relu(in_channels, reduced, 1))
                                    for b in bins)
        self.head = FCNHead(in_channels + reduced * len(bins), channels, num_classes, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[2:]
        pyramid = [F.interpolate(s(x), size, mode="bilinear", align_corners=False) for s in self.stages]
        return self.head(torch.cat([x] + pyramid, 1))
