"""A small fully convolutional network for dense prediction: the PreActResNet18 trunk
(:mod:`comixup.models.preactresnet`) with a light U-Net decoder.

Not from the paper (which classifies only): the model of the segmentation task on the embedded
benchmark (``docs/dense-targets.md``). The encoder is the CIFAR PreActResNet18 of the
classification experiments, four stages at strides 1, 2, 4 and 8 of the stem's resolution.
The decoder goes back up one stage at a time: a bilinear x2 upsampling, the concatenation with
the encoder's output at that resolution (a skip connection), and a BN-ReLU-conv3x3 to the
width of that stage; then BN-ReLU and a 1x1 convolution give per-pixel logits, upsampled
bilinearly to the input size when the stem has stride 2.

``model(x)`` returns logits ``(B, num_classes, H, W)``. Mixing inside the network is offered at
depth 0 only (the input): a hidden state mixed deeper would reach the decoder through its skip
connections unmixed, so Manifold Mixup on this model is Input Mixup.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_choice, check_int
from .base import MixableNet, MixFn, init_weights, make_stages
from .preactresnet import PreActBlock

__all__ = ["PreActUNet", "preactresnet18_unet"]


class _Up(nn.Module):
    """Decoder step: bilinear x2 upsampling, concatenation with the skip, BN-ReLU-conv3x3."""

    def __init__(self, in_planes: int, skip_planes: int, planes: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(in_planes + skip_planes)
        self.conv = nn.Conv2d(in_planes + skip_planes, planes, 3, padding=1, bias=False)

    def forward(self, h: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        h = F.interpolate(h, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.conv(F.relu(self.bn(torch.cat([h, skip], 1))))


class PreActUNet(MixableNet):
    """PreActResNet encoder with a U-Net decoder (module docstring).

    Args:
        num_blocks: blocks per encoder stage, ``(2, 2, 2, 2)`` for the PreActResNet18 trunk.
        num_classes: number of per-pixel classes (background included).
        in_channels: input channels (3 for RGB).
        initial_channels: width of the stem and the first stage; stage ``i`` has
            ``initial_channels * 2**i`` channels, and the decoder step that returns to stage
            ``i``'s resolution has the same width.
        stem_stride: 1 for 32x32 inputs, 2 for 64x64 ones.
    """

    num_stages = 4
    dense = True

    def __init__(self, num_blocks=(2, 2, 2, 2), num_classes: int = 11, *, in_channels: int = 3,
                 initial_channels: int = 16, stem_stride: int = 1):
        super().__init__(num_classes, in_channels)
        check_int("initial_channels", initial_channels, 1)
        check_choice("stem_stride", stem_stride, (1, 2))
        c = initial_channels
        widths = (c, 2 * c, 4 * c, 8 * c)
        self.conv1 = nn.Conv2d(in_channels, c, 3, stride=stem_stride, padding=1, bias=False)
        self.layer1, self.layer2, self.layer3, self.layer4 = make_stages(
            PreActBlock, c, widths, num_blocks, (1, 2, 2, 2))
        self.up3 = _Up(widths[3], widths[2], widths[2])
        self.up2 = _Up(widths[2], widths[1], widths[1])
        self.up1 = _Up(widths[1], widths[0], widths[0])
        self.bn_out = nn.BatchNorm2d(c)
        self.head = nn.Conv2d(c, num_classes, 1)
        init_weights(self)

    @property
    def mix_depths(self) -> tuple[int, ...]:
        """Only the input (module docstring)."""
        return (0,)

    def forward(self, x: torch.Tensor, mix_depth: int | None = None,
                mix_fn: MixFn | None = None) -> torch.Tensor:
        """Per-pixel logits ``(B', num_classes, H, W)`` of ``x`` ``(B, C, H, W)``; with
        ``mix_depth=0``, of ``mix_fn(x)``."""
        self._check_mix(mix_depth, mix_fn)
        if mix_depth == 0:
            x = mix_fn(x)
            if not isinstance(x, torch.Tensor):
                raise TypeError(f"mix_fn must return a torch.Tensor, got {type(x).__name__}")
        s1 = self.layer1(self.conv1(x))
        s2 = self.layer2(s1)
        s3 = self.layer3(s2)
        h = self.layer4(s3)
        h = self.up1(self.up2(self.up3(h, s3), s2), s1)
        logits = self.head(F.relu(self.bn_out(h)))
        if logits.shape[-2:] != x.shape[-2:]:
            logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear",
                                   align_corners=False)
        return logits

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder's last feature map ``(B, 8c, H/8, W/8)``."""
        return self.layer4(self.layer3(self.layer2(self.layer1(self.conv1(x)))))

    def logits_from_features(self, f: torch.Tensor) -> torch.Tensor:
        """Not available: the decoder needs the skip connections, not only the features."""
        raise TypeError(f"{type(self).__name__} predicts per pixel from its skip connections; "
                        "call the model on the images")


def preactresnet18_unet(num_classes: int, *, in_channels: int = 3, initial_channels: int = 16,
                        stem_stride: int = 1) -> PreActUNet:
    """The PreActResNet18 trunk with a U-Net decoder (:class:`PreActUNet`), per-pixel logits."""
    return PreActUNet((2, 2, 2, 2), num_classes, in_channels=in_channels,
                      initial_channels=initial_channels, stem_stride=stem_stride)
