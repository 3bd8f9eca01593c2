"""The discrete optimisation: Algorithm 1 of Co-Mixup and its parts, and Puzzle Mix's graph cut.

* :func:`objective`: Eq. (1) without the prior term (recipes 2).
* :func:`solve`: Algorithm 1, iterative graph cuts with the modular diversity of Eq. (2).
* :func:`grid_graphcut`: the multi-label grid graph cut (alpha-beta swap) it runs per output.
* :func:`solve_exact`: brute force for tiny problems (Appendix D.1).
* :class:`Hyperparameters`: Eq. (1)'s hyperparameters, their defaults and their scaling, shared
  by the above and :class:`comixup.CoMixup`.
* :mod:`comixup.solver.puzzle`: the graph cut and the transport of the Puzzle Mix baseline
  (Kim, Choo and Song, ICML 2020): :func:`graphcut_terms`, :func:`graphcut_masks`,
  :func:`transport_plan`, :func:`apply_transport` and their parts.
"""

from .algorithm import LEVELS, PAIRWISE, dirichlet_prior, label_pair_costs, solve
from .exact import level_labels, solve_exact
from .graphcut import grid_energy, grid_graphcut
from .hyperparameters import EffectiveHyperparameters, Hyperparameters
from .objective import THRESHOLDS, objective
from .puzzle import (
    apply_transport,
    graphcut_masks,
    graphcut_terms,
    label_costs,
    level_prior,
    neigh_penalty,
    pooled_smoothness_terms,
    smoothness_terms,
    transport_plan,
)

__all__ = [
    "LEVELS",
    "PAIRWISE",
    "THRESHOLDS",
    "EffectiveHyperparameters",
    "Hyperparameters",
    "apply_transport",
    "dirichlet_prior",
    "graphcut_masks",
    "graphcut_terms",
    "grid_energy",
    "grid_graphcut",
    "label_costs",
    "label_pair_costs",
    "level_labels",
    "level_prior",
    "neigh_penalty",
    "objective",
    "pooled_smoothness_terms",
    "smoothness_terms",
    "solve",
    "solve_exact",
    "transport_plan",
]
