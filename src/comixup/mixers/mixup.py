"""Input Mixup (Zhang et al., "mixup: Beyond Empirical Risk Minimization", ICLR 2018).

Input Mixup draws one mixing ratio ``lambda ~ Beta(alpha, alpha)`` and one random
permutation ``perm`` of the batch, and trains on ``lambda * x + (1 - lambda) * x[perm]`` with
the targets mixed by the same weights (recipes 4, "Baselines as the paper ran them").
Co-Mixup (Kim et al., ICLR 2021) compares against it with ``alpha`` tuned over
``{0.2, 1.0, 2.0}``; the default here is ``alpha = 1.0``, the setting of Zhang et al. for
CIFAR and of the Co-Mixup reference for its Input Mixup baseline.

Written in the style of timm's ``data/mixup.py``: small pure functions
(:func:`sample_lambda`, :func:`sample_weights`, :func:`mix_pair`) and a batch transform
(:class:`InputMixup`) called as ``x_mix, y_mix = mixer(x, y)`` following the protocol of
:class:`comixup.mixers.base.Mixer`. Input Mixup is the ``k = 2`` case of the ``k``-input
interpolation of Co-Mixup Table 4 (:class:`~comixup.mixers.multimix.MultiInputMixup`), and
both share one implementation here, :class:`WeightedMixer`, with the parameters
:class:`WeightParams`.

Randomness: every draw comes from one CPU :class:`torch.Generator` (``None`` means torch's
default CPU generator, seeded by :func:`torch.manual_seed`), in the order of the reference
code of Zhang et al.: first ``lambda``, then the permutation. The draws are made on the CPU and
the permutation is then moved to ``x``'s device, so a fixed seed gives the same mixing on
every device. ``lambda`` is drawn exactly as ``torch.distributions.Beta(a, a).sample()`` in
float64 would draw it from the default generator (both go through the Dirichlet sampler),
so ``torch.manual_seed(s)`` followed by that call reproduces the ``lambda`` of a generator
seeded with ``s``.

"""

from __future__ import annotations

import dataclasses

import torch

from .base import (
    Mixer,
    MixParams,
    check_generator,
    check_int,
    check_number,
    check_tensor,
    permutation_ratios,
)

__all__ = ["InputMixup", "WeightParams", "WeightedMixer", "mix_pair", "sample_lambda",
           "sample_weights"]


# ----------------------------------------------------------------------------------------------
# pure functions
# ----------------------------------------------------------------------------------------------


def sample_lambda(alpha: float, generator: torch.Generator | None = None) -> float:
    """Draw one mixing ratio ``lambda ~ Beta(alpha, alpha)`` (Zhang et al., ICLR 2018).

    Args:
        alpha: the Beta concentration, a finite number > 0.
        generator: CPU :class:`torch.Generator`; ``None`` uses torch's default generator.

    Returns:
        ``lambda`` in ``[0, 1]`` as a Python float. The draw equals
        ``torch.distributions.Beta(a, a).sample()`` for float64 ``a`` taken from a default
        generator in the same state (both use the float64 Dirichlet sampler on ``(a, a)``
        and keep the first coordinate).
    """
    alpha = check_number("alpha", alpha, low_open=True)
    generator = check_generator(generator)
    conc = torch.full((2,), alpha, dtype=torch.float64)
    return float(torch._sample_dirichlet(conc, generator=generator)[0])


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
        :func:`sample_lambda`.
    """
    k = check_int("k", k, 2, 8)
    alpha = check_number("alpha", alpha, low_open=True)
    generator = check_generator(generator)
    conc = torch.full((k,), alpha, dtype=torch.float64)
    w = torch._sample_dirichlet(conc, generator=generator)
    w[-1] = (1.0 - w[:-1].sum()).clamp_min(0.0)
    return w


def mix_pair(x: torch.Tensor, perm: torch.Tensor, lam: float) -> torch.Tensor:
    """Return the pairwise convex combination ``lam * x + (1 - lam) * x[perm]``.

    The mixing step of Input Mixup (Zhang et al., ICLR 2018) and, applied to a hidden state,
    of Manifold Mixup (Verma et al., ICML 2019); recipes 4.

    Args:
        x: a tensor whose first dimension is the batch (images ``(B, C, H, W)`` or any hidden
            state ``(B, ...)``), of a floating dtype.
        perm: a permutation of ``range(B)`` (integer tensor of shape ``(B,)``); it is moved to
            ``x``'s device.
        lam: the weight of ``x`` itself, in ``[0, 1]``.

    Returns:
        A new tensor of ``x``'s shape, dtype and device. Autograd flows through it.
    """
    check_tensor("x", x, floating=False, finite=False)
    if x.dim() < 1 or not x.is_floating_point():
        raise ValueError(
            f"x must be a floating tensor with a batch dimension, got {x.dtype} "
            f"of shape {tuple(x.shape)}"
        )
    check_tensor("perm", perm, floating=False)
    if perm.dim() != 1 or perm.shape[0] != x.shape[0]:
        raise ValueError(f"perm must have shape (B,) = ({x.shape[0]},), got {tuple(perm.shape)}")
    if perm.is_floating_point() or perm.dtype == torch.bool:
        raise TypeError(f"perm must hold integer indices, got dtype {perm.dtype}")
    lam = check_number("lam", lam, high=1.0)
    perm = perm.to(device=x.device, dtype=torch.long)
    return lam * x + (1.0 - lam) * x[perm]


# ----------------------------------------------------------------------------------------------
# batch transforms
# ----------------------------------------------------------------------------------------------


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


def _identity(batch: int) -> torch.Tensor:
    return torch.arange(batch)


def _check_params_batch(x: torch.Tensor, params: WeightParams) -> None:
    if x.shape[0] != params.perms[0].numel():
        raise ValueError(
            f"x has batch size {x.shape[0]} but the parameters were drawn for "
            f"{params.perms[0].numel()}"
        )


class WeightedMixer(Mixer):
    """``k`` whole sources mixed with Dirichlet weights: ``sum_s w_s x[perm_s]``.

    The shared implementation of :class:`InputMixup` (``k = 2``, Zhang et al., ICLR 2018) and
    :class:`~comixup.mixers.multimix.MultiInputMixup` (Co-Mixup Table 4), and the draw of
    :class:`~comixup.mixers.cutmix.CutMix` and of Manifold Mixup. :meth:`sample_params` draws
    ``w ~ Dirichlet(alpha 1_k)`` (:func:`sample_weights`; for ``k = 2`` the same
    ``(lambda, 1 - lambda)`` as :func:`sample_lambda`), then ``k - 1`` permutations, all from
    the generator. :meth:`apply` returns ``w_0 x + w_1 x[perm_1] + ...`` and the targets mixed
    by the same weights; it accepts any tensor whose first dimension is the batch.

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

    def _draw(self, batch: int) -> tuple[list[float], list[torch.Tensor]]:
        """The weights, then the ``k - 1`` permutations (CPU)."""
        weights = sample_weights(self.k, self.alpha, self.generator).tolist()
        perms = [torch.randperm(batch, generator=self.generator) for _ in range(self.k - 1)]
        return weights, perms

    def sample_params(self, x, targets, saliency=None) -> WeightParams:
        """Draw the weights and the permutations (see the class docstring)."""
        weights, perms = self._draw(x.shape[0])
        ratios = permutation_ratios([_identity(x.shape[0]), *perms], weights, targets.dtype,
                                    x.device)
        return WeightParams(ratios=ratios, weights=weights, perms=perms)

    def apply(self, x, targets, params: WeightParams):
        """``sum_s w_s x[perm_s]`` and the same mixture of the targets (any tensor ``(B, ...)``)."""
        _check_params_batch(x, params)
        return _weighted_sum(x, params), _weighted_sum(targets, params)


def _weighted_sum(t: torch.Tensor | None, params: WeightParams) -> torch.Tensor | None:
    """``w_0 t + w_1 t[perm_1] + ...`` in this order (``None`` stays ``None``)."""
    if t is None:
        return None
    w = params.weights
    out = w[0] * t
    for wj, perm in zip(w[1:], params.perms):
        out = out + wj * t[perm.to(t.device)]
    return out


class Pairwise:
    """Mixin of the pairwise mixers (:class:`InputMixup`, :class:`~comixup.mixers.cutmix.CutMix`):
    ``k = 2`` fixed, so the constructor takes only ``num_classes``, ``alpha`` and
    ``generator``."""

    _repr_keys = ("num_classes", "alpha")

    def __init__(
        self, num_classes: int, *, alpha: float = 1.0, generator: torch.Generator | None = None
    ) -> None:
        super().__init__(num_classes, k=2, alpha=alpha, generator=generator)


class InputMixup(Pairwise, WeightedMixer):
    """Input Mixup batch transform (Zhang et al., ICLR 2018; recipes 4).

    ``x_mix, y_mix = InputMixup(num_classes)(x, y)`` draws one ``lambda ~ Beta(alpha, alpha)``
    and one random permutation ``perm`` per batch and returns
    ``lambda * x + (1 - lambda) * x[perm]`` with targets
    ``lambda * y + (1 - lambda) * y[perm]``. It is the pairwise (``k = 2``) baseline of
    Co-Mixup Table 1 and Table 4.

    Args:
        num_classes: number of classes of the soft targets, an int >= 1.
        alpha: Beta concentration, a finite number > 0. Co-Mixup tunes it over
            ``{0.2, 1.0, 2.0}``; default ``1.0`` (Zhang et al.'s CIFAR setting).
        generator: CPU :class:`torch.Generator` for every draw (``lambda`` first, then the
            permutation); ``None`` uses torch's default generator.

    Call:
        x: images ``(B, C, H, W)`` of any floating dtype, on any device.
        y: integer labels ``(B,)`` or soft targets ``(B, num_classes)``.
        return_info: also return the :class:`WeightParams` (``lam``, ``perm``, ``ratios``).

    Returns:
        ``(x_mix, y_mix)`` as every :class:`~comixup.mixers.base.Mixer`: soft targets
        ``(B, num_classes)`` in ``x``'s dtype; a batch of one comes back unmixed, with no draw.
    """
