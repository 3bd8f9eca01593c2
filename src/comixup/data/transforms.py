"""Tensor image transforms (a small, torchvision-free subset).

Every transform is a callable ``t(x, generator=None)`` on a ``(C, H, W)`` tensor and returns a
new ``(C, H', W')`` tensor (never modifying ``x`` in place). :class:`ToTensor` turns a PIL image
or an ``(H, W, C)`` uint8 array into such a tensor first.

Randomness
    The random transforms (:class:`RandomCrop`, :class:`RandomHorizontalFlip`,
    :class:`RandomResizedCrop`) draw every random number with ``torch`` functions from
    ``generator`` when one is given, and otherwise from torch's global RNG. :class:`Compose`
    forwards its ``generator`` argument to each transform. Inside a ``DataLoader`` built by
    :func:`comixup.data.make_loader`, the global RNG is re-seeded for every sample from
    ``(seed, epoch, index)``, so augmentations are reproducible and independent of the number
    of workers; see :mod:`comixup.data.loader`.

Boxes
    Boxes are ``(x0, y0, x1, y1)`` in continuous pixel-edge coordinates: the box covers the
    pixels with ``x0 <= column < x1`` and ``y0 <= row < y1`` (a full ``H x W`` image is
    ``(0, 0, W, H)``). The deterministic geometric transforms (:class:`Resize`,
    :class:`CenterCrop`) and :class:`Compose` have ``map_boxes(boxes, size) -> (boxes, size)``,
    which maps boxes of an image of ``size = (H, W)`` to pixel coordinates of the transformed
    image; :class:`Normalize` and :class:`ToTensor` return them unchanged. The random
    transforms have no ``map_boxes`` (``Compose.map_boxes`` raises TypeError on them).

Masks
    :class:`JointTransform` applies pixel-exact geometric transforms (:class:`RandomCrop`,
    :class:`RandomHorizontalFlip`, :class:`CenterCrop`) to an image and its ``(H, W)`` class map
    together: the mask travels as one more channel, so both see the same random draws, in the
    same order and number as the image alone would (same ``generator`` policy as above).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "Box",
    "CenterCrop",
    "Compose",
    "JointTransform",
    "Normalize",
    "RandomCrop",
    "RandomHorizontalFlip",
    "RandomResizedCrop",
    "Resize",
    "ToTensor",
]

#: A box ``(x0, y0, x1, y1)`` in pixel-edge coordinates (x = column, y = row; see above).
Box = tuple


def _pair(size, name: str) -> tuple[int, int]:
    """``size`` (an int or a pair of ints) as a ``(H, W)`` pair of positive ints."""
    if isinstance(size, bool):
        raise TypeError(f"{name} must be an int or a pair of ints, got {size!r}")
    if isinstance(size, int):
        pair = (size, size)
    elif (
        isinstance(size, Sequence)
        and len(size) == 2
        and all(isinstance(s, int) and not isinstance(s, bool) for s in size)
    ):
        pair = (int(size[0]), int(size[1]))
    else:
        raise TypeError(f"{name} must be an int or a pair of ints, got {size!r}")
    if min(pair) < 1:
        raise ValueError(f"{name} must be positive, got {size!r}")
    return pair


def _check_image(x, name: str = "x") -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a (C, H, W) torch.Tensor, got {type(x).__name__}")
    if x.dim() != 3:
        raise ValueError(f"{name} must have shape (C, H, W), got {tuple(x.shape)}")
    return x


def _randint(low: int, high: int, generator) -> int:
    """Uniform integer in ``[low, high]`` (inclusive) from torch."""
    return int(torch.randint(low, high + 1, (1,), generator=generator).item())


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear (antialiased when shrinking) resize of a float ``(C, H, W)`` tensor."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if not x.is_floating_point():
        raise TypeError(f"resizing needs a floating image, got {x.dtype} (apply ToTensor first)")
    return F.interpolate(
        x.unsqueeze(0), size=size, mode="bilinear", align_corners=False, antialias=True
    ).squeeze(0)


class Compose:
    """Apply ``transforms`` in order, forwarding ``generator`` to each one.

    Args:
        transforms: callables ``t(x, generator=None)``; plain one-argument callables are accepted
            too and are called as ``t(x)``.
    """

    def __init__(self, transforms: Sequence[Callable]):
        transforms = list(transforms)
        for i, t in enumerate(transforms):
            if not callable(t):
                raise TypeError(f"transforms[{i}] is not callable: {t!r}")
        self.transforms = transforms

    def __call__(self, x, generator: torch.Generator | None = None):
        for t in self.transforms:
            x = t(x, generator=generator) if _takes_generator(t) else t(x)
        return x

    def map_boxes(self, boxes, size):
        """Map ``boxes`` through every transform (see the module docstring)."""
        for t in self.transforms:
            if not hasattr(t, "map_boxes"):
                raise TypeError(f"{type(t).__name__} cannot map boxes")
            boxes, size = t.map_boxes(boxes, size)
        return boxes, size

    def __repr__(self) -> str:
        inner = ", ".join(repr(t) for t in self.transforms)
        return f"Compose([{inner}])"


def _takes_generator(t) -> bool:
    """Whether ``t`` accepts a ``generator`` keyword (all transforms here do)."""
    if isinstance(t, _OURS):
        return True
    try:
        params = inspect.signature(t).parameters
    except (TypeError, ValueError):
        return False
    return "generator" in params or any(p.kind == p.VAR_KEYWORD for p in params.values())


class ToTensor:
    """PIL image / ``(H, W, C)`` or ``(H, W)`` uint8 array -> float32 ``(C, H, W)`` in ``[0, 1]``.

    A ``(C, H, W)`` tensor is passed through, converted to float32 (uint8 tensors are divided by
    255). Deterministic; ``generator`` is ignored.
    """

    def __call__(self, x, generator: torch.Generator | None = None) -> torch.Tensor:
        if isinstance(x, torch.Tensor):
            _check_image(x)
            return x.float().div(255.0) if x.dtype == torch.uint8 else x.float()
        arr = np.asarray(x)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        if arr.ndim != 3:
            raise ValueError(f"x must be an image of shape (H, W[, C]), got {arr.shape}")
        if not arr.flags.writeable or not arr.flags.c_contiguous:
            arr = np.array(arr)  # PIL arrays are read-only
        t = torch.from_numpy(arr).permute(2, 0, 1)
        return t.float().div(255.0) if t.dtype == torch.uint8 else t.float()

    def map_boxes(self, boxes, size):
        """Boxes are unchanged."""
        return boxes, size

    def __repr__(self) -> str:
        return "ToTensor()"


class Normalize:
    """``(x - mean) / std`` per channel. Deterministic; ``generator`` is ignored.

    Args:
        mean: one value per channel.
        std: one positive value per channel.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        mean = [float(m) for m in mean]
        std = [float(s) for s in std]
        if len(mean) != len(std) or not mean:
            raise ValueError(f"mean and std must have the same non-zero length, got {mean}, {std}")
        if min(std) <= 0:
            raise ValueError(f"std must be positive, got {std}")
        self.mean = tuple(mean)
        self.std = tuple(std)
        self._m = torch.tensor(mean).view(-1, 1, 1)
        self._s = torch.tensor(std).view(-1, 1, 1)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check_image(x)
        if x.shape[0] != len(self.mean):
            raise ValueError(f"x has {x.shape[0]} channels but Normalize has {len(self.mean)}")
        return (x.float() - self._m) / self._s

    def map_boxes(self, boxes, size):
        """Boxes are unchanged."""
        return boxes, size

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std})"


class RandomCrop:
    """Pad by ``padding`` pixels on every side, then crop a random ``size`` window.

    The offsets are two ``torch.randint`` draws (row, then column) from ``generator`` (or the
    global RNG). As in the CIFAR reference code the padding is constant ``fill`` (0 by default,
    applied before normalization, i.e. black).

    Args:
        size: output ``(H, W)`` or an int for a square.
        padding: pixels added on each side (>= 0).
        fill: constant padding value.
    """

    def __init__(self, size, padding: int = 0, fill: float = 0.0):
        self.size = _pair(size, "size")
        if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
            raise ValueError(f"padding must be an int >= 0, got {padding!r}")
        self.padding = padding
        self.fill = float(fill)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check_image(x)
        p = self.padding
        if p:
            x = F.pad(x, (p, p, p, p), value=self.fill)
        h, w = x.shape[-2:]
        th, tw = self.size
        if th > h or tw > w:
            raise ValueError(f"crop size {self.size} larger than the padded image {(h, w)}")
        i = _randint(0, h - th, generator)
        j = _randint(0, w - tw, generator)
        return x[:, i : i + th, j : j + tw].clone()

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class RandomHorizontalFlip:
    """Flip left-right with probability ``p`` (one ``torch.rand`` draw per call).

    Args:
        p: flip probability in ``[0, 1]``.
    """

    def __init__(self, p: float = 0.5):
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p!r}")
        self.p = float(p)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check_image(x)
        if float(torch.rand((), generator=generator)) < self.p:
            return x.flip(-1)
        return x

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class RandomResizedCrop:
    """Crop a random area/aspect-ratio window and resize it to ``size`` (Inception-style).

    Follows torchvision's algorithm: up to 10 attempts each draw an area fraction uniformly in
    ``scale`` and a log-uniform aspect ratio in ``ratio`` (2 ``torch.rand`` draws), then the
    top-left corner (2 ``torch.randint`` draws); if no attempt fits, the central crop with the
    aspect ratio clamped to ``ratio`` is used. The window is resized bilinearly (antialiased).

    Args:
        size: output ``(H, W)`` or an int for a square.
        scale: range of the crop area as a fraction of the image area, ``0 < lo <= hi <= 1``.
        ratio: range of the width/height aspect ratio.
    """

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0)):
        self.size = _pair(size, "size")
        lo, hi = (float(s) for s in scale)
        if not 0.0 < lo <= hi <= 1.0:
            raise ValueError(f"scale must satisfy 0 < lo <= hi <= 1, got {scale!r}")
        rlo, rhi = (float(r) for r in ratio)
        if not 0.0 < rlo <= rhi:
            raise ValueError(f"ratio must satisfy 0 < lo <= hi, got {ratio!r}")
        self.scale = (lo, hi)
        self.ratio = (rlo, rhi)

    def window(self, height: int, width: int, generator: torch.Generator | None = None):
        """Draw the crop window ``(top, left, h, w)`` for an image of ``height x width``."""
        area = height * width
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        for _ in range(10):
            u = torch.rand(2, generator=generator)
            target = area * (self.scale[0] + (self.scale[1] - self.scale[0]) * float(u[0]))
            aspect = math.exp(log_lo + (log_hi - log_lo) * float(u[1]))
            w = round(math.sqrt(target * aspect))
            h = round(math.sqrt(target / aspect))
            if 0 < w <= width and 0 < h <= height:
                return _randint(0, height - h, generator), _randint(0, width - w, generator), h, w
        in_ratio = width / height
        if in_ratio < self.ratio[0]:
            w, h = width, round(width / self.ratio[0])
        elif in_ratio > self.ratio[1]:
            h, w = height, round(height * self.ratio[1])
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check_image(x)
        top, left, h, w = self.window(x.shape[-2], x.shape[-1], generator)
        crop = x[:, top : top + h, left : left + w]
        if not crop.is_floating_point():
            crop = crop.float()
        return _resize(crop, self.size).contiguous()

    def __repr__(self) -> str:
        return f"RandomResizedCrop(size={self.size}, scale={self.scale}, ratio={self.ratio})"


class Resize:
    """Bilinear (antialiased) resize. Deterministic.

    Args:
        size: an int resizes the *shorter* side to ``size`` keeping the aspect ratio (the
            ImageNet evaluation convention, ``Resize(256)``); a pair ``(H, W)`` resizes exactly.
    """

    def __init__(self, size):
        if isinstance(size, int) and not isinstance(size, bool):
            if size < 1:
                raise ValueError(f"size must be positive, got {size}")
            self.size = size
        else:
            self.size = _pair(size, "size")

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """``(H, W)`` of the result for an input of ``height x width``."""
        if isinstance(self.size, tuple):
            return self.size
        s = self.size
        if height <= width:
            return s, max(1, int(s * width / height))
        return max(1, int(s * height / width)), s

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check_image(x)
        if not x.is_floating_point():
            x = x.float()
        return _resize(x, self.output_size(x.shape[-2], x.shape[-1]))

    def map_boxes(self, boxes, size):
        """Scale boxes by the resize factors."""
        h, w = size
        oh, ow = self.output_size(h, w)
        sy, sx = oh / h, ow / w
        return [(b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy) for b in boxes], (oh, ow)

    def __repr__(self) -> str:
        return f"Resize(size={self.size})"


class CenterCrop:
    """Crop the central ``size`` window (offsets rounded as in torchvision). Deterministic.

    Args:
        size: output ``(H, W)`` or an int for a square; must not exceed the input.
    """

    def __init__(self, size):
        self.size = _pair(size, "size")

    def _offsets(self, height: int, width: int) -> tuple[int, int]:
        th, tw = self.size
        if th > height or tw > width:
            raise ValueError(f"center crop {self.size} larger than the image {(height, width)}")
        return round((height - th) / 2.0), round((width - tw) / 2.0)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check_image(x)
        i, j = self._offsets(x.shape[-2], x.shape[-1])
        th, tw = self.size
        return x[:, i : i + th, j : j + tw].clone()

    def map_boxes(self, boxes, size):
        """Shift boxes by the crop offset and clip them to the crop; drop boxes left empty."""
        i, j = self._offsets(*size)
        th, tw = self.size
        out = []
        for b in boxes:
            x0, y0 = min(max(b[0] - j, 0), tw), min(max(b[1] - i, 0), th)
            x1, y1 = min(max(b[2] - j, 0), tw), min(max(b[3] - i, 0), th)
            if x1 > x0 and y1 > y0:
                out.append((x0, y0, x1, y1))
        return out, (th, tw)

    def __repr__(self) -> str:
        return f"CenterCrop(size={self.size})"


class JointTransform:
    """Apply geometric transforms jointly to an image and its segmentation mask.

    ``t(x, mask, generator=None) -> (x', mask')``: the mask is appended to ``x`` as one more
    channel (as float32: class indices below 2**24 are exact), the stack goes through
    ``transforms`` in order with ``generator`` forwarded (so the random draws are exactly those
    of the same transforms on ``x`` alone: an image-only pipeline and this one, from the same
    RNG state, give the same ``x'``), and the last channel comes back as the mask in its
    original dtype. Only transforms that move pixels without mixing them are accepted, and a
    :class:`RandomCrop` must pad with ``fill=0``, so that padded mask pixels are background (0).

    Args:
        transforms: :class:`RandomCrop` (``fill=0``), :class:`RandomHorizontalFlip` and
            :class:`CenterCrop` instances, applied in order.
    """

    _ACCEPTED = (RandomCrop, RandomHorizontalFlip, CenterCrop)

    def __init__(self, transforms: Sequence):
        transforms = list(transforms)
        for i, t in enumerate(transforms):
            if not isinstance(t, self._ACCEPTED):
                raise TypeError(
                    f"transforms[{i}] must be a RandomCrop, RandomHorizontalFlip or CenterCrop "
                    f"(pixel-exact, safe for masks), got {type(t).__name__}"
                )
            if isinstance(t, RandomCrop) and t.fill != 0.0:
                raise ValueError(
                    f"transforms[{i}] is a RandomCrop with fill={t.fill}; a joint crop needs "
                    "fill=0 so that the padded mask pixels are background"
                )
        self.transforms = transforms

    def __call__(
        self, x: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        _check_image(x)
        if not isinstance(mask, torch.Tensor):
            raise TypeError(f"mask must be an (H, W) torch.Tensor, got {type(mask).__name__}")
        if mask.dim() != 2 or tuple(mask.shape) != tuple(x.shape[-2:]):
            raise ValueError(
                f"mask must have shape (H, W) = {tuple(x.shape[-2:])}, got {tuple(mask.shape)}"
            )
        if mask.is_floating_point():
            raise TypeError(f"mask must hold integer class indices, got {mask.dtype}")
        if not self.transforms:
            return x.clone(), mask.clone()
        dtype = torch.promote_types(x.dtype, torch.float32)  # at least float32: exact masks
        stack = torch.cat([x.to(dtype), mask.to(dtype).unsqueeze(0)])
        for t in self.transforms:
            stack = t(stack, generator=generator)
        return stack[:-1].to(x.dtype), stack[-1].round().to(mask.dtype)

    def __repr__(self) -> str:
        inner = ", ".join(repr(t) for t in self.transforms)
        return f"JointTransform([{inner}])"


_OURS = (
    Compose,
    JointTransform,
    ToTensor,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    RandomResizedCrop,
    Resize,
    CenterCrop,
)
