"""Brute-force minimization of Eq. (1) for tiny problems (Appendix D.1, Table 6).

Enumerates every labeling of every output: each cell takes any vector of the level lattice
``{0, 1/(|L|-1), ..., 1}^m`` that sums to 1, so the search space has ``(#labels^n)^n_out``
points. Use it to check :func:`comixup.solver.solve` on problems such as ``(m = m' = 2, n = 4)``,
``(2, 9)`` and ``(3, 4)``.
"""

from __future__ import annotations

import itertools

import numba
import numpy as np

from .._checks import check_int
from .algorithm import check_levels
from .hyperparameters import Hyperparameters
from .objective import (
    check_compatibility,
    check_cost,
    check_finite_objective,
    diversity,
    threshold_mode,
)

__all__ = ["level_labels", "solve_exact"]

_MAX_POINTS = 50_000_000


def level_labels(m: int, levels: int) -> np.ndarray:
    """All mixing vectors of ``m`` inputs with entries in ``{0, 1/(levels-1), ..., 1}``
    summing to 1.

    Returns an ``(L, m)`` array, one-hot vectors first.
    """
    m = check_int("m", m, 1)
    steps = check_levels(levels) - 1
    rows = [c for c in itertools.product(range(steps + 1), repeat=m) if sum(c) == steps]
    rows.sort(key=lambda c: (-max(c), [-x for x in c]))
    return np.asarray(rows, dtype=np.float64) / steps


@numba.njit(cache=True, nogil=True)
def _enumerate(cost, labels, a_mat, h, w, n_out, beta_eff, gamma_eff, tau_eff, mode):
    """The best of all ``(#labels^n)^n_out`` labelings: ``(objective, per-output index)``.

    Each output's labeling is indexed in base ``#labels`` (cell 0 the lowest digit); the
    unary and smoothness part of every output's labeling is tabulated once, the diversity
    (:func:`comixup.solver.objective.diversity`) is added only where it can still win.
    """
    m, n = cost.shape
    n_lab = labels.shape[0]
    # Per-output labelings: unary + smoothness, and their source vector o.
    n_single = n_lab ** n
    local = np.zeros(n_single)
    o_all = np.zeros((n_single, m))
    assign = np.zeros(n, np.int64)
    for s in range(n_single):
        rem = s
        for k in range(n):
            assign[k] = rem % n_lab
            rem //= n_lab
        e = 0.0
        for k in range(n):
            lab = assign[k]
            r = k // w
            c = k - r * w
            for i in range(m):
                e += cost[i, k] * labels[lab, i]
                o_all[s, i] += labels[lab, i]
            if c + 1 < w:
                d = 0.0
                for i in range(m):
                    t = labels[lab, i] - labels[assign[k + 1], i]
                    d += t * t
                e += 0.5 * beta_eff * d
            if r + 1 < h:
                d = 0.0
                for i in range(m):
                    t = labels[lab, i] - labels[assign[k + w], i]
                    d += t * t
                e += 0.5 * beta_eff * d
        local[s] = e
    best = np.inf
    best_idx = np.zeros(n_out, np.int64)
    idx = np.zeros(n_out, np.int64)
    total = np.zeros(m)
    o = np.empty((n_out, m))
    n_total = n_single ** n_out
    for flat in range(n_total):
        rem = flat
        f = 0.0
        for i in range(m):
            total[i] = 0.0
        for j in range(n_out):
            idx[j] = rem % n_single
            rem //= n_single
            f += local[idx[j]]
            for i in range(m):
                total[i] += o_all[idx[j], i]
        if f >= best:
            continue  # the diversity term is non-negative for non-negative A
        for j in range(n_out):
            for i in range(m):
                o[j, i] = o_all[idx[j], i]
        f += gamma_eff * diversity(o, total, a_mat, tau_eff, mode)
        if f < best:
            best = f
            best_idx[:] = idx
    return best, best_idx


def solve_exact(
    cost,
    A,
    *,
    n_out: int | None = None,
    beta: float = Hyperparameters.beta,
    gamma: float = Hyperparameters.gamma,
    tau: float = Hyperparameters.tau,
    levels: int = 2,
    threshold: str = "hard",
) -> tuple[np.ndarray, float]:
    """Global minimum of Eq. (1) without prior by enumeration (tiny problems only).

    Args:
        cost: ``(m, g1, g2)`` unary cost (fold any prior in beforehand).
        A: ``(m, m)`` compatibility; must be non-negative (the search prunes on it).
        n_out: number of outputs (default ``m``).
        beta, gamma, tau, threshold: as in :func:`comixup.solver.objective` (defaults: the
            paper's, :class:`~comixup.solver.Hyperparameters`).
        levels: |L|, an int in 2..4; 2 enumerates one-hot labelings only.

    Returns:
        ``(z, f)``: an optimal ``(n_out, g1, g2, m)`` labeling and its objective.
    """
    cost = check_cost(cost)
    m, h, w = cost.shape
    n = h * w
    A = check_compatibility(A, m)
    if (A < 0).any():
        raise ValueError("A must be non-negative for solve_exact")
    n_out = m if n_out is None else check_int("n_out", n_out, 1)
    levels = check_levels(levels)
    mode = threshold_mode(threshold)
    hp = Hyperparameters(beta=beta, gamma=gamma, tau=tau)
    eff = hp.effective(n)
    labels = level_labels(m, levels)
    points = float(len(labels)) ** (n * n_out)
    if points > _MAX_POINTS:
        raise ValueError(f"problem too large for brute force: {points:.3g} labelings")
    flat = np.ascontiguousarray(cost.reshape(m, n))
    best, best_idx = _enumerate(flat, labels, A, h, w, n_out, eff.beta, eff.gamma, eff.tau, mode)
    best = check_finite_objective(best, cost, A, beta=hp.beta, gamma=hp.gamma)
    z = np.zeros((n_out, n, m))
    n_lab = len(labels)
    for j in range(n_out):
        rem = int(best_idx[j])
        for k in range(n):
            z[j, k] = labels[rem % n_lab]
            rem //= n_lab
    return z.reshape(n_out, h, w, m), float(best)
