"""ResizeMix (Qin et al., "ResizeMix: Mixing Data with Preserved Object Information and True
Labels", arXiv 2012.11101, 2020).

The paper has no official code; the details follow OpenMixup's ``resizemix``
(github Westlake-AI/openmixup, ``openmixup/models/augments/resizemix.py``), the implementation
behind the published CIFAR-100 and Tiny-ImageNet benchmarks of the method.

ResizeMix draws a random permutation ``perm`` of the batch and a scale ``tau ~ U(tau_min,
tau_max)`` (the paper's ``alpha = 0.1`` and ``beta = 0.8``), then a box of side lengths
``int(H * tau) x int(W * tau)`` at a centre uniform over the pixel grid, clipped to the image.
The whole source image ``x[perm]`` is resized to the clipped box and pasted there, so the
pasted patch keeps all of the source's content (the method's point, against CutMix's crop).
The target weight of ``x[perm]`` is the pasted area over ``H * W``, that of the image itself
the rest (the paper's label rule; OpenMixup also "adjusts lambda to the pixel ratio").

Resizing: ``nearest`` by default, as OpenMixup (``interpolate_mode="nearest"``), which
``F.interpolate`` applies without anti-aliasing; ``bilinear`` (``align_corners=False``, no
anti-aliasing, mmpretrain's choice) is an option. Nearest keeps the values of the resized
tensor, so a stack of binary object masks stays binary and the kept object mass is exact.

Randomness: one CPU :class:`torch.Generator` (``None`` = torch's default), drawn in
OpenMixup's order: the permutation, ``tau`` (``tau_min + (tau_max - tau_min) * u`` with ``u
= torch.rand`` in float64, as ``numpy.random.uniform``), the centre column, then the centre row.

Deviations from OpenMixup, none of which changes the method on square images:

* OpenMixup draws the column centre over ``size(2)`` and the row centre over ``size(3)``
  (the height and the width swapped); here each centre is drawn over its own axis, so
  non-square images are handled.
* OpenMixup spans ``c - cut // 2`` to ``c + cut // 2`` and so loses a row or column when the
  side ``cut`` is odd; here the unclipped box has exactly ``cut`` rows and columns (rows
  ``[cy - cut_h // 2, cy - cut_h // 2 + cut_h)``), the convention of
  :class:`~comixup.mixers.cutmix.CutMix`.
* OpenMixup's ``use_alpha`` variant (``tau ~ Beta(alpha, alpha)``, redrawn uniformly outside
  the range), which its benchmark configs turn on, is not the paper's and is not offered.
* A box that is empty (a side of 0 pixels, e.g. ``int(H * tau) = 0`` on a tiny image) pastes
  nothing and the targets are the image's own; ``F.interpolate`` cannot resize to 0 pixels.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from .._checks import check_choice, check_number
from .._precision import full_precision
from .base import Mixer, MixParams, check_drawn_for, permutation_ratios

__all__ = ["INTERPOLATIONS", "ResizeMix", "ResizeParams", "resize_box"]

#: The resizing modes :class:`ResizeMix` accepts.
INTERPOLATIONS = ("nearest", "bilinear")


def resize_box(h: int, w: int, tau: float, cy: int, cx: int) -> tuple[int, int, int, int]:
    """The clipped box ``(y0, y1, x0, x1)`` of side ``int(H * tau) x int(W * tau)`` centred at
    row ``cy`` and column ``cx`` (half-open ranges, ``0 <= y0 <= y1 <= H``, likewise
    columns)."""
    cut_h, cut_w = int(h * tau), int(w * tau)
    top, left = cy - cut_h // 2, cx - cut_w // 2
    y0, y1 = min(max(top, 0), h), min(max(top + cut_h, 0), h)
    x0, x1 = min(max(left, 0), w), min(max(left + cut_w, 0), w)
    return y0, y1, x0, x1


@dataclasses.dataclass
class ResizeParams(MixParams):
    """Parameters of :class:`ResizeMix`.

    Attributes:
        ratios: ``(B, B)`` share of every input in every output (:class:`MixParams`):
            ``1 - share`` for the image itself, ``share`` for ``x[perm]``.
        perm: the permutation (CPU long tensor ``(B,)``).
        tau: the drawn scale of the side.
        box: the clipped box ``(y0, y1, x0, x1)`` that the resized ``x[perm]`` fills.
        share: the pasted area over ``H * W``, the target weight of ``x[perm]``.
        size: the image size ``(H, W)`` the box was drawn for.
    """

    perm: torch.Tensor | None = None
    tau: float | None = None
    box: tuple[int, int, int, int] | None = None
    share: float | None = None
    size: tuple[int, int] | None = None


class ResizeMix(Mixer):
    """ResizeMix (Qin et al., arXiv 2012.11101, 2020): ``x[perm]`` resized to a scale ``tau ~
    U(tau_min, tau_max)`` of the side and pasted at a random place of ``x``; the targets weigh
    ``x[perm]`` by the pasted area.

    Args:
        num_classes: number of classes of the soft targets, an int >= 1.
        tau_min: lower end of the scale's range (the paper's ``alpha``), in ``[0, 1]``;
            default 0.1 (the paper's).
        tau_max: upper end (the paper's ``beta``), in ``[tau_min, 1]``; default 0.8 (the
            paper's).
        interpolation: ``"nearest"`` (default, OpenMixup's) or ``"bilinear"``.
        generator: CPU :class:`torch.Generator` for every draw (the permutation, ``tau``, the
            centre column, then the centre row); ``None`` uses torch's default generator.

    ``return_info=True`` gives a :class:`ResizeParams`; :meth:`apply` resizes whatever tensor
    it is given (any channel count) into the stored box. Images need not be square.
    """

    _repr_keys = ("num_classes", "tau_min", "tau_max", "interpolation")

    def __init__(self, num_classes: int, *, tau_min: float = 0.1, tau_max: float = 0.8,
                 interpolation: str = "nearest", generator: torch.Generator | None = None
                 ) -> None:
        super().__init__(num_classes, generator=generator)
        self.tau_min = check_number("tau_min", tau_min, high=1.0)
        self.tau_max = check_number("tau_max", tau_max, high=1.0)
        if self.tau_max < self.tau_min:
            raise ValueError(f"tau_max must be >= tau_min = {self.tau_min}, got {self.tau_max}")
        self.interpolation = check_choice("interpolation", interpolation, INTERPOLATIONS)

    @full_precision
    def sample_params(self, x, targets, saliency=None) -> ResizeParams:
        """Draw the permutation, ``tau``, the centre column and the centre row, in this order."""
        b, _, h, w = x.shape
        perm = torch.randperm(b, generator=self.generator)
        u = float(torch.rand(1, generator=self.generator, dtype=torch.float64))
        tau = self.tau_min + (self.tau_max - self.tau_min) * u
        cx = int(torch.randint(0, w, (1,), generator=self.generator))
        cy = int(torch.randint(0, h, (1,), generator=self.generator))
        box = resize_box(h, w, tau, cy, cx)
        y0, y1, x0, x1 = box
        share = (y1 - y0) * (x1 - x0) / (h * w)
        ratios = permutation_ratios([torch.arange(b), perm], [1.0 - share, share],
                                    targets.dtype, x.device)
        return ResizeParams(ratios=ratios, perm=perm, tau=tau, box=box, share=share,
                            size=(h, w))

    @full_precision
    def apply(self, x, targets, params: ResizeParams):
        """Resize ``x[perm]`` (any ``(B, C', H, W)`` of the drawn batch and image size) into the
        box of a copy of ``x``; mix the targets by the pasted area."""
        check_drawn_for(x, params.perm.numel(), params.size, "box was")
        y0, y1, x0, x1 = params.box
        perm = params.perm.to(x.device)
        x_mix = x.clone()
        if y1 > y0 and x1 > x0:
            kw = {} if self.interpolation == "nearest" else {"align_corners": False}
            x_mix[:, :, y0:y1, x0:x1] = F.interpolate(x[perm], size=(y1 - y0, x1 - x0),
                                                      mode=self.interpolation, **kw)
        if targets is None:
            return x_mix, None
        y_mix = (1.0 - params.share) * targets + params.share * targets[perm.to(targets.device)]
        return x_mix, y_mix
