"""Algorithm 1 of Co-Mixup and its parts.

* :func:`objective`: Eq. (1) without the prior term (recipes 2).
* :func:`solve`: Algorithm 1, iterative graph cuts with the modular diversity of Eq. (2).
* :func:`grid_graphcut`: the multi-label grid graph cut (alpha-beta swap) it runs per output.
* :func:`solve_exact`: brute force for tiny problems (Appendix D.1).
* :class:`Hyperparameters`: Eq. (1)'s hyperparameters, their defaults and their scaling, shared
  by the above and :class:`comixup.CoMixup`.
"""

from .algorithm import LEVELS, PAIRWISE, dirichlet_prior, label_pair_costs, solve
from .exact import level_labels, solve_exact
from .graphcut import grid_energy, grid_graphcut
from .hyperparameters import EffectiveHyperparameters, Hyperparameters
from .objective import THRESHOLDS, objective

__all__ = [
    "LEVELS",
    "PAIRWISE",
    "THRESHOLDS",
    "EffectiveHyperparameters",
    "Hyperparameters",
    "dirichlet_prior",
    "grid_energy",
    "grid_graphcut",
    "label_pair_costs",
    "level_labels",
    "objective",
    "solve",
    "solve_exact",
]
