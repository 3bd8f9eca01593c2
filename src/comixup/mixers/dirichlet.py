"""The Dirichlet family: mixers that blend ``k`` whole sources with Dirichlet weights.

Input Mixup (Zhang et al., ICLR 2018), CutMix (Yun et al., ICCV 2019), Manifold Mixup (Verma et
al., ICML 2019) and the ``k``-input variants of Co-Mixup's Table 4 share one draw: weights
``w ~ Dirichlet(alpha 1_k)`` (:func:`sample_weights`; for ``k = 2`` the
``(lambda, 1 - lambda)`` of :func:`comixup.mixers.mixup.sample_lambda`), then ``k - 1``
permutations of the batch, all from the mixer's generator. :class:`WeightedMixer` makes that
draw and blends ``sum_s w_s x[perm_s]`` (:func:`weighted_sum`); CutMix replaces the blend by
boxes (:mod:`comixup.mixers.cutmix`), Manifold Mixup applies it to a hidden state
(:mod:`comixup.mixers.manifold`). :class:`WeightParams` are the parameters of every member;
:class:`Pairwise` fixes ``k = 2`` for the pairwise methods.
"""

from __future__ import annotations

import dataclasses

import torch

from .._checks import check_generator, check_int, check_number
from .._precision import full_precision
from .base import Mixer, MixParams, permutation_ratios

__all__ = ["Pairwise", "WeightParams", "WeightedMixer", "sample_weights", "weighted_sum"]


def sample_weights(k: int, alpha: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw ``k`` mixing weights from the isotropic ``Dirichlet(alpha * 1_k)``.

    Co-Mixup Section 5.5 / Table 4; recipes 4.

    Args:
        k: number of inputs, an int in ``2..8``.
        alpha: the Dirichlet concentration, a finite number > 0.
        generator: CPU :class:`torch.Generator`; ``None`` uses torch's default generator.

    Returns:
        A float64 CPU tensor ``(k,)`` of non-negative weights. The first ``k - 1`` entries are
        exactly ``torch.distributions.Dirichlet(torch.full((k,), alpha, dtype=torch.float64))
        .sample()`` taken from a default generator in the same state; the last is recomputed as
        ``1 - sum(others)`` (clamped at 0), a change of a few ulp, so that the weights sum to 1
        and ``k = 2`` draws ``(lambda, 1 - lambda)`` with the ``lambda`` of
        :func:`comixup.mixers.mixup.sample_lambda`.
    """
    k = check_int("k", k, 2, 8)
    alpha = check_number("alpha", alpha, low_open=True)
    generator = check_generator(generator)
    conc = torch.full((k,), alpha, dtype=torch.float64)
    w = torch._sample_dirichlet(conc, generator=generator)
    w[-1] = (1.0 - w[:-1].sum()).clamp_min(0.0)
    return w


@dataclasses.dataclass
class WeightParams(MixParams):
    """Parameters of the mixers that combine ``k`` whole sources (Input Mixup, CutMix, their
    ``k``-input variants, Manifold Mixup): source 0 is the batch itself, source ``s >= 1`` is
    ``x[perms[s - 1]]``.

    Attributes:
        ratios: ``(B, B)`` share of every input in every output (:class:`MixParams`).
        weights: the ``k`` drawn weights, ``[lambda, 1 - lambda]`` for ``k = 2``.
        perms: the ``k - 1`` permutations (CPU long tensors ``(B,)``), in the order drawn.
    """

    weights: list[float] | None = None
    perms: list[torch.Tensor] | None = None

    @property
    def lam(self) -> float | None:
        """The weight of the batch itself, ``weights[0]`` (``lambda`` for ``k = 2``)."""
        return None if self.weights is None else self.weights[0]

    @property
    def perm(self) -> torch.Tensor | None:
        """The first permutation, ``perms[0]`` (the only one for ``k = 2``)."""
        return None if self.perms is None else self.perms[0]

    def check_batch(self, t: torch.Tensor) -> None:
        """Raise if ``t``'s batch size is not the one the permutations were drawn for."""
        if t.shape[0] != self.perms[0].numel():
            raise ValueError(f"x has batch size {t.shape[0]} but the parameters were drawn for "
                             f"{self.perms[0].numel()}")


def weighted_sum(t: torch.Tensor | None, params: WeightParams) -> torch.Tensor | None:
    """``w_0 t + w_1 t[perm_1] + ...`` in this order, for any ``(B, ...)`` tensor (``None``
    stays ``None``)."""
    if t is None:
        return None
    w = params.weights
    out = w[0] * t
    for wj, perm in zip(w[1:], params.perms):
        out = out + wj * t[perm.to(t.device)]
    return out


class WeightedMixer(Mixer):
    """``k`` whole sources mixed with Dirichlet weights: ``sum_s w_s x[perm_s]``.

    The shared draw of Input Mixup, CutMix, Manifold Mixup and their ``k``-input variants:
    :meth:`sample_params` draws ``w ~ Dirichlet(alpha 1_k)`` (:func:`sample_weights`; for
    ``k = 2`` the ``(lambda, 1 - lambda)`` of :func:`comixup.mixers.mixup.sample_lambda`), then
    ``k - 1`` permutations, all from the generator. :meth:`apply` returns
    ``w_0 x + w_1 x[perm_1] + ...`` and the targets mixed by the same weights, for any tensor
    whose first dimension is the batch.

    Args:
        num_classes: number of classes of the soft targets, an int >= 1.
        k: number of mixed inputs, an int in ``2..8`` (default 3, as the ``k``-input
            variants; the pairwise mixers fix 2).
        alpha: the concentration, a finite number > 0.
        generator: CPU :class:`torch.Generator` for every draw; ``None`` uses torch's default.
    """

    _repr_keys = ("num_classes", "k", "alpha")

    def __init__(self, num_classes: int, *, k: int = 3, alpha: float = 1.0,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(num_classes, generator=generator)
        self.k = check_int("k", k, 2, 8)
        self.alpha = check_number("alpha", alpha, low_open=True)

    def draw(self, batch: int) -> tuple[list[float], list[torch.Tensor]]:
        """The weights, then the ``k - 1`` permutations (CPU)."""
        weights = sample_weights(self.k, self.alpha, self.generator).tolist()
        perms = [torch.randperm(batch, generator=self.generator) for _ in range(self.k - 1)]
        return weights, perms

    @full_precision
    def sample_params(self, x, targets, saliency=None) -> WeightParams:
        """Draw the weights and the permutations (see the class docstring)."""
        weights, perms = self.draw(x.shape[0])
        ratios = permutation_ratios([torch.arange(x.shape[0]), *perms], weights, targets.dtype,
                                    x.device)
        return WeightParams(ratios=ratios, weights=weights, perms=perms)

    @full_precision
    def apply(self, x, targets, params: WeightParams):
        """``sum_s w_s x[perm_s]`` and the same mixture of the targets (any tensor ``(B, ...)``)."""
        params.check_batch(x)
        return weighted_sum(x, params), weighted_sum(targets, params)


class Pairwise:
    """Mixin of the pairwise mixers (Input Mixup, CutMix): ``k = 2`` fixed, so the constructor
    takes only ``num_classes``, ``alpha`` and ``generator``."""

    _repr_keys = ("num_classes", "alpha")

    def __init__(
        self, num_classes: int, *, alpha: float = 1.0, generator: torch.Generator | None = None
    ) -> None:
        super().__init__(num_classes, k=2, alpha=alpha, generator=generator)
