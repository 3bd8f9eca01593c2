"""Learning-rate schedules as functions of the (fractional) epoch.

:class:`EpochSchedule` sets the learning rate of every parameter group from the position in
training, ``epoch + batch / batches_per_epoch``, so it needs no knowledge of the number of steps
and stays right when the batch size changes between phases (the fast ImageNet protocol):

* ``step``: ``lr * gamma ** (number of milestones <= epoch)``; the paper's CIFAR-100 recipe is
  ``lr = 0.2``, milestones ``[100, 200]``, ``gamma = 0.1`` (recipes 3);
* ``cosine``: ``lr * (1 + cos(pi * t / epochs)) / 2``;
* ``piecewise``: linear interpolation between ``lr_points`` ``[[epoch, lr], ...]`` (absolute
  learning rates, held constant outside the points), as ``np.interp`` in the fast ImageNet code;
* ``constant``: ``lr``.
"""

from __future__ import annotations

import bisect
import math

import torch

__all__ = ["EpochSchedule", "lr_at"]


def lr_at(t: float, *, schedule: str, lr: float, epochs: int, milestones=(), gamma: float = 0.1,
          lr_points=()) -> float:
    """The learning rate at fractional epoch ``t`` (see the module docstring)."""
    if schedule == "constant":
        return lr
    if schedule == "step":
        return lr * gamma ** sum(1 for m in milestones if t >= m)
    if schedule == "cosine":
        return lr * 0.5 * (1.0 + math.cos(math.pi * min(max(t / epochs, 0.0), 1.0)))
    if schedule == "piecewise":
        xs = [float(p[0]) for p in lr_points]
        ys = [float(p[1]) for p in lr_points]
        if t <= xs[0]:
            return ys[0]
        if t >= xs[-1]:
            return ys[-1]
        k = bisect.bisect_right(xs, t) - 1
        w = (t - xs[k]) / (xs[k + 1] - xs[k])
        return ys[k] + w * (ys[k + 1] - ys[k])
    raise ValueError(f"schedule must be one of step, cosine, piecewise, constant; got {schedule!r}")


class EpochSchedule:
    """Sets ``optimizer``'s learning rate from the fractional epoch (call :meth:`set`).

    Args:
        optimizer: the optimizer whose groups get the learning rate.
        schedule, lr, epochs, milestones, gamma, lr_points: see :func:`lr_at`.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, *, schedule: str, lr: float,
                 epochs: int, milestones=(), gamma: float = 0.1, lr_points=()):
        self.optimizer = optimizer
        self.kwargs = {
            "schedule": schedule, "lr": float(lr), "epochs": int(epochs),
            "milestones": [int(m) for m in milestones], "gamma": float(gamma),
            "lr_points": [[float(a), float(b)] for a, b in lr_points],
        }
        lr_at(0.0, **self.kwargs)  # validates the schedule name
        self.last_t = 0.0
        self.last_lr = lr_at(0.0, **self.kwargs)

    def set(self, t: float) -> float:
        """Set the learning rate for fractional epoch ``t``; return it."""
        lr = lr_at(float(t), **self.kwargs)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.last_t, self.last_lr = float(t), lr
        return lr

    def state_dict(self) -> dict:
        """Position and settings (plain numbers and lists)."""
        return {"last_t": self.last_t, "last_lr": self.last_lr, **self.kwargs}

    def load_state_dict(self, state: dict) -> None:
        """Restore the position (the settings come from the configuration)."""
        self.last_t = float(state["last_t"])
        self.last_lr = float(state["last_lr"])
