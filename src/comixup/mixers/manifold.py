"""Manifold Mixup (Verma et al., "Manifold Mixup: Better Representations by Interpolating Hidden
States", ICML 2019).

Manifold Mixup is Input Mixup (Zhang et al., ICLR 2018) applied to the hidden state at a
randomly chosen depth: for the PreActResNet of the Co-Mixup experiments (Kim et al.,
ICLR 2021) the depth is drawn uniformly from the input (0), the output of the first residual
stage (1) and the output of the second residual stage (2) (recipes 4). ``alpha`` is tuned over
``{0.2, 1.0, 2.0}`` in Co-Mixup; the default here is ``alpha = 2.0``, the default of Verma et
al.'s code.

Model contract (implemented by :mod:`comixup.models`): ``model(x, mix_depth=None,
mix_fn=None)`` returns the logits; when ``mix_depth = d`` is given, the model calls
``h = mix_fn(h)`` exactly once on its hidden state at depth ``d`` (``d = 0``: the input) and
carries on with the result. ``model.mix_depths`` lists the depths the model supports.

The ``k``-input variant (``manifold3`` / ``manifold4``, the Manifold Mixup rows of Table 4)
mixes ``k`` hidden states with weights from ``Dirichlet(alpha 1_k)``, drawn as the multi-input
Mixup of :mod:`comixup.mixers.multimix` draws them (source 0 is the batch itself, sources
``1..k-1`` are ``k - 1`` independent permutations); ``k = 2`` is the pairwise method above.

Randomness: one CPU :class:`torch.Generator` (``None`` = torch's default), drawn in the order
of Verma et al.'s code: the depth (uniform over the usable depths, sorted), ``lambda``
(:func:`comixup.mixers.mixup.sample_lambda`), then the permutation; for ``k > 2`` the depth,
the ``k`` weights (:func:`comixup.mixers.multimix.sample_weights`), then the ``k - 1``
permutations.

Protocol (:class:`comixup.mixers.base.Mixer`): :meth:`ManifoldMixup.sample_params` draws the
depth, the weights and the permutations (:class:`ManifoldParams`); :meth:`ManifoldMixup.apply`
mixes any tensor whose first dimension is the batch (a hidden state, or the input) with them.
To mix inside a network, call :meth:`ManifoldMixup.forward_mixed`: it draws the depth among the
depths the model supports and runs ``model(x, mix_depth=params.depth, mix_fn=f)`` with ``f``
the mixture of the hidden state. Called as a batch transform, ``mixer(x, y)`` mixes ``x``
itself, i.e. treats the input as the hidden state.
"""

from __future__ import annotations

import dataclasses

import torch

from .._checks import check_int
from .._precision import autocast_off, full_precision
from ..losses import IGNORE_INDEX
from .dirichlet import WeightedMixer, WeightParams, weighted_sum

__all__ = ["ManifoldMixup", "ManifoldParams"]


@dataclasses.dataclass
class ManifoldParams(WeightParams):
    """Parameters of Manifold Mixup: the weights and permutations of
    :class:`~comixup.mixers.dirichlet.WeightParams` and the depth.

    Attributes:
        ratios: ``(B, B)`` share of every input in every output.
        weights: the ``k`` drawn weights (``[lambda, 1 - lambda]`` for ``k = 2``).
        perms: the ``k - 1`` permutations (CPU long tensors ``(B,)``).
        depth: the depth at which the hidden state is mixed (0: the input).
    """

    depth: int | None = None


def _check_depths(depths) -> tuple[int, ...]:
    if isinstance(depths, (str, bytes)) or not hasattr(depths, "__iter__"):
        raise TypeError(f"depths must be a sequence of ints, got {type(depths).__name__}")
    out = []
    for d in depths:
        out.append(check_int("depths[]", d, 0))
    if not out:
        raise ValueError("depths must not be empty")
    if len(set(out)) != len(out):
        raise ValueError(f"depths must not repeat, got {tuple(out)}")
    return tuple(out)


class ManifoldMixup(WeightedMixer):
    """Manifold Mixup (Verma et al., ICML 2019): Input Mixup of the hidden state at a depth
    drawn uniformly from ``depths`` (those the model supports); see :meth:`forward_mixed`.

    Args:
        num_classes: number of classes of the soft targets, an int >= 1.
        alpha: Beta concentration, a finite number > 0; default 2.0 (Verma et al.'s code).
        depths: the candidate depths, distinct ints >= 0; default ``(0, 1, 2)``: the input,
            after the first and after the second residual stage (recipes 4).
        k: number of mixed inputs, 2 (the paper's) to 8; ``k > 2`` draws Dirichlet weights
            (Table 4).
        generator: CPU :class:`torch.Generator` for every draw (the depth, ``lambda``, then
            the permutation); ``None`` uses torch's default generator.
    """

    _repr_keys = ("num_classes", "alpha", "depths", "k")

    def __init__(
        self,
        num_classes: int,
        *,
        alpha: float = 2.0,
        depths=(0, 1, 2),
        k: int = 2,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(num_classes, k=k, alpha=alpha, generator=generator)
        self.depths = _check_depths(depths)

    def usable_depths(self, model) -> tuple[int, ...]:
        """The sorted depths of ``depths`` that ``model.mix_depths`` supports (or
        ``model.module.mix_depths``, for a wrapped model).

        Raises:
            TypeError: ``model`` has no ``mix_depths``.
            ValueError: no depth is in both.
        """
        model_depths = getattr(model, "mix_depths", None)
        if model_depths is None:  # a wrapper such as DistributedDataParallel
            model_depths = getattr(getattr(model, "module", None), "mix_depths", None)
        if model_depths is None:
            raise TypeError(
                f"model must have a mix_depths attribute (the Manifold Mixup contract), "
                f"{type(model).__name__} has none"
            )
        usable = tuple(sorted(set(self.depths) & {int(d) for d in model_depths}))
        if not usable:
            raise ValueError(
                f"depths {self.depths} share no depth with model.mix_depths {tuple(model_depths)}"
            )
        return usable

    def unmixed_params(self, x):
        """A batch of one is not mixed: ``ratios = [[1]]``, no depth."""
        return ManifoldParams(ratios=super().unmixed_params(x).ratios)

    @full_precision
    def sample_params(self, x, targets, saliency=None, *, depths=None) -> ManifoldParams:
        """Draw the depth (uniformly from ``depths``, default the sorted ``self.depths``), then
        the weights and the permutations.

        Args:
            x: the batch ``(B, ...)`` (only its size and device are read).
            targets: its soft targets ``(B, num_classes)``.
            saliency: unused.
            depths: the candidate depths, e.g. :meth:`usable_depths` of a model.
        """
        depths = tuple(sorted(self.depths)) if depths is None else tuple(depths)
        depth = depths[int(torch.randint(0, len(depths), (1,), generator=self.generator))]
        base = super().sample_params(x, targets)
        return ManifoldParams(ratios=base.ratios, weights=base.weights, perms=base.perms,
                              depth=depth)

    def forward_mixed(self, model, x: torch.Tensor, y: torch.Tensor, *,
                      return_info: bool = False, validate: bool | None = None,
                      ignore_index: int = IGNORE_INDEX, multilabel: bool = False):
        """Run ``model`` on ``x`` mixing its hidden state; return ``(logits, soft_targets)``.

        Draws the depth among :meth:`usable_depths` of the model, the weights and the
        permutations, and runs ``model(x, mix_depth=depth, mix_fn=f)`` where ``f(h)`` is the
        mixture of the hidden state ``h`` (:func:`~comixup.mixers.dirichlet.weighted_sum`).

        Args:
            model: a callable with the contract of the module docstring (``mix_depths``).
            x: images ``(B, C, H, W)`` of any floating dtype, on any device.
            y: any target kind of :meth:`~comixup.mixers.base.Mixer.__call__`: integer labels
                ``(B,)``, soft targets ``(B, num_classes)``, multi-hot targets with
                ``multilabel``, a class map ``(B, H, W)`` or per-pixel distributions
                ``(B, num_classes, H, W)``. Dense targets are mixed by the drawn weights
                (:func:`~comixup.mixers.dirichlet.weighted_sum`), the same blend at every pixel:
                that is the right target only for a model whose hidden state at the drawn depth
                keeps the input's spatial layout (pixel ``(i, j)`` of the hidden state stands
                for pixel ``(i, j)`` of the input); a classifier that pools or strides has no
                per-pixel meaning at depth >= 1.
            return_info: also return the :class:`ManifoldParams`.
            validate, ignore_index, multilabel: as for
                :meth:`~comixup.mixers.base.Mixer.__call__`.

        Returns:
            ``(logits, y_mix)`` (and the parameters); targets ``(B, num_classes)`` (or
            ``(B, num_classes, H, W)`` for dense targets) in ``x``'s dtype. A batch
            of one runs ``model(x)`` unmixed with its target and draws nothing.

        Raises:
            TypeError: ``model`` is not callable or has no ``mix_depths``.
            ValueError: no usable depth, or a hidden state without the batch size.
            RuntimeError: the model did not call ``mix_fn`` exactly once.
        """
        if not callable(model):
            raise TypeError(f"model must be callable, got {type(model).__name__}")
        x, targets, _ = self.prepare(x, y, validate=validate, ignore_index=ignore_index,
                                     multilabel=multilabel)
        depths = self.usable_depths(model)
        b = x.shape[0]
        if b == 1:
            params, logits, y_mix = self.unmixed_params(x), model(x), targets
        else:
            params = self.sample_params(x, targets, depths=depths)
            calls = []

            def mix_fn(h: torch.Tensor) -> torch.Tensor:
                if not isinstance(h, torch.Tensor) or h.dim() < 1 or h.shape[0] != b:
                    shape = tuple(h.shape) if isinstance(h, torch.Tensor) else type(h).__name__
                    raise ValueError(f"mix_fn expects a hidden state with batch size {b}, "
                                     f"got {shape}")
                calls.append(params.depth)
                return weighted_sum(h, params)

            logits = model(x, mix_depth=params.depth, mix_fn=mix_fn)
            if len(calls) != 1:
                raise RuntimeError(
                    f"model called mix_fn {len(calls)} times at mix_depth={params.depth}; the "
                    f"Manifold Mixup contract needs exactly one call"
                )
            with autocast_off(x.device):  # the targets in float32, the model under autocast
                y_mix = weighted_sum(targets, params)
        y_mix = y_mix.to(x.dtype)
        return (logits, y_mix, params) if return_info else (logits, y_mix)
