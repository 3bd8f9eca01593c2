"""The hyperparameters of Eq. (1) of Co-Mixup (Kim et al., ICLR 2021) and their defaults.

:class:`Hyperparameters` holds them once, in the paper's units with the paper's defaults
(Appendix E); :func:`comixup.solver.solve`, :func:`comixup.solver.solve_exact`,
:func:`comixup.solver.objective` and :class:`comixup.CoMixup` build one from their keyword
arguments (whose defaults are read from it), so every entry point validates and scales them
the same way.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

from .._checks import check_number

__all__ = ["EffectiveHyperparameters", "Hyperparameters"]


class EffectiveHyperparameters(NamedTuple):
    """The weights of Eq. (1) scaled to a grid of ``n`` cells (recipes 1.4):
    ``beta / n``, ``gamma / n``, ``eta / n`` and ``tau * n``."""

    beta: float
    gamma: float
    eta: float
    tau: float


@dataclasses.dataclass(frozen=True)
class Hyperparameters:
    """Eq. (1)'s hyperparameters in the paper's units (Section 4, Appendix E).

    Attributes:
        beta: smoothness weight (paper 0.32).
        gamma: diversity (compatibility) weight (paper 1.0).
        eta: weight of the Dirichlet prior on the mixing ratios (paper 0.05; 0 disables it).
        tau: clipping level of the diversity term (paper 0.83).
        alpha: Dirichlet concentration of the prior (paper 2.0), > 0.
        omega: weight of the saliency-distance compatibility ``A_c`` in ``A`` (paper 0.001),
            in ``[0, 1]``; used by :class:`comixup.CoMixup` to build ``A``, not by the solver.

    All are finite and >= 0 (a ValueError or TypeError names the offending one otherwise).
    The solver works in effective units, :meth:`effective`.
    """

    beta: float = 0.32
    gamma: float = 1.0
    eta: float = 0.05
    tau: float = 0.83
    alpha: float = 2.0
    omega: float = 0.001

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            high = 1.0 if field.name == "omega" else float("inf")
            value = check_number(field.name, getattr(self, field.name), high=high,
                                 low_open=field.name == "alpha")
            object.__setattr__(self, field.name, value)

    def effective(self, n: int) -> EffectiveHyperparameters:
        """The weights for a grid of ``n`` cells: ``beta / n``, ``gamma / n``, ``eta / n`` and
        ``tau * n`` (recipes 1.4)."""
        return EffectiveHyperparameters(self.beta / n, self.gamma / n, self.eta / n, self.tau * n)

    def solver_arguments(self) -> dict[str, float]:
        """The keyword arguments of :func:`comixup.solver.solve`: all but ``omega``."""
        return {"beta": self.beta, "gamma": self.gamma, "eta": self.eta, "tau": self.tau,
                "alpha": self.alpha}
