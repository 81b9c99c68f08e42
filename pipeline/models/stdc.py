"""STDC backbones (Fan et al., "Rethinking BiSeNet for real-time semantic segmentation", CVPR 2021).

Not in timm, so built here: a two-conv stem to stride 4, then three stages of Short-Term Dense
Concatenate modules to strides 8, 16 and 32. STDC1 has 2/2/2 modules per stage, STDC2 4/5/3.
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.models.heads import conv_bn_relu


class STDCModule(nn.Module):
    """Four convolutions, each half as wide as the one before (1x1, then 3x3), all concatenated.

    Widths out/2, out/4, out/8, out/8 sum to ``out``. With ``stride=2`` the first map is
    downsampled by a depthwise 3x3 conv before the second conv, and by average pooling for the
    concatenation.
    """

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        widths = [cout // 2, cout // 4, cout // 8, cout // 8]
        self.stride = stride
        self.convs = nn.ModuleList([conv_bn_relu(cin, widths[0], 1)] +
                                   [conv_bn_relu(widths[i - 1], widths[i]) for i in range(1, 4)])
        if stride == 2:
            self.down = nn.Sequential(nn.Conv2d(widths[0], widths[0], 3, 2, 1, groups=widths[0], bias=False),
                                      nn.BatchNorm2d(widths[0]))
            self.skip = nn.AvgPool2d(3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = self.convs[0](x)
        y = self.down(first) if self.stride == 2 else first
        outs = [self.skip(first) if self.stride == 2 else first]
        for conv in self.convs[1:]:
            y = conv(y)
            outs.append(y)
        return torch.cat(outs, 1)


class STDCNet(nn.Module):
    """STDC feature extractor: returns the stride-8, -16 and -32 maps (``channels`` wide)."""

    def __init__(self, layers: tuple[int, int, int], in_chans: int = 3, base: int = 64) -> None:
        super().__init__()
        self.stem = nn.Sequential(conv_bn_relu(in_chans, base // 2, 3, stride=2),
                                  conv_bn_relu(base // 2, base, 3, stride=2))
        widths, cin = (base * 4, base * 8, base * 16), base
        self.stages = nn.ModuleList()
        for n, w in zip(layers, widths):
            self.stages.append(nn.Sequential(STDCModule(cin, w, 2), *[STDCModule(w, w) for _ in range(n - 1)]))
            cin = w
        self.channels = list(widths)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x, feats = self.stem(x), []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


# name -> modules per stage; create_body builds these instead of a timm model
STDC_LAYERS: dict[str, tuple[int, int, int]] = {"stdc1": (2, 2, 2), "stdc2": (4, 5, 3)}
