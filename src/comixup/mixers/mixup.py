"""Input Mixup (Zhang et al., "mixup: Beyond Empirical Risk Minimization", ICLR 2018).

Input Mixup draws one mixing ratio ``lambda ~ Beta(alpha, alpha)`` and one random
permutation ``perm`` of the batch, and trains on ``lambda * x + (1 - lambda) * x[perm]`` with
the targets mixed by the same weights (notes 4, "Baselines as the paper ran them").
Co-Mixup (Kim et al., ICLR 2021) compares against it with ``alpha`` tuned over
``{0.2, 1.0, 2.0}``; the default here is ``alpha = 1.0``, the setting of Zhang et al. for
CIFAR and of the Co-Mixup reference for its Input Mixup baseline.

Written in the style of timm's ``data/mixup.py``: small pure functions
(:func:`sample_lambda`, :func:`mix_pair`) and a batch transform (:class:`InputMixup`) called
as ``x_mix, y_mix = mixer(x, y)`` following :mod:`comixup.mixers.base`.

Randomness: every draw comes from one CPU :class:`torch.Generator` (``None`` means torch's
default CPU generator, seeded by :func:`torch.manual_seed`), in the order of the reference
code of Zhang et al.: first ``lambda``, then the permutation. The draws are made on the CPU and
the permutation is then moved to ``x``'s device, so a fixed seed gives the same mixing on
every device. ``lambda`` is drawn exactly as ``torch.distributions.Beta(a, a).sample()`` in
float64 would draw it from the default generator (both go through the Dirichlet sampler),
so ``torch.manual_seed(s)`` followed by that call reproduces the ``lambda`` of a generator
seeded with ``s``.

The private argument checks (``_check_alpha``, ``_check_generator``, ``_check_k``) are shared
by :mod:`comixup.mixers.cutmix`, :mod:`comixup.mixers.multimix` and
:mod:`comixup.mixers.manifold`.
"""

from __future__ import annotations

import numbers

import torch

from .base import check_generator, check_images, check_num_classes, check_number, soft_targets

__all__ = ["InputMixup", "mix_pair", "sample_lambda"]


# ----------------------------------------------------------------------------------------------
# argument checks shared by the baseline mixers
# ----------------------------------------------------------------------------------------------


def _target_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype in which targets are mixed: at least float32, then cast to ``x``'s dtype."""
    return torch.promote_types(dtype, torch.float32)


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


def mix_pair(x: torch.Tensor, perm: torch.Tensor, lam: float) -> torch.Tensor:
    """Return the pairwise convex combination ``lam * x + (1 - lam) * x[perm]``.

    The mixing step of Input Mixup (Zhang et al., ICLR 2018) and, applied to a hidden state,
    of Manifold Mixup (Verma et al., ICML 2019); notes 4.

    Args:
        x: a tensor whose first dimension is the batch (images ``(B, C, H, W)`` or any hidden
            state ``(B, ...)``), of a floating dtype.
        perm: a permutation of ``range(B)`` (integer tensor of shape ``(B,)``); it is moved to
            ``x``'s device.
        lam: the weight of ``x`` itself, in ``[0, 1]``.

    Returns:
        A new tensor of ``x``'s shape, dtype and device. Autograd flows through it.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 1 or not x.is_floating_point():
        raise ValueError(
            f"x must be a floating tensor with a batch dimension, got {x.dtype} "
            f"of shape {tuple(x.shape)}"
        )
    if not isinstance(perm, torch.Tensor):
        raise TypeError(f"perm must be a torch.Tensor, got {type(perm).__name__}")
    if perm.dim() != 1 or perm.shape[0] != x.shape[0]:
        raise ValueError(f"perm must have shape (B,) = ({x.shape[0]},), got {tuple(perm.shape)}")
    if perm.is_floating_point() or perm.dtype == torch.bool:
        raise TypeError(f"perm must hold integer indices, got dtype {perm.dtype}")
    if isinstance(lam, bool) or not isinstance(lam, numbers.Real):
        raise TypeError(f"lam must be a real number, got {type(lam).__name__}")
    lam = float(lam)
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must be in [0, 1], got {lam}")
    perm = perm.to(device=x.device, dtype=torch.long)
    return lam * x + (1.0 - lam) * x[perm]


# ----------------------------------------------------------------------------------------------
# batch transform
# ----------------------------------------------------------------------------------------------


class _PairMixer:
    """Shared part of the pairwise mixers: arguments, targets and the (lambda, perm) draw."""

    def __init__(
        self, num_classes: int, *, alpha: float = 1.0, generator: torch.Generator | None = None
    ) -> None:
        self.num_classes = check_num_classes(num_classes)
        self.alpha = check_number("alpha", alpha, low_open=True)
        self.generator = check_generator(generator)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_classes={self.num_classes}, alpha={self.alpha})"

    def _targets(self, x, y) -> tuple[torch.Tensor, torch.Tensor]:
        """Checked ``x`` and its soft targets in the mixing dtype (at least float32)."""
        x = check_images(x)
        return x, soft_targets(y, self.num_classes, x.shape[0], _target_dtype(x.dtype), x.device)

    def _draw(self, batch: int, device) -> tuple[float, torch.Tensor]:
        """``lambda ~ Beta(alpha, alpha)`` first, then the permutation (moved to ``device``)."""
        lam = sample_lambda(self.alpha, self.generator)
        return lam, torch.randperm(batch, generator=self.generator).to(device)


class InputMixup(_PairMixer):
    """Input Mixup batch transform (Zhang et al., ICLR 2018; notes 4).

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

    Returns:
        ``(x_mix, y_mix)``: the mixed batch (shape, dtype and device of ``x``) and soft
        targets ``(B, num_classes)`` in ``x``'s dtype whose rows sum to 1 (mixed in at least
        float32, then cast). A batch of one image is returned unmixed (a copy) with its
        target, one-hot for integer labels; no random numbers are drawn for it.
    """

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mix the batch ``x`` with labels ``y``; see the class docstring."""
        x, t = self._targets(x, y)
        if x.shape[0] == 1:
            return x.clone(), t.to(x.dtype)
        lam, perm = self._draw(x.shape[0], x.device)
        x_mix = mix_pair(x, perm, lam)
        y_mix = lam * t + (1.0 - lam) * t[perm]
        return x_mix, y_mix.to(x.dtype)
