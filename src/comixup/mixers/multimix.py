"""Multi-input Mixup and CutMix: the baselines of Co-Mixup Table 4 (Kim et al., ICLR 2021,
Section 5.5 "Baselines with multiple inputs").

To isolate the effect of the number of inputs, Co-Mixup mixes ``k in {2, 3, 4}`` inputs with
the ratios drawn from an isotropic ``Dirichlet(alpha, ..., alpha)`` (the generalisation of the
``Beta(alpha, alpha)`` of Zhang et al., ICLR 2018) and, for CutMix (Yun et al., ICCV 2019),
overlays ``k - 1`` boxes (notes 4). ``alpha`` is tuned over ``{0.2, 1.0, 2.0}``; the default
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

import torch

from .base import check_generator, check_images, check_int, check_num_classes, check_number, soft_targets
from .cutmix import _box_from_area
from .mixup import _target_dtype

__all__ = ["MultiCutMix", "MultiInputMixup", "sample_weights"]


def sample_weights(k: int, alpha: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw ``k`` mixing weights from the isotropic ``Dirichlet(alpha * 1_k)``.

    Co-Mixup Section 5.5 / Table 4; notes 4.

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


class _MultiBase:
    """Argument handling shared by the multi-input mixers."""

    def __init__(
        self,
        num_classes: int,
        *,
        k: int = 3,
        alpha: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> None:
        self.num_classes = check_num_classes(num_classes)
        self.k = check_int("k", k, 2, 8)
        self.alpha = check_number("alpha", alpha, low_open=True)
        self.generator = check_generator(generator)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(num_classes={self.num_classes}, k={self.k}, alpha={self.alpha})"
        )

    def _draw(self, b: int) -> tuple[list[float], list[torch.Tensor]]:
        """Weights, then the ``k - 1`` permutations (CPU)."""
        w = sample_weights(self.k, self.alpha, self.generator).tolist()
        perms = [torch.randperm(b, generator=self.generator) for _ in range(self.k - 1)]
        return w, perms


class MultiInputMixup(_MultiBase):
    """Input Mixup of ``k`` inputs with Dirichlet weights (Co-Mixup Table 4; notes 4).

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

    Returns:
        ``(x_mix, y_mix)``: the mixed batch (shape, dtype and device of ``x``) and soft
        targets ``(B, num_classes)`` in ``x``'s dtype whose rows sum to 1 (mixed in at least
        float32, then cast). A batch of one image is returned unmixed (a copy) with its
        target, one-hot for integer labels; no random numbers are drawn for it.
    """

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mix the batch ``x`` with labels ``y``; see the class docstring."""
        x = check_images(x)
        b = x.shape[0]
        t = soft_targets(y, self.num_classes, b, _target_dtype(x.dtype), x.device)
        if b == 1:
            return x.clone(), t.to(x.dtype)
        w, perms = self._draw(b)
        x_mix = w[0] * x
        y_mix = w[0] * t
        for wj, p in zip(w[1:], perms):
            p = p.to(x.device)
            x_mix = x_mix + wj * x[p]
            y_mix = y_mix + wj * t[p]
        return x_mix, y_mix.to(x.dtype)


class MultiCutMix(_MultiBase):
    """CutMix of ``k`` inputs with ``k - 1`` overlaid boxes (Co-Mixup Table 4; notes 4).

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
        num_classes: number of classes of the soft targets, an int >= 1.
        k: number of mixed inputs, an int in ``2..8`` (Co-Mixup Table 4 uses 2, 3 and 4);
            default 3.
        alpha: Dirichlet concentration, a finite number > 0, tuned over ``{0.2, 1.0, 2.0}``
            in Co-Mixup; default ``1.0``.
        generator: CPU :class:`torch.Generator` for every draw (the weights, the
            permutations, then the box centres); ``None`` uses torch's default generator.

    Call:
        x: images ``(B, C, H, W)`` of any floating dtype, on any device; ``H != W`` is fine.
        y: integer labels ``(B,)`` or soft targets ``(B, num_classes)``.

    Returns:
        ``(x_mix, y_mix)``: the mixed batch (shape, dtype and device of ``x``) and soft
        targets ``(B, num_classes)`` in ``x``'s dtype whose rows sum to 1 (mixed in at least
        float32, then cast). A batch of one image is returned unmixed (a copy) with its
        target, one-hot for integer labels; no random numbers are drawn for it.
    """

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mix the batch ``x`` with labels ``y``; see the class docstring."""
        x = check_images(x)
        b, _, h, w_img = x.shape
        t = soft_targets(y, self.num_classes, b, _target_dtype(x.dtype), x.device)
        if b == 1:
            return x.clone(), t.to(x.dtype)
        w, perms = self._draw(b)
        boxes = [_box_from_area(h, w_img, wj, self.generator) for wj in w[1:]]
        # integer source map (CPU) for the exact pixel counts; later boxes overwrite earlier ones
        src = torch.zeros(h, w_img, dtype=torch.long)
        x_mix = x.clone()
        for j, ((y0, y1, x0, x1), p) in enumerate(zip(boxes, perms), start=1):
            src[y0:y1, x0:x1] = j
            x_mix[:, :, y0:y1, x0:x1] = x[p.to(x.device), :, y0:y1, x0:x1]
        counts = torch.bincount(src.flatten(), minlength=self.k).tolist()
        total = h * w_img
        y_mix = (counts[0] / total) * t
        for c, p in zip(counts[1:], perms):
            y_mix = y_mix + (c / total) * t[p.to(x.device)]
        return x_mix, y_mix.to(x.dtype)
