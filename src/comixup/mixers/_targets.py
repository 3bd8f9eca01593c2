"""The targets of a mixer call: every accepted kind of ``y`` made into the mixing targets.

:func:`make_targets` is what :meth:`comixup.mixers.base.Mixer.prepare` calls; it dispatches on
the kind of ``y``:

* integer labels ``(B,)`` or soft targets ``(B, K)`` whose rows sum to 1
  (:func:`soft_targets`: one-hot rows for labels);
* with ``multilabel=True``, multi-hot targets ``(B, K)`` in ``[0, 1]``;
* a class map ``(B, H, W)`` of an integer dtype (:func:`dense_targets`: one-hot per pixel, the
  zero vector at ``ignore_index``) or per-pixel distributions ``(B, K, H, W)`` summing to 1 (or
  0, an ignored pixel) at every pixel.

Targets are mixed in at least float32 (:func:`target_dtype`) on ``x``'s device. Shapes and
dtypes are always checked; values (label range, finite, sums) only when asked, so that a GPU
batch is not read back (:func:`comixup._checks.check_values`). Errors name ``y``.
"""

from __future__ import annotations

import numpy as np
import torch

from .._checks import check_int, check_num_classes, check_tensor, check_values
from ..losses import IGNORE_INDEX, one_hot

__all__ = ["dense_targets", "make_targets", "soft_targets", "target_dtype"]


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
            mixers, :func:`comixup._checks.check_values`). Unchecked out-of-range labels give
            zero vectors, as ignored pixels.

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


def target_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype in which targets are mixed: at least float32 (then cast to ``x``'s dtype)."""
    return torch.promote_types(dtype, torch.float32)
