"""SaliencyMix (Uddin et al., "SaliencyMix: A Saliency Guided Data Augmentation Strategy for
Better Regularization", ICLR 2021).

SaliencyMix is CutMix whose box is centred on the most salient pixel of the source image
rather than at a uniform position. As in the reference code (``saliencymix.py`` of the
authors' CIFAR code, ``saliency_bbox``), one call draws ``lambda ~ Beta(alpha, alpha)`` (the
reference's ``--beta``), then a permutation ``perm`` of the batch; the static saliency map
of the source ``x[perm[0]]`` is computed, scaled to ``[0, 255]`` and truncated to integers,
and its first maximal pixel in row-major order is the box centre ``(cy, cx)``. The box has
side ``cut_h = int(H * sqrt(1 - lambda))`` (rows) and ``cut_w = int(W * sqrt(1 - lambda))``
(columns) and spans rows ``[cy - cut_h // 2, cy + cut_h // 2)`` and the columns likewise,
each end clipped to the image, so an odd side loses a pixel as in the reference (our
:class:`~comixup.mixers.cutmix.CutMix` keeps the exact side instead). The same box of
``x[perm]`` is pasted into every image and the targets weigh ``x[perm]`` by the area
actually pasted.

Deviations from the reference code:

* saliency: the reference uses OpenCV's ``StaticSaliencyFineGrained`` (Montabone and Soto,
  2010) on the normalized image; this module uses the spectral residual (Hou and Zhang,
  CVPR 2007) as OpenCV computes it, :func:`comixup.saliency.spectral_residual`, in torch
  and batched, so no OpenCV is needed. The box centres therefore differ.
* ``per_image=True`` (not in the reference; default False) centres a box on the saliency
  peak of every source ``x[perm[i]]`` instead of one box for the batch.
* the reference draws with NumPy's and torch's global generators; here every draw comes from
  ``generator`` in the reference's order (``lambda``, then the permutation).
* the mixing probability (``--salmix_prob 0.5`` in the reference) is the training engine's,
  not the mixer's.

Host reads: the argmax of the saliency is read back to place the box, 1 index (or ``B``
with ``per_image``) in one copy per call.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from .._checks import check_bool, check_number
from .._precision import full_precision
from ..saliency import spectral_residual
from .base import Mixer, MixParams, check_drawn_for, permutation_ratios, skip_mixing
from .mixup import sample_lambda

__all__ = ["SaliencyMix", "SaliencyMixParams", "saliency_box"]


def saliency_box(h: int, w: int, lam: float, cy: int, cx: int) -> tuple[int, int, int, int]:
    """The reference's box of nominal area ``1 - lam`` centred on ``(cy, cx)``: rows
    ``[cy - cut_h // 2, cy + cut_h // 2)``, columns likewise, clipped to the image.

    Returns ``(y0, y1, x0, x1)`` with ``0 <= y0 <= y1 <= h`` and ``0 <= x0 <= x1 <= w``.
    """
    rat = math.sqrt(1.0 - lam)
    cut_h, cut_w = int(h * rat), int(w * rat)
    y0, y1 = min(max(cy - cut_h // 2, 0), h), min(max(cy + cut_h // 2, 0), h)
    x0, x1 = min(max(cx - cut_w // 2, 0), w), min(max(cx + cut_w // 2, 0), w)
    return y0, y1, x0, x1


@dataclasses.dataclass
class SaliencyMixParams(MixParams):
    """Parameters of SaliencyMix: output ``i`` is ``x[i]`` with ``boxes[i]`` taken from
    ``x[perm[i]]``.

    Attributes:
        ratios: ``(B, B)`` share of every input in every output: ``1 - area[i]`` at ``i`` and
            ``area[i]`` at ``perm[i]`` (their sum where ``perm[i] = i``).
        lam: the drawn ``lambda``.
        perm: the permutation (CPU long tensor ``(B,)``).
        centres: the ``(cy, cx)`` saliency peaks the boxes are centred on (one per output).
        boxes: ``(y0, y1, x0, x1)`` of every output (all equal unless ``per_image``).
        area: ``(B,)`` float64 CPU tensor, the pasted pixel share of every output.
        size: the image size ``(H, W)`` the boxes were drawn for.
    """

    lam: float | None = None
    perm: torch.Tensor | None = None
    centres: list[tuple[int, int]] | None = None
    boxes: list[tuple[int, int, int, int]] | None = None
    area: torch.Tensor | None = None
    size: tuple[int, int] | None = None


class SaliencyMix(Mixer):
    """SaliencyMix (Uddin et al., ICLR 2021): a CutMix box centred on the peak of the
    source's static saliency (spectral residual); the targets weigh the source by the pasted
    area.

    Args:
        num_classes: number of classes of the soft targets, an int >= 1.
        alpha: Beta concentration of ``lambda``, a finite number > 0; default 1.0 (the
            reference's ``--beta 1.0``).
        per_image: centre every output's box on its own source's peak (default False: one
            box for the batch, from the saliency of ``x[perm[0]]``, as the reference).
        prob: the probability that a batch is mixed, in ``[0, 1]`` (the reference's
            ``--salmix_prob``: 0.5 on CIFAR, 1 on ImageNet); default 1. An unmixed batch keeps
            its images and one-hot targets.
        generator: CPU :class:`torch.Generator` for every draw (``lambda``, then the
            permutation); ``None`` uses torch's default generator.

    ``return_info=True`` gives a :class:`SaliencyMixParams`. Images need not be square.
    """

    _repr_keys = ("num_classes", "alpha", "per_image", "prob")

    def __init__(self, num_classes: int, *, alpha: float = 1.0, per_image: bool = False,
                 prob: float = 1.0, generator: torch.Generator | None = None) -> None:
        super().__init__(num_classes, generator=generator)
        self.alpha = check_number("alpha", alpha, low_open=True)
        self.per_image = check_bool("per_image", per_image)
        self.prob = check_number("prob", prob, high=1.0)

    @full_precision
    def sample_params(self, x, targets, saliency=None) -> SaliencyMixParams:
        """Draw ``lambda`` and the permutation, then place the box(es) on the saliency peak."""
        b, _, h, w = x.shape
        if skip_mixing(self.prob, self.generator):  # the batch as it is: an empty box
            none = torch.arange(b)
            return SaliencyMixParams(ratios=permutation_ratios([none], [1.0], targets.dtype,
                                                               x.device),
                                     perm=none, centres=[(0, 0)] * b, boxes=[(0, 0, 0, 0)] * b,
                                     area=torch.zeros(b, dtype=torch.float64), size=(h, w))
        lam = sample_lambda(self.alpha, self.generator)
        perm = torch.randperm(b, generator=self.generator)
        src = perm if self.per_image else perm[:1]
        sal = spectral_residual(x[src.to(x.device)])
        # the reference scales the map to uint8 before its argmax (first maximum wins)
        quant = torch.floor(sal.to(torch.float64) * 255).clamp_(0, 255)
        peaks = quant.flatten(1).argmax(1).tolist()   # the one host read of the call
        centres = [(p // w, p % w) for p in peaks]
        boxes = [saliency_box(h, w, lam, cy, cx) for cy, cx in centres]
        if not self.per_image:
            centres, boxes = centres * b, boxes * b
        area = torch.tensor([(y1 - y0) * (x1 - x0) / (h * w) for y0, y1, x0, x1 in boxes],
                            dtype=torch.float64)
        ratios = permutation_ratios([torch.arange(b), perm], [1 - area, area], targets.dtype,
                                    x.device)
        return SaliencyMixParams(ratios=ratios, lam=lam, perm=perm, centres=centres, boxes=boxes,
                                 area=area, size=(h, w))

    @full_precision
    def apply(self, x, targets, params: SaliencyMixParams):
        """Paste the boxes of ``x[perm]`` into a copy of ``x`` (``(B, C', H, W)``, the drawn
        ``H, W``) and mix the targets by the pasted areas."""
        check_drawn_for(x, params.perm.numel(), params.size, "boxes were")
        perm = params.perm.to(x.device)
        x_mix = x.clone()
        if len(set(params.boxes)) == 1:
            y0, y1, x0, x1 = params.boxes[0]
            x_mix[:, :, y0:y1, x0:x1] = x[perm, :, y0:y1, x0:x1]
        else:
            for i, (y0, y1, x0, x1) in enumerate(params.boxes):
                x_mix[i, :, y0:y1, x0:x1] = x[int(params.perm[i]), :, y0:y1, x0:x1]
        if targets is None:
            return x_mix, None
        area = params.area.to(device=targets.device, dtype=targets.dtype).unsqueeze(1)
        return x_mix, (1 - area) * targets + area * targets[perm.to(targets.device)]
