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
weights (:func:`sample_weights`), the ``k - 1`` permutations, then (CutMix) the ``k - 1``
box centres, each row then column.
"""

from __future__ import annotations

from .cutmix import BoxMixer
from .mixup import WeightedMixer, sample_weights

__all__ = ["MultiCutMix", "MultiInputMixup", "sample_weights"]


class MultiInputMixup(WeightedMixer):
    """Input Mixup of ``k`` inputs with Dirichlet weights (Co-Mixup Table 4; recipes 4).

    ``x_mix, y_mix = MultiInputMixup(num_classes, k=3)(x, y)`` draws one weight vector
    ``w ~ Dirichlet(alpha * 1_k)`` (:func:`sample_weights`) and ``k - 1`` random permutations
    per batch and returns ``w_0 x + w_1 x[perm_1] + ... + w_{k-1} x[perm_{k-1}]`` with the
    targets mixed by the same weights. ``k = 2`` is Input Mixup (Zhang et al., ICLR 2018)
    exactly; see the module docstring.

    Args:
        num_classes: number of classes of the soft targets, an int >= 1.
        k: number of mixed inputs, an int in ``2..8`` (Co-Mixup Table 4 uses 2, 3 and 4);
            default 3.
        alpha: Dirichlet concentration, a finite number > 0, tuned over ``{0.2, 1.0, 2.0}``
            in Co-Mixup; default ``1.0``.
        generator: CPU :class:`torch.Generator` for every draw (the weights, then the
            permutations); ``None`` uses torch's default generator.

    Call:
        x: images ``(B, C, H, W)`` of any floating dtype, on any device.
        y: integer labels ``(B,)`` or soft targets ``(B, num_classes)``.
        return_info: also return the :class:`~comixup.mixers.mixup.WeightParams`
            (``weights``, ``perms``, ``ratios``).

    Returns:
        ``(x_mix, y_mix)`` as every :class:`~comixup.mixers.base.Mixer`: soft targets
        ``(B, num_classes)`` in ``x``'s dtype; a batch of one comes back unmixed, with no draw.
    """


class MultiCutMix(BoxMixer):
    """CutMix of ``k`` inputs with ``k - 1`` overlaid boxes (Co-Mixup Table 4; recipes 4).

    ``x_mix, y_mix = MultiCutMix(num_classes, k=3)(x, y)`` draws one weight vector
    ``w ~ Dirichlet(alpha * 1_k)`` (:func:`sample_weights`), ``k - 1`` random permutations and
    ``k - 1`` boxes per batch. Box ``j`` (``j = 1 .. k-1``) has nominal area ratio ``w_j``, a
    uniform centre and is clipped to the image, exactly as the CutMix box of Yun et al.
    (ICCV 2019; :func:`~comixup.mixers.cutmix.rand_box` with ``lam = 1 - w_j``); the boxes
    of ``x[perm_1], ..., x[perm_{k-1}]`` are pasted into ``x`` in that order, later boxes on
    top. The target weight of source ``j`` is the share of pixels it holds in the final
    mask, counted exactly in integer pixels, so the target equals the pixel mass of each
    source (overlaps and clipping included). ``k = 2`` is CutMix exactly; see the module
    docstring.

    Args:
        num_classes, k, alpha: as :class:`MultiInputMixup` (``k = 3`` and ``alpha = 1.0`` by
            default).
        generator: CPU :class:`torch.Generator` for every draw (the weights, the
            permutations, then the box centres); ``None`` uses torch's default generator.

    Call:
        x: images ``(B, C, H, W)`` of any floating dtype, on any device; ``H != W`` is fine.
        y: integer labels ``(B,)`` or soft targets ``(B, num_classes)``.
        return_info: also return the :class:`~comixup.mixers.cutmix.BoxParams`
            (``weights``, ``perms``, ``boxes``, ``shares``, ``ratios``).

    Returns:
        ``(x_mix, y_mix)`` as every :class:`~comixup.mixers.base.Mixer`: soft targets
        ``(B, num_classes)`` in ``x``'s dtype; a batch of one comes back unmixed, with no draw.
    """
