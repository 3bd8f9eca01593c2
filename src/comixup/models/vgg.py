"""VGG-11 with batch normalization for 1-channel spectrograms (recipes 6).

VGG-11, configuration "A" of Simonyan & Zisserman ("Very Deep Convolutional Networks for
Large-Scale Image Recognition", ICLR 2015), with batch normalization after every convolution
(Ioffe & Szegedy, ICML 2015), as used for the Google speech commands experiment of mixup (Zhang
et al., ICLR 2018; 160x100 log-spectrograms, 30 classes). The definition chosen here (recipes 6):

* convolutions 3x3, padding 1, each followed by BN and ReLU, widths
  ``64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512`` (``M`` = 2x2 max pool, stride 2);
* ``in_channels`` input channels (default 1, a spectrogram);
* the head is the "CIFAR" one (one linear layer on 512 globally pooled features, as in the
  common CIFAR VGG ports) rather than ImageNet's three fully connected layers on a 7x7 map.
  Global average pooling *replaces the fifth max pool* so that the head is exactly pool +
  linear on the last BN-ReLU map, as for a class activation map (Zhou et al., CVPR 2016), and
  any input size works (a 160x100 input gives a 512 x 10 x 6 feature map).

9,240,222 parameters for 1 input channel and 30 classes. Mixing depths: 0 (input) and 1-4
(after the ``d``-th max pool).
"""

from __future__ import annotations

import torch
from torch import nn

from .base import MixableNet, init_weights

__all__ = ["VGG", "VGG11_CONFIG", "vgg11"]

#: Stages of VGG-11 (configuration "A"): convolution widths; a 2x2 max pool ends every stage
#: but the last, whose output is globally average pooled by the head instead.
VGG11_CONFIG = ((64,), (128,), (256, 256), (512, 512), (512, 512))


class VGG(MixableNet):
    """VGG with batch normalization and a global-average-pooled linear head (recipes 6).

    Args:
        config: convolution widths per stage (:data:`VGG11_CONFIG` for VGG-11).
        num_classes: number of outputs.
        in_channels: input channels (1 for spectrograms).

    Depth ``d`` of :meth:`forward` is the input (0) or the output of stage ``d`` (after its
    max pool, 1 to ``len(config) - 1``); :meth:`features` is the last BN-ReLU map.
    """

    def __init__(self, config=VGG11_CONFIG, num_classes: int = 30, *, in_channels: int = 1):
        super().__init__(num_classes, in_channels)
        stages = []
        c = in_channels
        for i, widths in enumerate(config):
            layers: list[nn.Module] = []
            for w in widths:
                layers += [nn.Conv2d(c, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
                c = w
            if i < len(config) - 1:
                layers.append(nn.MaxPool2d(2, 2))
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)
        self.num_stages = len(stages)
        self.classifier = nn.Linear(c, num_classes)
        init_weights(self)

    def _stage(self, index: int, h: torch.Tensor) -> torch.Tensor:
        return self.stages[index](h)


def vgg11(num_classes: int, *, in_channels: int = 1) -> VGG:
    """VGG-11 with batch norm, 1 input channel by default, global-average-pooled linear head
    (Simonyan & Zisserman, ICLR 2015; recipes 6)."""
    return VGG(VGG11_CONFIG, num_classes, in_channels=in_channels)
