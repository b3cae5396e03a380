"""ShuffleNet v1 (Zhang et al., 2017), defined here because no maintained library carries it.

The paper benchmarks the "1x, g=8" variant. Layout (ShuffleNet paper, Table 1): a 3x3/2 stem with 24
channels and a 3x3/2 max-pool, then three stages of 4, 8 and 4 units whose output widths are
384, 768, 1536 for g=8, global average pooling and a 1000-way linear classifier. A unit is
1x1 group conv (bottleneck = out/4) -> BN/ReLU -> channel shuffle -> 3x3 depthwise conv -> BN ->
1x1 group conv -> BN, added to the input (stride 1) or concatenated with a 3x3/2 average pool of it
(stride 2), then ReLU. The first 1x1 conv of the network's first unit is not grouped: its 24 input
channels are too few to split. No pretrained weights exist for it in any maintained library.
"""

from __future__ import annotations

import torch
from torch import nn

STAGE_WIDTHS = {1: (144, 288, 576), 2: (200, 400, 800), 3: (240, 480, 960), 4: (272, 544, 1088), 8: (384, 768, 1536)}
STAGE_REPEATS = (4, 8, 4)
STEM_CHANNELS = 24


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    batch, channels, height, width = x.shape
    x = x.view(batch, groups, channels // groups, height, width).transpose(1, 2)
    return x.reshape(batch, channels, height, width)


def _conv_bn(in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    conv = nn.Conv2d(in_ch, out_ch, kernel, stride, padding=kernel // 2, groups=groups, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(out_ch))


class ShuffleUnit(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int, groups: int, group_first_conv: bool = True) -> None:
        super().__init__()
        self.stride = stride
        self.groups = groups
        branch_out = out_ch - in_ch if stride == 2 else out_ch
        bottleneck = out_ch // 4
        first_groups = groups if group_first_conv else 1
        self.compress = _conv_bn(in_ch, bottleneck, 1, groups=first_groups)
        self.depthwise = _conv_bn(bottleneck, bottleneck, 3, stride=stride, groups=bottleneck)
        self.expand = _conv_bn(bottleneck, branch_out, 1, groups=groups)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut_pool = nn.AvgPool2d(3, stride=2, padding=1) if stride == 2 else None
        self.shuffle_groups = first_groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.compress(x))
        out = channel_shuffle(out, self.shuffle_groups)
        out = self.expand(self.depthwise(out))
        if self.shortcut_pool is not None:
            return self.relu(torch.cat((self.shortcut_pool(x), out), dim=1))
        return self.relu(x + out)


class ShuffleNetV1(nn.Module):
    def __init__(self, groups: int = 8, num_classes: int = 1000) -> None:
        super().__init__()
        if groups not in STAGE_WIDTHS:
            raise ValueError(f"groups must be one of {sorted(STAGE_WIDTHS)}, got {groups}")
        self.stem = nn.Sequential(
            nn.Conv2d(3, STEM_CHANNELS, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(STEM_CHANNELS),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        units: list[nn.Module] = []
        in_ch = STEM_CHANNELS
        for stage, (width, repeats) in enumerate(zip(STAGE_WIDTHS[groups], STAGE_REPEATS)):
            for index in range(repeats):
                first = index == 0
                units.append(ShuffleUnit(in_ch, width, stride=2 if first else 1, groups=groups,
                                         group_first_conv=not (stage == 0 and first)))
                in_ch = width
        self.stages = nn.Sequential(*units)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(in_ch, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.stages(self.stem(x)))
        return self.classifier(torch.flatten(x, 1))


def shufflenet_v1(groups: int = 8, num_classes: int = 1000) -> ShuffleNetV1:
    return ShuffleNetV1(groups=groups, num_classes=num_classes)
