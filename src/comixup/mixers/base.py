"""The protocol shared by every mixing method: one base class, :class:`Mixer`.

Every batch transform in :mod:`comixup.mixers` is called as ``x_mix, y_mix = t(x, y[, saliency])``
in the style of timm's ``Mixup`` and torchvision's ``v2.MixUp``/``v2.CutMix``:

* ``x``: images ``(B, C, H, W)`` of a floating dtype, on any device;
* ``y``: the targets, of one of these kinds:

  - integer labels ``(B,)`` or soft targets ``(B, num_classes)`` whose rows sum to 1;
  - with ``multilabel=True``, multi-hot targets ``(B, num_classes)`` (bool, integer or
    floating, values in ``[0, 1]``, rows need not sum to 1), for which the natural loss is
    :func:`torch.nn.functional.binary_cross_entropy_with_logits`
    (:func:`comixup.losses.softmax_bce` is its single-label, softmax form);
  - dense targets: a class map ``(B, H, W)`` of an integer dtype, values in
    ``[0, num_classes)`` or ``ignore_index`` (default -100, as
    :func:`torch.nn.functional.cross_entropy`), or per-pixel distributions
    ``(B, num_classes, H, W)`` that sum to 1 at every pixel (0 at an ignored pixel). A class
    map becomes one-hot per pixel with the zero vector at ignored pixels
    (:func:`comixup.mixers.dense_targets`), so an ignored pixel carries no mass;

* ``saliency`` (saliency-guided methods only): non-negative ``(B, H, W)``;
* the result is the mixed batch (same shape, dtype and device as ``x``) and targets in
  ``x``'s dtype: ``(B', num_classes)`` for image-level targets (rows sum to 1 for
  single-label ones), ``(B', num_classes, H, W)`` per-pixel targets for dense ones.

Every mixer's image-level targets mix linearly: ``y_mix = params.ratios @ y`` up to rounding
(for multi-hot targets too). Dense targets are mixed by the same :meth:`Mixer.apply` as the
image, so they follow exactly its cut, paste, resize, transport and blend
(docs/dense-targets.md has the table per method); :meth:`Mixer.apply_targets` mixes
already-made targets of either kind with the parameters of a call.

A call is two steps, as torchvision's ``make_params`` / ``transform`` and kornia's
``generate_parameters`` / ``apply_transform``:

1. :meth:`Mixer.sample_params` makes every random draw from the mixer's generator (and, for the
   content-dependent methods, solves the graph cuts and the transport) and returns a
   :class:`MixParams`;
2. :meth:`Mixer.apply` is deterministic: it mixes any ``(B, C', H, W)`` tensor with those
   parameters, whatever its channel count ``C'``. The same parameters can therefore be applied
   to other images of the batch, e.g. a ``(B, B, H, W)`` stack of per-source object masks, to
   measure how much of each object the mixed images keep (label fidelity).

:meth:`Mixer.__call__` does the rest once for every method: it checks the arguments (errors
name the argument), turns the labels into soft or dense targets
(:func:`comixup.mixers._targets.make_targets`; mixed in at least float32, returned in ``x``'s
dtype) and returns a batch of one unmixed, with no random draw. :meth:`Mixer.sample_params`
reads the targets only for their dtype and device, so the draws of a call do not depend on the
kind of targets.
``t(x, y[, saliency], return_info=True)`` also returns the :class:`MixParams`, whose common
field ``ratios`` is the ``(B', B)`` share of every input in every output.

Precision: a call computes with autocast off for ``x``'s device (:mod:`comixup._precision`),
so under :func:`torch.autocast` the targets, masks and weights are the float32 ones of a call
without it (rows summing to 1) and the image blend keeps the image's dtype.

Host reads: shapes and dtypes are checked on every call; values (finite, label range, sign)
only where reading them back costs no device synchronisation, i.e. for CPU tensors, or when
asked (``validate=True``, or the policy :class:`comixup.validation` set to ``"always"``;
``"never"`` skips them on the CPU too). A call on a GPU batch reads nothing back but what a CPU
solver needs (the saliency of Puzzle Mix and Co-Mixup); :mod:`comixup.analysis.host_reads`
counts them.

This module holds the protocol (:class:`Mixer`, :class:`MixParams`) and the checks every
``apply`` shares; the other shared pieces have their own modules: the targets of a call
(:mod:`comixup.mixers._targets`), the Dirichlet family of Input Mixup, CutMix and Manifold Mixup
(:mod:`comixup.mixers.dirichlet`), the thread pool of the CPU solvers
(:mod:`comixup.mixers._pool`) and their copies to and from the host
(:mod:`comixup.mixers._host`).
"""

from __future__ import annotations

import dataclasses

import torch

from .._checks import check_generator, check_tensor, check_values
from .._checks import check_num_classes as _check_num_classes
from .._precision import full_precision
from ..losses import IGNORE_INDEX
from ._targets import make_targets, target_dtype

__all__ = ["IGNORE_INDEX", "MixParams", "Mixer"]


def check_num_classes(num_classes) -> int:
    """Return ``num_classes`` as an int, or raise if it is not an integer >= 1
    (:data:`comixup._checks.MIN_CLASSES`, shared with the training methods)."""
    return _check_num_classes(num_classes)


def check_images(x, name: str = "x", *, values: bool = True) -> torch.Tensor:
    """Check that ``x`` is a non-empty, real ``(B, C, H, W)`` floating tensor with data, and with
    ``values`` that it is finite (NaN or inf would spread to every output that takes a pixel
    of that input)."""
    check_tensor(name, x, finite=False)
    if x.dim() != 4:
        raise ValueError(f"{name} must have shape (B, C, H, W), got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (B = 0)")
    if min(x.shape[1:]) == 0:
        raise ValueError(f"{name} has an empty dimension: {tuple(x.shape)}")
    return check_tensor(name, x, finite=values)


def check_saliency(saliency, x: torch.Tensor, name: str = "saliency", *, values: bool = True
                   ) -> torch.Tensor:
    """Check that ``saliency`` is a ``(B, H, W)`` floating tensor matching ``x``, and with
    ``values`` that it is finite and non-negative.

    Any finite magnitude is legal (the maps are normalized exactly,
    :func:`comixup.saliency.pooled_unary`). The training step turns the non-finite map of an
    fp16 overflow step into zeros before the mixer sees it
    (:func:`comixup.saliency.clean_loss_and_saliency`).
    """
    check_tensor(name, saliency, finite=False)
    b, _, h, w = x.shape
    if tuple(saliency.shape) != (b, h, w):
        raise ValueError(
            f"{name} must have shape (B, H, W) = {(b, h, w)} to match x, "
            f"got {tuple(saliency.shape)}"
        )
    if values:
        check_tensor(name, saliency)
        if bool((saliency < 0).any()):
            raise ValueError(f"{name} must be non-negative")
    return saliency



def check_drawn_for(x: torch.Tensor, batch: int, size: tuple[int, int] | None = None,
                    what: str = "parameters") -> None:
    """Raise a ValueError unless ``x`` has the batch size (and image size ``(H, W)``) that the
    parameters were drawn for (the check every :meth:`Mixer.apply` makes)."""
    if x.shape[0] != batch:
        raise ValueError(f"x has batch size {x.shape[0]} but the parameters were drawn for "
                         f"{batch}")
    if size is not None and tuple(x.shape[-2:]) != tuple(size):
        raise ValueError(f"x has image size {tuple(x.shape[-2:])} but the {what} drawn "
                         f"for {tuple(size)}")


def skip_mixing(prob: float, generator: torch.Generator | None) -> bool:
    """Whether a batch goes unmixed under a mixing probability ``prob`` (SaliencyMix's
    ``salmix_prob``, GuidedMixup's ``mix_prob``): ``r ~ U(0, 1)`` is drawn first, as their
    scripts draw it, and the batch mixes when ``r < prob``. Nothing is drawn when ``prob`` is
    1, so the draws are those of a mixer without the option."""
    if prob >= 1.0:
        return False
    return float(torch.rand(1, dtype=torch.float64, generator=generator)) >= prob


def permutation_ratios(perms, weights, dtype: torch.dtype, device) -> torch.Tensor:
    """The ``(B, B)`` source ratios of outputs ``sum_s weights[s] * x[perms[s]]``.

    Row ``j`` holds the share of every input in output ``j``: ``weights[s]`` (a number, or a
    ``(B,)`` tensor of per-output weights) at column ``perms[s][j]``, summed over the sources
    ``s``. Source 0 is usually the identity permutation (the batch itself).
    """
    batch = perms[0].numel()
    ratios = torch.zeros(batch, batch, dtype=dtype, device=device)
    rows = torch.arange(batch, device=device)
    for perm, weight in zip(perms, weights):
        weight = torch.as_tensor(weight, dtype=dtype, device=device).expand(batch)
        ratios.index_put_((rows, perm.to(device=device, dtype=torch.long)), weight, accumulate=True)
    return ratios


@dataclasses.dataclass
class MixParams:
    """The parameters of one mixed batch: what :meth:`Mixer.sample_params` draws and
    :meth:`Mixer.apply` uses (and what ``return_info=True`` returns).

    Every mixer returns a subclass with its own fields (documented with the mixer); all have

    Attributes:
        ratios: ``(B', B)`` tensor (float32 or float64, on ``x``'s device): row ``j`` is the
            share of every input in output ``j`` (its pixel mass for the cut-and-paste and
            saliency-guided methods; the mixing weights for the interpolating ones). Rows sum
            to 1, and the soft targets are ``ratios @ y`` up to rounding. A batch of one has
            ``ratios = [[1]]``.
    """

    ratios: torch.Tensor


class Mixer:
    """Base class of the mixing methods; see the module docstring for the protocol.

    Subclasses set :attr:`uses_saliency`, implement :meth:`sample_params` and :meth:`apply`,
    and may override :meth:`check_batch` (checks of ``x`` against their configuration) and
    :meth:`unmixed_params` (the parameters reported for a batch of one). :meth:`__call__` is
    shared.

    Args:
        num_classes: number of classes of the soft targets, an int >= 1.
        generator: CPU :class:`torch.Generator` for every random draw; ``None`` uses torch's
            default generator (seeded by :func:`torch.manual_seed`).
    """

    #: Whether the call takes a saliency map ``(B, H, W)`` (Puzzle Mix, Co-Mixup).
    uses_saliency = False
    #: The attributes shown by ``repr``.
    _repr_keys: tuple[str, ...] = ("num_classes",)

    def __init__(self, num_classes: int, *, generator: torch.Generator | None = None) -> None:
        self.num_classes = check_num_classes(num_classes)
        self.generator = check_generator(generator)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._repr_keys)
        return f"{type(self).__name__}({args})"

    # -- the protocol -------------------------------------------------------------------------

    def sample_params(self, x: torch.Tensor, targets: torch.Tensor,
                      saliency: torch.Tensor | None = None) -> MixParams:
        """Make every random draw for the batch ``x`` (B >= 2) and return its parameters.

        Args:
            x: checked images ``(B, C, H, W)``.
            targets: their targets in the mixing dtype, ``(B, num_classes)`` or dense
                ``(B, num_classes, H, W)``: read only for their dtype and device.
            saliency: checked saliency ``(B, H, W)`` for the saliency-guided methods, else None.
        """
        raise NotImplementedError

    def apply(self, x: torch.Tensor, targets: torch.Tensor | None, params: MixParams
              ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Mix ``x`` and ``targets`` with ``params``, deterministically.

        Args:
            x: ``(B, C', H, W)`` floating tensor with the batch size and image size the
                parameters were drawn for; any channel count ``C'`` (e.g. a stack of object
                masks).
            targets: ``(B, K)`` soft targets, or None when only ``x`` is wanted.
            params: what :meth:`sample_params` returned.

        Returns:
            ``(x_mix, y_mix)`` (``y_mix`` None when ``targets`` is None); ``x_mix`` has ``x``'s
            dtype, ``y_mix`` ``targets``'s.
        """
        raise NotImplementedError

    def check_batch(self, x: torch.Tensor) -> None:
        """Checks of ``x`` against the mixer's configuration, made before a batch of one is
        returned; nothing by default."""

    def unmixed_params(self, x: torch.Tensor) -> MixParams:
        """The parameters reported for a batch of one (returned unmixed)."""
        return MixParams(ratios=torch.ones(1, 1, dtype=target_dtype(x.dtype), device=x.device))

    def prepare(self, x: torch.Tensor, y: torch.Tensor, saliency: torch.Tensor | None = None,
                *, validate: bool | None = None, ignore_index: int = IGNORE_INDEX,
                multilabel: bool = False):
        """Check the arguments of a call and make the targets; returns
        ``(x, targets, saliency)`` (targets in the mixing dtype, at least float32: ``(B, K)``,
        or ``(B, K, H, W)`` for dense targets; :func:`~comixup.mixers._targets.make_targets`).

        Shapes and dtypes are always checked; values (finite, label range, sign) as
        :func:`comixup._checks.check_values` says. Errors name the argument.
        """
        values = check_values(validate, x) if isinstance(x, torch.Tensor) else True
        x = check_images(x, values=values)
        targets = make_targets(y, self.num_classes, x, values=values, ignore_index=ignore_index,
                               multilabel=multilabel)
        if self.uses_saliency:
            if saliency is None:
                raise TypeError(f"{type(self).__name__} needs a saliency map (B, H, W)")
            saliency = check_saliency(saliency, x, values=values)
        elif saliency is not None:
            raise TypeError(f"{type(self).__name__} takes no saliency map")
        self.check_batch(x)
        return x, targets, saliency

    def mix_targets(self, x: torch.Tensor, targets: torch.Tensor, params: MixParams):
        """``(x_mix, y_mix)`` of a drawn batch (B >= 2): image-level targets ``(B, K)`` mix in
        :meth:`apply` with ``x``; dense targets ``(B, K, H, W)`` are mixed by a second
        :meth:`apply` of the same parameters, so they follow the image's cut, paste, resize,
        transport and blend exactly."""
        if targets.dim() == 2:
            return self.apply(x, targets, params)
        x_mix, _ = self.apply(x, None, params)
        y_mix, _ = self.apply(targets, None, params)
        return x_mix, y_mix

    @full_precision
    def apply_targets(self, targets: torch.Tensor, params: MixParams) -> torch.Tensor:
        """Mix already-made targets with the parameters of a call, e.g. per-pixel masks next
        to image labels::

            x_mix, y_mix, p = mixer(x, labels, saliency, return_info=True)
            m_mix = mixer.apply_targets(dense_targets(masks, K), p)

        Args:
            targets: floating ``(B, K)`` (soft or multi-hot, mixed as ``params.ratios @
                targets``) or ``(B, K, H, W)`` (mixed by :meth:`apply`, as the image), with
                the batch (and image size) the parameters were drawn for.
            params: the :class:`MixParams` that ``return_info=True`` returned.

        Returns:
            The mixed targets ``(B', K)`` or ``(B', K, H, W)`` in the mixing dtype (at least
            float32). Parameters of a batch of one return a copy.
        """
        check_tensor("targets", targets, finite=False)
        if targets.dim() not in (2, 4) or targets.shape[1] != self.num_classes:
            raise ValueError(f"targets must have shape (B, num_classes) or (B, num_classes, H, W)"
                             f" with num_classes = {self.num_classes}, got {tuple(targets.shape)}")
        if not isinstance(params, MixParams):
            raise TypeError(f"params must be a MixParams, got {type(params).__name__}")
        batch = params.ratios.shape[1]
        if targets.shape[0] != batch:
            raise ValueError(f"targets has batch size {targets.shape[0]} but the parameters were "
                             f"drawn for {batch}")
        targets = targets.to(target_dtype(targets.dtype))
        if batch == 1:
            return targets.clone()
        if targets.dim() == 2:
            return params.ratios.to(device=targets.device, dtype=targets.dtype) @ targets
        return self.apply(targets, None, params)[0]

    @full_precision
    def __call__(self, x: torch.Tensor, y: torch.Tensor, saliency: torch.Tensor | None = None, *,
                 return_info: bool = False, validate: bool | None = None,
                 ignore_index: int = IGNORE_INDEX, multilabel: bool = False):
        """Mix the batch ``x`` with targets ``y`` (and ``saliency``); see the module docstring.

        Args:
            x: images ``(B, C, H, W)`` of any floating dtype, on any device.
            y: integer labels ``(B,)``, soft targets ``(B, num_classes)``, a class map
                ``(B, H, W)`` of an integer dtype, or per-pixel distributions
                ``(B, num_classes, H, W)`` (summing to 1, or 0 at ignored pixels); with
                ``multilabel``, multi-hot targets ``(B, num_classes)`` in ``[0, 1]``.
            saliency: non-negative ``(B, H, W)``, for the saliency-guided methods only.
            return_info: also return the :class:`MixParams`.
            validate: check the values of the tensors too (finite, label range, sign):
                ``None`` (default) when they are on the CPU, where it costs no device
                synchronisation; ``True`` always; ``False`` never
                (:func:`comixup._checks.check_values`).
            ignore_index: the class-map value of ignored pixels (default -100), which carry
                no target mass.
            multilabel: ``y`` ``(B, num_classes)`` is multi-hot (rows need not sum to 1).

        Returns:
            ``(x_mix, y_mix)`` or ``(x_mix, y_mix, params)``; ``y_mix`` is ``(B', num_classes)``,
            or ``(B', num_classes, H, W)`` for dense targets, in ``x``'s dtype. A batch of one
            is returned unmixed (a copy) with its targets, one-hot for integer labels, and no
            random number is drawn for it.
        """
        x, targets, saliency = self.prepare(x, y, saliency, validate=validate,
                                            ignore_index=ignore_index, multilabel=multilabel)
        if x.shape[0] == 1:
            params, out, y_mix = self.unmixed_params(x), x.clone(), targets
        else:
            params = self.sample_params(x, targets, saliency)
            out, y_mix = self.mix_targets(x, targets, params)
        y_mix = y_mix.to(x.dtype)
        return (out, y_mix, params) if return_info else (out, y_mix)
