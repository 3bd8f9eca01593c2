"""Puzzle Mix as a batch transform.

Kim, Choo and Song, "Puzzle Mix: Exploiting Saliency and Local Statistics for Optimal Mixup",
ICML 2020; the Puzzle Mix baseline of Co-Mixup (Kim et al., ICLR 2021), recipes 4. Every image
``x1 = x[i]`` is mixed with ``x2 = x[perm[i]]``:

1. **Unaries** (:func:`graphcut_terms`): the saliency of both images average-pooled to a
   ``g x g`` grid and normalized to sum 1 (``s1``, ``s2``); a cell of mixing level ``w`` (the
   weight of ``x1``, in ``{0, 1/(L-1), ..., 1}``, ``L = n_labels``) costs the saliency it leaves
   out, ``w * s2 + (1 - w) * s1``, plus the prior ``eta / n * (-log P(w))`` with ``P`` binomial
   in ``lambda ~ Beta(alpha, alpha)`` (``P(1) = lambda^2, P(1/2) = 2 lambda (1 - lambda),
   P(0) = (1 - lambda)^2`` for three levels).
2. **Data smoothness** (:func:`neigh_penalty`, :func:`smoothness_terms`): on the un-normalized
   images (``x * std + mean``) average-pooled by ``neigh_size``, the mean absolute difference
   across each block boundary for the four image combinations (x2|x2, x2|x1, x1|x2, x1|x1),
   scaled by ``beta_n * gamma``, ``beta_n = beta / (16 g)``. As in the reference code the
   asymmetric part goes into the unaries (each combination contributes half to the two adjacent
   blocks' unaries of the corresponding image; level ``w`` interpolates linearly between the
   "all x1" and "all x2" unaries) and the edge weight is ``beta_n + (d10 + d01 - d11 - d00) / 2``
   times the label cost ``(i - j)^2 / (L - 1)^2``.
3. **Graph cut** (:func:`graphcut_masks`): the project's alpha-beta swap
   (:mod:`comixup.solver.graphcut`), every pair of the batch in one numba ``nogil`` kernel,
   chunks of pairs on a thread pool (the cut is deterministic, so results do not depend on the
   number of workers).
4. **Transport** (:func:`transport_plan`, :func:`apply_transport`): each image's salient
   blocks are moved inside its mask region (``mask > 0`` for ``x1``, ``mask < 1`` for ``x2``)
   by the reference's greedy plan on a grid of ``t_size x t_size`` pixel blocks, vectorized in
   torch on the input's device.
5. ``x_mix = mask * x1' + (1 - mask) * x2'`` with the mask nearest-upsampled to the image, and
   targets ``ratio * y + (1 - ratio) * y[perm]``, ``ratio`` the mean mask (its pixel mass).

Deviations from the reference code (all documented where they occur):

* the graph cut uses float64 costs instead of the reference's ``int32(1000 g^2 * cost)``
  quantization, starts from the per-cell unary argmin instead of GCO's all-zero labeling (all
  ``x1``), and clamps negative edge weights (possible when ``d10 + d01 < d00 + d11``) at 0 so
  that every swap move stays submodular and is solved exactly;
* the transport's column resolve picks the cheapest *claimant* of a column (the reference takes
  the minimum of ``plan * cost`` over all rows, so zeros of non-claimants can beat claimants of
  cost >= 0 and leave a cell of zero saliency unassigned, i.e. black). With saliency > 0 in
  every block the two agree on every cell of the region; target blocks outside the region keep
  their content (the reference zeroes unassigned ones), invisible in the mixture since the mask
  weight there is 0;
* an all-zero saliency map is uniform (:func:`comixup.saliency.pooled_unary`) instead of NaN.

The reference clips ``neigh_size`` and ``t_size`` to the block size (``H / g``), so on 32x32
images the grid ``g = 16`` uses 2x2 smoothness pooling and a 16x16 transport grid; so does this
module. The transport cost is ``t_eps * C - s_i * [j in region]`` with ``C`` the squared
Euclidean distance between block centres in block units divided by ``(t - 1)^2`` (``t`` the
transport grid side), as the reference's ``cost_matrix``.

Call convention (shared by every mixer of this package)::

    puzzle = PuzzleMix(num_classes=100)
    x_mix, y_mix = puzzle(x, y, saliency)
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
import torch
import torch.nn.functional as F

from ..saliency import pooled_unary
from ..solver.graphcut import swap_inplace
from .base import Mixer, MixParams, ThreadedMixer, check_int, check_number, permutation_ratios
from .mixup import sample_lambda

__all__ = [
    "GRIDS",
    "PuzzleMix",
    "PuzzleParams",
    "apply_transport",
    "graphcut_masks",
    "graphcut_terms",
    "label_costs",
    "level_prior",
    "neigh_penalty",
    "smoothness_terms",
    "transport_plan",
]

#: The grid sides ``g = 2^U{1..4}`` drawn per call when ``grid=-1`` (recipes 4).
GRIDS = (2, 4, 8, 16)

_MAX_CYCLES = 100


# ----------------------------------------------------------------------------------------------
# argument checks
# ----------------------------------------------------------------------------------------------


def _check_channels(name: str, value) -> torch.Tensor | None:
    if value is None:
        return None
    try:
        t = torch.as_tensor(value, dtype=torch.float64).reshape(-1)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"{name} must be None, a number or a sequence of per-channel numbers") from err
    if t.numel() == 0 or not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must hold finite numbers, got {value!r}")
    if name == "std" and bool((t <= 0).any()):
        raise ValueError(f"std must be > 0, got {value!r}")
    return t


def _geometry(h: int, w: int, grid: int, neigh_size: int, t_size: int, transport: bool):
    """``(block, neigh, t_size, t_grid)`` of a grid, clipped as the reference; ValueError if unsupported."""
    if h != w:
        raise ValueError(f"PuzzleMix needs square images (as the reference), got x of size {h}x{w}")
    if h % grid:
        raise ValueError(f"grid {grid} must divide the image side {h}")
    block = h // grid
    neigh = min(neigh_size, block)
    if block % neigh:
        raise ValueError(
            f"neigh_size {neigh_size} must divide the block side {block} (image {h} / grid {grid})"
        )
    ts = block if t_size == -1 else min(t_size, block)
    if transport and block % ts:
        raise ValueError(f"t_size {t_size} must divide the block side {block} (image {h} / grid {grid})")
    return block, neigh, ts, h // ts


# ----------------------------------------------------------------------------------------------
# pure functions
# ----------------------------------------------------------------------------------------------


def level_prior(lam: float, n_labels: int, eta: float, n_cells: int, eps: float = 1e-8) -> np.ndarray:
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
        p = np.array([math.comb(k, l) * lam**l * (1.0 - lam) ** (k - l) for l in range(n_labels)])
    else:  # C(k, l) overflows a float: the same probabilities from their logarithms
        with np.errstate(divide="ignore"):
            log_lam, log_rest = np.log(lam), np.log1p(-lam)
        p = np.array([math.exp(math.lgamma(k + 1) - math.lgamma(l + 1) - math.lgamma(k - l + 1)
                               + _times_log(l, log_lam) + _times_log(k - l, log_rest))
                      for l in range(n_labels)])
    return eta * -np.log(p + eps) / n_cells


#: The largest ``L - 1`` for which every binomial coefficient ``C(L - 1, l)`` is a finite float.
_DIRECT_BINOMIAL = 1000
#: The most mixing levels of :class:`PuzzleMix`: the swap visits every pair of levels per
#: cycle, so the cost grows with ``L^2`` (the paper uses 3).
MAX_LEVELS = 64


def _times_log(count: int, log_p: float) -> float:
    """``count * log(p)`` with ``0 * log(0) = 0`` (``p^0 = 1``)."""
    return 0.0 if count == 0 else count * log_p


def neigh_penalty(a: torch.Tensor, b: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Boundary differences between blocks of image ``a`` and the next blocks of image ``b``.

    Puzzle Mix's data-smoothness statistic (ICML 2020; recipes 4), the reference's
    ``neigh_penalty``. ``a`` and ``b`` are images average-pooled by the neighbourhood size,
    ``(B, C, g k, g k)`` with ``k`` pooled cells per block side.

    Returns:
        ``(down, right)``: ``down[:, r, c]`` (shape ``(B, g-1, g)``) is the mean over channels and
        along the boundary of ``|last pooled row of a's block (r, c) - first pooled row of b's
        block (r + 1, c)|``; ``right`` (``(B, g, g-1)``) the same across the boundary between
        columns ``c`` and ``c + 1``.
    """
    down = (a[:, :, k - 1 : -1 : k, :] - b[:, :, k::k, :]).abs().mean(1)
    right = (a[:, :, :, k - 1 : -1 : k] - b[:, :, :, k::k]).abs().mean(1)
    bsz, rows, width = down.shape
    down = down.reshape(bsz, rows, width // k, k).mean(-1)
    bsz, height, cols = right.shape
    right = right.reshape(bsz, height // k, k, cols).mean(2)
    return down, right


def smoothness_terms(x1: torch.Tensor, x2: torch.Tensor, grid: int, neigh_size: int):
    """Boundary differences of the four image combinations (Puzzle Mix, ICML 2020; recipes 4).

    Args:
        x1, x2: un-normalized images ``(B, C, H, H)`` with ``H = g * block``.
        grid: the labeling grid side ``g``.
        neigh_size: the pooling size (``min(neigh_size, block)`` in the reference; it must divide
            the block side).

    Returns:
        ``(down, right)`` of shapes ``(B, 2, 2, g-1, g)`` and ``(B, 2, 2, g, g-1)``;
        ``down[:, a, b]`` is :func:`neigh_penalty` with image ``a`` at the upper block and image
        ``b`` at the lower one, where index 1 is ``x1`` and 0 is ``x2`` (the level ``w`` of a
        pure cell), ``right`` likewise for left/right neighbours. Unscaled (no ``beta_n gamma``).
    """
    k = x1.shape[-1] // grid // neigh_size
    return _pooled_smoothness(F.avg_pool2d(x1, neigh_size), F.avg_pool2d(x2, neigh_size), k)


def _pooled_smoothness(p1: torch.Tensor, p2: torch.Tensor, k: int):
    """:func:`smoothness_terms` from the pooled images ``p1`` (of x1) and ``p2`` (of x2)."""
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
    levels = np.linspace(0.0, 1.0, n_labels)
    prior = level_prior(lam, n_labels, eta, g * g)
    unary = levels * u1[..., None] + (1.0 - levels) * u2[..., None] + prior
    return unary, np.maximum(w_right, 0.0), np.maximum(w_down, 0.0)


def label_costs(n_labels: int) -> np.ndarray:
    """The label-pair cost ``(i - j)^2 / (L - 1)^2`` of Puzzle Mix's graph cut (ICML 2020; recipes 4).

    Returns an ``(L, L)`` float64 array; multiplied by each edge's weight (:func:`graphcut_terms`).
    """
    lv = np.arange(n_labels, dtype=np.float64)
    return (lv[:, None] - lv[None, :]) ** 2 / (n_labels - 1) ** 2


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
    the single argmin start missed the brute-force optimum 4 times and the two starts never. Pairs are split in ``workers``
    contiguous chunks, each solved by one call of a numba ``nogil`` kernel, on ``executor``
    (a fresh thread pool when None and ``workers > 1``); the result does not depend on
    ``workers``.

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
    pair = label_costs(n_labels)
    labels = np.empty((bsz, g * g), np.int64)
    workers = max(1, min(int(workers), bsz))
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
    the first round), and distinct positions get distinct blocks.

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
    eps_c = float(t_eps) * _cost_matrix(t, dev)  # (n, n)
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
        ar = torch.arange(t, device=dev)
        d1 = ((ar[:, None] - ar[None, :]) ** 2).float()
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
        owners = key[passive[key]]  # passive owners of claimed positions claim them too
        c_key = torch.cat([key, owners])
        c_claim = torch.cat([act_claim, own_claim[owners]])
        c_cell = torch.cat([act_cell, owners % n])
        best = torch.full((bsz * n,), math.inf, device=dev).scatter_reduce_(0, c_key, c_claim, "amin")
        ties = torch.where(c_claim == best[c_key], c_cell, n)
        win = torch.full((bsz * n,), n, dtype=torch.long, device=dev).scatter_reduce_(0, c_key, ties, "amin")
        c_win = win[c_key]
        winner[c_key] = c_win
        lost = c_win != c_cell
        if it == n_iter - 1:
            break
        n_act = act.numel()
        lost_act = lost[:n_act].nonzero().squeeze(1)
        fresh = owners[lost[n_act:]]  # passive owners that lost: they become active
        if fresh.numel():
            fresh = fresh.unique()
            passive[fresh] = False
            if n_act + fresh.numel() > rows_buf.shape[0]:  # grow the row buffer geometrically
                grown = rows_buf.new_empty((2 * (n_act + fresh.numel()), n))
                grown[:n_act] = rows_buf[:n_act]
                rows_buf = grown
            rows_buf[n_act : n_act + fresh.numel()] = eps_c[cell[fresh]] - s[fresh, None] * z[fresh // n]
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


def apply_transport(x: torch.Tensor, src: torch.Tensor, t_size: int, *, out: torch.Tensor | None = None
                    ) -> torch.Tensor:
    """Move ``t_size x t_size`` pixel blocks of ``x`` by a plan of :func:`transport_plan`.

    Puzzle Mix, ICML 2020; recipes 4 (the reference's ``transport_image``). Position ``j`` of
    image ``b`` receives block ``src[b, j]`` of the same image; ``-1`` keeps the block in place
    (the reference zeroes unassigned positions; they are outside the region, where the mixture
    does not use them). Only the blocks that move are copied.

    Args:
        x: ``(B, C, H, H)`` images, ``t_size`` dividing ``H``.
        src: ``(B, t*t)`` long tensor, ``t = H / t_size``.
        out: where to write (a copy of ``x`` when None); ``out=x`` transports in place.
    """
    bsz, ch, h, w = x.shape
    t = h // t_size
    n = t * t
    if out is None:
        out = x.clone()
    elif out is not x:
        out.copy_(x)
    src = src.to(x.device)
    own = torch.arange(n, device=x.device)
    b, j = ((src >= 0) & (src != own)).nonzero(as_tuple=True)
    if b.numel():
        i = src[b, j]
        dy = torch.arange(t_size, device=x.device)
        offset = (dy[:, None] * w + dy[None, :]).reshape(-1)  # pixel offsets inside a block
        origin = lambda blk: (blk // t) * (t_size * w) + (blk % t) * t_size
        flat = out.view(bsz, ch, h * w)
        src_flat = x.reshape(bsz, ch, h * w) if out is not x else flat
        values = src_flat[b[:, None], :, origin(i)[:, None] + offset]  # (M, t_size^2, C)
        flat[b[:, None], :, origin(j)[:, None] + offset] = values
    return out


# ----------------------------------------------------------------------------------------------
# batch transform
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class PuzzleParams(MixParams):
    """Parameters of Puzzle Mix (Kim, Choo and Song, ICML 2020): output ``i`` mixes
    ``x1 = x[i]`` and ``x2 = x[perm[i]]``.

    Attributes:
        ratios: ``(B, B)`` share of every input in every output: ``ratio[i]`` at ``i``,
            ``1 - ratio[i]`` at ``perm[i]`` (:class:`~comixup.mixers.base.MixParams`).
        grid: the labeling grid side ``g``.
        lam: the drawn ``lambda`` of the prior.
        perm: the permutation (CPU long tensor ``(B,)``).
        mask: ``(B, g, g)`` the graph cut's mixing levels, the weight of ``x1``.
        ratio: ``(B,)`` the mean mask, the weight of ``y`` in the targets.
        src1, src2: the transport plans of ``x1`` and ``x2`` (:func:`transport_plan`, ``(B, t*t)``),
            None without transport.
        t_size: side of the transported pixel blocks; neigh_size: the smoothness pooling size
            (both after clipping to the block).
        block: side of a grid cell in pixels (``H / g``).
    """

    grid: int | None = None
    lam: float | None = None
    perm: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    ratio: torch.Tensor | None = None
    src1: torch.Tensor | None = None
    src2: torch.Tensor | None = None
    t_size: int | None = None
    neigh_size: int | None = None
    block: int | None = None


class PuzzleMix(Mixer, ThreadedMixer):
    """Puzzle Mix batch transform (Kim, Choo and Song, ICML 2020; recipes 4).

    ``x_mix, y_mix = PuzzleMix(num_classes)(x, y, saliency)`` draws the grid side (when
    ``grid=-1``), one ``lambda ~ Beta(alpha, alpha)`` and one random permutation ``perm`` per
    call (in that order, from ``generator``), solves the graph cut of every pair
    ``(x[i], x[perm[i]])`` (:func:`graphcut_terms`, :func:`graphcut_masks`), transports each
    image's salient blocks into its mask region (:func:`transport_plan`) and returns
    ``mask * x1' + (1 - mask) * x2'`` with targets ``ratio * y + (1 - ratio) * y[perm]``,
    ``ratio`` the mean mask. See the module docstring for the model and the deviations from the
    reference code.

    Args:
        num_classes: number of classes ``K`` of the soft targets.
        grid: labeling grid side ``g``; ``-1`` (default) draws ``g = 2^U{1..4}`` per call as the
            reference. The image side must be a multiple of ``g`` (of 16 for ``-1``).
        alpha: Beta concentration of ``lambda`` (reference 1.0).
        beta: smoothness weight (published 1.2); ``beta_n = beta / (16 g)``.
        gamma: data-smoothness weight (published 0.5).
        eta: prior weight (published 0.2).
        n_labels: number of mixing levels (published 3: ``{0, 0.5, 1}``), an int in
            ``2..MAX_LEVELS`` (64).
        neigh_size: pooling size of the smoothness statistic (published 4), clipped to the block.
        transport: move salient blocks inside the mask regions (published: on).
        t_eps: distance weight of the transport cost (published 0.8).
        t_size: side of the transported pixel blocks (published 4 on CIFAR), clipped to the
            block; ``-1`` transports the graph-cut grid's blocks (the reference's default, used
            by its Tiny-ImageNet commands).
        mean, std: per-channel normalization of ``x``; the smoothness statistic is computed on
            ``x * std + mean`` as the reference. ``None`` means 0 and 1.
        workers: threads solving chunks of pairs; None uses one per CPU. Results do not depend
            on it.
        generator: CPU ``torch.Generator`` for every draw; None uses torch's global generator.

    Call:
        ``puzzle(x, y, saliency, return_info=False)`` with ``x`` ``(B, C, H, H)`` of any float
        dtype on any device, ``y`` integer labels ``(B,)`` or soft targets ``(B, K)``, and
        ``saliency`` ``(B, H, H)`` non-negative. Returns ``(x_mix, y_mix)``, ``y_mix`` in ``x``'s
        dtype with rows summing to 1; with ``return_info=True`` also the :class:`PuzzleParams`
        (``ratios``, ``grid``, ``lam``, ``perm``, ``mask`` (``(B, g, g)`` levels, the weight of
        ``x1``), ``ratio`` (``(B,)``), ``t_size``, ``neigh_size`` and the transport plans
        ``src1``, ``src2`` (None without transport)). :meth:`sample_params` draws and solves
        the graph cuts and the transport plans (they depend on the images and the saliency);
        :meth:`apply` moves the blocks and mixes, so the same cut and transport apply to any
        other ``(B, C', H, H)`` tensor (e.g. object masks). A batch of one comes back unmixed
        with its target; no random numbers are drawn for it. Non-square images, or sides that the grid (or the clipped
        ``neigh_size``/``t_size``) do not divide, raise ``ValueError``.
    """

    uses_saliency = True
    _repr_keys = ("num_classes", "grid", "alpha", "beta", "gamma", "eta", "n_labels", "neigh_size",
                  "transport", "t_eps", "t_size", "workers")

    def __init__(
        self,
        num_classes: int,
        *,
        grid: int = -1,
        alpha: float = 1.0,
        beta: float = 1.2,
        gamma: float = 0.5,
        eta: float = 0.2,
        n_labels: int = 3,
        neigh_size: int = 4,
        transport: bool = True,
        t_eps: float = 0.8,
        t_size: int = 4,
        mean=None,
        std=None,
        workers: int | None = None,
        generator: torch.Generator | None = None,
    ):
        super().__init__(num_classes, generator=generator)
        self.grid = check_int("grid", grid, -1)
        if self.grid == 0:
            raise ValueError("grid must be >= 1, or -1 to draw g = 2^U{1..4} per call")
        self.alpha = check_number("alpha", alpha, low_open=True)
        self.beta = check_number("beta", beta)
        self.gamma = check_number("gamma", gamma)
        self.eta = check_number("eta", eta)
        self.n_labels = check_int("n_labels", n_labels, 2, MAX_LEVELS)
        self.neigh_size = check_int("neigh_size", neigh_size, 1)
        if not isinstance(transport, (bool, np.bool_)):
            raise TypeError(f"transport must be a bool, got {type(transport).__name__}")
        self.transport = bool(transport)
        self.t_eps = check_number("t_eps", t_eps)
        self.t_size = check_int("t_size", t_size, -1)
        if self.t_size == 0:
            raise ValueError("t_size must be >= 1, or -1 for the graph-cut grid's block")
        self.mean = _check_channels("mean", mean)
        self.std = _check_channels("std", std)
        if workers is not None:
            check_int("workers", workers, 1)
        self.workers = workers

    def _unnormalize(self, x: torch.Tensor) -> torch.Tensor:
        ch = x.shape[1]
        for name, t in (("std", self.std), ("mean", self.mean)):
            if t is not None and t.numel() not in (1, ch):
                raise ValueError(f"{name} must have 1 or C = {ch} entries, got {t.numel()}")
        if self.std is not None:
            x = x * self.std.to(device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
        if self.mean is not None:
            x = x + self.mean.to(device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
        return x

    def check_batch(self, x, model=None) -> None:
        """The images must be square and every grid side must divide them (ValueError)."""
        _, _, h, w = x.shape
        for g in (GRIDS if self.grid == -1 else (self.grid,)):
            _geometry(h, w, g, self.neigh_size, self.t_size, self.transport)

    def unmixed_params(self, x) -> PuzzleParams:
        """A batch of one: ``ratios = [[1]]``, ``ratio = [1]``, the identity permutation."""
        compute = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
        return PuzzleParams(ratios=torch.ones(1, 1, dtype=compute, device=x.device),
                            perm=torch.zeros(1, dtype=torch.long),
                            ratio=torch.ones(1, device=x.device))

    def sample_params(self, x, targets, saliency=None) -> PuzzleParams:
        """Draw the grid side (``grid=-1``), ``lambda`` and the permutation, then solve every
        pair's graph cut and (with ``transport``) the transport plans."""
        bsz, _, h, w = x.shape
        gen = self.generator
        if self.grid == -1:
            grid = GRIDS[int(torch.randint(0, len(GRIDS), (1,), generator=gen))]
        else:
            grid = self.grid
        lam = sample_lambda(self.alpha, gen)
        perm = torch.randperm(bsz, generator=gen)
        block, neigh, ts, t_grid = _geometry(h, w, grid, self.neigh_size, self.t_size, self.transport)
        dev_perm = perm.to(x.device)
        compute = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
        sal = saliency.detach()

        # Graph cut of every pair.
        s1 = pooled_unary(sal, grid)
        s2 = s1[dev_perm]
        p1 = F.avg_pool2d(self._unnormalize(x.detach().to(compute).contiguous()), neigh)
        down, right = _pooled_smoothness(p1, p1[dev_perm], block // neigh)
        unary, w_right, w_down = graphcut_terms(
            s1, s2, down, right, lam=lam, n_labels=self.n_labels, beta=self.beta,
            gamma=self.gamma, eta=self.eta,
        )
        workers = self._n_workers(bsz)
        labels = graphcut_masks(unary, w_right, w_down, workers=workers,
                                executor=self._executor(workers))
        mask = torch.from_numpy(labels).to(device=x.device, dtype=compute) / (self.n_labels - 1)

        # Transport plans inside the mask regions.
        src1 = src2 = None
        if self.transport:
            rep = t_grid // grid
            mask_t = mask.repeat_interleave(rep, 1).repeat_interleave(rep, 2)
            st = s1 if t_grid == grid else pooled_unary(sal, t_grid)
            src1 = transport_plan(mask_t > 0, st, self.t_eps)
            src2 = transport_plan(mask_t < 1, st[dev_perm], self.t_eps)
        ratio = mask.mean((1, 2))
        ratios = permutation_ratios([torch.arange(bsz), perm], [ratio, 1 - ratio], compute,
                                    x.device)
        return PuzzleParams(ratios=ratios, grid=grid, lam=lam, perm=perm, mask=mask, ratio=ratio,
                            src1=src1, src2=src2, t_size=ts, neigh_size=neigh, block=block)

    def apply(self, x, targets, params: PuzzleParams):
        """Transport the blocks of ``x1 = x`` and ``x2 = x[perm]`` and return
        ``mask * x1' + (1 - mask) * x2'`` and ``ratio * y + (1 - ratio) * y[perm]``; ``x`` is any
        ``(B, C', H, H)`` floating tensor of the drawn size."""
        compute = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
        xc = x.to(compute).contiguous()  # autograd flows to x_mix, not to the mask
        dev_perm = params.perm.to(x.device)
        mask = params.mask.to(device=x.device, dtype=compute)
        x2 = xc[dev_perm]
        x1 = xc
        if params.src1 is not None:
            x1 = apply_transport(xc, params.src1, params.t_size)
            x2 = apply_transport(x2, params.src2, params.t_size, out=x2)
        block = params.block
        mask_px = mask.repeat_interleave(block, 1).repeat_interleave(block, 2)[:, None]
        x_mix = torch.lerp(x2, x1, mask_px).to(x.dtype)  # exact at levels 0 and 1
        if targets is None:
            return x_mix, None
        ratio = params.ratio.to(device=targets.device, dtype=targets.dtype)[:, None]
        return x_mix, ratio * targets + (1 - ratio) * targets[dev_perm.to(targets.device)]
