"""PreActResNet18 for CIFAR and Tiny-ImageNet (recipes 6).

Pre-activation ResNet (He et al., "Identity Mappings in Deep Residual Networks", ECCV 2016) in
the CIFAR form used by Manifold Mixup (Verma et al., ICML 2019), Puzzle Mix (Kim et al., ICML
2020) and Co-Mixup (Kim et al., ICLR 2021):

* a 3x3 stem convolution with ``initial_channels`` filters, stride 1 for 32x32 inputs and stride
  2 for 64x64 Tiny-ImageNet inputs (``stem_stride``), no BN-ReLU after it;
* four stages of two pre-activation basic blocks (BN-ReLU-conv3x3-BN-ReLU-conv3x3), widths
  ``initial_channels * (1, 2, 4, 8)`` (64/128/256/512 by default, 16/32/64/128 for the small
  variant), the stride-2 downsampling in the first block of stages 2-4;
* a bias-free 1x1 projection shortcut taken from the *pre-activated* input when the shape
  changes, the identity otherwise;
* no BN-ReLU after the last block, global average pooling (the 4x4 average pool of the
  reference code, adaptive so other input sizes work) and a linear classifier.

11,217,316 parameters for 100 classes and 11,268,616 for 200 (recipes 6). Manifold Mixup mixes at
depth 0 (the input), 1 (after ``layer1``) or 2 (after ``layer2``); depth 3 (after ``layer3``)
is offered too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_choice, check_int
from .base import MixableNet, init_weights, make_stages

__all__ = ["PreActBlock", "PreActResNet", "preactresnet18"]


class PreActBlock(nn.Module):
    """Pre-activation basic block (He et al., ECCV 2016): BN-ReLU-conv3x3, BN-ReLU-conv3x3.

    The shortcut is a bias-free 1x1 convolution of the pre-activated input when ``stride != 1``
    or the width changes, the identity otherwise (recipes 6).
    """

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.shortcut = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``conv2(relu(bn2(conv1(relu(bn1(x)))))) + shortcut``."""
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActResNet(MixableNet):
    """Pre-activation ResNet for small images (He et al., ECCV 2016; recipes 6).

    Args:
        num_blocks: blocks per stage, ``(2, 2, 2, 2)`` for PreActResNet18.
        num_classes: number of outputs.
        in_channels: input channels (3 for RGB).
        initial_channels: width of the stem and of the first stage (64, or 16 for the small
            variant); stage ``i`` has ``initial_channels * 2**i`` channels.
        stem_stride: 1 for 32x32 inputs (CIFAR), 2 for 64x64 inputs (Tiny-ImageNet).

    Depth ``d`` of :meth:`forward` is the input (0) or the output of ``layer{d}`` (1-3);
    :meth:`features` is the output of ``layer4`` (there is no final BN-ReLU).
    """

    num_stages = 4

    def __init__(
        self,
        num_blocks=(2, 2, 2, 2),
        num_classes: int = 10,
        *,
        in_channels: int = 3,
        initial_channels: int = 64,
        stem_stride: int = 1,
    ):
        super().__init__(num_classes, in_channels)
        check_int("initial_channels", initial_channels, 1)
        check_choice("stem_stride", stem_stride, (1, 2))
        c = initial_channels
        self.conv1 = nn.Conv2d(in_channels, c, 3, stride=stem_stride, padding=1, bias=False)
        self.layer1, self.layer2, self.layer3, self.layer4 = make_stages(
            PreActBlock, c, (c, 2 * c, 4 * c, 8 * c), num_blocks, (1, 2, 2, 2)
        )
        self.classifier = nn.Linear(8 * c * PreActBlock.expansion, num_classes)
        init_weights(self)

    def _stage(self, index: int, h: torch.Tensor) -> torch.Tensor:
        if index == 0:
            return self.layer1(self.conv1(h))
        return (self.layer2, self.layer3, self.layer4)[index - 1](h)


def preactresnet18(
    num_classes: int, *, in_channels: int = 3, initial_channels: int = 64, stem_stride: int = 1
) -> PreActResNet:
    """PreActResNet18 (blocks ``[2, 2, 2, 2]``; recipes 6): 11,217,316 parameters for 100 classes.

    ``initial_channels=16`` gives the small variant (widths 16/32/64/128); ``stem_stride=2`` the
    Tiny-ImageNet (64x64) stem.
    """
    return PreActResNet(
        (2, 2, 2, 2),
        num_classes,
        in_channels=in_channels,
        initial_channels=initial_channels,
        stem_stride=stem_stride,
    )
