"""Class activation maps (Zhou et al., CVPR 2016), used for the localization of Table 2.

For a network that ends in global average pooling and a linear classifier, the logit of class
``c`` is ``b_c + mean_{i,j} sum_k W[c, k] f_k(i, j)`` where ``f`` is the last convolutional
feature map. The class activation map ``M_c(i, j) = sum_k W[c, k] f_k(i, j)`` is the spatial
map whose average (plus the bias) is that logit; upsampled to the input size it shows where the
evidence for class ``c`` lies. Section 5.2 of the paper evaluates weakly supervised
localization with it (threshold 0.25, see :mod:`.localization`).

Every model of :mod:`comixup.models` exposes ``features(x)`` (the last feature map) and
``classifier`` (the final :class:`torch.nn.Linear`); all of them but LeNet end in global
average pooling plus that linear layer (:meth:`MixableNet.logits_from_features`) and have a
CAM. LeNet's head has hidden layers between the pooling and the classifier, so
:func:`cam` rejects it with a TypeError (see :func:`supports_cam`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["cam", "cam_from_features", "features_and_logits", "supports_cam"]


def _unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)


def _cam_problem(model) -> str | None:
    """Why ``model`` has no CAM, or None when it has one."""
    from ..models.base import MixableNet

    net = _unwrap(model)
    if not isinstance(net, nn.Module):
        return f"model must be a torch.nn.Module, got {type(net).__name__}"
    if getattr(net, "dense", False):
        return (f"{type(net).__name__} predicts per pixel: its logits are already maps, there "
                "is no class activation map")
    if not callable(getattr(net, "features", None)) or not isinstance(
        getattr(net, "classifier", None), nn.Linear
    ):
        return (f"{type(net).__name__} has no features(x) method and linear classifier "
                "(the comixup.models interface)")
    head = getattr(type(net), "logits_from_features", None)
    if not isinstance(net, MixableNet) or head is not MixableNet.logits_from_features:
        return (f"{type(net).__name__} does not end in global average pooling plus a linear "
                "classifier (its head has other layers), so it has no class activation map")
    return None


def supports_cam(model: nn.Module) -> bool:
    """Whether :func:`cam` works for ``model``: a :class:`~comixup.models.base.MixableNet`
    (or a DDP wrapper of one) whose head is global average pooling plus ``classifier``."""
    return _cam_problem(model) is None


def _check_model(model) -> nn.Module:
    problem = _cam_problem(model)
    if problem is not None:
        raise TypeError(f"model: {problem}")
    return _unwrap(model)


def _classes(classes, batch: int, num_classes: int, device) -> torch.Tensor:
    if isinstance(classes, bool):
        raise TypeError("classes must be an int or an integer tensor of shape (B,), got a bool")
    if isinstance(classes, int):
        classes = torch.full((batch,), classes, dtype=torch.long)
    else:
        classes = torch.as_tensor(classes)
        if classes.is_floating_point() or classes.dtype == torch.bool:
            raise TypeError(f"classes must be integers, got dtype {classes.dtype}")
        if classes.dim() == 0:
            classes = classes.expand(batch)
        if classes.shape != (batch,):
            raise ValueError(f"classes must have shape ({batch},), got {tuple(classes.shape)}")
    classes = classes.to(device=device, dtype=torch.long)
    if classes.numel() and (int(classes.min()) < 0 or int(classes.max()) >= num_classes):
        raise ValueError(f"classes must lie in [0, {num_classes}), got values from "
                         f"{int(classes.min())} to {int(classes.max())}")
    return classes


def cam_from_features(
    features: torch.Tensor,
    weight: torch.Tensor,
    classes,
    size: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Class activation maps from a feature map and classifier weights (Zhou et al., 2016).

    Args:
        features: ``(B, K, h, w)`` last convolutional features.
        weight: ``(num_classes, K)`` classifier weights.
        classes: an int or ``(B,)`` integers, the class of each sample's map.
        size: ``(H, W)`` to upsample to (bilinear, ``align_corners=False``); None keeps
            ``(h, w)``.

    Returns:
        ``(B, H, W)`` float maps ``sum_k weight[c, k] * features[:, k]`` (no bias: it is a
        constant shift, irrelevant after the min-max normalization of :func:`cam_to_box`).
    """
    if not isinstance(features, torch.Tensor) or features.dim() != 4:
        raise ValueError("features must be a (B, K, h, w) tensor, got "
                         f"{getattr(features, 'shape', type(features).__name__)}")
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2 \
            or weight.shape[1] != features.shape[1]:
        raise ValueError(f"weight must have shape (num_classes, {features.shape[1]}), got "
                         f"{getattr(weight, 'shape', type(weight).__name__)}")
    classes = _classes(classes, features.shape[0], weight.shape[0], features.device)
    w = weight.to(features.dtype)[classes]  # (B, K)
    maps = torch.einsum("bk,bkhw->bhw", w, features)
    if size is not None:
        size = tuple(int(s) for s in size)
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"size must be (H, W) with H, W >= 1, got {size}")
        if tuple(maps.shape[-2:]) != size:
            maps = F.interpolate(maps[:, None], size=size, mode="bilinear",
                                 align_corners=False)[:, 0]
    return maps


def features_and_logits(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(features, logits)`` of ``x`` in one forward pass of a CAM-capable model.

    ``logits == model(x)`` (the head is applied to the returned features). Raises TypeError
    for a model without a CAM (see :func:`supports_cam`).
    """
    net = _check_model(model)
    f = net.features(x)
    return f, net.logits_from_features(f)


@torch.no_grad()
def cam(model: nn.Module, x: torch.Tensor, classes, *, upsample: bool = True) -> torch.Tensor:
    """Class activation maps of ``classes`` for images ``x`` (Zhou et al., 2016; Section 5.2).

    Takes the last convolutional features ``model.features(x)`` ``(B, K, h, w)`` and the
    classifier weights ``W = model.classifier.weight`` and returns ``W[c_b] . f_b``, bilinearly
    upsampled to the input size. The model runs as it is (call ``model.eval()`` first for
    batch-norm statistics of inference).

    Args:
        model: a model of :mod:`comixup.models` ending in global average pooling plus a linear
            layer (every one but LeNet), or a DDP wrapper of one.
        x: ``(B, C, H, W)`` input batch (normalized as the model expects).
        classes: an int (the same class for every image) or ``(B,)`` integer labels.
        upsample: upsample to ``(H, W)`` (default); False returns the ``(h, w)`` maps.

    Returns:
        ``(B, H, W)`` float tensor (``(B, h, w)`` without upsampling) on ``x``'s device.

    Raises:
        TypeError: the model has no CAM (e.g. LeNet) or ``classes`` is not integer.
        ValueError: bad shapes or classes out of range.
    """
    net = _check_model(model)
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise ValueError(f"x must be a (B, C, H, W) tensor, got "
                         f"{getattr(x, 'shape', type(x).__name__)}")
    f = net.features(x).float()
    return cam_from_features(f, net.classifier.weight.float(), classes,
                             tuple(x.shape[-2:]) if upsample else None)
