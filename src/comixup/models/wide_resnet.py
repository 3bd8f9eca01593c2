"""Wide ResNet WRN16-8 for CIFAR (recipes 6).

Wide Residual Networks (Zagoruyko & Komodakis, BMVC 2016) in the form of the Manifold Mixup
(Verma et al., ICML 2019) and Puzzle Mix (Kim et al., ICML 2020) code that Co-Mixup (Kim et al.,
ICLR 2021) trains:

* a 3x3 stem convolution with 16 filters;
* three stages of ``(depth - 4) / 6`` pre-activation wide basic blocks
  (BN-ReLU-conv3x3-dropout-BN-ReLU-conv3x3), widths ``16k, 32k, 64k`` (128/256/512 for k = 8),
  the stride-2 downsampling on the second convolution of the first block of stages 2 and 3;
* a 1x1 projection shortcut of the block input when the shape changes;
* every convolution has a bias (as in that code; this is what makes the count exact);
* a final BN-ReLU, global average pooling (the 8x8 pool of the reference code, adaptive) and a
  linear classifier.

WRN16-8 has 11,012,036 parameters for 100 classes (recipes 6). Mixing depths: 0 (input), 1 (after
``layer1``), 2 (after ``layer2``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_int, check_number
from .base import MixableNet, init_weights, make_stages

__all__ = ["WideBasic", "WideResNet", "wrn16_8"]


class WideBasic(nn.Module):
    """Wide pre-activation basic block (Zagoruyko & Komodakis, BMVC 2016).

    ``conv2(relu(bn2(dropout(conv1(relu(bn1(x))))))) + shortcut(x)``, with the stride on
    ``conv2`` and a biased 1x1 projection shortcut of ``x`` when the shape changes.
    """

    def __init__(self, in_planes: int, planes: int, dropout: float, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, padding=1, bias=True)
        self.dropout = nn.Dropout(p=dropout)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=True)
        self.shortcut = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride, bias=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The residual branch plus the shortcut."""
        out = self.dropout(self.conv1(F.relu(self.bn1(x))))
        out = self.conv2(F.relu(self.bn2(out)))
        return out + (self.shortcut(x) if self.shortcut is not None else x)


class WideResNet(MixableNet):
    """Wide ResNet WRN-depth-k for small images (Zagoruyko & Komodakis, BMVC 2016; recipes 6).

    Args:
        depth: total depth, ``6n + 4`` (16 for WRN16-8).
        widen_factor: ``k`` (8 for WRN16-8).
        num_classes: number of outputs.
        in_channels: input channels (3 for RGB).
        dropout: dropout probability between the two convolutions of every block (0 = off).

    Depth ``d`` of :meth:`forward` is the input (0) or the output of ``layer{d}`` (1-2);
    :meth:`features` is the output of the final BN-ReLU.
    """

    num_stages = 3

    def __init__(
        self,
        depth: int = 16,
        widen_factor: int = 8,
        num_classes: int = 10,
        *,
        in_channels: int = 3,
        dropout: float = 0.0,
    ):
        super().__init__(num_classes, in_channels)
        check_int("widen_factor", widen_factor, 1)
        dropout = check_number("dropout", dropout, low=0.0, high=1.0, high_open=True)
        if (depth - 4) % 6 != 0 or depth < 10:
            raise ValueError(f"depth must be 6n + 4 with n >= 1, got {depth}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=True)
        self.layer1, self.layer2, self.layer3 = make_stages(
            WideBasic, widths[0], widths[1:], (n, n, n), (1, 2, 2), dropout
        )
        self.bn = nn.BatchNorm2d(widths[3])
        self.classifier = nn.Linear(widths[3], num_classes)
        init_weights(self, conv=lambda weight: nn.init.xavier_uniform_(weight, gain=math.sqrt(2)))

    def _stage(self, index: int, h: torch.Tensor) -> torch.Tensor:
        if index == 0:
            return self.layer1(self.conv1(h))
        if index == 1:
            return self.layer2(h)
        return F.relu(self.bn(self.layer3(h)))


def wrn16_8(num_classes: int, *, in_channels: int = 3, dropout: float = 0.0) -> WideResNet:
    """WRN16-8 (depth 16, widen factor 8, optional dropout; recipes 6): 11,012,036 parameters for
    100 classes."""
    return WideResNet(16, 8, num_classes, in_channels=in_channels, dropout=dropout)
