"""Algorithm 1 of Co-Mixup: iterative submodular minimization with a modular diversity term.

Kim et al., "Co-Mixup: Saliency Guided Joint Mixup with Supermodular Diversity", ICLR 2021,
Section 4.2 and Appendix C; every default and constant follows section 2 of docs/recipes.md.

For each sweep ``t = 1..n_iter`` and each output ``j`` in order, the supermodular diversity term
is replaced by its modularization, Eq. (2): with ``v = A (sum_{j' != j} o_j')`` input ``i`` costs
``2 gamma_eff v[i] [v[i] > tau_eff]`` per cell (hard clipping; soft: ``2 gamma_eff
max(v[i] - tau_eff, 0)``; none: ``2 gamma_eff v[i]``), and output ``j``'s labeling is re-solved by
a grid graph cut (alpha-beta swap, :mod:`comixup.solver.graphcut`). The swap starts from the
output's current labeling or from the best uniform labeling, whichever has the lower energy, so a
step never worsens the modularized energy. (The reference's pyGCO starts every cut from label 0;
on realistic saliency at m = 20, |L| = 3 this start gave a mean objective of -22.4 against -20.8
for the current labeling alone, and is the fastest of the three.)

Multi-label extension (``levels`` = |L| in {3, 4}): the first sweep uses one-hot labels; later
sweeps add, for the inputs ``S_j`` the output currently uses, the mixes of the pair (|S_j| = 2) or
of the three pairs among the three most used inputs (|S_j| >= 3), at ratio 1/2 (|L| = 3) or 1/3
and 2/3 (|L| = 4), each with unary = the same mix of the two unaries minus ``5e-4``.

Label-pair costs of the graph cut (times ``beta_eff``). ``pairwise="reference"`` (the default) is
what the reference's ``graphcut_multi`` builds: 0 between equal labels, 0.25 between a mix and
each of its two parts, and 1 between any other two distinct labels (two inputs, a mix and an
input it does not contain, two different mixes). ``pairwise="squared"`` uses
``||z - z'||^2 / 2`` instead, which gives 0.75 and 0.25 (0.5 for disjoint mixes) in the last
cases. Both are semi-metrics, which the swap solver handles exactly per move. The objective that
:func:`solve` reports and compares keeps the squared-distance smoothness of
:mod:`comixup.solver.objective` whichever cut costs are used.

Resolve step: after sweep ``n_iter - 1``, outputs ``j1 < j2`` that use exactly the same set of at
least two inputs get ``gamma_eff`` added to the first input of the set (for ``j1``) and to the
second (for ``j2``) in later sweeps. Early stop when the objective's relative change between
sweeps falls below ``1e-6``.

The whole algorithm runs in compiled numba code (``nogil``), so partitions solve in parallel
threads: :func:`algorithm1_kernel` sweeps over the outputs and calls one small helper per step,
as :mod:`comixup.solver.graphcut` does: the modular penalty (:func:`_modular_penalty`, with the
clipped diversity of :mod:`comixup.solver.objective`), the label set (:func:`_label_set`), the
unaries, the warm start (:func:`_warm_start`, :func:`_uniform_start`), the graph cut, the commit
of the new labeling (:func:`_commit`) and the resolve step (:func:`_resolve_step`).
"""

from __future__ import annotations

import numba
import numpy as np

from .._checks import check_array, check_bool, check_choice, check_int, check_number
from .graphcut import labeling_energy, swap_inplace
from .hyperparameters import Hyperparameters
from .objective import (
    check_compatibility,
    check_cost,
    check_finite_objective,
    clip_diversity,
    objective_kernel,
    others_compatibility,
    threshold_mode,
)

__all__ = ["LEVELS", "PAIRWISE", "check_levels", "dirichlet_prior", "label_pair_costs", "solve"]

LEVELS = (2, 3, 4)
#: Label-pair costs of the graph cut between mixed labels (see the module docstring).
PAIRWISE = ("reference", "squared")
_MIX_BONUS = 5e-4  # unary bonus of a mixed label (Appendix C, the reference's graphcut_multi)
_STOP_TOL = 1e-6  # early-stop tolerance on the relative objective change (recipes 2)
_MAX_CYCLES = 100  # cycles of the swap solver; it converges in a handful


@numba.njit(cache=True, nogil=True)
def _label_sqdist(i1a, i2a, wa, i1b, i2b, wb):
    """``||z_a - z_b||^2`` for labels ``w e_i1 + (1 - w) e_i2`` (one-hot labels have ``w = 1``).

    Expanded as ``|a|^2 + |b|^2 - 2 a.b`` over the two (weight, index) components of each label,
    so nothing is allocated on this hot path.
    """
    va = 1.0 - wa
    vb = 1.0 - wb
    dot = 0.0
    if i1a == i1b:
        dot += wa * wb
    if i1a == i2b:
        dot += wa * vb
    if i2a == i1b:
        dot += va * wb
    if i2a == i2b:
        dot += va * vb
    return wa * wa + va * va + wb * wb + vb * vb - 2.0 * dot


@numba.njit(cache=True, nogil=True)
def _label_pair_cost(i1a, i2a, wa, mixed_a, i1b, i2b, wb, mixed_b, squared):
    """Graph-cut cost between two distinct labels (before ``beta_eff``).

    ``squared``: ``||z_a - z_b||^2 / 2``. Otherwise the reference's costs: 0.25 between a mix and
    one of its two parts, 1 for every other pair of distinct labels.
    """
    if squared:
        return 0.5 * _label_sqdist(i1a, i2a, wa, i1b, i2b, wb)
    if mixed_a and not mixed_b:
        return 0.25 if (i1b == i1a or i1b == i2a) else 1.0
    if mixed_b and not mixed_a:
        return 0.25 if (i1a == i1b or i1a == i2b) else 1.0
    return 1.0


@numba.njit(cache=True, nogil=True)
def _write_cell(z, j, k, i1, i2, w1):
    m = z.shape[2]
    for i in range(m):
        z[j, k, i] = 0.0
    z[j, k, i1] += w1
    z[j, k, i2] += 1.0 - w1


@numba.njit(cache=True, nogil=True)
def _initial_state(init, m):
    """Algorithm 1's state from the one-hot labels ``init`` ``(n_out, n)``.

    Returns ``(cur_i1, cur_i2, cur_w, z, o, total)``: every cell's label as the mix
    ``cur_w e_cur_i1 + (1 - cur_w) e_cur_i2``, the dense labelings ``z`` ``(n_out, n, m)``, the
    source vectors ``o`` ``(n_out, m)`` and their sum ``total`` over the outputs.
    """
    n_out, n = init.shape
    cur_i1 = init.copy()
    cur_i2 = init.copy()
    cur_w = np.ones((n_out, n))
    z = np.zeros((n_out, n, m))
    o = np.zeros((n_out, m))
    total = np.zeros(m)
    for j in range(n_out):
        for k in range(n):
            z[j, k, init[j, k]] = 1.0
            o[j, init[j, k]] += 1.0
            total[init[j, k]] += 1.0
    return cur_i1, cur_i2, cur_w, z, o, total


@numba.njit(cache=True, nogil=True)
def _grid_weights(h, w, beta_eff):
    """Uniform edge weights ``beta_eff`` of the ``h x w`` grid, stored at the left/top cell."""
    n = h * w
    w_right = np.zeros(n)
    w_down = np.zeros(n)
    for k in range(n):
        if (k % w) + 1 < w:
            w_right[k] = beta_eff
        if k // w + 1 < h:
            w_down[k] = beta_eff
    return w_right, w_down


@numba.njit(cache=True, nogil=True)
def _modular_penalty(pen, a_mat, total, o, j, gamma_eff, tau_eff, mode):
    """Eq. (2): ``pen[i] = 2 gamma_eff clip(v[i])`` with ``v = A (sum_{j' != j} o_j')``, the
    modular approximation of the clipped diversity for output ``j``
    (:func:`comixup.solver.objective.clip_diversity`)."""
    for i in range(pen.shape[0]):
        v = others_compatibility(a_mat, total, o, j, i)
        pen[i] = 2.0 * gamma_eff * clip_diversity(v, tau_eff, mode)


@numba.njit(cache=True, nogil=True)
def _most_used(o, j, n_top, top):
    """Write the ``n_top`` inputs that output ``j`` uses most into ``top`` (lower index on
    ties)."""
    m = o.shape[1]
    for s in range(n_top):
        best = -1
        for i in range(m):
            taken = False
            for s2 in range(s):
                if top[s2] == i:
                    taken = True
            if not taken and (best < 0 or o[j, i] > o[j, best]):
                best = i
        top[s] = best


@numba.njit(cache=True, nogil=True)
def _label_set(o, j, t, levels, lab_i1, lab_i2, lab_w, pair, top, squared):
    """Output ``j``'s label set in sweep ``t``; returns its size.

    Labels ``0 .. m-1`` are the one-hot labels. With ``levels > 2`` and after the first sweep,
    the mixes of the pair (output ``j`` uses 2 inputs) or of the three pairs among its three
    most used inputs (3 or more) follow, at ratio 1/2 (``levels = 3``) or 1/3 and 2/3
    (``levels = 4``), written to ``lab_i1, lab_i2, lab_w`` (the mix ``w e_i1 + (1 - w) e_i2``);
    their rows and columns of ``pair`` are updated (:func:`_label_pair_cost`).
    """
    m = o.shape[1]
    n_labels = m
    if levels <= 2 or t == 0:
        return n_labels
    n_used = 0
    for i in range(m):
        if o[j, i] > 0:
            n_used += 1
    if n_used < 2:
        return n_labels
    n_top = 3 if n_used >= 3 else 2
    _most_used(o, j, n_top, top)
    for s in range(n_top):
        for s2 in range(s + 1, n_top):
            if levels == 3:
                lab_i1[n_labels] = top[s]
                lab_i2[n_labels] = top[s2]
                lab_w[n_labels] = 0.5
                n_labels += 1
            else:
                for frac in (1.0 / 3.0, 2.0 / 3.0):
                    lab_i1[n_labels] = top[s]
                    lab_i2[n_labels] = top[s2]
                    lab_w[n_labels] = frac
                    n_labels += 1
    for a in range(m, n_labels):
        for b in range(n_labels):
            d = 0.0
            if a != b:
                d = _label_pair_cost(lab_i1[a], lab_i2[a], lab_w[a], True,
                                     lab_i1[b], lab_i2[b], lab_w[b], b >= m, squared)
            pair[a, b] = d
            pair[b, a] = d
    return n_labels


@numba.njit(cache=True, nogil=True)
def _unaries(cost, pen, add_cost_j, gamma_eff, lab_i1, lab_i2, lab_w, n_labels, mix_bonus):
    """``(n, n_labels)`` unaries of one output's cut: input ``i`` costs ``cost[i] + pen[i] +
    gamma_eff add_cost_j[i]``; a mix costs the same mix of its parts' unaries minus
    ``mix_bonus``."""
    m, n = cost.shape
    unary = np.empty((n, n_labels))
    for k in range(n):
        for i in range(m):
            unary[k, i] = cost[i, k] + pen[i] + gamma_eff * add_cost_j[i]
        for a in range(m, n_labels):
            unary[k, a] = (lab_w[a] * unary[k, lab_i1[a]]
                           + (1.0 - lab_w[a]) * unary[k, lab_i2[a]] - mix_bonus)
    return unary


@numba.njit(cache=True, nogil=True)
def _warm_start(labels, cur_i1, cur_i2, cur_w, j, m, lab_i1, lab_i2, lab_w, n_labels):
    """Output ``j``'s current labeling in the new label set; a mix missing from the set falls
    back to its larger part."""
    for k in range(labels.shape[0]):
        i1 = cur_i1[j, k]
        i2 = cur_i2[j, k]
        wk = cur_w[j, k]
        if i1 == i2:
            labels[k] = i1
            continue
        found = -1
        for a in range(m, n_labels):
            if ((lab_i1[a] == i1 and lab_i2[a] == i2 and abs(lab_w[a] - wk) < 1e-9)
                    or (lab_i1[a] == i2 and lab_i2[a] == i1 and abs(lab_w[a] - (1.0 - wk)) < 1e-9)):
                found = a
        if found >= 0:
            labels[k] = found
        else:
            labels[k] = i1 if wk >= 0.5 else i2


@numba.njit(cache=True, nogil=True)
def _uniform_start(unary, pair, w_right, w_down, h, w, labels):
    """Replace ``labels`` by the best uniform labeling when its energy is lower (it has no
    boundaries, so the swap starts from few labels: faster, and better on average)."""
    n, n_labels = unary.shape
    best_l = 0
    best_e = np.inf
    for a in range(n_labels):
        e = 0.0
        for k in range(n):
            e += unary[k, a]
        if e < best_e:
            best_e = e
            best_l = a
    if best_e < labeling_energy(unary, pair, w_right, w_down, h, w, labels):
        for k in range(n):
            labels[k] = best_l


@numba.njit(cache=True, nogil=True)
def _commit(labels, j, m, lab_i1, lab_i2, lab_w, cur_i1, cur_i2, cur_w, z, o, total):
    """Make ``labels`` (indices into the label set) output ``j``'s labeling: update its
    current labels, ``z[j]``, ``o[j]`` and ``total``."""
    for i in range(m):
        total[i] -= o[j, i]
        o[j, i] = 0.0
    for k in range(labels.shape[0]):
        a = labels[k]
        i1 = lab_i1[a]
        i2 = lab_i2[a]
        wk = lab_w[a] if a >= m else 1.0
        cur_i1[j, k] = i1
        cur_i2[j, k] = i2 if a >= m else i1
        cur_w[j, k] = wk
        _write_cell(z, j, k, cur_i1[j, k], cur_i2[j, k], wk)
        o[j, cur_i1[j, k]] += wk
        o[j, cur_i2[j, k]] += 1.0 - wk
    for i in range(m):
        total[i] += o[j, i]


@numba.njit(cache=True, nogil=True)
def _resolve_step(o, add_cost):
    """Outputs ``j1 < j2`` that use exactly the same set of at least two inputs drift apart:
    the first input of the set costs ``j1`` one more ``gamma_eff``, the second ``j2``."""
    n_out, m = o.shape
    for j1 in range(n_out):
        for j2 in range(j1 + 1, n_out):
            same = True
            n_set = 0
            for i in range(m):
                u1 = o[j1, i] > 0
                if u1 != (o[j2, i] > 0):
                    same = False
                    break
                if u1:
                    n_set += 1
            if same and n_set >= 2:
                rank = 0
                for i in range(m):
                    if o[j1, i] > 0:
                        if rank == 0:
                            add_cost[j1, i] = 1.0
                        elif rank == 1:
                            add_cost[j2, i] = 1.0
                        rank += 1


@numba.njit(cache=True, nogil=True)
def algorithm1_kernel(cost, a_mat, init, h, w, beta_eff, gamma_eff, tau_eff,
                      n_iter, levels, mode, resolve, squared, mix_bonus):
    """Algorithm 1 on one partition.

    Args:
        cost: ``(m, n)`` unary cost including the prior, effective units.
        a_mat: ``(m, m)`` compatibility.
        init: ``(n_out, n)`` int64 initial one-hot labels.
        h, w: grid size (``n = h * w``).
        beta_eff, gamma_eff, tau_eff: scaled hyperparameters.
        n_iter: number of sweeps; levels: |L|; mode: 0 hard, 1 soft, 2 none; resolve: bool.
        squared: label-pair costs ``||z - z'||^2 / 2`` (else the reference's 0.25 / 1).
        mix_bonus: unary bonus of a mixed label (``5e-4``).

    Returns:
        ``(z, f)``: labelings ``(n_out, n, m)`` and their objective (without prior beyond ``cost``).
    """
    m, n = cost.shape
    n_out = init.shape[0]
    cur_i1, cur_i2, cur_w, z, o, total = _initial_state(init, m)
    w_right, w_down = _grid_weights(h, w, beta_eff)
    l_max = m + (6 if levels == 4 else 3)
    lab_i1 = np.empty(l_max, np.int64)
    lab_i2 = np.empty(l_max, np.int64)
    lab_w = np.ones(l_max)
    for i in range(m):
        lab_i1[i] = i
        lab_i2[i] = i
    pair = np.ones((l_max, l_max))  # cost 1 between two distinct one-hot labels
    for i in range(l_max):
        pair[i, i] = 0.0
    add_cost = np.zeros((n_out, m))
    pen = np.empty(m)
    labels = np.empty(n, np.int64)
    top = np.empty(3, np.int64)
    f_prev = objective_kernel(cost, z, a_mat, h, w, beta_eff, gamma_eff, tau_eff, mode)
    f = f_prev
    for t in range(n_iter):
        for j in range(n_out):
            _modular_penalty(pen, a_mat, total, o, j, gamma_eff, tau_eff, mode)
            n_labels = _label_set(o, j, t, levels, lab_i1, lab_i2, lab_w, pair, top, squared)
            unary = _unaries(cost, pen, add_cost[j], gamma_eff, lab_i1, lab_i2, lab_w, n_labels,
                             mix_bonus)
            _warm_start(labels, cur_i1, cur_i2, cur_w, j, m, lab_i1, lab_i2, lab_w, n_labels)
            _uniform_start(unary, pair, w_right, w_down, h, w, labels)
            swap_inplace(unary, pair, w_right, w_down, h, w, labels, _MAX_CYCLES)
            _commit(labels, j, m, lab_i1, lab_i2, lab_w, cur_i1, cur_i2, cur_w, z, o, total)
        if resolve and t == n_iter - 2:
            _resolve_step(o, add_cost)
        f = objective_kernel(cost, z, a_mat, h, w, beta_eff, gamma_eff, tau_eff, mode)
        denom = abs(f) if f != 0.0 else 1.0
        if abs(f_prev - f) / denom < _STOP_TOL:
            break
        f_prev = f
    return z, f


@numba.njit(cache=True, nogil=True)
def polish_kernel(cost, a_mat, z, h, w, beta_eff, gamma_eff, tau_eff, mode, kicks):
    """Basin-hopping on the true objective: single-cell moves to one-hot labels (ICM), then kicks.

    ``z`` (n_out, n, m) is modified in place to the best labeling found; ``kicks`` is an
    ``(n_kicks, 4)`` int array of (output, cell, input, length) perturbations drawn by the
    caller: a kick sets ``length`` cells from ``cell`` on (raster order) to ``input``. Each
    move is scored by a full evaluation of Eq. (1), so this is meant for small problems.
    Returns the final objective.
    """
    n_out, n, m = z.shape
    cell = np.empty(m)

    def icm(z, f):
        improved = True
        while improved:
            improved = False
            for j in range(n_out):
                for k in range(n):
                    for i in range(m):
                        cell[i] = z[j, k, i]
                    for b in range(m):
                        if cell[b] == 1.0:
                            continue
                        for i in range(m):
                            z[j, k, i] = 0.0
                        z[j, k, b] = 1.0
                        f_new = objective_kernel(cost, z, a_mat, h, w, beta_eff, gamma_eff,
                                                 tau_eff, mode)
                        if f_new < f - 1e-12 * (1.0 + abs(f)):
                            f = f_new
                            improved = True
                            for i in range(m):
                                cell[i] = z[j, k, i]
                        else:
                            for i in range(m):
                                z[j, k, i] = cell[i]
        return f

    f = icm(z, objective_kernel(cost, z, a_mat, h, w, beta_eff, gamma_eff, tau_eff, mode))
    best = z.copy()
    for t in range(kicks.shape[0]):
        j, b = kicks[t, 0], kicks[t, 2]
        for r in range(kicks[t, 3]):
            k = (kicks[t, 1] + r) % n
            for i in range(m):
                z[j, k, i] = 0.0
            z[j, k, b] = 1.0
        f_new = icm(z, objective_kernel(cost, z, a_mat, h, w, beta_eff, gamma_eff, tau_eff, mode))
        if f_new < f - 1e-12 * (1.0 + abs(f)):
            f = f_new
            best[:] = z
        else:
            z[:] = best
    return f


def label_pair_costs(labels, pairwise: str = "reference") -> np.ndarray:
    """The graph cut's ``(L, L)`` label-pair costs for dense mixing vectors ``labels`` ``(L, m)``.

    ``"reference"``: 0 on the diagonal, 0.25 between a mixed label and a one-hot label of one of
    its parts, 1 between every other pair (the costs the reference's ``graphcut_multi`` builds,
    Appendix C). ``"squared"``: ``||z_a - z_b||^2 / 2``. This is the matrix Algorithm 1 uses for
    its label sets, written densely for tests and for :func:`comixup.solver.grid_graphcut`.
    """
    pairwise = check_choice("pairwise", pairwise, PAIRWISE)
    z = check_array("labels", labels, ndim=2)
    if pairwise == "squared":
        return 0.5 * ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
    one_hot = np.isclose(z.max(1), 1.0)
    part = (z[None, :, :] > 0) & (z[:, None, :] == 1.0)  # part[a, b, i]: a is e_i, b contains i
    contains = part.any(-1) & ~one_hot[None, :] & one_hot[:, None]
    cost = np.where(contains | contains.T, 0.25, 1.0)
    np.fill_diagonal(cost, 0.0)
    return cost


def dirichlet_prior(m: int, n: int, *, eta: float, alpha: float,
                    rng: np.random.Generator) -> np.ndarray:
    """Per-input prior cost ``-eta_eff log(lambda_i + 1e-8)``, ``lambda ~ Dirichlet(alpha 1_m)``.

    The prior term of Eq. (1) with ``eta_eff = eta / n`` (recipes 1.4-1.5); it is added to every
    cell of input ``i``'s unary cost. Returns an ``(m,)`` float64 array.
    """
    m, n = check_int("m", m, 1), check_int("n", n, 1)
    eta = check_number("eta", eta)
    alpha = check_number("alpha", alpha, low_open=True)
    lam = rng.dirichlet(np.full(m, alpha))
    return -(eta / n) * np.log(lam + 1e-8)


def solve(
    cost,
    A,
    *,
    n_out: int | None = None,
    beta: float = Hyperparameters.beta,
    gamma: float = Hyperparameters.gamma,
    eta: float = Hyperparameters.eta,
    tau: float = Hyperparameters.tau,
    alpha: float = Hyperparameters.alpha,
    n_iter: int = 4,
    levels: int = 3,
    threshold: str = "hard",
    resolve: bool = True,
    rng: np.random.Generator | None = None,
    restarts: int = 1,
    polish: int = 0,
    pairwise: str = "reference",
) -> np.ndarray:
    """Co-Mixup labelings of one partition by Algorithm 1 (Section 4.2, Appendix C, recipes 2).

    Args:
        cost: ``(m, g, g)`` unary cost in the paper's units: the negated saliency pooled to the
            grid and normalized to sum 1 per input (recipes 1.3). Non-square grids work.
        A: ``(m, m)`` compatibility matrix (recipes 1.6; :func:`comixup.saliency.compatibility`).
        n_out: number of outputs ``m'`` (default ``m``, as the reference).
        beta: smoothness weight (paper 0.32); scaled to ``beta / n`` inside.
        gamma: diversity weight (paper 1.0); scaled to ``gamma / n``.
        eta: prior weight (paper 0.05); scaled to ``eta / n``; 0 disables the prior.
        tau: clipping level (paper 0.83); scaled to ``tau * n``.
        alpha: Dirichlet concentration of the prior's mixing ratio (paper 2.0), > 0.
            The five weights are checked and scaled by :class:`~comixup.solver.Hyperparameters`,
            which holds their defaults.
        n_iter: number of sweeps ``T`` (paper 4).
        levels: |L|, the number of mixing levels per cell: 2 (one-hot), 3 ({0, 1/2, 1}, the
            paper's) or 4 ({0, 1/3, 2/3, 1}).
        threshold: ``"hard"`` (paper), ``"soft"`` or ``"none"`` clipping of the diversity term.
        resolve: run the resolve step (paper: on).
        rng: ``numpy.random.Generator`` for the prior and the random initialization; a fresh
            unseeded one when None.
        restarts: run Algorithm 1 from this many random initializations and keep the labeling
            with the lowest objective (Eq. (1) with the drawn prior). 1, the default, is the paper.
        polish: not in the paper; when > 0, the result is refined on the true objective (hard,
            soft or no clipping) by iterated conditional modes over single-cell moves to
            one-hot labels, with ``polish`` random kicks (a strip of up to n/2 cells of one
            output set to one input) (basin hopping) drawn from ``rng``. Algorithm 1's
            modularization charges ``2 gamma_eff v`` for both directions of the clipped term, so
            its fixed points can miss optima in which every output stays just below the
            clipping level; the polish reaches them. Every move re-evaluates
            Eq. (1), so use it on small problems (analysis, Table 6), not in training.
        pairwise: label-pair costs of the graph cut for mixed labels, ``"reference"`` (0.25
            between a mix and each of its parts, 1 otherwise: what the reference ran) or
            ``"squared"`` (``||z - z'||^2 / 2``). The returned labeling is still compared by
            Eq. (1) with its squared-distance smoothness.

    Returns:
        ``(n_out, g, g, m)`` float64 array whose last axis sums to 1.
    """
    cost = check_cost(cost)
    m, h, w = cost.shape
    n = h * w
    A = check_compatibility(A, m)
    n_out = m if n_out is None else check_int("n_out", n_out, 1)
    n_iter = check_int("n_iter", n_iter, 1)
    restarts = check_int("restarts", restarts, 1)
    levels = check_levels(levels)
    mode = threshold_mode(threshold)
    pairwise = check_choice("pairwise", pairwise, PAIRWISE)
    resolve = check_bool("resolve", resolve)
    hp = Hyperparameters(beta=beta, gamma=gamma, eta=eta, tau=tau, alpha=alpha)
    if rng is None:
        rng = np.random.default_rng()
    elif not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    flat = cost.reshape(m, n)
    if hp.eta > 0:
        flat = flat + dirichlet_prior(m, n, eta=hp.eta, alpha=hp.alpha, rng=rng)[:, None]
    flat = np.ascontiguousarray(flat)
    if not np.isfinite(flat).all():  # the cost plus the prior overflows
        check_finite_objective(np.inf, cost, A, beta=hp.beta, gamma=hp.gamma, eta=hp.eta)
    polish = check_int("polish", polish, 0)
    eff = hp.effective(n)
    scaled = (eff.beta, eff.gamma, eff.tau)
    best_z, best_f = None, np.inf
    for _ in range(restarts):
        init = rng.integers(m, size=(n_out, n), dtype=np.int64)
        z, f = algorithm1_kernel(flat, A, init, h, w, *scaled, n_iter, levels, mode, resolve,
                                  pairwise == "squared", _MIX_BONUS)
        if polish:
            kicks = np.stack([rng.integers(n_out, size=polish), rng.integers(n, size=polish),
                              rng.integers(m, size=polish),
                              rng.integers(1, max(1, n // 2) + 1, size=polish)], axis=1)
            kicks = kicks.astype(np.int64)
            f = polish_kernel(flat, A, z, h, w, *scaled, mode, kicks)
        if f < best_f and np.isfinite(f):
            best_z, best_f = z, f
    if best_z is None or not np.isfinite(best_z).all():
        check_finite_objective(np.inf, flat, A, beta=hp.beta, gamma=hp.gamma, eta=hp.eta)
    return best_z.reshape(n_out, h, w, m)


def check_levels(levels) -> int:
    """|L|, the number of mixing levels per cell: an int in :data:`LEVELS` (2, 3 or 4)."""
    return check_int("levels", levels, min(LEVELS), max(LEVELS))
