"""LeNet-5 for 1-channel spectrograms (recipes 6).

LeNet-5 (LeCun et al., "Gradient-Based Learning Applied to Document Recognition", Proc. IEEE
1998) in its common modern form (ReLU, max pooling, full C3 connectivity), as used for the
Google speech commands experiment of mixup (Zhang et al., ICLR 2018; 160x100 log-spectrograms,
30 classes). The definition chosen here (recipes 6):

* ``conv 5x5 (in_channels -> 6)``, ReLU, 2x2 max pool; ``conv 5x5 (6 -> 16)``, ReLU, 2x2 max
  pool (no padding);
* an adaptive average pool of the 16-channel map to 5x5 (the identity for 32x32 inputs, where
  this is exactly LeNet-5; a 160x100 input gives a 16 x 37 x 22 map), then fully connected
  layers 400 -> 120 -> 84 (ReLU) and the linear ``classifier`` 84 -> ``num_classes``.

Unlike the other models, the head (:meth:`LeNet.logits_from_features`) has hidden layers
between the pooling and ``classifier``, so classifier weights alone do not give a class
activation map. 63,406 parameters for 1 channel and 30 classes.
Mixing depths: 0 (input), 1 (after the first convolution stage).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import MixableNet

__all__ = ["LeNet", "lenet"]


class LeNet(MixableNet):
    """LeNet-5 with ReLU and max pooling (LeCun et al., 1998; recipes 6).

    Args:
        num_classes: number of outputs.
        in_channels: input channels (1 for spectrograms).

    :meth:`features` is the 16-channel map after the second conv-ReLU-pool stage.
    """

    num_stages = 2

    def __init__(self, num_classes: int = 30, *, in_channels: int = 1):
        super().__init__(num_classes, in_channels)
        self.conv1 = nn.Conv2d(in_channels, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.pool = nn.AdaptiveAvgPool2d((5, 5))
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.classifier = nn.Linear(84, num_classes)

    def _stage(self, index: int, h: torch.Tensor) -> torch.Tensor:
        conv = self.conv1 if index == 0 else self.conv2
        return F.max_pool2d(F.relu(conv(h)), 2)

    def logits_from_features(self, f: torch.Tensor) -> torch.Tensor:
        """Logits from the feature map: 5x5 adaptive average pool, fc1, fc2, ``classifier``."""
        h = torch.flatten(self.pool(f), 1)
        h = F.relu(self.fc2(F.relu(self.fc1(h))))
        return self.classifier(h)


def lenet(num_classes: int, *, in_channels: int = 1) -> LeNet:
    """LeNet-5 (ReLU, max pool, adaptive 5x5 pool before the fully connected layers; recipes 6)."""
    return LeNet(num_classes, in_channels=in_channels)
