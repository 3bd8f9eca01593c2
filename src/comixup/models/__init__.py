"""Networks for Co-Mixup experiments (recipes 6), all with one mixing interface.

Build one with :func:`create` (``comixup.models.create("preactresnet18", 100)``); :func:`names`
lists the choices: PreActResNet18, WRN16-8, ResNeXt29-4-24 (CIFAR / Tiny-ImageNet), ResNet-50
(ImageNet), VGG-11 and LeNet (1-channel spectrograms), and the PreActResNet18 trunk with a
U-Net decoder for per-pixel logits (the segmentation task).

Every model is a :class:`MixableNet`: ``model(x, mix_depth=d, mix_fn=f)`` replaces the hidden
state at depth ``d`` (0 = input, 1 = after the first stage, 2 = after the second, ...) by
``f(h)`` (Manifold Mixup, Verma et al., ICML 2019); ``model.mix_depths`` lists the valid depths;
``model.features(x)`` is the last convolutional map and ``model.logits_from_features`` the head
(``model.classifier`` is its final linear layer). See :mod:`comixup.models.base`.
"""

from .base import MixableNet, MixFn
from .lenet import LeNet, lenet
from .preactresnet import PreActResNet, preactresnet18
from .registry import create, names, options
from .resnet import ResNet, resnet50
from .resnext import CifarResNeXt, resnext29_4_24
from .segmentation import PreActUNet, preactresnet18_unet
from .vgg import VGG, vgg11
from .wide_resnet import WideResNet, wrn16_8

__all__ = [
    "VGG",
    "CifarResNeXt",
    "LeNet",
    "MixFn",
    "MixableNet",
    "PreActResNet",
    "PreActUNet",
    "ResNet",
    "WideResNet",
    "create",
    "lenet",
    "names",
    "options",
    "preactresnet18",
    "preactresnet18_unet",
    "resnet50",
    "resnext29_4_24",
    "vgg11",
    "wrn16_8",
]
