"""The one validation layer of the package: every public entry point (the mixers, the solver,
the saliency helpers, the data loader, the training configuration and the command line) checks
its arguments with these functions, so every error is a ``TypeError`` (wrong kind of value) or a
``ValueError`` (right kind, bad value) whose message names the argument.

* numbers: :func:`check_int`, :func:`check_number`, :func:`check_bool`, :func:`check_choice`,
  :func:`check_str`;
* arrays and tensors: :func:`check_array` (NumPy conversion that names the argument, finite by
  default) and :func:`check_tensor` (a real-valued tensor with data, finite by default);
* others: :func:`check_generator`, :func:`check_device`, :func:`check_num_classes`;
* :func:`check_values`: whether a per-batch call reads values back to check them.
"""

from __future__ import annotations

import math
import numbers
import re

import numpy as np
import torch

from ._validation import get_validation

__all__ = [
    "MIN_CLASSES",
    "check_array",
    "check_bool",
    "check_choice",
    "check_device",
    "check_generator",
    "check_int",
    "check_num_classes",
    "check_number",
    "check_optional_int",
    "check_str",
    "check_tensor",
    "check_values",
    "first_line",
]

#: The smallest number of classes that a mixer (:class:`comixup.mixers.Mixer`) and a training
#: method (:class:`comixup.methods.Method`) accept. One class is legal (every soft target
#: is then ``[1]``), so a mixer can be used on any batch; datasets have two or more.
MIN_CLASSES = 1

_DEVICE = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")


def check_int(name: str, value, low: int | None, high: int | None = None) -> int:
    """``value`` as an int in ``[low, high]`` (None: unbounded); TypeError if not an integer
    (bools are not), ValueError if outside."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        if low is None:
            raise ValueError(f"{name} must be <= {high}, got {value}")
        bounds = f">= {low}" if high is None else f"in {low}..{high}"
        raise ValueError(f"{name} must be {bounds}, got {value}")
    return value


def check_optional_int(name: str, value, low: int | None, high: int | None = None) -> int | None:
    """None, or :func:`check_int`."""
    return None if value is None else check_int(name, value, low, high)


def check_number(name: str, value, *, low: float = 0.0, high: float = math.inf,
                 low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a finite float in ``[low, high]`` (open at ``low`` with ``low_open``, at
    ``high`` with ``high_open``: ``(low, high]``, ``[low, high)``).

    TypeError for anything but a real number (None, strings, complex numbers and bools
    included); ValueError for NaN, inf or a value outside the range.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value < low or value > high or (low_open and value == low) \
            or (high_open and value == high):
        bounds = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be a finite number in {bounds}, got {value}")
    return value


def check_bool(name: str, value) -> bool:
    """``value`` if it is a bool (NumPy's included), else a TypeError naming it."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be true or false, got {value!r}")
    return bool(value)


def check_str(name: str, value) -> str:
    """``value`` if it is a string, else a TypeError naming it."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {value!r}")
    return value


def check_choice(name: str, value, choices):
    """``value`` if it is one of ``choices`` (compared by type and value, so ``True`` is not
    ``1`` and ``3.0`` is not ``3``), else a ValueError listing them."""
    for choice in choices:
        if isinstance(value, type(choice)) and isinstance(value, bool) == isinstance(choice, bool) \
                and value == choice:
            return value
    raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


def check_num_classes(num_classes, name: str = "num_classes") -> int:
    """``num_classes`` as an int >= :data:`MIN_CLASSES`."""
    return check_int(name, num_classes, MIN_CLASSES)


def check_device(name: str, value) -> str:
    """A device name of the package: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``."""
    check_str(name, value)
    if not _DEVICE.match(value):
        raise ValueError(f"{name} must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {value!r}")
    return value


def check_generator(generator, name: str = "generator") -> torch.Generator | None:
    """``generator`` if it is None or a CPU :class:`torch.Generator`, else an error naming it."""
    if generator is None:
        return None
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"{name} must be a torch.Generator or None, got {type(generator).__name__}")
    if generator.device.type != "cpu":
        raise ValueError(
            f"{name} must be a CPU torch.Generator (draws are made on the CPU and then moved "
            f"to x's device), got one on {generator.device}"
        )
    return generator


def check_array(name: str, value, *, ndim: int | None = None, finite: bool = True,
                nonnegative: bool = False, dtype=np.float64) -> np.ndarray:
    """``value`` converted to a NumPy array of ``dtype`` (float64 by default).

    Raises:
        TypeError: ``value`` is not an array of real numbers (strings, ragged nested lists,
            None, objects, complex or boolean values); the message names ``name``.
        ValueError: the wrong number of dimensions, a non-finite entry (with ``finite``) or a
            negative one (with ``nonnegative``).
    """
    if isinstance(value, torch.Tensor):
        if value.is_complex():
            raise TypeError(f"{name} must hold real numbers, got dtype {value.dtype}")
        if value.device.type == "meta":
            raise ValueError(f"{name} is on the meta device, which holds no data")
        value = value.detach().cpu().numpy()
    try:
        raw = np.asarray(value)
    except (TypeError, ValueError) as err:  # ragged nested sequences
        raise TypeError(f"{name} must be an array of numbers: {first_line(err)}") from None
    if raw.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be an array of real numbers, got dtype {raw.dtype}"
                        + (f" ({type(value).__name__})" if raw.dtype.kind in "OUS" else ""))
    out = raw if dtype is None else raw.astype(dtype, copy=False)
    if ndim is not None and out.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {out.shape}")
    if finite and out.size and not np.isfinite(out).all():
        raise ValueError(f"{name} contains NaN or inf")
    if nonnegative and out.size and (out < 0).any():
        raise ValueError(f"{name} must be non-negative")
    return out


def check_tensor(name: str, value, *, floating: bool = True, finite: bool = True
                 ) -> torch.Tensor:
    """``value`` if it is a real-valued :class:`torch.Tensor` that holds data.

    Raises:
        TypeError: not a tensor, a complex tensor, or (with ``floating``) a non-floating one.
        ValueError: a tensor on the ``meta`` device, or (with ``finite``) one holding NaN or
            inf.
    """
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.is_complex():
        raise TypeError(f"{name} must be real-valued, got dtype {value.dtype}")
    if value.device.type == "meta":
        raise ValueError(f"{name} is on the meta device, which holds no data")
    if floating and not value.is_floating_point():
        raise TypeError(f"{name} must have a floating dtype, got {value.dtype}")
    if finite and value.is_floating_point() and value.numel() and not _all_finite(value):
        raise ValueError(f"{name} contains NaN or inf")
    return value


def check_values(validate: bool | None, x: torch.Tensor) -> bool:
    """Whether a call checks the values of its tensors (finite, label range, sign): the
    per-batch checks that read values back to the host.

    ``validate=None`` (the default of every mixer) follows the policy of
    :class:`comixup.validation`: under ``"auto"`` (the default) the values are checked when ``x``
    is on the CPU, where reading a value back costs no device synchronisation; under
    ``"always"`` always, under ``"never"`` never. ``True`` always, ``False`` never, whatever
    the policy. Shapes and dtypes are always checked.
    """
    if validate is None:
        mode = get_validation()
        return mode == "always" or (mode == "auto" and x.device.type == "cpu")
    if not isinstance(validate, bool):
        raise TypeError(f"validate must be None, True or False, got {type(validate).__name__}")
    return validate


def _all_finite(value: torch.Tensor) -> bool:
    """Whether a non-empty floating tensor holds no NaN and no inf.

    One min/max pass (:func:`torch.aminmax` propagates NaN to both results), so no boolean
    tensor of the input's size is built: on a 100x3x32x32 batch this is an order of magnitude
    cheaper than ``torch.isfinite(value).all()``, and the mixers check every batch.
    """
    lo, hi = torch.aminmax(value.detach())
    return bool((lo > -math.inf) & (hi < math.inf))


def first_line(err: BaseException | str, limit: int = 300) -> str:
    """The first non-empty line of an error message, at most ``limit`` characters (for the
    one-line errors of the command line and of :func:`comixup.checkpoint.load`)."""
    text = str(err).strip()
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "") or type(err).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."
