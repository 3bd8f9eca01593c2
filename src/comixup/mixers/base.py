"""The call convention shared by every mixing method.

Every batch transform in :mod:`comixup.mixers` is called as ``x_mix, y_mix = t(x, y[, saliency])``
in the style of timm's ``Mixup`` and torchvision's ``v2.MixUp``/``v2.CutMix``:

* ``x``: images ``(B, C, H, W)`` of a floating dtype, on any device;
* ``y``: integer labels ``(B,)`` or soft targets ``(B, num_classes)``;
* ``saliency`` (saliency-guided methods only): non-negative ``(B, H, W)``;
* the result is the mixed batch (same shape, dtype and device as ``x``) and soft targets
  ``(B', num_classes)`` in ``x``'s dtype whose rows sum to 1.

The helpers here validate those arguments with errors that name the argument, and turn the
labels into soft targets, so that every method checks its input the same way.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import torch

from .._checks import check_generator, check_int, check_number

__all__ = [
    "check_images",
    "check_saliency",
    "soft_targets",
    "check_num_classes",
    "check_int",
    "check_number",
    "check_generator",
    "ThreadedMixer",
]


def check_num_classes(num_classes) -> int:
    """Return ``num_classes`` as an int, or raise if it is not an integer >= 1."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int):
        raise TypeError(f"num_classes must be an int, got {type(num_classes).__name__}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    return num_classes


def check_images(x, name: str = "x") -> torch.Tensor:
    """Check that ``x`` is a non-empty finite ``(B, C, H, W)`` floating tensor."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{name} must have shape (B, C, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must have a floating dtype, got {x.dtype}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (B = 0)")
    if min(x.shape[1:]) == 0:
        raise ValueError(f"{name} has an empty dimension: {tuple(x.shape)}")
    return x


def check_saliency(saliency, x: torch.Tensor, name: str = "saliency") -> torch.Tensor:
    """Check that ``saliency`` is a finite, non-negative ``(B, H, W)`` tensor matching ``x``."""
    if not isinstance(saliency, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(saliency).__name__}")
    b, _, h, w = x.shape
    if tuple(saliency.shape) != (b, h, w):
        raise ValueError(
            f"{name} must have shape (B, H, W) = {(b, h, w)} to match x, got {tuple(saliency.shape)}"
        )
    if not saliency.is_floating_point():
        raise TypeError(f"{name} must have a floating dtype, got {saliency.dtype}")
    if not bool(torch.isfinite(saliency).all()):
        raise ValueError(f"{name} contains NaN or inf")
    if bool((saliency < 0).any()):
        raise ValueError(f"{name} must be non-negative")
    return saliency


def soft_targets(y, num_classes: int, batch: int, dtype: torch.dtype, device) -> torch.Tensor:
    """Turn labels ``(B,)`` or soft targets ``(B, num_classes)`` into a ``(B, num_classes)`` tensor.

    Integer labels become one-hot rows; soft targets must be finite, non-negative and sum to 1
    per row (within 1e-3).
    """
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"y must be a torch.Tensor, got {type(y).__name__}")
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
