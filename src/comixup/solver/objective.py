"""The Co-Mixup objective, Eq. (1) of Kim et al. (ICLR 2021), without the prior term.

For a partition of ``m`` inputs, ``n_out`` outputs and a ``g x g`` grid (``n = g * g`` cells),
with labelings ``z[j, k]`` (vectors of mixing ratios summing to 1) and ``o_j = sum_k z[j, k]``::

    f(z) = sum_j sum_k c_k . z[j, k]                                        (unary)
         + beta_eff / 2 * sum_j sum_{(k, k') 4-neighbours} ||z[j,k] - z[j,k']||^2   (smoothness)
         + gamma_eff * D(z)                                                  (diversity)

with ``p_j = A (sum_{j' != j} o_j')`` and (recipes 2)

* ``threshold="hard"`` (the paper's clipping): ``D = sum_j sum_i [p_j[i] > tau_eff] p_j[i] o_j[i]``;
* ``threshold="soft"``: ``D = sum_j sum_i max(p_j[i] - tau_eff, 0) o_j[i]`` (the objective whose
  modularization is the soft penalty ``2 gamma_eff max(v - tau_eff, 0)`` of the reference);
* ``threshold="none"``: ``D = sum_j sum_{j' != j} o_j^T A o_j'`` (Proposition 2).

The smoothness term in squared-distance form equals ``beta (1 - z^T z')`` of Eq. (1) for one-hot
labels and stays a metric distance for mixed labels (recipes 2). Hyperparameters are given in the
paper's units and scaled inside (recipes 1.4; :meth:`~comixup.solver.Hyperparameters.effective`):
``beta_eff = beta / n``, ``gamma_eff = gamma / n``, ``tau_eff = tau * n``.

The clipped diversity is written once, in the numba helpers :func:`clip_diversity` (the clipping
of one input's compatibility with the other outputs), :func:`others_compatibility` and
:func:`diversity`; Algorithm 1 (:mod:`comixup.solver.algorithm`) modularizes it with the same
helpers and brute force (:mod:`comixup.solver.exact`) evaluates it with them.
"""

from __future__ import annotations

import numba
import numpy as np

from .._checks import check_array, check_choice
from .hyperparameters import Hyperparameters

__all__ = ["THRESHOLDS", "objective"]

#: The clipping modes of the diversity term, in the order of their numeric codes 0, 1, 2.
THRESHOLDS = ("hard", "soft", "none")


@numba.njit(cache=True, nogil=True)
def clip_diversity(v, tau_eff, mode):
    """The clipped compatibility ``v`` of one input with the other outputs (recipes 2).

    ``mode`` 0 (hard, the paper): ``v [v > tau_eff]``; 1 (soft): ``max(v - tau_eff, 0)``;
    2 (none): ``v``. The diversity term is ``sum_j sum_i clip(p_j[i]) o_j[i]`` and its
    modularization, Eq. (2), charges ``2 gamma_eff clip(v[i])`` per cell of input ``i``.
    """
    if mode == 0:
        return v if v > tau_eff else 0.0
    if mode == 1:
        return v - tau_eff if v > tau_eff else 0.0
    return v


@numba.njit(cache=True, nogil=True)
def others_compatibility(a_mat, total, o, j, i):
    """``p_j[i] = (A (sum_{j' != j} o_j'))[i]``, with ``total = sum_j' o_j'``."""
    p = 0.0
    for i2 in range(a_mat.shape[1]):
        p += a_mat[i, i2] * (total[i2] - o[j, i2])
    return p


@numba.njit(cache=True, nogil=True)
def diversity(o, total, a_mat, tau_eff, mode):
    """The clipped diversity ``D = sum_j sum_i clip(p_j[i]) o_j[i]`` (before ``gamma_eff``)
    of the source vectors ``o`` ``(n_out, m)`` whose sum over outputs is ``total``."""
    div = 0.0
    for j in range(o.shape[0]):
        for i in range(o.shape[1]):
            div += clip_diversity(others_compatibility(a_mat, total, o, j, i), tau_eff,
                                  mode) * o[j, i]
    return div


@numba.njit(cache=True, nogil=True)
def objective_kernel(cost, z, a_mat, h, w, beta_eff, gamma_eff, tau_eff, mode):
    """Eq. (1) without prior on flat arrays: ``cost`` (m, n), ``z`` (n_out, n, m), mode 0/1/2."""
    n_out, n, m = z.shape
    unary = 0.0
    smooth = 0.0
    o = np.zeros((n_out, m))
    for j in range(n_out):
        for k in range(n):
            r = k // w
            c = k - r * w
            for i in range(m):
                zi = z[j, k, i]
                unary += cost[i, k] * zi
                o[j, i] += zi
                if c + 1 < w:
                    d = zi - z[j, k + 1, i]
                    smooth += d * d
                if r + 1 < h:
                    d = zi - z[j, k + w, i]
                    smooth += d * d
    total = np.zeros(m)
    for j in range(n_out):
        for i in range(m):
            total[i] += o[j, i]
    return unary + 0.5 * beta_eff * smooth + gamma_eff * diversity(o, total, a_mat, tau_eff, mode)


def threshold_mode(threshold: str) -> int:
    """Numeric code of a threshold name (0 hard, 1 soft, 2 none); raises on anything else."""
    return THRESHOLDS.index(check_choice("threshold", threshold, THRESHOLDS))


def check_cost(cost, name: str = "cost") -> np.ndarray:
    """``cost`` as a finite float64 ``(m, g1, g2)`` array, or an error naming it."""
    cost = check_array(name, cost)
    if cost.ndim != 3 or min(cost.shape) < 1:
        raise ValueError(f"{name} must have shape (m, g, g) with positive sizes, got {cost.shape}")
    return cost


def check_compatibility(A, m: int) -> np.ndarray:
    """``A`` as a finite float64 ``(m, m)`` array, or an error naming it."""
    A = check_array("A", A)
    if A.shape != (m, m):
        raise ValueError(f"A must have shape (m, m) = {(m, m)}, got {A.shape}")
    return A


def check_labeling(z, n_out: int | None, h: int, w: int, m: int) -> np.ndarray:
    """``z`` as a finite float64 ``(n_out, h, w, m)`` array (any ``n_out`` >= 1 when None)."""
    z = check_array("z", z)
    if z.ndim != 4 or z.shape[1:] != (h, w, m) or z.shape[0] < 1 \
            or (n_out is not None and z.shape[0] != n_out):
        expected = f"({'n_out' if n_out is None else n_out}, {h}, {w}, {m})"
        raise ValueError(f"z must have shape {expected}, got {z.shape}")
    return z


#: Tolerance of :func:`check_is_labeling` on the entries and the per-cell sums of ``z``.
LABELING_TOL = 1e-6


def check_is_labeling(z: np.ndarray) -> np.ndarray:
    """``z`` (already a finite ``(n_out, h, w, m)`` array) if every cell holds a labeling: a
    one-hot vector or a distribution over the ``m`` inputs (entries in ``[0, 1]`` summing to 1,
    up to :data:`LABELING_TOL`); otherwise a ValueError naming ``z``."""
    if z.size == 0:
        return z
    sums = z.sum(-1)
    low, high = float(z.min()), float(z.max())
    if low < -LABELING_TOL or high > 1 + LABELING_TOL \
            or float(np.abs(sums - 1.0).max()) > LABELING_TOL:
        raise ValueError(
            "z must be a labeling: every cell's vector one-hot or a distribution over the inputs "
            f"(entries in [0, 1] that sum to 1); got entries in [{low:.3g}, {high:.3g}] and cell "
            f"sums in [{float(sums.min()):.3g}, {float(sums.max()):.3g}]")
    return z


def check_finite_objective(f: float, cost: np.ndarray, A: np.ndarray, **weights) -> float:
    """``f`` if it is finite; otherwise a ValueError that names the arguments whose size made
    Eq. (1) overflow (``cost``, ``A`` and the weights in ``weights``)."""
    if np.isfinite(f):
        return float(f)
    parts = [f"max |cost| = {np.abs(cost).max():.3g}", f"max |A| = {np.abs(A).max():.3g}"]
    parts += [f"{k} = {v:.3g}" for k, v in weights.items()]
    raise ValueError("the objective is not finite for these costs: " + ", ".join(parts)
                     + " (Eq. (1) overflows float64; scale cost, A or the weights down)")


def objective(cost, z, A, *, beta: float, gamma: float, tau: float,
              threshold: str = "hard") -> float:
    """Eq. (1) without the prior term, as defined in the module docstring (recipes 2).

    Args:
        cost: ``(m, g, g)`` unary cost in the paper's units (negated normalized saliency, plus any
            prior the caller folded in), finite.
        z: ``(n_out, g, g, m)`` labelings: each cell's vector one-hot or a distribution over
            the ``m`` inputs (entries in ``[0, 1]`` summing to 1, :func:`check_is_labeling`).
        A: ``(m, m)`` compatibility matrix, finite.
        beta, gamma, tau: hyperparameters in the paper's units (scaled by ``n`` inside;
            :class:`~comixup.solver.Hyperparameters`), finite and >= 0.
        threshold: ``"hard"``, ``"soft"`` or ``"none"``.

    Returns:
        The objective value as a finite Python float.

    Raises:
        TypeError, ValueError: an argument of the wrong kind, shape or value (the message
            names it; a ``z`` that is not a labeling names ``z``), or an objective that
            overflows float64 (:func:`check_finite_objective`).
    """
    cost = check_cost(cost)
    m, h, w = cost.shape
    z = check_labeling(z, None, h, w, m)
    A = check_compatibility(A, m)
    n = h * w
    hp = Hyperparameters(beta=beta, gamma=gamma, tau=tau)
    eff = hp.effective(n)
    mode = threshold_mode(threshold)
    check_is_labeling(z)
    flat_z = np.ascontiguousarray(z.reshape(z.shape[0], n, m))
    f = objective_kernel(np.ascontiguousarray(cost.reshape(m, n)), flat_z, A, h, w,
                         eff.beta, eff.gamma, eff.tau, mode)
    return check_finite_objective(f, cost, A, beta=hp.beta, gamma=hp.gamma)
