"""ResNet-50 for ImageNet (recipes 6).

Deep residual networks (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016)
with bottleneck blocks ``[3, 4, 6, 3]``, written to match torchvision's ``resnet50`` (the
"ResNet v1.5" variant, stride 2 on the 3x3 convolution of the bottleneck) parameter for
parameter and name for name, so torchvision checkpoints load (the final layer is called
``classifier`` here instead of ``fc``; rename that key). The Puzzle Mix and Co-Mixup ImageNet
experiments train this network. 25,557,032 parameters for 1000 classes (recipes 6).

Initialization, as both ImageNet reference code bases (Co-Mixup's ``comix-imagenet`` and Puzzle
Mix's ``imagenet_fast``) do it after building the network: Kaiming-normal convolutions (fan-out),
BatchNorm weight 1 and bias 0, except the last BatchNorm of every bottleneck (``bn3``), whose
weight starts at 0 so that each residual block starts as the identity (the "zero-gamma" of Goyal
et al., 2017); the classifier's weight is drawn from N(0, 0.01^2) and its bias keeps PyTorch's
default uniform initialization (neither reference touches it).

Mixing depths: 0 (input), 1 (after ``layer1``), 2 (after ``layer2``), 3 (after ``layer3``).
"""

from __future__ import annotations

import torch
from torch import nn

from .base import MixableNet, init_weights, make_stages

__all__ = ["Bottleneck", "ResNet", "resnet50"]


class Bottleneck(nn.Module):
    """ResNet bottleneck block (He et al., CVPR 2016): 1x1, 3x3 (strided), 1x1 (x4 width)."""

    expansion = 4

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x)))))))) + shortcut(x))``."""
        identity = self.downsample(x) if self.downsample is not None else x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(MixableNet):
    """ImageNet ResNet with bottleneck blocks (He et al., CVPR 2016; recipes 6).

    Args:
        layers: blocks per stage (``[3, 4, 6, 3]`` for ResNet-50).
        num_classes: number of outputs.
        in_channels: input channels (3 for RGB).

    The stem is a 7x7 stride-2 convolution, BN, ReLU and a 3x3 stride-2 max pool. The weights
    are initialized as the ImageNet references do (module docstring): zero weight on every
    bottleneck's last BatchNorm, classifier weight from N(0, 0.01^2). Depth ``d``
    of :meth:`forward` is the input (0) or the output of ``layer{d}`` (1-3); :meth:`features` is
    the output of ``layer4`` (which ends in a ReLU).
    """

    num_stages = 4

    def __init__(self, layers=(3, 4, 6, 3), num_classes: int = 1000, *, in_channels: int = 3):
        super().__init__(num_classes, in_channels)
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1, self.layer2, self.layer3, self.layer4 = make_stages(
            Bottleneck, 64, (64, 128, 256, 512), layers, (1, 2, 2, 2), projection=True
        )
        self.classifier = nn.Linear(512 * Bottleneck.expansion, num_classes)
        init_weights(self)
        for m in self.modules():
            if isinstance(m, Bottleneck):
                nn.init.zeros_(m.bn3.weight)  # each residual branch starts at zero
        nn.init.normal_(self.classifier.weight, 0.0, 0.01)

    def _stage(self, index: int, h: torch.Tensor) -> torch.Tensor:
        if index == 0:
            return self.layer1(self.maxpool(self.relu(self.bn1(self.conv1(h)))))
        return (self.layer2, self.layer3, self.layer4)[index - 1](h)


def resnet50(num_classes: int, *, in_channels: int = 3) -> ResNet:
    """ResNet-50 (bottlenecks ``[3, 4, 6, 3]``; recipes 6): 25,557,032 parameters for 1000
    classes."""
    return ResNet((3, 4, 6, 3), num_classes, in_channels=in_channels)
