"""CutMix (Yun et al., "CutMix: Regularization Strategy to Train Strong Classifiers with
Localizable Features", ICCV 2019).

CutMix draws ``lambda ~ Beta(alpha, alpha)`` and a random permutation ``perm`` of the batch,
cuts a box of area ratio ``1 - lambda`` at a uniformly drawn centre, clips it to the image and
pastes the box of ``x[perm]`` into ``x``. The target weight of ``x[perm]`` is the area
actually pasted (after clipping), not ``1 - lambda`` (recipes 4). Co-Mixup (Kim et al.,
ICLR 2021) compares against it with ``alpha`` tuned over ``{0.2, 1.0, 2.0}``; the default
here is ``alpha = 1.0``, the setting of Yun et al.

Box geometry (:func:`rand_box`): side lengths ``cut_h = int(H * sqrt(1 - lambda))`` and
``cut_w = int(W * sqrt(1 - lambda))`` (truncated as in Yun et al.'s code), centre
``(cy, cx)`` uniform over the integer pixel grid, rows ``[cy - cut_h // 2, cy - cut_h // 2 +
cut_h)`` and columns likewise, each clipped to the image. Unlike Yun et al.'s code (which spans
``cy +- cut_h // 2`` and so loses a row or column when ``cut_h`` is odd), the unclipped box has
exactly ``cut_h x cut_w`` pixels. Images need not be square.

Randomness: one CPU :class:`torch.Generator` (``None`` = torch's default), drawn in the order
``lambda`` (as :func:`comixup.mixers.mixup.sample_lambda`), the permutation, then the centre
row ``cy`` and the centre column ``cx``.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from .._checks import check_generator, check_int, check_number
from .._precision import full_precision
from .base import permutation_ratios
from .dirichlet import Pairwise, WeightedMixer, WeightParams

__all__ = ["BoxMixer", "BoxParams", "CutMix", "rand_box"]


def _box_from_area(
    h: int, w: int, area: float, generator: torch.Generator | None
) -> tuple[int, int, int, int]:
    """A clipped box of nominal area ratio ``area`` (no argument checks)."""
    cut_rat = math.sqrt(area)
    cut_h = int(h * cut_rat)
    cut_w = int(w * cut_rat)
    cy = int(torch.randint(0, h, (1,), generator=generator))
    cx = int(torch.randint(0, w, (1,), generator=generator))
    top = cy - cut_h // 2
    left = cx - cut_w // 2
    y0, y1 = min(max(top, 0), h), min(max(top + cut_h, 0), h)
    x0, x1 = min(max(left, 0), w), min(max(left + cut_w, 0), w)
    return y0, y1, x0, x1


def rand_box(
    h: int, w: int, lam: float, generator: torch.Generator | None = None
) -> tuple[int, int, int, int]:
    """Draw a CutMix box of area ratio ``1 - lam`` at a uniform centre, clipped to the image.

    Yun et al., ICCV 2019; recipes 4. See the module docstring for the exact geometry.

    Args:
        h: image height, an int >= 1.
        w: image width, an int >= 1.
        lam: the share of the image that is kept, in ``[0, 1]``; the box covers
            ``1 - lam`` of the image before clipping (up to integer truncation).
        generator: CPU :class:`torch.Generator` for the centre (row, then column); ``None``
            uses torch's default generator.

    Returns:
        ``(y0, y1, x0, x1)``: the half-open pixel ranges ``rows y0:y1, columns x0:x1`` with
        ``0 <= y0 <= y1 <= h`` and ``0 <= x0 <= x1 <= w``. The pasted area is
        ``(y1 - y0) * (x1 - x0)`` pixels; it may be 0.
    """
    h = check_int("h", h, 1)
    w = check_int("w", w, 1)
    lam = check_number("lam", lam, high=1.0)
    generator = check_generator(generator)
    return _box_from_area(h, w, 1.0 - lam, generator)


@dataclasses.dataclass
class BoxParams(WeightParams):
    """Parameters of CutMix and its ``k``-input variant: the drawn weights and permutations of
    :class:`~comixup.mixers.dirichlet.WeightParams`, plus the boxes.

    Attributes:
        ratios: ``(B, B)`` share of every input in every output: the pixel shares ``shares``
            of the sources (:class:`~comixup.mixers.base.MixParams`).
        weights: the ``k`` drawn weights; box ``s`` has nominal area ratio ``weights[s]``.
        perms: the ``k - 1`` permutations (CPU long tensors ``(B,)``).
        boxes: the ``k - 1`` clipped boxes ``(y0, y1, x0, x1)`` of sources ``1 .. k-1``,
            pasted in this order (later boxes on top).
        shares: the ``k`` exact pixel shares of the sources in the final image (the target
            weights).
        size: the image size ``(H, W)`` the boxes were drawn for.
    """

    boxes: list[tuple[int, int, int, int]] | None = None
    shares: list[float] | None = None
    size: tuple[int, int] | None = None


class BoxMixer(WeightedMixer):
    """``k - 1`` boxes of ``x[perm_1] .. x[perm_{k-1}]`` pasted into ``x`` (Yun et al., ICCV
    2019; Co-Mixup Table 4): the shared implementation of :class:`CutMix` (``k = 2``) and
    :class:`~comixup.mixers.multimix.MultiCutMix`.

    :meth:`sample_params` draws the weights and the permutations as
    :class:`~comixup.mixers.dirichlet.WeightedMixer`, then one box per source ``s >= 1`` of nominal
    area ratio ``w_s`` (centre row, then column; :func:`rand_box` with ``lam = 1 - w_s``), and
    counts the exact pixel share of every source in the final mask. :meth:`apply` pastes the
    boxes (any channel count) and mixes the targets by those shares.
    """

    @full_precision
    def sample_params(self, x, targets, saliency=None) -> BoxParams:
        """Draw the weights, the permutations, then the boxes (see the class docstring)."""
        b, _, h, w_img = x.shape
        weights, perms = self.draw(b)
        boxes = [_box_from_area(h, w_img, wj, self.generator) for wj in weights[1:]]
        # integer source map for the exact pixel counts; later boxes overwrite earlier ones
        src = torch.zeros(h, w_img, dtype=torch.long)
        for j, (y0, y1, x0, x1) in enumerate(boxes, start=1):
            src[y0:y1, x0:x1] = j
        counts = torch.bincount(src.flatten(), minlength=self.k).tolist()
        shares = [c / (h * w_img) for c in counts]
        ratios = permutation_ratios([torch.arange(b), *perms], shares, targets.dtype, x.device)
        return BoxParams(ratios=ratios, weights=weights, perms=perms, boxes=boxes, shares=shares,
                         size=(h, w_img))

    @full_precision
    def apply(self, x, targets, params: BoxParams):
        """Paste the boxes into a copy of ``x`` (``(B, C', H, W)``, the drawn ``H, W``) and mix
        the targets by the pixel shares."""
        params.check_batch(x)
        if tuple(x.shape[-2:]) != params.size:
            raise ValueError(f"x has image size {tuple(x.shape[-2:])} but the boxes were drawn "
                             f"for {params.size}")
        x_mix = x.clone()
        for (y0, y1, x0, x1), perm in zip(params.boxes, params.perms):
            x_mix[:, :, y0:y1, x0:x1] = x[perm.to(x.device), :, y0:y1, x0:x1]
        if targets is None:
            return x_mix, None
        y_mix = params.shares[0] * targets
        for share, perm in zip(params.shares[1:], params.perms):
            y_mix = y_mix + share * targets[perm.to(targets.device)]
        return x_mix, y_mix


class CutMix(Pairwise, BoxMixer):
    """CutMix (Yun et al., ICCV 2019): a box of ``x[perm]`` pasted into every image; the
    targets weigh ``x[perm]`` by the area actually pasted (after clipping).

    Args:
        num_classes: number of classes of the soft targets, an int >= 1.
        alpha: Beta concentration, a finite number > 0; default 1.0 (Yun et al.).
        generator: CPU :class:`torch.Generator` for every draw (``lambda``, the permutation,
            then the box centre); ``None`` uses torch's default generator.

    ``return_info=True`` gives a :class:`BoxParams`. Images need not be square.
    """
