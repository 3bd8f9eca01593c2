"""Class activation maps (Zhou et al., 2016) against hand computations."""

import pytest
import torch
from torch import nn

from comixup import models
from comixup.evaluate import cam, supports_cam
from comixup.evaluate.cam import features_and_logits
from comixup.models.base import MixableNet


class PoolNet(MixableNet):
    """features = 2x2 average pooling of a (2, 4, 4) input; classifier Linear(2, 3)."""

    num_stages = 1

    def __init__(self):
        super().__init__()
        self.classifier = nn.Linear(2, 3)
        with torch.no_grad():
            self.classifier.weight.copy_(torch.tensor([[1.0, 2.0], [0.0, -1.0], [3.0, 0.0]]))
            self.classifier.bias.copy_(torch.tensor([10.0, 20.0, 30.0]))

    def _stage(self, index, h):
        return nn.functional.avg_pool2d(h, 2)


def test_cam_equals_hand_computation():
    # channel 0: top-left 2x2 block = 4, others 0; channel 1: bottom-right block = 8
    x = torch.zeros(1, 2, 4, 4)
    x[0, 0, :2, :2] = 4.0
    x[0, 1, 2:, 2:] = 8.0
    # features: ch0 = [[4, 0], [0, 0]], ch1 = [[0, 0], [0, 8]]
    # class 0: W = (1, 2): [[4, 0], [0, 16]]; class 1: W = (0, -1): [[0, 0], [0, -8]]
    small = cam(PoolNet(), x, torch.tensor([0]), upsample=False)
    assert torch.equal(small, torch.tensor([[[4.0, 0.0], [0.0, 16.0]]]))
    # bilinear 2 -> 4 (align_corners=False): rows/cols weights [1, .75/.25, .25/.75, 1]
    w = torch.tensor([[1.0, 0.0], [0.75, 0.25], [0.25, 0.75], [0.0, 1.0]])
    expected = w @ torch.tensor([[4.0, 0.0], [0.0, 16.0]]) @ w.T
    assert torch.allclose(cam(PoolNet(), x, 0)[0], expected)
    # the first row by hand: [4, 3, 1, 0]
    assert torch.allclose(expected[0], torch.tensor([4.0, 3.0, 1.0, 0.0]))
    assert torch.allclose(expected[1, 1], torch.tensor(0.75 * 0.75 * 4 + 0.25 * 0.25 * 16))
    both = cam(PoolNet(), torch.cat([x, x]), torch.tensor([0, 1]), upsample=False)
    assert torch.equal(both[1], torch.tensor([[0.0, 0.0], [0.0, -8.0]]))


def test_cam_mean_plus_bias_is_the_logit():
    torch.manual_seed(0)
    net = models.create("preactresnet18", 5, initial_channels=4).eval()
    x = torch.randn(3, 3, 16, 16)
    classes = torch.tensor([0, 3, 4])
    small = cam(net, x, classes, upsample=False)
    logits = net(x)
    expected = logits.gather(1, classes[:, None])[:, 0] - net.classifier.bias[classes]
    assert torch.allclose(small.mean((1, 2)), expected, atol=1e-5)
    assert cam(net, x, classes).shape == (3, 16, 16)
    _, lg = features_and_logits(net, x)
    assert torch.allclose(lg, logits, atol=1e-6)


def test_which_models_have_a_cam():
    assert {n: supports_cam(models.create(n, 4)) for n in models.names()} == {
        n: n not in ("lenet", "preactresnet18_unet") for n in models.names()}
    with pytest.raises(TypeError, match="LeNet does not end in global average pooling"):
        cam(models.create("lenet", 4), torch.zeros(1, 1, 32, 32), 0)
    with pytest.raises(TypeError, match="PreActUNet predicts per pixel"):
        cam(models.create("preactresnet18_unet", 4), torch.zeros(1, 3, 32, 32), 0)
    with pytest.raises(TypeError, match="model: Sequential has no features"):
        cam(nn.Sequential(nn.Conv2d(3, 4, 3)), torch.zeros(1, 3, 8, 8), 0)


def test_cam_bad_arguments():
    net = PoolNet()
    with pytest.raises(ValueError, match="classes must lie in"):
        cam(net, torch.zeros(1, 2, 4, 4), 3)
    with pytest.raises(ValueError, match="classes must have shape"):
        cam(net, torch.zeros(2, 2, 4, 4), torch.tensor([0, 1, 2]))
    with pytest.raises(TypeError, match="classes must be integers"):
        cam(net, torch.zeros(1, 2, 4, 4), torch.tensor([0.5]))
    with pytest.raises(ValueError, match="x must be"):
        cam(net, torch.zeros(2, 4, 4), 0)
