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
    (:func:`dense_targets`), so an ignored pixel carries no mass;

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
name the argument), turns the labels into soft or dense targets (:func:`make_targets`; mixed
in at least float32, returned in ``x``'s dtype) and returns a batch of one unmixed, with no
random draw. :meth:`Mixer.sample_params` reads the targets only for their dtype and device, so
the draws of a call do not depend on the kind of targets.
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
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from .._checks import check_generator, check_int, check_number, check_tensor, check_values
from .._checks import check_num_classes as _check_num_classes
from .._precision import full_precision
from ..losses import IGNORE_INDEX, one_hot

__all__ = [
    "IGNORE_INDEX",
    "MixParams",
    "Mixer",
    "Pairwise",
    "ThreadedMixer",
    "WeightParams",
    "WeightedMixer",
    "check_drawn_for",
    "check_generator",
    "check_images",
    "check_int",
    "check_num_classes",
    "check_number",
    "check_saliency",
    "check_tensor",
    "check_values",
    "dense_targets",
    "host_copy",
    "host_rows",
    "make_targets",
    "permutation_ratios",
    "sample_weights",
    "skip_mixing",
    "soft_targets",
    "to_device",
    "to_host",
    "weighted_sum",
]


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


def soft_targets(y, num_classes: int, batch: int, dtype: torch.dtype, device, *,
                 values: bool = True) -> torch.Tensor:
    """Turn labels ``(B,)`` or soft targets ``(B, num_classes)`` into a ``(B, num_classes)`` tensor.

    Integer labels become one-hot rows. With ``values``, labels must lie in
    ``[0, num_classes)`` and soft targets must be finite, non-negative and sum to 1 per row
    (within 1e-3).
    """
    check_tensor("y", y, floating=False, finite=False)
    if y.dim() == 1:
        if y.is_floating_point() or y.dtype == torch.bool:
            raise TypeError(f"y with shape (B,) must hold integer labels, got dtype {y.dtype}")
        if y.shape[0] != batch:
            raise ValueError(f"y must have {batch} labels to match x, got {y.shape[0]}")
        if values and (int(y.min()) < 0 or int(y.max()) >= num_classes):
            raise ValueError(
                f"y holds labels out of range [0, {num_classes}): "
                f"min {int(y.min())}, max {int(y.max())}"
            )
        out = torch.zeros(batch, num_classes, dtype=dtype, device=device)
        out.scatter_(1, y.to(device=device, dtype=torch.long).view(-1, 1), 1.0)
        return out
    if y.dim() == 2:
        if tuple(y.shape) != (batch, num_classes):
            raise ValueError(
                f"soft targets y must have shape (B, num_classes) = {(batch, num_classes)}, "
                f"got {tuple(y.shape)}"
            )
        if not y.is_floating_point():
            raise TypeError(f"soft targets y must have a floating dtype, got {y.dtype}")
        if values:
            if not bool(torch.isfinite(y).all()) or bool((y < 0).any()):
                raise ValueError("soft targets y must be finite and non-negative")
            if not torch.allclose(y.sum(1).float(), torch.ones(batch, device=y.device), atol=1e-3):
                raise ValueError("soft targets y must sum to 1 in every row")
        return y.to(device=device, dtype=dtype)
    raise ValueError(f"y must have shape (B,) or (B, num_classes), got {tuple(y.shape)}")


def _check_class_map(y, name: str = "y") -> torch.Tensor:
    """``y`` if it is a ``(B, H, W)`` tensor of an integer dtype (TypeError, ValueError)."""
    check_tensor(name, y, floating=False, finite=False)
    if y.dim() != 3:
        raise ValueError(f"{name} must be a class map (B, H, W), got {tuple(y.shape)}")
    if y.is_floating_point() or y.dtype == torch.bool:
        raise TypeError(f"{name} with shape (B, H, W) must be a class map of an integer dtype, "
                        f"got dtype {y.dtype}")
    return y


def _one_hot_map(y: torch.Tensor, num_classes: int, ignore_index: int, dtype: torch.dtype,
                 device, values: bool, name: str = "y") -> torch.Tensor:
    """The ``(B, K, H, W)`` one-hot of a checked class map, zero vectors at ``ignore_index``.

    With ``values`` a label outside ``[0, K)`` that is not ``ignore_index`` raises; without,
    it gives a zero vector as an ignored pixel (no out-of-bounds scatter, no host read)."""
    y = y.to(device=device)
    if values:
        bad = (y != ignore_index) & ((y < 0) | (y >= num_classes))
        if bool(bad.any()):
            wrong = y[bad]
            raise ValueError(
                f"{name} holds class indices out of range [0, {num_classes}) that are not "
                f"ignore_index = {ignore_index}: min {int(wrong.min())}, max {int(wrong.max())}"
            )
    return one_hot(y, num_classes, ignore_index=ignore_index, dtype=dtype)


def dense_targets(y, num_classes: int, *, ignore_index: int = IGNORE_INDEX,
                  dtype: torch.dtype = torch.float32, validate: bool | None = None
                  ) -> torch.Tensor:
    """Turn a class map ``(B, H, W)`` into per-pixel one-hot targets ``(B, num_classes, H, W)``.

    A pixel equal to ``ignore_index`` (default -100, as
    :func:`torch.nn.functional.cross_entropy`) gets the all-zero vector: it carries no target
    mass, so once mixed a pixel's mass is the share of its non-ignored sources. Built by one
    scatter on ``y``'s device, without reading values back.

    Args:
        y: class indices ``(B, H, W)`` of an integer dtype, in ``[0, num_classes)`` or equal to
            ``ignore_index``.
        num_classes: the number of classes ``K``, an int >= 1.
        ignore_index: the index of ignored pixels, an int.
        dtype: the floating dtype of the result.
        validate: check the label range: ``None`` (default) for CPU tensors only (as the
            mixers, :func:`check_values`). Unchecked out-of-range labels give zero vectors, as
            ignored pixels.

    Raises:
        TypeError: ``y`` is not an integer tensor, or ``dtype`` is not floating.
        ValueError: ``y`` is not ``(B, H, W)``, or (checked) holds an out-of-range label.
    """
    num_classes = check_num_classes(num_classes)
    ignore_index = check_int("ignore_index", ignore_index, None)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    y = _check_class_map(y)
    return _one_hot_map(y, num_classes, ignore_index, dtype, y.device, check_values(validate, y))


def _check_distributions(y: torch.Tensor, shape: tuple, values: bool) -> None:
    """Per-pixel distributions ``(B, K, H, W)``: floating, of ``shape``, and with ``values``
    finite, non-negative and summing to 1 or 0 (an ignored pixel) within 1e-3."""
    if tuple(y.shape) != shape:
        raise ValueError(f"per-pixel targets y must have shape (B, num_classes, H, W) = {shape} "
                         f"to match x, got {tuple(y.shape)}")
    if not y.is_floating_point():
        raise TypeError(f"per-pixel targets y must have a floating dtype, got {y.dtype}")
    if not values:
        return
    if not _finite(y) or bool((y < 0).any()):
        raise ValueError("per-pixel targets y must be finite and non-negative")
    mass = y.sum(1, dtype=torch.float64)
    if not bool(((mass - 1).abs() <= 1e-3).logical_or_(mass.abs() <= 1e-3).all()):
        raise ValueError("per-pixel targets y must sum to 1 (or 0: an ignored pixel) at every "
                         "pixel")


def _finite(t: torch.Tensor) -> bool:
    return not t.numel() or bool(torch.isfinite(t).all())


def _multi_hot(y, num_classes: int, batch: int, dtype: torch.dtype, device, values: bool
               ) -> torch.Tensor:
    """Multi-hot targets ``(B, K)`` (bool, integer or floating, in ``[0, 1]``) as ``dtype``."""
    if tuple(y.shape) != (batch, num_classes):
        raise ValueError(f"multi-label targets y must have shape (B, num_classes) = "
                         f"{(batch, num_classes)}, got {tuple(y.shape)}")
    if values and y.dtype != torch.bool:
        if (y.is_floating_point() and not _finite(y)) or bool(((y < 0) | (y > 1)).any()):
            raise ValueError("multi-label targets y must hold values in [0, 1]")
    return y.to(device=device, dtype=dtype)


def make_targets(y, num_classes: int, x: torch.Tensor, *, values: bool = True,
                 ignore_index: int = IGNORE_INDEX, multilabel: bool = False) -> torch.Tensor:
    """The targets of a call in the mixing dtype (:func:`target_dtype` of ``x``), on ``x``'s
    device, from any accepted kind of ``y``:

    * labels ``(B,)`` or soft targets ``(B, K)`` (:func:`soft_targets`), or with
      ``multilabel`` multi-hot targets ``(B, K)`` in ``[0, 1]`` (rows need not sum to 1);
    * a class map ``(B, H, W)`` of an integer dtype (:func:`dense_targets`) or per-pixel
      distributions ``(B, K, H, W)`` summing to 1 (or 0, ignored) at every pixel: the result is
      ``(B, K, H, W)``.

    Shapes and dtypes are always checked, values with ``values``; errors name ``y``.
    """
    b, _, h, w = x.shape
    dtype = target_dtype(x.dtype)
    if not isinstance(multilabel, (bool, np.bool_)):
        raise TypeError(f"multilabel must be a bool, got {type(multilabel).__name__}")
    ignore_index = check_int("ignore_index", ignore_index, None)
    check_tensor("y", y, floating=False, finite=False)
    if multilabel:
        return _multi_hot(y, num_classes, b, dtype, x.device, values)
    if y.dim() == 3:
        _check_class_map(y)
        if tuple(y.shape) != (b, h, w):
            raise ValueError(f"class map y must have shape (B, H, W) = {(b, h, w)} to match x, "
                             f"got {tuple(y.shape)}")
        return _one_hot_map(y, num_classes, ignore_index, dtype, x.device, values)
    if y.dim() == 4:
        _check_distributions(y, (b, num_classes, h, w), values)
        return y.to(device=x.device, dtype=dtype)
    if y.dim() not in (1, 2):
        raise ValueError(f"y must have shape (B,), (B, num_classes), (B, H, W) or "
                         f"(B, num_classes, H, W), got {tuple(y.shape)}")
    return soft_targets(y, num_classes, b, dtype, x.device, values=values)


class ThreadedMixer:
    """Mixin for mixers whose numba kernels release the GIL and run in a thread pool.

    Subclasses set ``self.workers`` (None: one thread per CPU). The pool is created lazily, grown
    when more workers are needed, and dropped when the mixer is pickled (e.g. into data-loader
    workers or a checkpoint).
    """

    workers: int | None = None
    _pool: ThreadPoolExecutor | None = None
    _pool_size: int = 0

    def _n_workers(self, n_tasks: int) -> int:
        """Threads to use for ``n_tasks`` independent tasks: at most one per task."""
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        return max(1, min(self.workers or cpus or 1, n_tasks))

    def _executor(self, workers: int) -> ThreadPoolExecutor | None:
        """The shared pool with at least ``workers`` threads, or None for a single thread."""
        if workers <= 1:
            return None
        if self._pool is None or self._pool_size < workers:
            if self._pool is not None:
                self._pool.shutdown(wait=False)
            self._pool = ThreadPoolExecutor(max_workers=workers,
                                            thread_name_prefix=type(self).__name__.lower())
            self._pool_size = workers
        return self._pool

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_pool", None)
        state.pop("_pool_size", None)
        return state


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


def to_host(t: torch.Tensor) -> torch.Tensor:
    """``t`` on the CPU. From a GPU the copy goes, ``non_blocking``, into pinned memory and only
    that copy is waited for (an event, not a device synchronisation of later work).

    The copy runs on the current stream of ``t``'s device, so the event is recorded on that
    stream: on ``cuda:1`` while the current device is ``cuda:0``, an event on the current
    device's stream would complete before the copy has landed."""
    if t.device.type != "cuda":
        return t.cpu()
    host = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
    host.copy_(t, non_blocking=True)
    done = torch.cuda.Event()
    done.record(torch.cuda.current_stream(t.device))
    done.synchronize()
    return host


def to_device(src: torch.Tensor, out: torch.Tensor) -> None:
    """Copy the CPU tensor ``src`` into ``out``; to a GPU from pinned memory, ``non_blocking``
    (the caching host allocator keeps the pinned buffer until the copy has run)."""
    if out.device.type == "cuda":
        src = src.pin_memory()
        out.copy_(src, non_blocking=True)
    else:
        out.copy_(src)


def host_copy(*tensors: torch.Tensor) -> list[np.ndarray]:
    """float64 NumPy copies of tensors that share their first dimension, by one transfer
    (:func:`to_host`): the one read of batch values a call of a CPU solver makes."""
    flat = to_host(torch.cat([t.reshape(t.shape[0], -1) for t in tensors], 1)).double().numpy()
    bounds = list(itertools.accumulate((t[0].numel() for t in tensors), initial=0))
    return [flat[:, a:b].reshape(t.shape) for t, a, b in zip(tensors, bounds, bounds[1:])]


def host_rows(flags: np.ndarray, device) -> torch.Tensor:
    """The indices of the true entries of a host array, as a long tensor on ``device``."""
    return torch.from_numpy(np.flatnonzero(flags)).to(device)


def target_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype in which targets are mixed: at least float32 (then cast to ``x``'s dtype)."""
    return torch.promote_types(dtype, torch.float32)


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
        or ``(B, K, H, W)`` for dense targets; :func:`make_targets`).

        Shapes and dtypes are always checked; values (finite, label range, sign) as
        :func:`check_values` says. Errors name the argument.
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
                synchronisation; ``True`` always; ``False`` never (:func:`check_values`).
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


# ----------------------------------------------------------------------------------------------
# the mixers of whole sources with Dirichlet weights (Input Mixup, CutMix, Manifold Mixup and
# their k-input variants)
# ----------------------------------------------------------------------------------------------


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
