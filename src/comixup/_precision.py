"""Full precision under autocast for the arithmetic that must not lose it.

The training step runs under :func:`torch.autocast` as a whole, so a mixer called in it would
otherwise compute its ratio matrix products (``ratios @ y``) and convolutions (the Gaussian blur
of a saliency map) in bfloat16 or float16: targets off by about ``2^-9`` whose rows no longer
sum to 1, and masks off by as much. :func:`full_precision` marks a function whose tensor
arithmetic runs with autocast off for the device of its first tensor argument, so it computes in
the dtypes of its tensors (float32 targets, masks and weights; the image blend in the image's
dtype) whatever autocast is active; :func:`autocast_off` is the same as a context.
"""

from __future__ import annotations

import contextlib
import functools

import torch

__all__ = ["autocast_off", "full_precision"]


def autocast_off(device) -> contextlib.AbstractContextManager:
    """A context with autocast off for ``device``'s type (a ``torch.device``, a string or a
    tensor, whose device is taken): ``torch.autocast(type, enabled=False)`` where autocast is
    on for that type, else a no-op (nothing to undo, no cost)."""
    if isinstance(device, torch.Tensor):
        device = device.device
    device_type = torch.device(device).type
    if torch.amp.is_autocast_available(device_type) and torch.is_autocast_enabled(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()


def full_precision(method):
    """Decorate ``method(self, t, ...)`` to run with autocast off for ``t``'s device
    (:func:`autocast_off`); ``t`` not a tensor is passed on untouched, for the method's own
    argument check to report."""

    @functools.wraps(method)
    def run(self, t, *args, **kwargs):
        if not isinstance(t, torch.Tensor):
            return method(self, t, *args, **kwargs)
        with autocast_off(t.device):
            return method(self, t, *args, **kwargs)

    return run
