"""Test problems of the algorithm analysis (Appendix D) and of the solver benchmark.

* :func:`uniform_problem`: the setting of Appendix D.1 / Table 6, reused for Table 7 (D.2): a
  unary cost uniform on ``[0, 1]``, the Dirichlet prior of Eq. (1) with the paper's
  hyperparameters (``eta = 0.05``, ``alpha = 2``, Appendix E) folded into it, and ``A = I``.
* :func:`realistic_costs`: the saliency of :func:`comixup.saliency.realistic_saliency` (one
  Gaussian object per image plus weak noise), pooled and normalized as :class:`comixup.CoMixup`
  does (Section 4.1); the problems of ``comixup bench solver`` and of Figure 6 (Appendix C).
* :func:`random_labelings`: uniformly random one-hot labelings, the "random guess" of Table 6.
* :func:`normalized_abs_normal_problem`, :func:`bernoulli_masks`,
  :func:`bernoulli_objective_mean`: the problem and the random guess of the reference
  implementation's Table 7 script (``unittest/match_bp.py``): a unary cost ``|N(0, 1)|`` per cell
  normalized to sum 1 per input, ``A = I``, and a random guess whose entries are independent
  Bernoulli(1/2) (not a labeling), with the closed-form mean of its objective.
"""

from __future__ import annotations

import numpy as np
import torch

from .._checks import check_int

__all__ = ["bernoulli_masks", "bernoulli_objective_mean", "normalized_abs_normal_problem",
           "random_labelings", "realistic_costs", "uniform_problem"]


def _check_rng(rng) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    return rng


def uniform_problem(m: int, side: int, *, rng: np.random.Generator, eta: float = 0.05,
                    alpha: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Cost ``(m, side, side)`` and ``A = I`` of the setting of Appendix D.1 (Table 6).

    The unary cost is drawn uniform on ``[0, 1]`` (first draw of ``rng``), then the prior term of
    Eq. (1), ``-eta/n log(lambda_i + 1e-8)`` with ``lambda ~ Dirichlet(alpha 1_m)``, is added to
    every cell of input ``i`` (second draw; :func:`comixup.solver.dirichlet_prior`). Solvers
    are then run with ``eta = 0`` so that every method sees the same prior.
    """
    from ..solver import dirichlet_prior

    m = check_int("m", m, 1)
    side = check_int("side", side, 1)
    rng = _check_rng(rng)
    cost = rng.random((m, side, side))
    cost = cost + dirichlet_prior(m, side * side, eta=eta, alpha=alpha, rng=rng)[:, None, None]
    return cost, np.eye(m)


def random_labelings(m: int, n_out: int, h: int, w: int, size: int, *,
                     rng: np.random.Generator) -> np.ndarray:
    """``size`` uniformly random one-hot labelings, ``(size, n_out, h, w, m)`` float64.

    Every cell of every output takes one of the ``m`` inputs uniformly (the random guess of
    Appendix D, Tables 6 and 7).
    """
    rng = _check_rng(rng)
    size = check_int("size", size, 1)
    return np.eye(m)[rng.integers(m, size=(size, n_out, h, w))]


def realistic_costs(m: int, grid: int = 4, size: int = 32, *, rng: np.random.Generator):
    """Unary cost ``(m, grid, grid)`` and compatibility ``A`` of one partition of realistic
    saliency.

    Builds the saliency with :func:`comixup.saliency.realistic_saliency`, then runs the same
    pooling, normalization and compatibility code as :class:`comixup.CoMixup` (Section 4.1,
    Appendix E).
    """
    from ..saliency import compatibility, pooled_unary, realistic_saliency, salient_location

    sal = torch.from_numpy(realistic_saliency(m, size, rng=rng)).float()
    cost = -pooled_unary(sal, grid).double().numpy()
    A = compatibility(salient_location(sal)).numpy()
    return cost, A


def normalized_abs_normal_problem(m: int, side: int = 8, *,
                                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Cost ``(m, side, side)`` and ``A = I`` of the reference implementation's Table 7 script.

    Every cell's cost is ``|N(0, 1)|``, then each input's costs are divided by their sum (so every
    input's cost map sums to 1); no prior (``eta = 0``). The script uses an 8x8 grid.
    """
    m = check_int("m", m, 1)
    side = check_int("side", side, 1)
    rng = _check_rng(rng)
    cost = np.abs(rng.standard_normal((m, side, side)))
    cost = cost / cost.reshape(m, -1).sum(1)[:, None, None]
    return cost, np.eye(m)


def bernoulli_masks(m: int, n_out: int, h: int, w: int, size: int, *, rng: np.random.Generator,
                    p: float = 0.5) -> np.ndarray:
    """``size`` masks ``(size, n_out, h, w, m)`` float64 with independent Bernoulli(``p``) entries.

    The random guess of the reference implementation's Table 7 script
    (``torch.bernoulli(0.5)`` on the labeling tensor): a cell may take zero or several inputs, so
    a mask is not a labeling and its objective is evaluated with the objective's kernel directly.
    """
    rng = _check_rng(rng)
    size = check_int("size", size, 1)
    return (rng.random((size, n_out, h, w, m)) < p).astype(np.float64)


def bernoulli_objective_mean(m: int, n_out: int, side: int, *, beta: float, gamma: float,
                             p: float = 0.5, cost_sum: float = 1.0) -> float:
    """Expected objective of a :func:`bernoulli_masks` mask, diversity unclipped.

    With ``n = side^2`` cells, each input's costs summing to ``cost_sum`` and the objective's
    scaling (``beta / n``, ``gamma / n``)::

        E f = p n_out m cost_sum                                      (unary)
            + beta / (2 n) * n_out m * 2 side (side - 1) * 2 p (1 - p)    (smoothness)
            + gamma / n * m * (p n)^2 * n_out (n_out - 1)             (diversity)

    (the diversity of input ``i`` is ``S_i^2 - sum_j o_ji^2`` with ``S_i = sum_j o_ji``; the
    variances cancel). Hard clipping at ``tau n`` changes nothing when every ``p_j[i]``, of mean
    ``p n (n_out - 1)``, exceeds it, which holds for ``p (n_out - 1)`` well above ``tau``.
    """
    n = side * side
    unary = p * n_out * m * cost_sum
    smooth = beta / (2 * n) * n_out * m * 2 * side * (side - 1) * 2 * p * (1 - p)
    div = gamma / n * m * (p * n) ** 2 * n_out * (n_out - 1)
    return float(unary + smooth + div)
