"""The protocol shared by every mixing method: one base class, :class:`Mixer`.

Every batch transform in :mod:`comixup.mixers` is called as ``x_mix, y_mix = t(x, y[, saliency])``
in the style of timm's ``Mixup`` and torchvision's ``v2.MixUp``/``v2.CutMix``:

* ``x``: images ``(B, C, H, W)`` of a floating dtype, on any device;
* ``y``: integer labels ``(B,)`` or soft targets ``(B, num_classes)``;
* ``saliency`` (saliency-guided methods only): non-negative ``(B, H, W)``;
* the result is the mixed batch (same shape, dtype and device as ``x``) and soft targets
  ``(B', num_classes)`` in ``x``'s dtype whose rows sum to 1.

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
name the argument), turns the labels into soft targets (mixed in at least float32, returned in
``x``'s dtype) and returns a batch of one unmixed, with no random draw.
``t(x, y[, saliency], return_info=True)`` also returns the :class:`MixParams`, whose common key
``ratios`` is the ``(B', B)`` share of every input in every output.
"""

from __future__ import annotations

import dataclasses
import os
from concurrent.futures import ThreadPoolExecutor

import torch

from .._checks import check_generator, check_int, check_number, check_tensor
from .._checks import check_num_classes as _check_num_classes

__all__ = [
    "MixParams",
    "Mixer",
    "ThreadedMixer",
    "check_generator",
    "check_images",
    "check_int",
    "check_num_classes",
    "check_number",
    "check_saliency",
    "check_tensor",
    "permutation_ratios",
    "soft_targets",
]


def check_num_classes(num_classes) -> int:
    """Return ``num_classes`` as an int, or raise if it is not an integer >= 1
    (:data:`comixup._checks.MIN_CLASSES`, shared with the training methods)."""
    return _check_num_classes(num_classes)


def check_images(x, name: str = "x") -> torch.Tensor:
    """Check that ``x`` is a non-empty, finite, real ``(B, C, H, W)`` floating tensor with data.

    NaN or inf in ``x`` is a ValueError naming it: a mixed batch would spread it to every
    output that takes a pixel of that input, silently.
    """
    check_tensor(name, x, finite=False)
    if x.dim() != 4:
        raise ValueError(f"{name} must have shape (B, C, H, W), got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (B = 0)")
    if min(x.shape[1:]) == 0:
        raise ValueError(f"{name} has an empty dimension: {tuple(x.shape)}")
    return check_tensor(name, x)


def check_saliency(saliency, x: torch.Tensor, name: str = "saliency") -> torch.Tensor:
    """Check that ``saliency`` is a finite, non-negative ``(B, H, W)`` tensor matching ``x``.

    Any finite magnitude is legal (the maps are normalized exactly,
    :func:`comixup.saliency.pooled_unary`). The training engine turns the non-finite map of an
    fp16 overflow step into zeros before the mixer sees it
    (:func:`comixup.saliency.clean_loss_and_saliency`).
    """
    check_tensor(name, saliency, finite=False)
    b, _, h, w = x.shape
    if tuple(saliency.shape) != (b, h, w):
        raise ValueError(
            f"{name} must have shape (B, H, W) = {(b, h, w)} to match x, got {tuple(saliency.shape)}"
        )
    check_tensor(name, saliency)
    if bool((saliency < 0).any()):
        raise ValueError(f"{name} must be non-negative")
    return saliency


def soft_targets(y, num_classes: int, batch: int, dtype: torch.dtype, device) -> torch.Tensor:
    """Turn labels ``(B,)`` or soft targets ``(B, num_classes)`` into a ``(B, num_classes)`` tensor.

    Integer labels become one-hot rows; soft targets must be finite, non-negative and sum to 1
    per row (within 1e-3).
    """
    check_tensor("y", y, floating=False, finite=False)
    if y.dim() == 1:
        if y.is_floating_point() or y.dtype == torch.bool:
            raise TypeError(f"y with shape (B,) must hold integer labels, got dtype {y.dtype}")
        if y.shape[0] != batch:
            raise ValueError(f"y must have {batch} labels to match x, got {y.shape[0]}")
        if batch and (int(y.min()) < 0 or int(y.max()) >= num_classes):
            raise ValueError(
                f"y holds labels out of range [0, {num_classes}): min {int(y.min())}, max {int(y.max())}"
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
        if not bool(torch.isfinite(y).all()) or bool((y < 0).any()):
            raise ValueError("soft targets y must be finite and non-negative")
        if not torch.allclose(y.sum(1).float(), torch.ones(batch, device=y.device), atol=1e-3):
            raise ValueError("soft targets y must sum to 1 in every row")
        return y.to(device=device, dtype=dtype)
    raise ValueError(f"y must have shape (B,) or (B, num_classes), got {tuple(y.shape)}")


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

    Every mixer returns a subclass with its own fields (the mixing weights, permutations,
    boxes, masks, transport plans or labelings, documented with the mixer); all of them have

    Attributes:
        ratios: ``(B', B)`` tensor (float32 or float64, on ``x``'s device): row ``j`` is the
            share of every input in output ``j`` (its pixel mass for the cut-and-paste and
            saliency-guided methods; the mixing weights for the interpolating ones). Rows sum
            to 1, and the soft targets are ``ratios @ y`` up to rounding. A batch of one has
            ``ratios = [[1]]``.

    The fields can be read as attributes (``params.ratios``) or as items (``params["ratios"]``,
    ``"ratios" in params``, ``params.keys()``), so code written for the dictionaries that
    ``return_info`` used to return keeps working.
    """

    ratios: torch.Tensor

    def keys(self) -> list[str]:
        """The field names, in declaration order."""
        return [f.name for f in dataclasses.fields(self)]

    def __getitem__(self, key: str):
        if key not in self.keys():
            raise KeyError(key)
        return getattr(self, key)

    def __contains__(self, key) -> bool:
        return key in self.keys()

    def get(self, key: str, default=None):
        """``params[key]`` if it is a field, else ``default`` (as :meth:`dict.get`)."""
        return getattr(self, key) if key in self else default


class Mixer:
    """Base class of the mixing methods; see the module docstring for the protocol.

    Subclasses set :attr:`uses_saliency`, implement :meth:`sample_params` and :meth:`apply`,
    and may override :meth:`check_batch` (checks of ``x`` against their configuration) and
    :meth:`unmixed_params` (the parameters reported for a batch of one). :meth:`__call__` is
    shared. The methods that mix inside a network (Manifold Mixup, Verma et al., ICML 2019) set
    :attr:`mixes_in_model` and implement :meth:`apply_model`.

    Args:
        num_classes: number of classes of the soft targets, an int >= 1.
        generator: CPU :class:`torch.Generator` for every random draw; ``None`` uses torch's
            default generator (seeded by :func:`torch.manual_seed`).
    """

    #: Whether the call takes a saliency map ``(B, H, W)`` (Puzzle Mix, Co-Mixup).
    uses_saliency = False
    #: Whether the call can mix inside a network (``model=...``; Manifold Mixup).
    mixes_in_model = False
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
            targets: their soft targets ``(B, num_classes)`` (mixing dtype).
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

    def apply_model(self, model, x: torch.Tensor, targets: torch.Tensor, params: MixParams):
        """Run ``model`` on ``x`` mixing inside it with ``params``; mixers with
        :attr:`mixes_in_model` only. Returns ``(logits, y_mix)``."""
        raise TypeError(f"{type(self).__name__} does not mix inside a model")

    def check_batch(self, x: torch.Tensor, model=None) -> None:
        """Checks of ``x`` (and ``model``) against the mixer's configuration, made before a
        batch of one is returned; nothing by default."""

    def _sample(self, x, targets, saliency, model) -> MixParams:
        """:meth:`sample_params`; the mixers that mix inside a model also read ``model``."""
        return self.sample_params(x, targets, saliency)

    def unmixed_params(self, x: torch.Tensor) -> MixParams:
        """The parameters reported for a batch of one (returned unmixed)."""
        return MixParams(ratios=torch.ones(1, 1, dtype=target_dtype(x.dtype), device=x.device))

    def __call__(self, x: torch.Tensor, y: torch.Tensor, saliency: torch.Tensor | None = None, *,
                 model=None, return_info: bool = False):
        """Mix the batch ``x`` with labels ``y`` (and ``saliency``); see the module docstring.

        Args:
            x: images ``(B, C, H, W)`` of any floating dtype, on any device.
            y: integer labels ``(B,)`` or soft targets ``(B, num_classes)``.
            saliency: non-negative ``(B, H, W)``, for the saliency-guided methods only.
            model: for the mixers that mix inside a network only (:attr:`mixes_in_model`):
                the network, called as ``model(x, mix_depth=d, mix_fn=f)``; the result is then
                ``(logits, y_mix)``.
            return_info: also return the :class:`MixParams`.

        Returns:
            ``(x_mix, y_mix)`` or ``(x_mix, y_mix, params)``. A batch of one is returned
            unmixed (a copy; ``model(x)`` with a model) with its target, one-hot for integer
            labels, and no random number is drawn for it.
        """
        if model is not None:
            if not self.mixes_in_model:
                raise TypeError(f"{type(self).__name__} does not take a model")
            if not callable(model):
                raise TypeError(f"model must be callable, got {type(model).__name__}")
        x = check_images(x)
        batch = x.shape[0]
        targets = soft_targets(y, self.num_classes, batch, target_dtype(x.dtype), x.device)
        if self.uses_saliency:
            if saliency is None:
                raise TypeError(f"{type(self).__name__} needs a saliency map (B, H, W)")
            saliency = check_saliency(saliency, x)
        elif saliency is not None:
            raise TypeError(f"{type(self).__name__} takes no saliency map")
        self.check_batch(x, model)
        if batch == 1:
            params = self.unmixed_params(x)
            out = x.clone() if model is None else model(x)
            y_mix = targets
        else:
            params = self._sample(x, targets, saliency, model)
            if model is None:
                out, y_mix = self.apply(x, targets, params)
            else:
                out, y_mix = self.apply_model(model, x, targets, params)
        y_mix = y_mix.to(x.dtype)
        return (out, y_mix, params) if return_info else (out, y_mix)
