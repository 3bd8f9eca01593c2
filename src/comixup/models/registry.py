"""Model registry: :func:`create` a network by name, :func:`names` lists them (recipes 6).

==================  =====================================================  ====================
name                architecture                                           options
==================  =====================================================  ====================
``preactresnet18``  PreActResNet18 (He et al., ECCV 2016), CIFAR / Tiny    ``in_channels``,
                    ImageNet                                               ``initial_channels``,
                                                                           ``stem_stride``
``wrn16_8``         Wide ResNet 16-8 (Zagoruyko & Komodakis, BMVC 2016)    ``in_channels``,
                                                                           ``dropout``
``resnext29_4_24``  ResNeXt-29, 4 x 24d (Xie et al., CVPR 2017)            ``in_channels``
``resnet50``        ResNet-50 (He et al., CVPR 2016), ImageNet             ``in_channels``
``vgg11``           VGG-11 with BN (Simonyan & Zisserman, ICLR 2015),      ``in_channels``
                    1-channel spectrograms by default
``lenet``           LeNet-5 (LeCun et al., 1998), 1-channel spectrograms   ``in_channels``
``preactresnet18_   PreActResNet18 trunk with a U-Net decoder: per-pixel   as
unet``              logits (the segmentation task; not in the paper)       ``preactresnet18``
==================  =====================================================  ====================
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from .._checks import check_int
from .base import MixableNet
from .lenet import lenet
from .preactresnet import preactresnet18
from .resnet import resnet50
from .resnext import resnext29_4_24
from .segmentation import preactresnet18_unet
from .vgg import vgg11
from .wide_resnet import wrn16_8

__all__ = ["create", "names", "options"]

_FACTORIES: dict[str, Callable[..., MixableNet]] = {
    "preactresnet18": preactresnet18,
    "wrn16_8": wrn16_8,
    "resnext29_4_24": resnext29_4_24,
    "resnet50": resnet50,
    "vgg11": vgg11,
    "lenet": lenet,
    "preactresnet18_unet": preactresnet18_unet,
}


def names() -> list[str]:
    """The model names accepted by :func:`create`."""
    return list(_FACTORIES)


def _factory(name) -> Callable[..., MixableNet]:
    if not isinstance(name, str) or name not in _FACTORIES:
        raise ValueError(f"name must be one of {names()}, got {name!r}")
    return _FACTORIES[name]


def options(name: str) -> dict[str, object]:
    """The keyword options of model ``name`` and their defaults."""
    sig = inspect.signature(_factory(name))
    return {p.name: p.default for p in sig.parameters.values() if p.kind is p.KEYWORD_ONLY}


def create(name: str, num_classes: int, **kwargs) -> MixableNet:
    """Build model ``name`` with ``num_classes`` outputs (recipes 6).

    Args:
        name: one of :func:`names`.
        num_classes: number of classes, an int >= 1.
        **kwargs: options of that model (see :func:`options`), e.g. ``in_channels``,
            ``initial_channels`` and ``stem_stride`` for ``preactresnet18``, ``dropout`` for
            ``wrn16_8``.

    Returns:
        A :class:`~comixup.models.base.MixableNet` with randomly initialized weights.

    Raises:
        ValueError: unknown ``name`` or option (the message lists the choices), or a bad value.
    """
    factory = _factory(name)
    check_int("num_classes", num_classes, 1)
    allowed = options(name)
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ValueError(
            f"unknown option(s) {unknown} for model {name!r}; choices: {sorted(allowed)}"
        )
    return factory(num_classes, **kwargs)
