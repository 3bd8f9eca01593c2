"""Multi-label graph cut on a 4-connected grid by alpha-beta swap moves.

The energy of a labeling ``l`` of an ``h x w`` grid is::

    E(l) = sum_k U[k, l_k] + sum_{(k, k') 4-neighbours} w_{kk'} P[l_k, l_k']

with per-cell unaries ``U``, a symmetric label-pair cost ``P`` with zero diagonal and one
non-negative weight ``w`` per edge (uniform for Co-Mixup, data-dependent for Puzzle Mix).

Co-Mixup's label-pair costs ``||z - z'||^2 / 2`` are a semi-metric, not a metric (a 50/50 mix is
0.25 from each of its parts while the parts are 1 apart), so alpha-expansion moves can be
non-submodular. Alpha-beta swap moves stay submodular for any semi-metric (Boykov, Veksler and
Zabih, PAMI 2001), so every move is solved exactly by a max-flow; this is the algorithm the
reference runs through pyGCO (Appendix C). The solver here is written for the tiny grids of
Co-Mixup (4x4 to 16x16): at m = 20 on a 4x4 grid, the 80 multi-label cuts of one partition
take about 1.4 ms in all, Algorithm 1's bookkeeping included (``comixup bench solver``).

Two exact shortcuts keep the number of max-flows small:

* pairs of labels that are both unused are skipped (the move changes nothing);
* when one label of the pair is unused, the move only relabels cells of the other; it is
  profitable only if some cell gains on its own (the cells moved together pay extra cut cost
  among themselves only if some stay behind), so the pair is skipped when no cell gains.

Public entry points: :func:`grid_graphcut` (NumPy in, NumPy out) and :func:`grid_energy`.
The numba kernels ``swap_inplace`` and ``labeling_energy`` are used by Algorithm 1 without
leaving compiled code.
"""

from __future__ import annotations

import numba
import numpy as np

from .._checks import check_array, check_int, check_number

__all__ = ["grid_energy", "grid_graphcut"]

_EPS = 1e-12


@numba.njit(cache=True, nogil=True)
def _neighbour(k, d, h, w):
    """Index of the neighbour of cell ``k`` in direction d (0 right, 1 down, 2 left, 3 up),
    or -1."""
    r = k // w
    c = k - r * w
    if d == 0:
        return k + 1 if c + 1 < w else -1
    if d == 1:
        return k + w if r + 1 < h else -1
    if d == 2:
        return k - 1 if c > 0 else -1
    return k - w if r > 0 else -1


@numba.njit(cache=True, nogil=True)
def _edge_weight(k, d, w, w_right, w_down):
    """Weight of the edge leaving ``k`` in direction ``d`` (edges stored once, at their
    left/top cell)."""
    if d == 0:
        return w_right[k]
    if d == 1:
        return w_down[k]
    if d == 2:
        return w_right[k - 1]
    return w_down[k - w]


@numba.njit(cache=True, nogil=True)
def labeling_energy(unary, pair, w_right, w_down, h, w, labels):
    """Energy ``E(l)`` of a labeling (see the module docstring); ``unary`` is ``(h*w, L)``."""
    e = 0.0
    for k in range(h * w):
        a = labels[k]
        e += unary[k, a]
        r = k // w
        c = k - r * w
        if c + 1 < w:
            e += w_right[k] * pair[a, labels[k + 1]]
        if r + 1 < h:
            e += w_down[k] * pair[a, labels[k + w]]
    return e


@numba.njit(cache=True, nogil=True)
def _maxflow(h, w, active, cs, ct, cap, source_side, parent, queue):
    """Max-flow / min-cut of a binary problem on the active cells of the grid.

    ``cs[k]`` is the capacity source -> k (paid when k ends on the sink side), ``ct[k]`` the
    capacity k -> sink (paid on the source side); ``cap[k, d]`` the residual capacity of the
    edge leaving k in direction d (both directions start equal). Dinic's algorithm: each phase
    labels the cells by breadth-first distance from the source in the residual graph, then
    saturates that level graph by depth-first searches with current-arc pointers (a path ends
    at any cell with sink capacity left). The loop ends when a search reaches no cell with sink
    capacity left; ``source_side[k]`` then marks the cells reachable from the source in the
    residual graph, the source side of the minimum cut with the smallest source side (unique,
    whichever maximum flow was found). Arrays are modified; ``parent`` holds the BFS levels and
    ``queue`` the BFS order.
    """
    n = h * w
    level = parent
    it = np.empty(n, np.int64)
    stack = np.empty(n + 1, np.int64)
    # Flow straight from source to sink through each cell.
    for k in range(n):
        if active[k]:
            f = min(cs[k], ct[k])
            cs[k] -= f
            ct[k] -= f
    while True:
        for k in range(n):
            level[k] = -1
            source_side[k] = False
        head = 0
        tail = 0
        for k in range(n):
            if active[k] and cs[k] > _EPS:
                level[k] = 0
                source_side[k] = True
                queue[tail] = k
                tail += 1
        found = False
        while head < tail:
            k = queue[head]
            head += 1
            if ct[k] > _EPS:
                found = True
            for d in range(4):
                if cap[k, d] > _EPS:
                    q = _neighbour(k, d, h, w)
                    if q >= 0 and active[q] and level[q] < 0:
                        level[q] = level[k] + 1
                        source_side[q] = True
                        queue[tail] = q
                        tail += 1
        if not found:
            return
        for k in range(n):
            it[k] = 0
        # Blocking flow: depth-first searches from every root along level + 1 edges.
        for i in range(tail):
            root = queue[i]
            if level[root] != 0:
                break
            top = 0
            stack[0] = root
            while top >= 0 and cs[root] > _EPS:
                u = stack[top]
                if ct[u] > _EPS:
                    flow = min(cs[root], ct[u])
                    for j in range(top):
                        c = cap[stack[j], it[stack[j]]]
                        if c < flow:
                            flow = c
                    cs[root] -= flow
                    ct[u] -= flow
                    back = top
                    for j in range(top):
                        v = stack[j]
                        d = it[v]
                        cap[v, d] -= flow
                        cap[stack[j + 1], (d + 2) % 4] += flow
                        if cap[v, d] <= _EPS and j < back:
                            back = j
                    top = back  # retreat to the first saturated edge
                    continue
                advanced = False
                while it[u] < 4:
                    d = it[u]
                    if cap[u, d] > _EPS:
                        q = _neighbour(u, d, h, w)
                        if q >= 0 and active[q] and level[q] == level[u] + 1:
                            top += 1
                            stack[top] = q
                            advanced = True
                            break
                    it[u] += 1
                if not advanced:
                    level[u] = -1  # dead end for this phase
                    top -= 1
                    if top >= 0:
                        it[stack[top]] += 1


@numba.njit(cache=True, nogil=True)
def _rebuild(labels, nbr, nwt, n_labels, count, start, cells, same_w):
    """Per-label cell lists (counting sort) and each cell's weight to same-label neighbours."""
    n = labels.shape[0]
    for a in range(n_labels + 1):
        start[a] = 0
    for a in range(n_labels):
        count[a] = 0
    for k in range(n):
        count[labels[k]] += 1
    for a in range(n_labels):
        start[a + 1] = start[a] + count[a]
    fill = start[:n_labels].copy()
    for k in range(n):
        cells[fill[labels[k]]] = k
        fill[labels[k]] += 1
        sw = 0.0
        for d in range(4):
            q = nbr[k, d]
            if q >= 0 and labels[q] == labels[k]:
                sw += nwt[k, d]
        same_w[k] = sw


@numba.njit(cache=True, nogil=True)
def swap_inplace(unary, pair, w_right, w_down, h, w, labels, max_cycles):
    """Alpha-beta swap from ``labels`` (modified in place) until no move lowers the energy.

    ``nc[k, l]``, the cost of the edges of cell ``k`` if it took label ``l``, is kept up to date,
    so the exact test that skips a pair with one unused label costs one look-up per cell.

    Args:
        unary: ``(h*w, L)`` float64 unaries.
        pair: ``(L', L')`` symmetric label-pair costs with zero diagonal, ``L' >= L`` (only the
            leading ``L x L`` block is read).
        w_right, w_down: ``(h*w,)`` edge weights to the right and lower neighbour.
        labels: ``(h*w,)`` int64 start labeling, overwritten with the result.
        max_cycles: the most full cycles over label pairs.

    Returns:
        The energy of the final labeling.
    """
    n = h * w
    n_labels = unary.shape[1]
    nbr = np.empty((n, 4), np.int64)
    nwt = np.zeros((n, 4))
    nc = np.zeros((n, n_labels))
    for k in range(n):
        for d in range(4):
            q = _neighbour(k, d, h, w)
            nbr[k, d] = q
            if q >= 0:
                wt = _edge_weight(k, d, w, w_right, w_down)
                nwt[k, d] = wt
                lq = labels[q]
                for lab in range(n_labels):
                    nc[k, lab] += wt * pair[lab, lq]
    count = np.zeros(n_labels, np.int64)
    start = np.zeros(n_labels + 1, np.int64)
    cells = np.empty(n, np.int64)
    same_w = np.zeros(n)
    _rebuild(labels, nbr, nwt, n_labels, count, start, cells, same_w)
    active = np.zeros(n, np.bool_)
    cs = np.zeros(n)
    ct = np.zeros(n)
    cap = np.zeros((n, 4))
    side = np.zeros(n, np.bool_)
    parent = np.empty(n, np.int64)
    queue = np.empty(n, np.int64)
    old = np.empty(n, np.int64)
    energy = labeling_energy(unary, pair, w_right, w_down, h, w, labels)
    for _ in range(max_cycles):
        improved = False
        for a in range(n_labels):
            if count[a] == 0:
                continue
            for b in range(n_labels):
                if b == a or (count[b] > 0 and b < a):
                    continue
                if count[b] == 0:
                    # Exact skip: cells of a can only move to the unused b profitably if one
                    # of them gains on its own (see the module docstring).
                    gain = False
                    pab = pair[b, a]
                    for s in range(start[a], start[a + 1]):
                        k = cells[s]
                        if unary[k, b] + nc[k, b] - same_w[k] * pab < unary[k, a] + nc[k, a] - _EPS:
                            gain = True
                            break
                    if not gain:
                        continue
                # Binary move on the cells labelled a or b.
                pab = pair[a, b]
                for k in range(n):
                    active[k] = labels[k] == a or labels[k] == b
                    for d in range(4):
                        cap[k, d] = 0.0
                for k in range(n):
                    if not active[k]:
                        continue
                    wa = 0.0
                    wb = 0.0
                    for d in range(4):
                        q = nbr[k, d]
                        if q >= 0 and active[q]:
                            cap[k, d] = nwt[k, d] * pab
                            if labels[q] == a:
                                wa += nwt[k, d]
                            else:
                                wb += nwt[k, d]
                    ct[k] = unary[k, a] + nc[k, a] - wb * pab  # cost of a (source side)
                    cs[k] = unary[k, b] + nc[k, b] - wa * pab  # cost of b (sink side)
                _maxflow(h, w, active, cs, ct, cap, side, parent, queue)
                changed = False
                for k in range(n):
                    old[k] = labels[k]
                    if active[k]:
                        labels[k] = a if side[k] else b
                        if labels[k] != old[k]:
                            changed = True
                if not changed:
                    continue
                new_energy = labeling_energy(unary, pair, w_right, w_down, h, w, labels)
                if new_energy < energy - 1e-12 * (1.0 + abs(energy)):
                    energy = new_energy
                    improved = True
                    for k in range(n):
                        if labels[k] != old[k]:
                            x = old[k]
                            y = labels[k]
                            for d in range(4):
                                q = nbr[k, d]
                                if q >= 0:
                                    wt = nwt[k, d]
                                    for lab in range(n_labels):
                                        nc[q, lab] += wt * (pair[lab, y] - pair[lab, x])
                    _rebuild(labels, nbr, nwt, n_labels, count, start, cells, same_w)
                else:
                    for k in range(n):
                        labels[k] = old[k]
        if not improved:
            break
    return energy


def _edge_weights(weight, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-edge weights from a scalar or a ``(w_right (h, w-1), w_down (h-1, w))`` pair."""
    w_right = np.zeros((h, w))
    w_down = np.zeros((h, w))
    if np.isscalar(weight) or (isinstance(weight, np.ndarray) and weight.ndim == 0):
        if isinstance(weight, (str, bytes)):
            raise TypeError(f"weight must be a number or a pair (w_right, w_down), got {weight!r}")
        weight = check_number("weight", weight.item() if isinstance(weight, np.ndarray) else weight)
        w_right[:, : w - 1] = weight
        w_down[: h - 1, :] = weight
    else:
        try:
            wr, wd = weight
        except (TypeError, ValueError):
            raise TypeError("weight must be a number or a pair (w_right, w_down)") from None
        wr = check_array("weight[0] (w_right)", wr, nonnegative=True)
        wd = check_array("weight[1] (w_down)", wd, nonnegative=True)
        if wr.shape != (h, w - 1) or wd.shape != (h - 1, w):
            raise ValueError(
                f"weight arrays must have shapes {(h, w - 1)} and {(h - 1, w)}, "
                f"got {wr.shape} and {wd.shape}"
            )
        w_right[:, : w - 1] = wr
        w_down[: h - 1, :] = wd
    return w_right.reshape(-1), w_down.reshape(-1)


def _check_problem(unary, pairwise):
    unary = check_array("unary", unary)
    if unary.ndim != 3 or min(unary.shape) < 1:
        raise ValueError(f"unary must have shape (h, w, L) with positive sizes, got {unary.shape}")
    n_labels = unary.shape[2]
    pairwise = check_array("pairwise", pairwise, nonnegative=True)
    if pairwise.shape != (n_labels, n_labels):
        raise ValueError(f"pairwise must have shape (L, L) = {(n_labels, n_labels)}, "
                         f"got {pairwise.shape}")
    if not np.allclose(pairwise, pairwise.T) or np.any(np.diag(pairwise) != 0):
        raise ValueError("pairwise must be symmetric with a zero diagonal (a semi-metric)")
    return unary, pairwise


def _check_energy_range(unary, pairwise, w_right, w_down) -> None:
    """The swap's energies and max-flow capacities are sums of at most a few times every
    unary and edge term; raise a ValueError naming the arguments when that bound overflows."""
    with np.errstate(over="ignore", invalid="ignore"):
        bound = 4.0 * (np.abs(unary).sum() + (w_right.sum() + w_down.sum()) * pairwise.max())
    if not np.isfinite(bound):
        raise ValueError("the grid energy of unary, pairwise and weight overflows float64 "
                         f"(max |unary| = {np.abs(unary).max():.3g}, max pairwise = "
                         f"{pairwise.max():.3g}, max weight = "
                         f"{max(w_right.max(), w_down.max()):.3g}); scale them down")


def _check_labels(name: str, labels, h: int, w: int, n_labels: int) -> np.ndarray:
    """``labels`` as a flat int64 array of ``h * w`` labels in ``[0, n_labels)``; floats are
    accepted only when they hold whole numbers (never cast NaN or inf to an integer)."""
    arr = check_array(name, labels, dtype=None)
    if arr.shape != (h, w):
        raise ValueError(f"{name} must have shape {(h, w)}, got {arr.shape}")
    if arr.dtype.kind == "f" and (arr != np.floor(arr)).any():
        raise ValueError(f"{name} must hold integer labels, got non-integral values")
    if arr.min() < 0 or arr.max() >= n_labels:
        raise ValueError(f"{name} labels must lie in [0, {n_labels})")
    return np.ascontiguousarray(arr.reshape(-1), dtype=np.int64).copy()


def grid_energy(unary, pairwise, labels, weight=1.0) -> float:
    """Energy of ``labels`` (h, w) under :func:`grid_graphcut`'s model (same argument checks;
    ``labels`` must hold integers in ``[0, L)``)."""
    unary, pairwise = _check_problem(unary, pairwise)
    h, w, n_labels = unary.shape
    flat = _check_labels("labels", labels, h, w, n_labels)
    w_right, w_down = _edge_weights(weight, h, w)
    _check_energy_range(unary, pairwise, w_right, w_down)
    return float(labeling_energy(unary.reshape(h * w, n_labels), pairwise, w_right, w_down, h, w,
                                 flat))


def grid_graphcut(unary, pairwise, weight=1.0, init=None, max_cycles: int = 100) -> np.ndarray:
    """Minimize a multi-label grid energy by alpha-beta swap (exact for two labels).

    Args:
        unary: ``(h, w, L)`` per-cell label costs, finite.
        pairwise: ``(L, L)`` label-pair costs: symmetric, non-negative, zero diagonal.
        weight: a uniform edge weight, or ``(w_right, w_down)`` arrays of shapes ``(h, w-1)`` and
            ``(h-1, w)`` for per-edge weights; finite and non-negative.
        init: ``(h, w)`` start labeling of integers in ``[0, L)``; the per-cell unary argmin by
            default.
        max_cycles: the most cycles over all label pairs, an int >= 1.

    Returns:
        ``(h, w)`` int64 labeling. With two labels it is a global minimum; with more it is a
        local minimum with respect to every swap move, so no single-cell change lowers it.

    Raises:
        TypeError, ValueError: an argument of the wrong kind, shape or value (named in the
            message), or terms so large that the energy overflows float64.
    """
    unary, pairwise = _check_problem(unary, pairwise)
    h, w, n_labels = unary.shape
    max_cycles = check_int("max_cycles", max_cycles, 1)
    w_right, w_down = _edge_weights(weight, h, w)
    _check_energy_range(unary, pairwise, w_right, w_down)
    flat_unary = np.ascontiguousarray(unary.reshape(h * w, n_labels))
    if init is None:
        labels = flat_unary.argmin(1).astype(np.int64)
    else:
        labels = _check_labels("init", init, h, w, n_labels)
    swap_inplace(flat_unary, pairwise, w_right, w_down, h, w, labels, max_cycles)
    return labels.reshape(h, w)
