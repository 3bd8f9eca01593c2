"""Multi-input Mixup and CutMix: the baselines of Co-Mixup Table 4 (Kim et al., ICLR 2021,
Section 5.5 "Baselines with multiple inputs").

To isolate the effect of the number of inputs, Co-Mixup mixes ``k in {2, 3, 4}`` inputs with
the ratios drawn from an isotropic ``Dirichlet(alpha, ..., alpha)`` (the generalisation of the
``Beta(alpha, alpha)`` of Zhang et al., ICLR 2018) and, for CutMix (Yun et al., ICCV 2019),
overlays ``k - 1`` boxes (recipes 4). ``alpha`` is tuned over ``{0.2, 1.0, 2.0}``; the default
here is ``alpha = 1.0``, the pairwise default.

Sources: source 0 is the batch itself, sources ``1 .. k-1`` are ``x[perm_1] .. x[perm_{k-1}]``
for ``k - 1`` independent random permutations (source 0 uses the identity permutation), so that
``k = 2`` is exactly the pairwise method: with the same generator state,
``MultiInputMixup(k=2)`` returns bit for bit what :class:`~comixup.mixers.mixup.InputMixup`
returns, and ``MultiCutMix(k=2)`` what :class:`~comixup.mixers.cutmix.CutMix` returns.

Randomness: one CPU :class:`torch.Generator` (``None`` = torch's default), drawn in the order
weights (:func:`~comixup.mixers.dirichlet.sample_weights`), the ``k - 1`` permutations, then
(CutMix) the ``k - 1`` box centres, each row then column.
"""

from __future__ import annotations

from .cutmix import BoxMixer
from .dirichlet import WeightedMixer

__all__ = ["MultiCutMix", "MultiInputMixup"]


class MultiInputMixup(WeightedMixer):
    """Input Mixup of ``k`` inputs with ``Dirichlet(alpha 1_k)`` weights (Table 4):
    ``w_0 x + w_1 x[perm_1] + ... + w_{k-1} x[perm_{k-1}]``.

    Args:
        num_classes: number of classes of the soft targets, an int >= 1.
        k: number of mixed inputs, an int in ``2..8`` (the paper uses 2, 3, 4); default 3.
        alpha: Dirichlet concentration, a finite number > 0; default 1.0.
        generator: CPU :class:`torch.Generator` for every draw (the weights, then the
            permutations); ``None`` uses torch's default generator.
    """


class MultiCutMix(BoxMixer):
    """CutMix of ``k`` inputs (Table 4): ``k - 1`` boxes, box ``j`` of nominal area ratio
    ``w_j`` (:func:`~comixup.mixers.cutmix.rand_box`), pasted in order, later ones on top; the
    target weights are the exact pixel shares of the final image.

    Args:
        num_classes, k, alpha: as :class:`MultiInputMixup`.
        generator: CPU :class:`torch.Generator` for every draw (the weights, the
            permutations, then the box centres); ``None`` uses torch's default generator.
    """
