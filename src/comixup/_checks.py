"""Argument checks shared by the solver and the mixers: errors name the argument."""

from __future__ import annotations

import math
import numbers

import torch

__all__ = ["check_int", "check_number", "check_generator"]


def check_int(name: str, value, low: int, high: int | None = None) -> int:
    """``value`` as an int in ``[low, high]``; TypeError if not an integer, ValueError if outside."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    value = int(value)
    if value < low or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"in {low}..{high}"
        raise ValueError(f"{name} must be {bounds}, got {value}")
    return value


def check_number(name: str, value, *, low: float = 0.0, high: float = math.inf,
                 low_open: bool = False) -> float:
    """``value`` as a finite float in ``[low, high]`` (``(low, high]`` with ``low_open``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value < low or value > high or (low_open and value == low):
        bounds = f"{'(' if low_open else '['}{low}, {high}]"
        raise ValueError(f"{name} must be a finite number in {bounds}, got {value}")
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
