"""The submodular-supermodular procedure of Narasimhan and Bilmes (UAI 2005) for Eq. (1).

Appendix D.2 (Tables 7 and 8) of Co-Mixup compares Algorithm 1 with this procedure; Section 4.2
("Analysis") explains why Algorithm 1 is preferred. The procedure works on the *set*
formulation of Eq. (1) with one-hot labels (|L| = 2):

* **Ground set.** ``V = {(j, k, i)}``: output ``j`` shows input ``i`` at cell ``k``; it has
  ``m' n m`` elements, indexed ``e = (j n + k) m + i``. A labeling is a set ``X`` with exactly one
  element per ``(j, k)``; a general subset ``S`` of ``V`` has counts ``o_j[i] = #{k: (j, k, i) in
  S}``.
* **Objective.** ``f(X) = unary(X) + smoothness(X) + f_c(X)``; the first two are the modular and
  submodular terms of Eq. (1), ``f_c`` the diversity (compatibility) term
  ``gamma_eff sum_j sum_i phi(p_j[i]) o_j[i]``, ``p_j = A sum_{j' != j} o_j'``, with
  ``phi(p) = p [p > tau_eff]`` (hard clipping, the paper's), ``max(p - tau_eff, 0)`` (soft) or
  ``p`` (none), as in :func:`comixup.solver.objective`. ``f_c`` is defined for every subset and
  ``f_c(empty) = 0``.
* **Modular upper bound** (:func:`modular_bound`). At the current labeling ``X``, draw a random
  permutation ``sigma`` of ``V`` that lists the elements of ``X`` first (in random order) and then
  the others (in random order), and give element ``sigma_i`` the weight ``w(sigma_i) =
  f_c(S_i) - f_c(S_{i-1})`` with ``S_i = {sigma_1, ..., sigma_i}``. The modular function
  ``w(Y) = sum_{e in Y} w(e)`` equals ``f_c`` on every ``S_i``, in particular at ``X`` (tight),
  and when ``f_c`` is supermodular it is an upper bound of ``f_c`` on every subset (the greedy
  vertex of the base polytope; Narasimhan and Bilmes, Lemma 4).
* **Step.** Minimize ``unary + smoothness + w``. It is separable per output after the
  modularization: output ``j`` is a grid labeling with unary ``cost[i, k] + w((j, k, i))`` and the
  Potts smoothness ``beta_eff``, solved by the project's graph cut (the alpha-beta swap kernel of
  :func:`comixup.solver.grid_graphcut`) started from the current labeling, so the bound never
  rises. Repeat until the true objective stops decreasing.

**Supermodularity and the clipping.** With ``A >= 0``, ``f_c`` is supermodular for
``threshold="none"`` (a sum of products of counts with non-negative coefficients) and
``threshold="soft"`` (a convex non-decreasing function of a modular count times a count of
disjoint elements). The hard clipping ``p [p > tau_eff]`` jumps at ``tau_eff`` and is *not*
supermodular, so with it the bound may undercut ``f_c`` away from ``X`` (``tests/analysis`` finds
such a set by enumeration). :func:`narasimhan_bilmes` therefore accepts a step only when it lowers
the true objective and otherwise stops, so it never increases the objective in any mode; with
``"soft"`` and ``"none"`` every step is guaranteed not to increase it anyway.

The chain increments are computed in one numba kernel in ``O(|V| m' a)`` time (``a``: non-zeros
per column of ``A``; 1 for ``A = I``), the cuts of all outputs in another; the permutations are
drawn from the caller's :class:`numpy.random.Generator`.
"""

from __future__ import annotations

import time

import numba
import numpy as np

from .._checks import check_int, check_number
from ..solver.algorithm import _grid_weights
from ..solver.graphcut import swap_inplace
from ..solver.objective import (
    check_compatibility,
    check_cost,
    clip_diversity,
    diversity,
    objective_kernel,
    threshold_mode,
)

__all__ = ["element_index", "modular_bound", "narasimhan_bilmes", "set_diversity"]

_MAX_CYCLES = 100


@numba.njit(cache=True, nogil=True)
def _set_diversity_kernel(counts, a_mat, gamma_eff, tau_eff, mode):
    """``f_c`` of a subset given its counts ``o`` (n_out, m)."""
    n_out, m = counts.shape
    total = np.zeros(m)
    for j in range(n_out):
        for i in range(m):
            total[i] += counts[j, i]
    return gamma_eff * diversity(counts, total, a_mat, tau_eff, mode)


@numba.njit(cache=True, nogil=True)
def _chain_increments(order, n_out, n, m, nz_ptr, nz_row, nz_val, gamma_eff, tau_eff, mode):
    """Weights ``w[e] = f_c(S_t) - f_c(S_{t-1})`` along the chain ``order`` of element ids.

    ``nz_ptr / nz_row / nz_val``: the non-zeros of every column ``i0`` of ``A`` (CSC). Adding
    ``(j0, k, i0)`` raises ``o_j0[i0]`` by one and ``p_j[i]`` by ``A[i, i0]`` for every
    ``j != j0``; only those terms change.
    """
    w = np.empty(order.shape[0])
    o = np.zeros((n_out, m))
    p = np.zeros((n_out, m))
    for t in range(order.shape[0]):
        e = order[t]
        i0 = e % m
        j0 = (e // m) // n
        d = clip_diversity(p[j0, i0], tau_eff, mode)  # the new count of (j0, i0) times its factor
        for s in range(nz_ptr[i0], nz_ptr[i0 + 1]):
            i = nz_row[s]
            a = nz_val[s]
            for j in range(n_out):
                if j == j0:
                    continue
                c = o[j, i]
                pj = p[j, i]
                if c != 0.0:
                    gain = clip_diversity(pj + a, tau_eff, mode) - clip_diversity(pj, tau_eff, mode)
                    d += gain * c
                p[j, i] = pj + a
        o[j0, i0] += 1.0
        w[e] = gamma_eff * d
    return w


@numba.njit(cache=True, nogil=True)
def _labels_objective(cost, labels, a_mat, h, w, beta_eff, gamma_eff, tau_eff, mode):
    n_out, n = labels.shape
    m = cost.shape[0]
    z = np.zeros((n_out, n, m))
    for j in range(n_out):
        for k in range(n):
            z[j, k, labels[j, k]] = 1.0
    return objective_kernel(cost, z, a_mat, h, w, beta_eff, gamma_eff, tau_eff, mode)


@numba.njit(cache=True, nogil=True)
def _minimize_bound(cost, weights, labels, h, w, beta_eff):
    """Per output: graph cut of ``cost + weights`` with Potts smoothness, from ``labels``."""
    n_out, n = labels.shape
    m = cost.shape[0]
    pair = np.ones((m, m))
    for i in range(m):
        pair[i, i] = 0.0
    w_right, w_down = _grid_weights(h, w, beta_eff)
    unary = np.empty((n, m))
    lab = np.empty(n, np.int64)
    for j in range(n_out):
        for k in range(n):
            lab[k] = labels[j, k]
            base = (j * n + k) * m
            for i in range(m):
                unary[k, i] = cost[i, k] + weights[base + i]
        swap_inplace(unary, pair, w_right, w_down, h, w, lab, _MAX_CYCLES)
        for k in range(n):
            labels[j, k] = lab[k]


def element_index(j, k, i, n: int, m: int):
    """Id ``(j n + k) m + i`` of the ground-set element (output ``j``, cell ``k``, input ``i``)."""
    return (np.asarray(j) * n + np.asarray(k)) * m + np.asarray(i)


def _csc(A: np.ndarray):
    m = A.shape[0]
    ptr = np.zeros(m + 1, np.int64)
    rows, vals = [], []
    for i0 in range(m):
        nz = np.flatnonzero(A[:, i0])
        rows.append(nz)
        vals.append(A[nz, i0])
        ptr[i0 + 1] = ptr[i0] + len(nz)
    return ptr, np.concatenate(rows).astype(np.int64), np.concatenate(vals).astype(np.float64)


def _scaled(n, gamma, tau, threshold):
    gamma = check_number("gamma", gamma)
    tau = check_number("tau", tau)
    return gamma / n, tau * n, threshold_mode(threshold)


def _check_nonnegative(A, m: int) -> np.ndarray:
    """``A`` checked by :func:`~comixup.solver.objective.check_compatibility`, and ``A >= 0``."""
    A = check_compatibility(A, m)
    if (A < 0).any():
        raise ValueError("A must be non-negative (the diversity term is then supermodular)")
    return A


def _check_labels(labels, n_out, h, w, m, name="labels") -> np.ndarray:
    labels = np.asarray(labels)
    if labels.shape != (n_out, h, w):
        raise ValueError(f"{name} must have shape (n_out, g1, g2) = {(n_out, h, w)}, "
                         f"got {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= m):
        raise ValueError(f"{name} must hold input indices in [0, {m})")
    return np.ascontiguousarray(labels.reshape(n_out, h * w), dtype=np.int64).copy()


def _chain(labels_flat, n_out, n, m, rng):
    """The chain of :func:`modular_bound`: the elements of ``X`` first, then the rest."""
    cur = ((np.arange(n_out)[:, None] * n + np.arange(n)[None, :]) * m + labels_flat).ravel()
    mask = np.ones(n_out * n * m, bool)
    mask[cur] = False
    rest = np.flatnonzero(mask)
    return np.concatenate([rng.permutation(cur), rng.permutation(rest)]).astype(np.int64)


def set_diversity(members, A, *, gamma: float = 1.0, tau: float = 0.83,
                  threshold: str = "hard") -> float:
    """``f_c(S)``, the diversity term of Eq. (1) on any subset ``S`` of the ground set.

    Args:
        members: ``(n_out, g1, g2, m)`` 0/1 array, ``members[j, r, c, i] = 1`` when ``(j, k, i)``
            (``k = r g2 + c``) is in ``S``. For a labeling (one element per cell) this is the
            diversity term of :func:`comixup.solver.objective`.
        A: ``(m, m)`` compatibility, non-negative.
        gamma, tau, threshold: as in :func:`comixup.solver.objective` (paper units; ``n`` is the
            number of cells).
    """
    members = np.asarray(members, dtype=np.float64)
    if members.ndim != 4:
        raise ValueError(f"members must have shape (n_out, g1, g2, m), got {members.shape}")
    _n_out, h, w, m = members.shape
    A = check_compatibility(A, m)
    n = h * w
    gamma_eff, tau_eff, mode = _scaled(n, gamma, tau, threshold)
    counts = np.ascontiguousarray(members.sum((1, 2)))
    return float(_set_diversity_kernel(counts, A, gamma_eff, tau_eff, mode))


def modular_bound(labels, A, *, m: int | None = None, gamma: float = 1.0, tau: float = 0.83,
                  threshold: str = "hard", rng: np.random.Generator) -> np.ndarray:
    """The modular upper bound of ``f_c`` at the labeling ``labels`` (Narasimhan and Bilmes).

    See the module docstring: a random permutation of the ground set lists the elements of the
    current labeling first; each element gets the increment ``f_c(S_i) - f_c(S_{i-1})`` along
    that chain.

    Args:
        labels: ``(n_out, g1, g2)`` int array, the input shown at every cell of every output.
        A: ``(m, m)`` compatibility (non-negative).
        m: number of inputs (default ``A.shape[0]``).
        gamma, tau, threshold: as in :func:`comixup.solver.objective`.
        rng: the generator of the permutation.

    Returns:
        ``(n_out, g1, g2, m)`` weights ``w``; ``sum(w * members)`` is the bound of a subset.
        It equals :func:`set_diversity` at ``labels``.
    """
    A = np.asarray(A, dtype=np.float64)
    m = A.shape[0] if m is None else check_int("m", m, 1)
    A = _check_nonnegative(A, m)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise ValueError(f"labels must have shape (n_out, g1, g2), got {labels.shape}")
    n_out, h, w = labels.shape
    flat = _check_labels(labels, n_out, h, w, m)
    n = h * w
    gamma_eff, tau_eff, mode = _scaled(n, gamma, tau, threshold)
    order = _chain(flat, n_out, n, m, rng)
    weights = _chain_increments(order, n_out, n, m, *_csc(A), gamma_eff, tau_eff, mode)
    return weights.reshape(n_out, h, w, m)


def narasimhan_bilmes(cost, A, *, n_out: int | None = None, beta: float = 0.32,
                      gamma: float = 1.0, tau: float = 0.83, threshold: str = "hard",
                      rng: np.random.Generator, init=None, max_iter: int = 1000,
                      patience: int = 1, return_info: bool = False):
    """Minimize Eq. (1) (one-hot labels, no prior beyond ``cost``) by the procedure of
    Narasimhan and Bilmes (UAI 2005), the baseline of Appendix D.2 (Tables 7 and 8).

    Each iteration draws a permutation, replaces ``f_c`` by its modular upper bound
    (:func:`modular_bound`), minimizes the modularized objective output by output with the grid
    graph cut (started from the current labeling), and keeps the result if the true objective
    (:func:`comixup.solver.objective`) decreased. It stops after ``patience`` consecutive
    permutations that do not lower the objective (1, the default: at the first one).

    Args:
        cost: ``(m, g1, g2)`` unary cost (fold any prior in beforehand).
        A: ``(m, m)`` non-negative compatibility.
        n_out: number of outputs ``m'`` (default ``m``).
        beta, gamma, tau, threshold: as in :func:`comixup.solver.objective`.
        rng: generator of the initial labeling (uniform, as Algorithm 1's) and the permutations.
        init: optional ``(n_out, g1, g2)`` int start labeling instead of a random one.
        max_iter: the most iterations (permutations drawn).
        patience: consecutive non-improving permutations before stopping (not in the original
            procedure, which stops at the first; with hard clipping the bound is not an upper
            bound, so a new permutation may still find a decrease).
        return_info: also return a dict with ``history`` (the objective after each accepted
            step, the start first), ``iterations`` (permutations drawn) and ``seconds``.

    Returns:
        ``z`` ``(n_out, g1, g2, m)`` one-hot labelings (and the info dict with ``return_info``).
    """
    t0 = time.perf_counter()
    cost = check_cost(cost)
    m, h, w = cost.shape
    n = h * w
    A = _check_nonnegative(A, m)
    n_out = m if n_out is None else check_int("n_out", n_out, 1)
    beta = check_number("beta", beta)
    max_iter = check_int("max_iter", max_iter, 0)
    patience = check_int("patience", patience, 1)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    gamma_eff, tau_eff, mode = _scaled(n, gamma, tau, threshold)
    beta_eff = beta / n
    flat_cost = np.ascontiguousarray(cost.reshape(m, n))
    if init is None:
        labels = rng.integers(m, size=(n_out, n), dtype=np.int64)
    else:
        labels = _check_labels(init, n_out, h, w, m, "init")
    csc = _csc(A)
    f = _labels_objective(flat_cost, labels, A, h, w, beta_eff, gamma_eff, tau_eff, mode)
    history = [float(f)]
    it = fails = 0
    while it < max_iter and fails < patience:
        it += 1
        order = _chain(labels, n_out, n, m, rng)
        weights = _chain_increments(order, n_out, n, m, *csc, gamma_eff, tau_eff, mode)
        new = labels.copy()
        _minimize_bound(flat_cost, weights, new, h, w, beta_eff)
        f_new = _labels_objective(flat_cost, new, A, h, w, beta_eff, gamma_eff, tau_eff, mode)
        if not f_new < f - 1e-12 * (1.0 + abs(f)):
            fails += 1
            continue
        labels, f, fails = new, f_new, 0
        history.append(float(f))
    z = np.eye(m)[labels].reshape(n_out, h, w, m)
    if return_info:
        return z, dict(history=history, iterations=it, seconds=time.perf_counter() - t0)
    return z
