"""ResNeXt29-4-24 for CIFAR (recipes 6).

Aggregated residual transformations (Xie et al., "Aggregated Residual Transformations for Deep
Neural Networks", CVPR 2017) in the classic CIFAR form of the Manifold Mixup (Verma et al., ICML
2019) and Puzzle Mix (Kim et al., ICML 2020) code, which Co-Mixup (Kim et al., ICLR 2021) trains:

* a 3x3 stem convolution with 64 filters, BN, ReLU;
* three stages of ``(depth - 2) / 9`` bottleneck blocks (3 for depth 29), ``planes`` = 64, 128,
  256, output width ``4 * planes`` (256/512/1024); inside a block a 1x1 reduction to ``D * C``
  channels with ``D = floor(planes * base_width / 64)`` and ``C`` = cardinality, a grouped 3x3
  convolution (``C`` groups, carrying the stride-2 downsampling of stages 2 and 3), a 1x1
  expansion, each followed by BN (and ReLU except the last); ReLU after the addition;
* a 1x1 convolution + BN projection shortcut when the shape changes;
* global average pooling (the 8x8 pool of the reference code, adaptive) and a linear classifier.

ResNeXt29-4-24 (cardinality 4, base width 24) has 4,937,252 parameters for 100 classes
(recipes 6). Mixing depths: 0 (input), 1 (after ``stage_1``), 2 (after ``stage_2``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_int
from .base import MixableNet, init_weights, make_stages

__all__ = ["CifarResNeXt", "ResNeXtBottleneck", "resnext29_4_24"]


class ResNeXtBottleneck(nn.Module):
    """ResNeXt bottleneck block (Xie et al., CVPR 2017), type C (grouped convolution)."""

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        cardinality: int,
        base_width: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
    ):
        super().__init__()
        d = (planes * base_width) // 64
        dc = d * cardinality
        self.conv_reduce = nn.Conv2d(inplanes, dc, 1, bias=False)
        self.bn_reduce = nn.BatchNorm2d(dc)
        self.conv_conv = nn.Conv2d(
            dc, dc, 3, stride=stride, padding=1, groups=cardinality, bias=False
        )
        self.bn = nn.BatchNorm2d(dc)
        self.conv_expand = nn.Conv2d(dc, planes * self.expansion, 1, bias=False)
        self.bn_expand = nn.BatchNorm2d(planes * self.expansion)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``relu(shortcut(x) + bn(expand(relu(bn(group_conv(relu(bn(reduce(x)))))))))``."""
        out = F.relu(self.bn_reduce(self.conv_reduce(x)))
        out = F.relu(self.bn(self.conv_conv(out)))
        out = self.bn_expand(self.conv_expand(out))
        residual = self.downsample(x) if self.downsample is not None else x
        return F.relu(residual + out)


class CifarResNeXt(MixableNet):
    """ResNeXt for small images (Xie et al., CVPR 2017; recipes 6).

    Args:
        depth: ``9n + 2`` (29 for three blocks per stage).
        cardinality: number of groups ``C``.
        base_width: width ``D`` per group at ``planes = 64``.
        num_classes: number of outputs.
        in_channels: input channels (3 for RGB).

    Depth ``d`` of :meth:`forward` is the input (0) or the output of ``stage_{d}`` (1-2);
    :meth:`features` is the output of ``stage_3`` (which ends in a ReLU).
    """

    num_stages = 3

    def __init__(
        self,
        depth: int = 29,
        cardinality: int = 4,
        base_width: int = 24,
        num_classes: int = 10,
        *,
        in_channels: int = 3,
    ):
        super().__init__(num_classes, in_channels)
        check_int("cardinality", cardinality, 1)
        check_int("base_width", base_width, 1)
        if (depth - 2) % 9 != 0 or depth < 11:
            raise ValueError(f"depth must be 9n + 2 with n >= 1, got {depth}")
        n = (depth - 2) // 9
        self.cardinality = cardinality
        self.base_width = base_width
        self.conv_1_3x3 = nn.Conv2d(in_channels, 64, 3, padding=1, bias=False)
        self.bn_1 = nn.BatchNorm2d(64)
        self.stage_1, self.stage_2, self.stage_3 = make_stages(
            ResNeXtBottleneck,
            64,
            (64, 128, 256),
            (n, n, n),
            (1, 2, 2),
            cardinality,
            base_width,
            projection=True,
        )
        self.classifier = nn.Linear(256 * ResNeXtBottleneck.expansion, num_classes)
        init_weights(self, linear=nn.init.kaiming_normal_)

    def _stage(self, index: int, h: torch.Tensor) -> torch.Tensor:
        if index == 0:
            return self.stage_1(F.relu(self.bn_1(self.conv_1_3x3(h))))
        return (self.stage_2, self.stage_3)[index - 1](h)


def resnext29_4_24(num_classes: int, *, in_channels: int = 3) -> CifarResNeXt:
    """ResNeXt29-4-24 (cardinality 4, base width 24; recipes 6): 4,937,252 parameters for 100
    classes."""
    return CifarResNeXt(29, 4, 24, num_classes, in_channels=in_channels)
