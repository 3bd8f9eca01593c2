"""GuidedMixup (Kang and Kim, "GuidedMixup: An Efficient Mixup Strategy Guided by Saliency
Maps", AAAI 2023).

Every image ``x[i]`` is mixed pixel by pixel with a partner ``x[perm[i]]`` chosen so that
their salient regions differ. As in the reference code (``mixup.py``'s ``guided`` branch and
``FGVC/Implementor/guidedmixup.py``):

1. saliency ``s``: for Guided-SR (``saliency="spectral"``) the spectral residual of the
   images (:func:`comixup.saliency.spectral_residual` with ``variant="guidedmixup"``: 7x7
   Gaussian blur with sigma 3, no model needed); for Guided-AP (``saliency="gradient"``) the
   gradient saliency of the clean pass given to the call (``sqrt(mean_c grad^2)``, as Puzzle
   Mix and Co-Mixup);
2. ``s`` is blurred again by a ``blur x blur`` Gaussian of standard deviation ``sigma`` (7
   and 3 in the reference, also for SR, whose map is then blurred twice) and normalized to
   sum 1 per image;
3. pairing (``pairing="greedy"``): the ``(B, B)`` l2 distances between the normalized maps,
   diagonal ``-inf``; the largest entry ``(r, c)`` starts a single cycle ``perm[r] = c``;
   then from row ``c`` the farthest image not yet on the cycle (first in index order on a
   tie, NumPy's ``argmax``) is the next, until every image is on it and the last points back
   to ``r`` (the reference's ``onecycle_cover``). The partners are thus as far apart as the
   greedy rule finds, and ``perm`` is a single ``B``-cycle (no image is its own partner);
4. the mask ``m = s / (s + s[perm])`` is the weight of ``x`` at every pixel:
   ``x_mix = m x + (1 - m) x[perm]``, and the targets weigh ``y`` by the mean of ``m``.

The reference has no ``lambda`` in this mixer: its CIFAR code draws one (and a grid size
and a permutation) for the other methods and does not use it for GuidedMixup; so nothing is
drawn here for the greedy pairing, and only the permutation for ``pairing="random"``.

Deviations from the reference code:

* the released CIFAR/Tiny-ImageNet script passes ``condition="greedy_c"`` to a ``pairing``
  that only knows ``"greedy"`` and so falls back to a random permutation; the FGVC code
  (and the paper) use the greedy cycle, which is the default here. ``pairing="random"``
  gives what that script runs;
* the distance matrix is read back to the CPU in one copy and the greedy cycle runs there in
  NumPy, as the reference's Cython; the distances are computed in float32 from differences
  (no matrix-product shortcut), like the reference's, but on another device or kernel their
  last bits, hence exact ties, may differ;
* a pixel where both maps vanish gets ``m = 1/2`` (the reference divides 0 by 0), and an
  all-zero map is uniform after normalization (the reference divides by 0).

Host reads: the ``(B, B)`` distance matrix, in one copy per call (greedy pairing only).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from .._checks import check_choice, check_int, check_number
from .._precision import full_precision
from ..saliency import gaussian_blur, spectral_residual
from .base import Mixer, MixParams, permutation_ratios, skip_mixing

__all__ = ["GuidedMixup", "GuidedMixupParams", "greedy_cycle"]


def greedy_cycle(dist: np.ndarray) -> np.ndarray:
    """The reference's greedy pairing of a ``(B, B)`` distance matrix (B >= 2), one cycle.

    Start at the largest off-diagonal entry ``(r, c)`` (first in row-major order on a tie),
    set ``perm[r] = c``; then repeatedly, from the last image ``c``, go to the farthest image
    not yet on the cycle (lowest index on a tie), and finally close the cycle back to ``r``.

    Returns:
        ``perm`` (int64 array ``(B,)``): output ``i`` is mixed with ``x[perm[i]]``; a single
        ``B``-cycle.
    """
    d = np.array(dist, dtype=np.float64 if dist.dtype == np.float64 else np.float32, copy=True)
    n = d.shape[0]
    np.fill_diagonal(d, -np.inf)
    perm = np.zeros(n, dtype=np.int64)
    row, col = divmod(int(np.argmax(d)), n)
    first = row
    perm[row] = col
    d[:, row] = -np.inf
    for _ in range(n - 2):
        row = col
        col = int(np.argmax(d[row]))
        perm[row] = col
        d[:, row] = -np.inf
    perm[col] = first
    return perm


@dataclasses.dataclass
class GuidedMixupParams(MixParams):
    """Parameters of GuidedMixup: output ``i`` is ``mask[i] x[i] + (1 - mask[i]) x[perm[i]]``.

    Attributes:
        ratios: ``(B, B)`` share of every input in every output: ``ratio[i]`` at ``i`` and
            ``1 - ratio[i]`` at ``perm[i]``.
        perm: the partners (CPU long tensor ``(B,)``).
        mask: ``(B, H, W)`` float32 weight of ``x[i]`` at every pixel, on ``x``'s device.
        ratio: ``(B,)`` the mean mask, the weight of ``y`` in the targets (mixing dtype).
        saliency: ``(B, H, W)`` the blurred maps normalized to sum 1 that made the pairing
            and the mask.
    """

    perm: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    ratio: torch.Tensor | None = None
    saliency: torch.Tensor | None = None


class GuidedMixup(Mixer):
    """GuidedMixup (Kang and Kim, AAAI 2023): pixel-wise mixing ratios from the saliency of
    partners paired greedily by saliency distance.

    Args:
        num_classes: number of classes of the soft targets, an int >= 1.
        saliency: ``"spectral"`` (Guided-SR, default: spectral residual of the images, the call
            takes no saliency) or ``"gradient"`` (Guided-AP: the call takes the gradient
            saliency ``(B, H, W)`` of the clean pass).
        pairing: ``"greedy"`` (default, the paper's) or ``"random"`` (a random permutation).
        blur: side of the Gaussian blur of the maps, an odd int >= 1 (1: none); default 7.
        sigma: its standard deviation, a finite number > 0; default 3.0.
        prob: the probability that a batch is mixed, in ``[0, 1]`` (the reference's
            ``mix_prob``: 0.5 for Guided-SR, 0.8 for Guided-AP on CIFAR-100 and
            Tiny-ImageNet); default 1. An unmixed batch keeps its images and one-hot targets.
        generator: CPU :class:`torch.Generator` for the random pairing; ``None`` uses torch's
            default generator. The greedy pairing draws nothing.

    ``return_info=True`` gives a :class:`GuidedMixupParams`. Images need not be square.
    """

    _repr_keys = ("num_classes", "saliency", "pairing", "blur", "sigma", "prob")

    def __init__(self, num_classes: int, *, saliency: str = "spectral", pairing: str = "greedy",
                 blur: int = 7, sigma: float = 3.0, prob: float = 1.0,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(num_classes, generator=generator)
        self.saliency = check_choice("saliency", saliency, ("spectral", "gradient"))
        self.pairing = check_choice("pairing", pairing, ("greedy", "random"))
        self.blur = check_int("blur", blur, 1)
        if self.blur % 2 == 0:
            raise ValueError(f"blur must be odd, got {self.blur}")
        self.sigma = check_number("sigma", sigma, low_open=True)
        self.prob = check_number("prob", prob, high=1.0)
        #: Guided-AP takes the gradient saliency of the call; Guided-SR computes its own.
        self.uses_saliency = self.saliency == "gradient"

    def normalized_saliency(self, x: torch.Tensor, saliency: torch.Tensor | None
                            ) -> torch.Tensor:
        """The blurred ``(B, H, W)`` maps normalized to sum 1 (float32 at least)."""
        if self.saliency == "spectral":
            sal = spectral_residual(x, variant="guidedmixup")
        else:
            sal = saliency.detach().to(torch.promote_types(saliency.dtype, torch.float32))
        if self.blur > 1:
            sal = gaussian_blur(sal, self.blur, self.sigma)
        total = sal.sum((1, 2), keepdim=True)
        uniform = torch.full_like(sal, 1.0 / (sal.shape[1] * sal.shape[2]))
        return torch.where(total > 0, sal / torch.where(total > 0, total, 1.0), uniform)

    @full_precision
    def sample_params(self, x, targets, saliency=None) -> GuidedMixupParams:
        """Saliency, pairing, then the pixel-wise ratios (see the module docstring)."""
        b = x.shape[0]
        if skip_mixing(self.prob, self.generator):  # the batch as it is
            none = torch.arange(b)
            ones = torch.ones(b, *x.shape[-2:], dtype=torch.float32, device=x.device)
            return GuidedMixupParams(
                ratios=permutation_ratios([none], [1.0], targets.dtype, x.device), perm=none,
                mask=ones, ratio=torch.ones(b, dtype=targets.dtype, device=x.device))
        sal = self.normalized_saliency(x, saliency)
        if self.pairing == "greedy":
            flat = sal.flatten(1)
            dist = torch.cdist(flat, flat, compute_mode="donot_use_mm_for_euclid_dist")
            perm = torch.from_numpy(greedy_cycle(dist.cpu().numpy()))   # the one host read
        else:
            perm = torch.randperm(b, generator=self.generator)
        partner = sal[perm.to(sal.device)]
        den = sal + partner
        mask = torch.where(den > 0, sal / torch.where(den > 0, den, 1.0), 0.5)
        ratio = mask.to(targets.dtype).mean((1, 2))
        ratios = permutation_ratios([torch.arange(b), perm], [ratio, 1 - ratio], targets.dtype,
                                    x.device)
        return GuidedMixupParams(ratios=ratios, perm=perm, mask=mask, ratio=ratio, saliency=sal)

    @full_precision
    def apply(self, x, targets, params: GuidedMixupParams):
        """``mask x + (1 - mask) x[perm]`` for any ``(B, C', H, W)`` of the drawn ``B, H, W``,
        and the targets weighed by the mean mask."""
        if x.shape[0] != params.perm.numel() or x.shape[-2:] != params.mask.shape[-2:]:
            raise ValueError(f"x has shape {tuple(x.shape)} but the parameters were drawn for "
                             f"batch and image size {tuple(params.mask.shape)}")
        perm = params.perm.to(x.device)
        mask = params.mask.to(x.device).unsqueeze(1)
        x_mix = (mask * x + (1 - mask) * x[perm]).to(x.dtype)
        if targets is None:
            return x_mix, None
        ratio = params.ratio.to(device=targets.device, dtype=targets.dtype).unsqueeze(1)
        return x_mix, ratio * targets + (1 - ratio) * targets[perm.to(targets.device)]
