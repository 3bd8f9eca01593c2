"""No mixing: the batch as it is, with its one-hot targets.

The mixer of the columns that train on the clean batch (Vanilla, and VAT, whose regularizer
is not a mixing, :mod:`comixup.vat`), so that every method name has a mixer
(:func:`comixup.mixers.create`) and analyses treat them like the others.
"""

from __future__ import annotations

import torch

from .._precision import full_precision
from ._targets import target_dtype
from .base import Mixer, MixParams

__all__ = ["Identity"]


class Identity(Mixer):
    """The batch unmixed: ``x_mix = x`` (a copy), ``y_mix`` the one-hot (or given soft) targets,
    ``ratios`` the identity. Draws nothing.

    Args:
        num_classes: number of classes of the soft targets, an int >= 1.
        generator: accepted for a uniform signature; never drawn from.
    """

    @full_precision
    def sample_params(self, x, targets, saliency=None) -> MixParams:
        """The identity ratios ``(B, B)``."""
        return MixParams(ratios=torch.eye(x.shape[0], dtype=target_dtype(x.dtype), device=x.device))

    @full_precision
    def apply(self, x, targets, params: MixParams):
        """A copy of ``x`` and the targets as they are."""
        if x.shape[0] != params.ratios.shape[1]:
            raise ValueError(f"x has batch size {x.shape[0]} but the parameters were drawn for "
                             f"{params.ratios.shape[1]}")
        return x.clone(), targets
