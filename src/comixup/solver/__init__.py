"""The discrete optimisation: Algorithm 1 of Co-Mixup and its parts, and Puzzle Mix's graph cut.

* :func:`objective`: Eq. (1) without the prior term (recipes 2).
* :func:`solve`: Algorithm 1, iterative graph cuts with the modular diversity of Eq. (2).
* :func:`grid_graphcut`: the multi-label grid graph cut (alpha-beta swap) it runs per output.
* :func:`solve_exact`: brute force for tiny problems (Appendix D.1).
* :class:`Hyperparameters`: Eq. (1)'s hyperparameters, their defaults and their scaling, shared
  by the above and :class:`comixup.CoMixup`.
* :mod:`comixup.solver.puzzle`: the graph cut and the transport of the Puzzle Mix baseline
  (Kim, Choo and Song, ICML 2020): ``graphcut_terms``, ``graphcut_masks``, ``transport_plan``,
  ``apply_transport`` and their parts (imported from that module).
"""

from .algorithm import LEVELS, PAIRWISE, dirichlet_prior, label_pair_costs, solve
from .exact import level_labels, solve_exact
from .graphcut import grid_energy, grid_graphcut
from .hyperparameters import Hyperparameters
from .objective import THRESHOLDS, objective

# Algorithm 1, its objective, its hyperparameters and parts, brute force and the grid graph
# cut; Puzzle Mix's pieces are in comixup.solver.puzzle
__all__ = [
    "LEVELS",
    "PAIRWISE",
    "THRESHOLDS",
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
