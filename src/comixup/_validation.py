"""The validation policy: whether the per-batch calls read tensor values back to check them.

Every mixer, the saliency helpers and VAT check shapes and dtypes on every call. Their value
checks (finite, label range, sign) read values back to the host, a device synchronisation for a
GPU tensor, so by default they run on CPU tensors only. :class:`validation` makes that an
explicit, process-wide policy:

* ``"auto"`` (the default): values checked for CPU tensors only;
* ``"always"``: values checked on every device (a GPU run then synchronises per check);
* ``"never"``: values never checked (the reads of a GPU run, counted on the CPU).

A call's own ``validate=True`` or ``validate=False`` overrides the policy; ``validate=None``
(every default) follows it (:func:`comixup._checks.check_values`).
"""

from __future__ import annotations

__all__ = ["MODES", "get_validation", "validation"]

#: The policies of :class:`validation`.
MODES = ("auto", "always", "never")

_mode = "auto"


def _check_mode(mode) -> str:
    if not isinstance(mode, str):
        raise TypeError(f"mode must be one of {list(MODES)}, got {type(mode).__name__}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
    return mode


def get_validation() -> str:
    """The current policy: ``"auto"``, ``"always"`` or ``"never"`` (see :class:`validation`)."""
    return _mode


class validation:
    """Set the validation policy of the per-batch value checks.

    ``comixup.validation("never")`` sets it for the process; ``with comixup.validation("always"):``
    sets it for the block and restores the previous policy on leaving it (also on an error).

    Args:
        mode: ``"auto"`` (default policy: values of CPU tensors checked, nothing read back from
            a device), ``"always"`` (every device; each check synchronises a GPU) or ``"never"``
            (no value checks; shapes and dtypes are still checked). A call's explicit
            ``validate=True``/``False`` overrides the policy.

    The policy is process-wide (as :func:`torch.set_num_threads`), not per thread.

    Raises:
        TypeError, ValueError: ``mode`` is not one of the three names.
    """

    def __init__(self, mode: str):
        global _mode
        mode = _check_mode(mode)
        self.mode, self.previous = mode, _mode
        _mode = mode

    def __enter__(self) -> validation:
        return self

    def __exit__(self, *exc) -> None:
        global _mode
        _mode = self.previous

    def __repr__(self) -> str:
        return f"validation({self.mode!r})"
