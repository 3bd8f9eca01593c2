"""Puzzle Mix's graph cut and transport (Kim, Choo and Song, ICML 2020; recipes 4).

The discrete optimisation behind :class:`comixup.mixers.PuzzleMix`, which mixes every image
``x1 = x[i]`` with ``x2 = x[perm[i]]``:

1. **Unaries** (:func:`graphcut_terms`): the saliency of both images pooled to a ``g x g``
   grid and normalized to sum 1 (``s1``, ``s2``); a cell of mixing level ``w`` (the weight of
   ``x1``, in ``{0, 1/(L-1), ..., 1}``, ``L = n_labels``) costs the saliency it leaves out,
   ``w * s2 + (1 - w) * s1``, plus the prior ``eta / n * (-log P(w))`` with ``P`` binomial in
   ``lambda`` (:func:`level_prior`; ``P(1) = lambda^2, P(1/2) = 2 lambda (1 - lambda),
   P(0) = (1 - lambda)^2`` for three levels).
2. **Data smoothness** (:func:`neigh_penalty`, :func:`smoothness_terms`): on the un-normalized
   images average-pooled by ``neigh_size``, the mean absolute difference across each block
   boundary for the four image combinations (x2|x2, x2|x1, x1|x2, x1|x1), scaled by
   ``beta_n * gamma``, ``beta_n = beta / (16 g)``. As in the reference code the asymmetric part
   goes into the unaries (each combination contributes half to the two adjacent blocks' unaries
   of the corresponding image; level ``w`` interpolates linearly between the "all x1" and
   "all x2" unaries) and the edge weight is ``beta_n + (d10 + d01 - d11 - d00) / 2`` times the
   label cost ``(i - j)^2 / (L - 1)^2`` (:func:`label_costs`).
3. **Graph cut** (:func:`graphcut_masks`): the alpha-beta swap of
   :mod:`comixup.solver.graphcut`, every pair of the batch in one numba ``nogil`` kernel,
   chunks of pairs on a thread pool (the cut is deterministic, so results do not depend on the
   number of workers).
4. **Transport** (:func:`transport_plan`, :func:`apply_transport`): each image's salient
   blocks are moved inside its mask region (``mask > 0`` for ``x1``, ``mask < 1`` for ``x2``)
   by the reference's greedy plan on a grid of ``t x t`` pixel blocks, vectorized in torch on
   the input's device. The cost of moving block ``i`` to position ``j`` is
   ``t_eps * C[i, j] - s_i * [j in region]``, ``C`` the squared Euclidean distance between
   block centres in block units divided by ``(t - 1)^2``, as the reference's ``cost_matrix``.

On rectangular images (not in the reference, whose code is square-only) the grids stay square,
``g x g`` and ``t x t``, with cells of ``(H/g) x (W/g)`` and blocks of ``(H/t) x (W/t)`` pixels:
the boundary statistic pools ``(kh, kw)`` cells per block (:func:`neigh_penalty`), the costs
and the plan are in grid units as above, and :func:`apply_transport` moves the rectangular
blocks whole.

Deviations from the reference code (all documented where they occur):

* the graph cut uses float64 costs instead of the reference's ``int32(1000 g^2 * cost)``
  quantization, starts from the per-cell unary argmin (and from the uniform middle level)
  instead of GCO's all-zero labeling (all ``x1``), and clamps negative edge weights (possible
  when ``d10 + d01 < d00 + d11``) at 0 so that every swap move stays submodular and is solved
  exactly;
* the transport's column resolve picks the cheapest *claimant* of a column (the reference takes
  the minimum of ``plan * cost`` over all rows, so zeros of non-claimants can beat claimants of
  cost >= 0 and leave a cell of zero saliency unassigned, i.e. black). With saliency > 0 in
  every block the two agree on every cell of the region; target blocks outside the region keep
  their content (the reference zeroes unassigned ones), invisible in the mixture since the mask
  weight there is 0.
"""

from __future__ import annotations

import functools
import itertools
import math
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
import torch
import torch.nn.functional as F

from .._checks import check_int, check_number
from .graphcut import swap_inplace

__all__ = [
    "apply_transport",
    "graphcut_masks",
    "graphcut_terms",
    "label_costs",
    "level_prior",
    "neigh_penalty",
    "pooled_smoothness_terms",
    "smoothness_terms",
    "transport_plan",
]

_MAX_CYCLES = 100  # cycles of the swap solver; it converges in a handful


# ----------------------------------------------------------------------------------------------
# graph-cut terms
# ----------------------------------------------------------------------------------------------


def level_prior(lam: float, n_labels: int, eta: float, n_cells: int,
                eps: float = 1e-8) -> np.ndarray:
    """Per-cell prior cost of each mixing level (Puzzle Mix, ICML 2020; recipes 4).

    Level ``l`` (weight ``w = l / (L - 1)`` of ``x1``) costs ``eta / n * -log(P(l) + eps)`` with
    ``P(l) = C(L-1, l) lam^l (1 - lam)^(L-1-l)`` (binomial), as the reference's
    ``graphcut_multi`` (``eps = 1e-8``). Returns an ``(L,)`` float64 array.
    """
    n_labels = check_int("n_labels", n_labels, 2)
    lam = check_number("lam", lam, high=1.0)
    eta = check_number("eta", eta)
    n_cells = check_int("n_cells", n_cells, 1)
    k = n_labels - 1
    if k <= _DIRECT_BINOMIAL:
        p = np.array([math.comb(k, i) * lam**i * (1.0 - lam) ** (k - i) for i in range(n_labels)])
    else:  # C(k, l) overflows a float: the same probabilities from their logarithms
        with np.errstate(divide="ignore"):
            log_lam, log_rest = np.log(lam), np.log1p(-lam)
        p = np.array([math.exp(math.lgamma(k + 1) - math.lgamma(i + 1) - math.lgamma(k - i + 1)
                               + _times_log(i, log_lam) + _times_log(k - i, log_rest))
                      for i in range(n_labels)])
    return eta * -np.log(p + eps) / n_cells


#: The largest ``L - 1`` for which every binomial coefficient ``C(L - 1, l)`` is a finite float.
_DIRECT_BINOMIAL = 1000


def _times_log(count: int, log_p: float) -> float:
    """``count * log(p)`` with ``0 * log(0) = 0`` (``p^0 = 1``)."""
    return 0.0 if count == 0 else count * log_p


def _pair(value) -> tuple[int, int]:
    """``(height, width)`` of a size given as one int (a square) or a pair."""
    if isinstance(value, (tuple, list)):
        return int(value[0]), int(value[1])
    return int(value), int(value)


def neigh_penalty(a: torch.Tensor, b: torch.Tensor, k) -> tuple[torch.Tensor, torch.Tensor]:
    """Boundary differences between blocks of image ``a`` and the next blocks of image ``b``.

    Puzzle Mix's data-smoothness statistic (ICML 2020; recipes 4), the reference's
    ``neigh_penalty``. ``a`` and ``b`` are images average-pooled by the neighbourhood size,
    ``(B, C, g kh, g kw)`` with ``k = kh`` (an int, square blocks as the reference) or
    ``k = (kh, kw)`` pooled cells per block height and width.

    Returns:
        ``(down, right)``: ``down[:, r, c]`` (shape ``(B, g-1, g)``) is the mean over channels and
        along the boundary of ``|last pooled row of a's block (r, c) - first pooled row of b's
        block (r + 1, c)|``; ``right`` (``(B, g, g-1)``) the same across the boundary between
        columns ``c`` and ``c + 1``.
    """
    kh, kw = _pair(k)
    down = (a[:, :, kh - 1 : -1 : kh, :] - b[:, :, kh::kh, :]).abs().mean(1)
    right = (a[:, :, :, kw - 1 : -1 : kw] - b[:, :, :, kw::kw]).abs().mean(1)
    bsz, rows, width = down.shape
    down = down.reshape(bsz, rows, width // kw, kw).mean(-1)
    bsz, height, cols = right.shape
    right = right.reshape(bsz, height // kh, kh, cols).mean(2)
    return down, right


def smoothness_terms(x1: torch.Tensor, x2: torch.Tensor, grid: int, neigh_size):
    """Boundary differences of the four image combinations (Puzzle Mix, ICML 2020; recipes 4).

    Args:
        x1, x2: un-normalized images ``(B, C, H, W)`` with ``H = g * block_h`` and
            ``W = g * block_w`` (square in the reference).
        grid: the labeling grid side ``g``.
        neigh_size: the pooling size, an int or ``(height, width)`` (``min(neigh_size, block)``
            in the reference; it must divide the block's sides).

    Returns:
        ``(down, right)`` of shapes ``(B, 2, 2, g-1, g)`` and ``(B, 2, 2, g, g-1)``;
        ``down[:, a, b]`` is :func:`neigh_penalty` with image ``a`` at the upper block and image
        ``b`` at the lower one, where index 1 is ``x1`` and 0 is ``x2`` (the level ``w`` of a
        pure cell), ``right`` likewise for left/right neighbours. Unscaled (no ``beta_n gamma``).
    """
    nh, nw = _pair(neigh_size)
    k = (x1.shape[-2] // grid // nh, x1.shape[-1] // grid // nw)
    return pooled_smoothness_terms(F.avg_pool2d(x1, (nh, nw)), F.avg_pool2d(x2, (nh, nw)), k)


def pooled_smoothness_terms(p1: torch.Tensor, p2: torch.Tensor, k: int):
    """:func:`smoothness_terms` from the images already average-pooled by the neighbourhood
    size, ``p1`` (of x1) and ``p2`` (of x2), ``k`` pooled cells per block side (an int, or
    ``(kh, kw)`` per block height and width)."""
    pooled = (p2, p1)
    pens = [[neigh_penalty(pa, pb, k) for pb in pooled] for pa in pooled]
    down = torch.stack([torch.stack([pens[a][b][0] for b in (0, 1)], 1) for a in (0, 1)], 1)
    right = torch.stack([torch.stack([pens[a][b][1] for b in (0, 1)], 1) for a in (0, 1)], 1)
    return down, right


def _to_numpy(t) -> np.ndarray:
    if isinstance(t, torch.Tensor):
        return t.detach().double().cpu().numpy()
    return np.asarray(t, np.float64)


def graphcut_terms(s1, s2, down, right, *, lam: float, n_labels: int = 3, beta: float = 1.2,
                   gamma: float = 0.5, eta: float = 0.2):
    """Unaries and edge weights of every pair's graph cut (Puzzle Mix, ICML 2020; recipes 4).

    Args:
        s1, s2: ``(B, g, g)`` saliency of ``x1`` and ``x2`` pooled to the grid, summing to 1.
        down, right: the unscaled boundary differences of :func:`smoothness_terms`.
            These four are tensors (copied to the CPU) or NumPy arrays.
        lam: the mixing ratio of the prior, in ``[0, 1]``.
        n_labels: number of mixing levels ``L``; level ``l`` puts weight ``l / (L - 1)`` on x1.
        beta, gamma, eta: Puzzle Mix's weights (published 1.2, 0.5, 0.2); ``beta_n = beta/(16 g)``.

    Returns:
        ``(unary (B, g, g, L), w_right (B, g, g-1), w_down (B, g-1, g))`` float64 NumPy arrays.
        The energy of a labeling ``l`` is ``sum_k unary[k, l_k] + sum_edges w (l_a - l_b)^2 /
        (L-1)^2``, the reference's ``graphcut_multi`` model. With ``D = beta_n gamma d``, the
        "all x1" unary ``U1 = s2 + `` half of each combination with x1 at the cell (both
        neighbours' sides), ``U2 = s1 + `` the same for x2, level ``w`` costs
        ``w U1 + (1 - w) U2 + prior(w)``, and the edge weight is
        ``max(0, beta_n + (D10 + D01 - D11 - D00) / 2)``: the clamp at 0 (not in the reference,
        whose GCO call would get a negative weight) keeps every swap move exact.
    """
    s1, s2, down, right = map(_to_numpy, (s1, s2, down, right))
    g = s1.shape[1]
    beta_n = beta / (16.0 * g)
    down = beta_n * gamma * down
    right = beta_n * gamma * right
    u1 = s2.copy()  # cost of choosing x1 (w = 1): the saliency of x2 left out
    u2 = s1.copy()  # cost of choosing x2 (w = 0)
    # Index 1 = x1, 0 = x2; d[:, a, b] with a at the upper/left cell, b at the lower/right one.
    u1[:, :-1, :] += (down[:, 1, 0] + down[:, 1, 1]) / 2
    u2[:, :-1, :] += (down[:, 0, 1] + down[:, 0, 0]) / 2
    u1[:, 1:, :] += (down[:, 0, 1] + down[:, 1, 1]) / 2
    u2[:, 1:, :] += (down[:, 1, 0] + down[:, 0, 0]) / 2
    u1[:, :, :-1] += (right[:, 1, 0] + right[:, 1, 1]) / 2
    u2[:, :, :-1] += (right[:, 0, 1] + right[:, 0, 0]) / 2
    u1[:, :, 1:] += (right[:, 0, 1] + right[:, 1, 1]) / 2
    u2[:, :, 1:] += (right[:, 1, 0] + right[:, 0, 0]) / 2
    w_down = beta_n + (down[:, 1, 0] + down[:, 0, 1] - down[:, 1, 1] - down[:, 0, 0]) / 2
    w_right = beta_n + (right[:, 1, 0] + right[:, 0, 1] - right[:, 1, 1] - right[:, 0, 0]) / 2
    levels = _levels(n_labels)
    prior = level_prior(lam, n_labels, eta, g * g)
    unary = levels * u1[..., None] + (1.0 - levels) * u2[..., None] + prior
    return unary, np.maximum(w_right, 0.0), np.maximum(w_down, 0.0)


@functools.lru_cache(maxsize=64)
def _levels(n_labels: int) -> np.ndarray:
    """The mixing levels ``l / (L - 1)``, ``(L,)`` float64 (read-only, built once per ``L``)."""
    levels = np.linspace(0.0, 1.0, n_labels)
    levels.setflags(write=False)
    return levels


def label_costs(n_labels: int) -> np.ndarray:
    """The label-pair cost ``(i - j)^2 / (L - 1)^2`` of Puzzle Mix's graph cut (ICML 2020;
    recipes 4).

    Returns an ``(L, L)`` float64 array; multiplied by each edge's weight (:func:`graphcut_terms`).
    """
    lv = np.arange(n_labels, dtype=np.float64)
    return (lv[:, None] - lv[None, :]) ** 2 / (n_labels - 1) ** 2


@functools.lru_cache(maxsize=64)
def _pair_costs(n_labels: int) -> np.ndarray:
    """:func:`label_costs`, built once per ``L`` for the kernel (which only reads it)."""
    return label_costs(n_labels)


# ----------------------------------------------------------------------------------------------
# graph cut
# ----------------------------------------------------------------------------------------------


@numba.njit(cache=True, nogil=True)
def _swap_pairs(unary, pair, w_right, w_down, g, labels, lo, hi, max_cycles):
    """Alpha-beta swap for pairs ``lo .. hi-1`` from two starts, the per-cell unary argmin and
    the uniform middle level; keeps the lower energy and writes ``labels``."""
    n_labels = unary.shape[2]
    other = np.empty(g * g, np.int64)
    for p in range(lo, hi):
        for k in range(g * g):
            best = 0
            for lab in range(1, n_labels):
                if unary[p, k, lab] < unary[p, k, best]:
                    best = lab
            labels[p, k] = best
            other[k] = n_labels // 2
        e_argmin = swap_inplace(unary[p], pair, w_right[p], w_down[p], g, g, labels[p], max_cycles)
        e_middle = swap_inplace(unary[p], pair, w_right[p], w_down[p], g, g, other, max_cycles)
        if e_middle < e_argmin:
            labels[p, :] = other


def graphcut_masks(unary, w_right, w_down, *, workers: int = 1, executor=None) -> np.ndarray:
    """Solve every pair's graph cut (Puzzle Mix, ICML 2020; recipes 4) by alpha-beta swap.

    Uses :func:`comixup.solver.graphcut.swap_inplace` (exact swap moves, a local minimum for
    ``L > 2`` labels, the global one for ``L = 2``), started twice, from the per-cell unary
    argmin and from the uniform middle level (0.5), keeping the lower energy (the reference's
    GCO starts once, from label 0 everywhere). On 480 random 2x2 and 3x3 three-level problems
    the single argmin start missed the brute-force optimum 4 times and the two starts never.
    Pairs are split in ``workers`` contiguous chunks, each solved by one call of a numba
    ``nogil`` kernel, on ``executor`` (a fresh thread pool when None and ``workers > 1``); the
    result does not depend on ``workers``.

    Args:
        unary: ``(B, g, g, L)`` level costs; ``w_right`` ``(B, g, g-1)``, ``w_down``
            ``(B, g-1, g)`` non-negative edge weights (:func:`graphcut_terms`).

    Returns:
        ``(B, g, g)`` int64 level indices; the mask (weight of ``x1``) is ``labels / (L - 1)``.
    """
    unary = np.ascontiguousarray(unary, dtype=np.float64)
    bsz, g, _, n_labels = unary.shape
    if np.any(w_right < 0) or np.any(w_down < 0):
        raise ValueError("edge weights must be non-negative")
    wr = np.zeros((bsz, g, g))
    wd = np.zeros((bsz, g, g))
    wr[:, :, : g - 1] = w_right
    wd[:, : g - 1, :] = w_down
    wr = wr.reshape(bsz, g * g)
    wd = wd.reshape(bsz, g * g)
    flat = unary.reshape(bsz, g * g, n_labels)
    pair = _pair_costs(n_labels)
    labels = np.empty((bsz, g * g), np.int64)
    workers = max(1, min(int(workers), bsz))
    if workers == 1:
        chunks = [(0, bsz)]
    else:
        bounds = np.linspace(0, bsz, workers + 1).astype(int)
        chunks = [(int(a), int(b)) for a, b in itertools.pairwise(bounds) if b > a]

    def run(chunk):
        _swap_pairs(flat, pair, wr, wd, g, labels, chunk[0], chunk[1], _MAX_CYCLES)

    if len(chunks) == 1:
        run(chunks[0])
    elif executor is not None:
        list(executor.map(run, chunks))
    else:
        with ThreadPoolExecutor(max_workers=len(chunks)) as pool:
            list(pool.map(run, chunks))
    return labels.reshape(bsz, g, g)


# ----------------------------------------------------------------------------------------------
# transport
# ----------------------------------------------------------------------------------------------


def _cost_matrix(t: int, device) -> torch.Tensor:
    """Squared distance between block centres of a ``t x t`` grid, divided by ``(t - 1)^2``."""
    device = torch.device(device)
    key = (t, device.type, device.index)
    c = _COST_CACHE.get(key)
    if c is None:
        idx = torch.arange(t * t, device=device)
        r, col = idx // t, idx % t
        d = (r[:, None] - r[None, :]) ** 2 + (col[:, None] - col[None, :]) ** 2
        c = _COST_CACHE[key] = d.float() / max(t - 1, 1) ** 2
    return c


def _transport_constants(t: int, t_eps: float, device) -> tuple[torch.Tensor, torch.Tensor]:
    """``(t_eps * C, d1)`` of a ``t x t`` transport grid on ``device``: the scaled cost matrix
    (:func:`_cost_matrix`) and the ``(t, t)`` squared distances along one axis. Kept for the
    last ``t_eps`` used with each grid side and device, so a mixer builds them once."""
    device = torch.device(device)
    key = ("scaled", t, device.type, device.index)
    consts = _COST_CACHE.get(key)
    if consts is None or consts[0] != float(t_eps):
        ar = torch.arange(t, device=device)
        d1 = ((ar[:, None] - ar[None, :]) ** 2).float()
        consts = _COST_CACHE[key] = (float(t_eps), float(t_eps) * _cost_matrix(t, device), d1)
    return consts[1], consts[2]


#: Constant tensors of the transport by grid layout and device.
_COST_CACHE: dict = {}


def transport_plan(region: torch.Tensor, saliency: torch.Tensor, t_eps: float = 0.8,
                   n_iter: int | None = None) -> torch.Tensor:
    """Greedy transport of salient blocks into a region (Puzzle Mix, ICML 2020; recipes 4).

    The reference's ``mask_transport``: cost ``t_eps * C[i, j] - s_i [j in region]`` of moving
    block ``i`` to position ``j`` (``C`` the squared centre distance in block units divided by
    ``(t - 1)^2``); ``n_iter`` (default the grid side ``t``) rounds of: every block claims its
    cheapest position (first index on ties); each claimed position goes to its cheapest
    claimant (lowest block index on ties); every losing claim costs 1 more from then on. The
    winners of the last round form the plan. Vectorized in torch on ``saliency``'s device
    without the dense ``(B, T, T)`` cost: a block inside the region first claims its own
    position, a block outside it only claims a region position when its saliency beats the
    distance to the closest one (found by a separable distance transform), and a block's row is
    built only once it may move (those blocks, and every block that loses a claim); blocks that
    do not lose keep their choice, exactly as in a dense recomputation, and the loop stops
    early once nobody loses. The result equals the dense algorithm's (tested against a
    transcription of the reference).

    Deviation: a position goes to its cheapest claimant even when that cost is >= 0 (the
    reference compares claimants with the zeros of non-claimants, so a cell of exactly zero
    saliency can stay unassigned and turn black); with saliency > 0 everywhere both give the
    same plan on the region. Every region position is assigned (its own block claims it in
    the first round), and distinct positions get distinct blocks. The plan of an image does not
    depend on the other images of the batch (claims never cross images, and an image with no
    losing claim keeps its plan in later rounds), so several plans can be made in one call.

    Args:
        region: ``(B, t, t)`` bool, the positions blocks may move to (``mask > 0`` for x1).
        saliency: ``(B, t, t)`` non-negative block saliency (normalized to sum 1 per image).
        t_eps: weight of the distance cost (published 0.8).
        n_iter: number of rounds (default ``t``, as the reference).

    Returns:
        ``(B, t*t)`` long tensor ``src``: position ``j`` (row-major) receives block ``src[:, j]``;
        ``-1`` for positions outside the region, which keep their block
        (:func:`apply_transport`).
    """
    bsz, t, _ = region.shape
    n = t * t
    dev = saliency.device
    n_iter = t if n_iter is None else max(1, int(n_iter))
    region = region.reshape(bsz * n).to(dev)
    s = saliency.reshape(bsz * n).float()
    z = region.view(bsz, n).float()
    eps_c, d1 = _transport_constants(t, t_eps, dev)  # (n, n) scaled costs, (t, t) 1-D distances
    # Rows of the cost matrix are built only for blocks that may leave their own position.
    # With t_eps > 0 a block of the region claims its own position first (cost -s_i; any
    # other position costs more), and a block outside it can only claim a region position if
    # s_i >= t_eps * C_min (the closest region position); such blocks are "active" at once,
    # the others when they first lose a claim (their row has no penalty until then). Rows that
    # never lose keep their choice, exactly as in a dense recomputation, so each round only
    # resolves the positions claimed by active blocks (against the passive owner, if any).
    flat = torch.arange(bsz * n, device=dev)
    cell = flat % n
    own_claim = torch.where(region, -s, torch.zeros_like(s))  # a passive block's claim
    if t_eps > 0:
        # Squared distance of every block to the closest region block (two 1-D passes), so
        # that the exact test "some region position costs <= 0" needs no full row; the 0.1%
        # slack only admits a few more rows, which are then evaluated exactly.
        zr = region.view(bsz, t, t)
        along = torch.where(zr[:, :, None, :], d1, math.inf).amin(-1)  # (B, row_j, col_i)
        near = (d1[None, :, :, None] + along[:, None, :, :]).amin(2).reshape(bsz * n)
        near = near * (float(t_eps) / max(t - 1, 1) ** 2)
        act = (~region & (s >= 0.999 * near)).nonzero().squeeze(1)
    else:
        act = flat
    passive = torch.ones(bsz * n, dtype=torch.bool, device=dev)
    passive[act] = False
    rows_buf = eps_c[cell[act]] - s[act, None] * z[act // n]  # cost rows of the active blocks
    rows = rows_buf
    act_choice = rows.argmin(-1)
    act_claim = rows.gather(1, act_choice[:, None]).squeeze(1)
    winner = torch.where(passive, cell, n)  # passive blocks hold their own position
    act_base = act - act % n
    act_cell = act % n
    for it in range(n_iter):
        if act.numel() == 0:
            break
        key = act_base + act_choice  # the (image, position) each active block claims
        # the passive owners of claimed positions claim them too; an active owner's entry (it
        # claims elsewhere) gets an infinite claim, which never wins: fixed sizes, no host read
        held = passive[key]
        c_key = torch.cat([key, key])
        c_claim = torch.cat([act_claim, torch.where(held, own_claim[key], math.inf)])
        c_cell = torch.cat([act_cell, key % n])
        best = torch.full((bsz * n,), math.inf, device=dev).scatter_reduce_(
            0, c_key, c_claim, "amin")
        ties = torch.where(c_claim == best[c_key], c_cell, n)
        win = torch.full((bsz * n,), n, dtype=torch.long, device=dev).scatter_reduce_(
            0, c_key, ties, "amin")
        c_win = win[c_key]
        winner[c_key] = c_win
        n_act = act.numel()
        lost = c_win[:n_act] != act_cell
        if it == n_iter - 1:
            break
        lost_act = lost.nonzero().squeeze(1)
        # the passive owners that lost become active: flagged by position (duplicates agree),
        # then listed in increasing order by one nonzero
        became = torch.zeros(bsz * n, dtype=torch.bool, device=dev)
        became[key] = held & (c_win[n_act:] != c_cell[n_act:])
        fresh = became.nonzero().squeeze(1)
        if fresh.numel():
            passive[fresh] = False
            if n_act + fresh.numel() > rows_buf.shape[0]:  # grow the row buffer geometrically
                grown = rows_buf.new_empty((2 * (n_act + fresh.numel()), n))
                grown[:n_act] = rows_buf[:n_act]
                rows_buf = grown
            rows_buf[n_act : n_act + fresh.numel()] = (
                eps_c[cell[fresh]] - s[fresh, None] * z[fresh // n])
            rows = rows_buf[: n_act + fresh.numel()]
            act = torch.cat([act, fresh])
            act_base = torch.cat([act_base, fresh - fresh % n])
            act_cell = torch.cat([act_cell, fresh % n])
            act_choice = torch.cat([act_choice, cell[fresh]])
            act_claim = torch.cat([act_claim, own_claim[fresh]])
            lost_act = torch.cat([lost_act, torch.arange(n_act, act.numel(), device=dev)])
        elif lost_act.numel() == 0:
            break
        rows[lost_act, act_choice[lost_act]] += 1.0
        sub = rows[lost_act]
        arg = sub.argmin(-1)
        act_choice[lost_act] = arg
        act_claim[lost_act] = sub.gather(1, arg[:, None]).squeeze(1)
    src = torch.where((winner < n) & region, winner, -1)
    return src.view(bsz, n)


def apply_transport(x: torch.Tensor, src: torch.Tensor, t_size, *,
                    out: torch.Tensor | None = None) -> torch.Tensor:
    """Move the pixel blocks of ``x`` on a ``t x t`` grid by a plan of :func:`transport_plan`.

    Puzzle Mix, ICML 2020; recipes 4 (the reference's ``transport_image``). Position ``j`` of
    image ``b`` receives block ``src[b, j]`` of the same image; ``-1`` keeps the block in place
    (the reference zeroes unassigned positions; they are outside the region, where the mixture
    does not use them). Only the blocks that move are copied.

    Args:
        x: ``(B, C, H, W)`` images.
        src: ``(B, t*t)`` long tensor, ``t = H / t_h = W / t_w``.
        t_size: the block, ``t_size x t_size`` pixels (an int, the reference's square images)
            or ``(t_h, t_w)`` (rectangular images: the same ``t x t`` grid of ``t_h x t_w``
            blocks); it must tile ``x`` in a square grid.
        out: where to write (a copy of ``x`` when None); ``out=x`` transports in place.
    """
    bsz, ch, h, w = x.shape
    th, tw = _pair(t_size)
    t = h // th
    if th < 1 or tw < 1 or h % th or w % tw or w // tw != t:
        raise ValueError(f"t_size {t_size!r} must tile x ({h}x{w}) in a square grid of blocks")
    if src.shape[-1] != t * t:
        raise ValueError(f"src must have t*t = {t * t} columns for t_size {t_size!r} on x "
                         f"({h}x{w}), got shape {tuple(src.shape)}")
    if out is None:
        out = x.clone()
    elif out is not x:
        out.copy_(x)
    src = src.to(x.device)
    own, origin, offset = _block_layout(t, th, tw, w, x.device)
    b, j = ((src >= 0) & (src != own)).nonzero(as_tuple=True)
    if b.numel():
        i = src[b, j]
        flat = out.view(bsz, ch, h * w)
        src_flat = x.reshape(bsz, ch, h * w) if out is not x else flat
        values = src_flat[b[:, None], :, origin[i][:, None] + offset]  # (M, t_h t_w, C)
        flat[b[:, None], :, origin[j][:, None] + offset] = values
    return out


def _block_layout(t: int, th: int, tw: int, w: int, device) -> tuple[torch.Tensor, ...]:
    """``(own, origin, offset)`` of a ``t x t`` grid of ``th x tw``-pixel blocks in images of
    width ``w``, built once per layout and device: the block indices, the flat pixel index of
    each block's first pixel, and the flat pixel offsets inside a block."""
    device = torch.device(device)
    key = ("blocks", t, th, tw, w, device.type, device.index)
    layout = _COST_CACHE.get(key)
    if layout is None:
        own = torch.arange(t * t, device=device)
        origin = (own // t) * (th * w) + (own % t) * tw
        dy = torch.arange(th, device=device)
        dx = torch.arange(tw, device=device)
        offset = (dy[:, None] * w + dx[None, :]).reshape(-1)
        layout = _COST_CACHE[key] = (own, origin, offset)
    return layout
