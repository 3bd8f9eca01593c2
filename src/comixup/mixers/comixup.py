"""Co-Mixup as a batch transform.

Kim, Choo, Jeong and Song, "Co-Mixup: Saliency Guided Joint Mixup with Supermodular Diversity",
ICLR 2021. Given a batch, its labels and per-pixel saliency, :class:`CoMixup` returns a batch of
mixed images whose labelings come from Algorithm 1 (:func:`comixup.solver.solve`) and soft
targets that sum to 1. The pipeline is section 1 of docs/recipes.md:

1. split the batch into consecutive partitions of ``partition`` inputs (the last may be smaller);
2. pool each saliency map to the ``g x g`` grid and normalize it to sum 1: unary ``-s`` (1.3);
3. compatibility ``A`` from the most salient 8x8 window of each input (1.6);
4. solve every partition with Algorithm 1 (the Dirichlet prior of 1.5 is drawn inside), in
   parallel threads: the numba kernel releases the GIL;
5. upsample each labeling to the image by nearest neighbour, mix ``x_j = sum_i z_j[i] x_i``
   pixel-wise on the input's device, and build the soft targets (1.8).

On a GPU the costs of step 2-3 come to the host in one ``non_blocking`` copy into pinned
memory (:func:`comixup.mixers._host.host_copy`), and each partition's sources go back the same
way as soon as it is solved, while the other partitions solve
(:func:`comixup.mixers._host.to_device`); the mixing and the targets stay
on the device.

Call convention (shared by every mixer of this package)::

    comix = CoMixup(num_classes=100)
    x_mix, y_mix = comix(x, y, saliency)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from concurrent.futures import as_completed

import numpy as np
import torch

from .._checks import check_bool, check_choice, check_int, check_number
from .._precision import autocast_off, full_precision
from ..saliency import (
    _exact_maps,
    _pooled_float32,
    _saliency_peak,
    compatibility,
    salient_location,
)
from ..solver import PAIRWISE, THRESHOLDS, Hyperparameters, solve
from ..solver.algorithm import check_levels
from ._host import host_copy, host_rows, to_device
from ._pool import ThreadedMixer
from .base import Mixer, MixParams

__all__ = ["LABELINGS", "CoMixup", "CoMixupParams", "grid_index", "mix", "random_sources",
           "top_sources"]


def grid_index(size: int, grid: int, device=None) -> torch.Tensor:
    """Cell index of every pixel along one axis for nearest-neighbour upsampling.

    Pixel ``p`` of ``size`` falls in cell ``floor(p * grid / size)``, the rule of
    ``F.interpolate(mode="nearest")``; sizes that ``grid`` does not divide get cells of unequal
    width.
    """
    return torch.div(torch.arange(size, device=device) * grid, size, rounding_mode="floor")


def cell_sizes(size: int, grid: int, device=None) -> torch.Tensor:
    """The pixel count of every cell along one axis of :func:`grid_index`, a long tensor
    ``(grid,)``: cell ``c`` holds pixels ``ceil(c size / grid) .. ceil((c + 1) size / grid) - 1``.

    Computed arithmetically on ``device`` (the counts of ``torch.bincount(grid_index(...))``
    without its read of the maximum back to the host).
    """
    bounds = (torch.arange(grid + 1, device=device) * size + grid - 1) // grid
    return bounds[1:] - bounds[:-1]


def top_sources(z: np.ndarray, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The (at most) two sources of every cell of a labeling, as global indices and weights.

    Algorithm 1's labels mix at most two inputs, so a dense ``(n_out, g1, g2, m)`` labeling is
    stored as ``index`` and ``weight`` arrays of shape ``(n_out, g1, g2, 2)``; ``offset`` shifts
    the local input indices of a partition to batch indices. Raises if a cell has three sources.
    """
    m = z.shape[-1]
    order = np.argsort(-z, axis=-1, kind="stable")[..., :2]
    weight = np.take_along_axis(z, order, axis=-1)
    if m == 1:
        order = np.concatenate([order, order], axis=-1)
        weight = np.concatenate([weight, np.zeros_like(weight)], axis=-1)
    if not np.allclose(weight.sum(-1), 1.0):
        raise ValueError("a labeling cell mixes more than two sources")
    return order + offset, weight


#: How :class:`CoMixup` makes its labelings: Algorithm 1, or the random control.
LABELINGS = ("solved", "random")


def random_sources(bounds: list[tuple[int, int]], grid: int, inputs: float, mixed: float,
                   levels: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random labelings in Co-Mixup's format: the control for "does the solver matter?".

    Every output of a partition ``(a, b)`` mixes ``k`` distinct inputs of that partition, drawn
    uniformly; ``k = floor(inputs) + Bernoulli(inputs - floor(inputs))`` (so its mean is
    ``inputs``), clipped to ``[1, min(b - a, grid**2)]``. The ``grid**2`` cells are assigned
    among the ``k`` uniformly, each input at least once (a random permutation gives the first
    ``k`` cells one input each, the others draw one). When ``k >= 2`` and ``levels >= 3`` each
    cell is, with probability ``mixed``, a mixture of its input and another of the ``k`` at
    one of Algorithm 1's levels ``l / (levels - 1)``, ``0 < l < levels - 1``, drawn uniformly
    (``levels = 3``: 50/50). No saliency, objective or solver takes part.

    Returns:
        ``(index, weight)``, ``(B, grid, grid, 2)`` global input indices and their weights,
        the larger weight first (the format of :func:`top_sources`).
    """
    starts = np.concatenate([np.full(b - a, a) for a, b in bounds])
    sizes = np.concatenate([np.full(b - a, b - a) for a, b in bounds])
    batch, cells = len(starts), grid * grid
    whole = np.floor(inputs)
    k = whole + (rng.random(batch) < inputs - whole)
    k = np.clip(k, 1, np.minimum(sizes, cells)).astype(np.int64)
    keys = rng.random((batch, int(sizes.max())))
    keys[np.arange(keys.shape[1])[None, :] >= sizes[:, None]] = np.inf
    chosen = np.argsort(keys, axis=1)  # the first k[j] columns are output j's inputs
    rank = np.argsort(rng.random((batch, cells)), axis=1)
    slot = np.where(rank < k[:, None], rank, np.floor(rng.random((batch, cells)) * k[:, None]))
    slot = slot.astype(np.int64)
    other = (slot + 1 + np.floor(rng.random((batch, cells)) * (k[:, None] - 1))) % k[:, None]
    is_mixed = (rng.random((batch, cells)) < mixed) & (k[:, None] >= 2) & (levels >= 3)
    level = 1 + np.floor(rng.random((batch, cells)) * max(levels - 2, 1))
    share = np.maximum(level, levels - 1 - level) / (levels - 1)  # the larger part first
    first = np.take_along_axis(chosen, slot, 1) + starts[:, None]
    second = np.where(is_mixed, np.take_along_axis(chosen, other.astype(np.int64), 1)
                      + starts[:, None], first)
    w_first = np.where(is_mixed, share, 1.0)
    index = np.stack([first, second], -1).reshape(batch, grid, grid, 2)
    weight = np.stack([w_first, 1.0 - w_first], -1).reshape(batch, grid, grid, 2)
    return index, weight


def dense_labelings(index: np.ndarray, weight: np.ndarray, bounds: list[tuple[int, int]]
                    ) -> list[np.ndarray]:
    """The ``(m, g, g, m)`` labeling ``z`` of every partition from per-cell sources (the inverse
    of :func:`top_sources`)."""
    out = []
    for a, b in bounds:
        z = np.zeros(index[a:b].shape[:3] + (b - a,))
        for s in range(index.shape[-1]):
            np.put_along_axis(z, index[a:b, ..., s, None] - a,
                              np.take_along_axis(z, index[a:b, ..., s, None] - a, -1)
                              + weight[a:b, ..., s, None], -1)
        out.append(z)
    return out


def mix(x: torch.Tensor, y: torch.Tensor, index: torch.Tensor, weight: torch.Tensor):
    """Mix a batch from per-cell sources (recipes 1.8), upsampled by nearest neighbour.

    Args:
        x: ``(B, C, H, W)`` inputs.
        y: ``(B, K)`` soft targets of the inputs.
        index: ``(B', g1, g2, S)`` long tensor, the source inputs of every cell of every output.
        weight: ``(B', g1, g2, S)`` their weights (summing to 1 per cell).

    Returns:
        ``(x_mix (B', C, H, W), y_mix (B', K), ratios (B', B))``: ``x_mix[j]`` at a pixel of cell
        ``k`` is ``sum_s weight[j, k, s] x[index[j, k, s]]``; ``ratios[j, i]`` is the pixel mass
        of input ``i`` in output ``j`` (:func:`source_ratios`) and ``y_mix = ratios @ y``. When
        the grid divides the image the ratios equal the paper's ``(1/n) sum_k z[j, k]``
        (recipes 1.8); otherwise cells have unequal areas and the pixel mass keeps the targets
        exact.
    """
    compute = _compute_dtype(x.dtype)
    with autocast_off(x.device):
        ratios = source_ratios(index, weight, x.shape[0], x.shape[-2:], compute, x.device)
        y_mix = ratios @ y.to(compute)
        return mix_images(x, index, weight), y_mix.to(y.dtype), ratios


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


def source_ratios(index: torch.Tensor, weight: torch.Tensor, batch: int, size, dtype: torch.dtype,
                  device) -> torch.Tensor:
    """The ``(B', B)`` pixel mass of every input in every output of a per-cell mixture.

    Args:
        index, weight: ``(B', g1, g2, S)`` sources and weights of every cell (as :func:`mix`).
        batch: the number of inputs ``B``.
        size: the image size ``(H, W)``; cell areas follow :func:`grid_index`.
        dtype, device: of the result.
    """
    h, w = size
    n_out, g1, g2, _ = index.shape
    area = torch.outer(cell_sizes(h, g1, device), cell_sizes(w, g2, device))
    mass = weight.to(dtype) * (area.to(dtype) / (h * w))[None, :, :, None]
    ratios = torch.zeros(n_out, batch, dtype=dtype, device=device)
    ratios.scatter_add_(1, index.reshape(n_out, -1), mass.reshape(n_out, -1))
    return ratios


def mix_images(x: torch.Tensor, index: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The images of :func:`mix`: ``x_mix[j]`` at a pixel of cell ``k`` is
    ``sum_s weight[j, k, s] x[index[j, k, s]]`` (nearest-neighbour upsampling of the cells).

    ``x`` is any ``(B, C, H, W)`` floating tensor (any channel count); the result has its dtype.
    """
    batch, channels, h, w = x.shape
    n_out, g1, g2, n_src = index.shape
    compute = _compute_dtype(x.dtype)
    weight = weight.to(compute)
    xc = x.to(compute)
    if h % g1 == 0 and w % g2 == 0:
        # Cells are equal blocks: gather whole blocks (rows of a cell-major copy of x).
        bh, bw = h // g1, w // g2
        table = xc.view(batch, channels, g1, bh, g2, bw).permute(0, 2, 4, 1, 3, 5)
        table = table.reshape(batch * g1 * g2, channels * bh * bw)
        cell = torch.arange(g1 * g2, device=x.device).view(1, g1, g2)
        x_mix = 0
        for s in range(n_src):
            rows_of = (index[..., s] * (g1 * g2) + cell).reshape(-1)
            x_mix = x_mix + (table.index_select(0, rows_of).view(n_out, g1, g2, -1)
                             * weight[..., s, None])
        x_mix = x_mix.view(n_out, g1, g2, channels, bh, bw).permute(0, 3, 1, 4, 2, 5)
        x_mix = x_mix.reshape(n_out, channels, h, w)
    else:
        # Unequal cells: gather pixels (rows of a pixel-major copy of x).
        rows = grid_index(h, g1, x.device)
        cols = grid_index(w, g2, x.device)
        table = xc.permute(0, 2, 3, 1).reshape(batch * h * w, channels)
        pixel = torch.arange(h * w, device=x.device).view(1, h, w)
        pix_index = index[:, rows][:, :, cols]
        pix_weight = weight[:, rows][:, :, cols]
        x_mix = 0
        for s in range(n_src):
            rows_of = (pix_index[..., s] * (h * w) + pixel).reshape(-1)
            x_mix = x_mix + (table.index_select(0, rows_of).view(n_out, h, w, channels)
                             * pix_weight[..., s, None])
        x_mix = x_mix.permute(0, 3, 1, 2)
    return x_mix.to(x.dtype).contiguous()


@dataclasses.dataclass
class CoMixupParams(MixParams):
    """Parameters of Co-Mixup (Kim et al., ICLR 2021): Algorithm 1's labelings of every
    partition and the per-cell sources they give.

    Attributes:
        ratios: ``(B, B)`` tensor whose row ``j`` is output ``j``'s pixel mass per input; the
            soft targets are ``ratios @ y`` (recipes 1.8; :class:`~comixup.mixers.base.MixParams`).
        grid: the labeling grid side ``g``.
        partitions: the ``(start, stop)`` input range of every partition.
        labelings: one ``(m, g, g, m)`` NumPy array per partition (Algorithm 1's ``z``).
        index, weight: ``(B, g, g, 2)`` global source indices and weights of every cell
            (:func:`top_sources`), on ``x``'s device.
    """

    grid: int | None = None
    partitions: list[tuple[int, int]] | None = None
    labelings: list[np.ndarray] | None = None
    index: torch.Tensor | None = None
    weight: torch.Tensor | None = None


class CoMixup(Mixer, ThreadedMixer):
    """Co-Mixup (Kim et al., ICLR 2021): Algorithm 1 on partitions of the batch, then each
    output cell mixes the inputs its labeling assigns.

    Args:
        num_classes: number of classes ``K`` of the soft targets.
        beta: smoothness weight of Eq. (1) (paper 0.32, Appendix E).
        gamma: diversity (compatibility) weight (paper 1.0).
        eta: prior weight (paper 0.05).
        tau: clipping level of the diversity term (paper 0.83).
        omega: weight of the saliency-distance compatibility ``A_c`` in ``A`` (paper 0.001).
        alpha: Dirichlet concentration of the prior (paper 2.0).
            These six are held (checked, with their defaults) by one frozen
            :class:`~comixup.solver.Hyperparameters`, the ``hyperparameters`` attribute; the
            attributes ``beta`` ... ``alpha`` read it.
        grid: labeling grid ``g`` per side (paper 4); ``-1`` draws ``g = 2^U{1..4}`` per call.
        partition: inputs per partition ``m`` (paper 20); the last partition may be smaller.
        n_iter: sweeps of Algorithm 1 (paper 4).
        levels: mixing levels per cell |L| in {2, 3, 4} (paper 3).
        threshold: ``"hard"`` (paper), ``"soft"`` or ``"none"`` clipping.
        resolve: run the resolve step (paper: on).
        restarts: solve each partition from this many random initializations and keep the
            lowest objective (not in the paper; 1, the default, is the paper's algorithm).
        pairwise: label-pair costs of the graph cut between mixed labels: ``"reference"``
            (default; 0.25 between a 50/50 mix and each of its parts, 1 otherwise, as the
            reference ran) or ``"squared"`` (``||z - z'||^2 / 2``); see
            :func:`comixup.solver.solve`.
        location_stride: stride of the 8x8 window that locates each input's most salient region
            for the compatibility matrix: 1 (default; the CIFAR / Tiny-ImageNet reference) or 8
            (non-overlapping windows, the ImageNet reference).
        workers: threads that solve partitions in parallel; None uses one per CPU (at most one
            per partition). Results do not depend on it.
        labeling: ``"solved"`` (default: Algorithm 1) or ``"random"``, the control that keeps
            the grid, partitions, levels, step and clean loss but draws every labeling at random
            (:func:`random_sources`; the saliency is not read). Not in the paper.
        random_inputs: with ``labeling="random"``, the mean number of inputs per output
            (>= 1); match it to the solver's (``comixup analyze mixing``).
        random_mixed: with ``labeling="random"``, the probability that a cell of an output
            with two or more inputs mixes two of them, in ``[0, 1]``.
        generator: ``torch.Generator`` for every random draw (grid size, per-partition solver
            seeds); None uses torch's global generator, so ``torch.manual_seed`` applies.

    Called as ``comix(x, y, saliency)`` (:class:`~comixup.mixers.base.Mixer`); an all-zero
    saliency map is legal (uniform). ``return_info=True`` gives a :class:`CoMixupParams`
    (``grid``, ``partitions``, ``labelings``, ``ratios``).
    """

    uses_saliency = True
    _repr_keys = ("num_classes", "beta", "gamma", "eta", "tau", "omega", "alpha", "grid",
                  "partition", "n_iter", "levels", "threshold", "resolve", "restarts", "pairwise",
                  "location_stride", "workers", "labeling")

    def __init__(
        self,
        num_classes: int,
        *,
        beta: float = Hyperparameters.beta,
        gamma: float = Hyperparameters.gamma,
        eta: float = Hyperparameters.eta,
        tau: float = Hyperparameters.tau,
        omega: float = Hyperparameters.omega,
        alpha: float = Hyperparameters.alpha,
        grid: int = 4,
        partition: int = 20,
        n_iter: int = 4,
        levels: int = 3,
        threshold: str = "hard",
        resolve: bool = True,
        restarts: int = 1,
        pairwise: str = "reference",
        location_stride: int = 1,
        workers: int | None = None,
        labeling: str = "solved",
        random_inputs: float | None = None,
        random_mixed: float | None = None,
        generator: torch.Generator | None = None,
    ):
        super().__init__(num_classes, generator=generator)
        self.hyperparameters = Hyperparameters(beta=beta, gamma=gamma, eta=eta, tau=tau,
                                               omega=omega, alpha=alpha)
        self.grid = check_int("grid", grid, -1)
        if self.grid == 0:
            raise ValueError("grid must be >= 1, or -1 to draw g = 2^U{1..4} per call")
        self.partition = check_int("partition", partition, 1)
        self.n_iter = check_int("n_iter", n_iter, 1)
        self.levels = check_levels(levels)
        self.threshold = check_choice("threshold", threshold, THRESHOLDS)
        self.resolve = check_bool("resolve", resolve)
        self.restarts = check_int("restarts", restarts, 1)
        self.pairwise = check_choice("pairwise", pairwise, PAIRWISE)
        self.location_stride = check_int("location_stride", location_stride, 1)
        if workers is not None:
            check_int("workers", workers, 1)
        self.workers = workers
        self.labeling = check_choice("labeling", labeling, LABELINGS)
        if self.labeling == "random":
            if random_inputs is None or random_mixed is None:
                raise ValueError("labeling='random' needs random_inputs (mean inputs per output) "
                                 "and random_mixed (share of mixed cells), e.g. the solver's "
                                 "statistics measured by `comixup analyze mixing`")
            self.random_inputs = check_number("random_inputs", random_inputs, low=1.0)
            self.random_mixed = check_number("random_mixed", random_mixed, high=1.0)
        elif random_inputs is not None or random_mixed is not None:
            raise ValueError("random_inputs and random_mixed apply to labeling='random' only")
        else:
            self.random_inputs = self.random_mixed = None

    beta = property(lambda self: self.hyperparameters.beta, doc="Eq. (1)'s smoothness weight.")
    gamma = property(lambda self: self.hyperparameters.gamma, doc="Eq. (1)'s diversity weight.")
    eta = property(lambda self: self.hyperparameters.eta, doc="Eq. (1)'s prior weight.")
    tau = property(lambda self: self.hyperparameters.tau, doc="The diversity clipping level.")
    omega = property(lambda self: self.hyperparameters.omega,
                     doc="The weight of the saliency-distance compatibility in ``A``.")
    alpha = property(lambda self: self.hyperparameters.alpha,
                     doc="The Dirichlet concentration of the prior.")

    def _randint(self, high: int, size: int) -> torch.Tensor:
        return torch.randint(0, high, (size,), generator=self.generator)

    def unmixed_params(self, x) -> CoMixupParams:
        """A batch of one: no grid, one partition ``(0, 1)``, no labeling, ``ratios = [[1]]``."""
        return CoMixupParams(ratios=torch.ones(1, 1, dtype=_compute_dtype(x.dtype),
                                               device=x.device),
                             partitions=[(0, 1)], labelings=[])

    @full_precision
    def sample_params(self, x, targets, saliency=None) -> CoMixupParams:
        """Draw the grid side (``grid=-1``) and one solver seed per partition, then solve every
        partition with Algorithm 1 (in parallel threads) and collect each cell's sources.
        ``labeling="random"`` draws the labelings instead (:func:`random_sources`), from one
        seed, without reading ``saliency``."""
        batch, _, h, w = x.shape
        grid = self.grid if self.grid > 0 else 2 ** int(self._randint(4, 1).item() + 1)
        bounds = self.partitions(batch)
        seeds = self._randint(2**62, len(bounds)).tolist()
        if self.labeling == "random":
            idx, wgt = random_sources(bounds, grid, self.random_inputs, self.random_mixed,
                                      self.levels, np.random.default_rng(seeds[0]))
            index = torch.from_numpy(idx).to(x.device)
            weight = torch.from_numpy(wgt).to(x.device)
            ratios = source_ratios(index, weight, batch, (h, w), _compute_dtype(x.dtype),
                                   x.device)
            return CoMixupParams(ratios=ratios, grid=grid, partitions=bounds,
                                 labelings=dense_labelings(idx, wgt, bounds), index=index,
                                 weight=weight)
        cost, locations = self.solver_inputs(saliency.detach(), grid)
        # each partition's sources go to the device as soon as it is solved, while the others
        # solve (the same labelings whatever the order: each partition has its own seed)
        index = torch.empty(batch, grid, grid, 2, dtype=torch.long, device=x.device)
        weight = torch.empty(batch, grid, grid, 2, dtype=torch.float64, device=x.device)

        def collect(i: int, z: np.ndarray) -> None:
            a, b = bounds[i]
            idx, wgt = top_sources(z, a)
            to_device(torch.from_numpy(idx), index[a:b])
            to_device(torch.from_numpy(wgt), weight[a:b])

        labelings = self.solve_partitions(cost, locations, seeds, on_solved=collect)
        ratios = source_ratios(index, weight, batch, (h, w), _compute_dtype(x.dtype), x.device)
        return CoMixupParams(ratios=ratios, grid=grid, partitions=bounds, labelings=labelings,
                             index=index, weight=weight)

    @full_precision
    def apply(self, x, targets, params: CoMixupParams):
        """Mix ``x`` (any ``(B, C', H, W)`` floating tensor) cell by cell with the labelings and
        the targets by the pixel masses: ``y_mix = ratios @ y``."""
        index = params.index.to(x.device)
        x_mix = mix_images(x, index, params.weight.to(x.device))
        if targets is None:
            return x_mix, None
        compute = _compute_dtype(targets.dtype)
        y_mix = params.ratios.to(device=targets.device, dtype=compute) @ targets.to(compute)
        return x_mix, y_mix.to(targets.dtype)

    def solver_inputs(self, saliency: torch.Tensor, grid: int) -> tuple[np.ndarray, torch.Tensor]:
        """What the CPU solver needs, in one copy to the host: the unary costs ``(B, g, g)``
        (float64, the negated :func:`comixup.saliency.pooled_unary`) and the salient locations
        ``(B, 2)`` (:func:`comixup.saliency.salient_location`). The flags of the maps whose float32
        pooling is inexact travel in the same copy; those maps (near the float32 limits, rare)
        are recomputed exactly and copied again."""
        peak = _saliency_peak(saliency)
        pooled, inexact = _pooled_float32(saliency, grid, peak)
        locations = salient_location(saliency, stride=self.location_stride, validate=False)
        cost, locations, inexact = host_copy(-pooled, locations, inexact[:, None])
        if inexact.any():
            rows = host_rows(inexact[:, 0], saliency.device)
            (cost,) = host_copy(-_exact_maps(saliency, grid, peak, rows, pooled))
        return np.ascontiguousarray(cost), torch.from_numpy(locations).long()

    def partitions(self, batch: int) -> list[tuple[int, int]]:
        """The ``(start, stop)`` input range of every partition of a batch of ``batch`` inputs:
        consecutive runs of ``partition`` inputs, the last one possibly smaller."""
        batch = check_int("batch", batch, 1)
        return [(s, min(s + self.partition, batch)) for s in range(0, batch, self.partition)]

    def solve_partitions(self, cost: np.ndarray, locations: torch.Tensor, seeds, *,
                         on_solved: Callable[[int, np.ndarray], None] | None = None
                         ) -> list[np.ndarray]:
        """Algorithm 1 on every partition of a batch: the labelings of :meth:`sample_params`.

        Partition ``i`` (:meth:`partitions`) is solved by :func:`comixup.solver.solve` with this
        mixer's hyperparameters and solver settings, its compatibility
        ``A = compatibility(locations[a:b], omega)`` and ``numpy.random.default_rng(seeds[i])``;
        the partitions run on :meth:`n_workers` threads (the numba kernel releases the GIL).
        The labelings do not depend on the number of threads. Algorithm 1 runs whatever
        ``labeling`` is.

        Args:
            cost: ``(B, g, g)`` float64 unary costs, the first result of
                :meth:`solver_inputs`.
            locations: ``(B, 2)`` most salient locations, its second result.
            seeds: one int seed per partition.
            on_solved: called as ``on_solved(i, z)`` on the calling thread as soon as partition
                ``i`` is solved (in the order the partitions finish), e.g. to send its sources
                to the device while the others solve.

        Returns:
            One ``(m, g, g, m)`` labeling per partition, in partition order.

        Raises:
            ValueError: ``cost`` is not ``(B, g, g)``, ``locations`` not ``(B, 2)``, or
                ``seeds`` does not hold one int per partition.
            TypeError: ``on_solved`` is not callable.
        """
        if not isinstance(cost, np.ndarray) or cost.ndim != 3:
            raise ValueError(f"cost must be a (B, g, g) NumPy array, got "
                             f"{getattr(cost, 'shape', type(cost).__name__)}")
        if not isinstance(locations, torch.Tensor) or tuple(locations.shape) != (len(cost), 2):
            raise ValueError(f"locations must be a ({len(cost)}, 2) tensor to match cost, got "
                             f"{getattr(locations, 'shape', type(locations).__name__)}")
        bounds = self.partitions(len(cost))
        seeds = list(seeds)
        if len(seeds) != len(bounds):
            raise ValueError(f"seeds must hold one seed per partition ({len(bounds)}), got "
                             f"{len(seeds)}")
        seeds = [check_int(f"seeds[{i}]", seed, 0) for i, seed in enumerate(seeds)]
        if on_solved is not None and not callable(on_solved):
            raise TypeError(f"on_solved must be callable, got {type(on_solved).__name__}")
        problems = [
            (cost[a:b], compatibility(locations[a:b], self.omega).numpy(), seed)
            for (a, b), seed in zip(bounds, seeds)
        ]
        labelings: list = [None] * len(problems)

        def done(i: int, z: np.ndarray) -> None:
            labelings[i] = z
            if on_solved is not None:
                on_solved(i, z)

        pool = self._executor(self.n_workers(len(problems)))
        if pool is None:
            for i, problem in enumerate(problems):
                done(i, self._solve(problem))
        else:
            futures = {pool.submit(self._solve, problem): i for i, problem in enumerate(problems)}
            for future in as_completed(futures):
                done(futures[future], future.result())
        return labelings

    def _solve(self, problem) -> np.ndarray:
        cost, A, seed = problem
        return solve(
            cost, A, **self.hyperparameters.solver_arguments(), n_iter=self.n_iter,
            levels=self.levels, threshold=self.threshold, resolve=self.resolve,
            restarts=self.restarts,
            pairwise=self.pairwise, rng=np.random.default_rng(seed),
        )
