"""Input Mixup (Zhang et al., "mixup: Beyond Empirical Risk Minimization", ICLR 2018).

One ``lambda ~ Beta(alpha, alpha)`` and one permutation per batch; the batch becomes
``lambda * x + (1 - lambda) * x[perm]`` and the targets the same mixture (recipes 4). Co-Mixup
tunes ``alpha`` over ``{0.2, 1.0, 2.0}``; the default 1.0 is Zhang et al.'s CIFAR setting.
The draws are made on the CPU in the reference's order (``lambda``, then the permutation), so a
seed gives the same mixing on every device. Input Mixup is the ``k = 2`` case of
:class:`~comixup.mixers.dirichlet.WeightedMixer`.
"""

from __future__ import annotations

import torch

from .._checks import check_generator, check_number, check_tensor
from .dirichlet import Pairwise, WeightedMixer

__all__ = ["InputMixup", "mix_pair", "sample_lambda"]


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


class InputMixup(Pairwise, WeightedMixer):
    """Input Mixup (Zhang et al., ICLR 2018): ``lambda * x + (1 - lambda) * x[perm]``.

    Args:
        num_classes: number of classes of the soft targets, an int >= 1.
        alpha: Beta concentration, a finite number > 0; default 1.0.
        generator: CPU :class:`torch.Generator` for every draw (``lambda``, then the
            permutation); ``None`` uses torch's default generator.

    ``return_info=True`` gives a :class:`~comixup.mixers.dirichlet.WeightParams` (``lam``,
    ``perm``).
    """
