"""Fixtures of the evaluation tests: a toy dataset with boxes and a network whose CAM is known."""

import pytest
import torch
from torch import nn

from comixup.data.common import BoxedDataset, DatasetInfo
from comixup.models.base import MixableNet


class IdentityNet(MixableNet):
    """A "network" whose feature map is its input: CAM of class c = ``W[c] . x``."""

    num_stages = 1

    def __init__(self, channels=1, num_classes=2):
        super().__init__()
        self.classifier = nn.Linear(channels, num_classes)

    def _stage(self, index, h):
        return h


class ToyBoxes(BoxedDataset):
    """1-channel 8 x 8 images: a bright square (value 1) on 0 inside box ``boxes[i]``.

    Normalization is the identity (mean 0, std 1), so pixels are the stored values.
    """

    has_boxes = True

    def __init__(self, boxes, labels, size=8, channels=1):
        self.box_list = [tuple(float(v) for v in b) for b in boxes]
        self.targets = list(labels)
        self.info = DatasetInfo(2, channels, (size, size), (0.0,) * channels, (1.0,) * channels)
        self.images = torch.zeros(len(boxes), channels, size, size)
        for i, (x0, y0, x1, y1) in enumerate(boxes):
            self.images[i, :, int(y0):int(y1), int(x0):int(x1)] = 1.0 + 0.1 * i

    def _raw_boxes(self, index):
        return [self.box_list[index]], self.info.image_size

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, index):
        return self.images[index].clone(), self.targets[index]


@pytest.fixture
def oracle():
    """IdentityNet with weights (+1, -1) and no bias: predicts class 0 for non-negative images,
    and the CAM of class 0 is the image itself."""
    net = IdentityNet()
    with torch.no_grad():
        net.classifier.weight.copy_(torch.tensor([[1.0], [-1.0]]))
        net.classifier.bias.zero_()
    return net

