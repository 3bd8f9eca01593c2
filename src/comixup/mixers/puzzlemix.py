"""Puzzle Mix as a batch transform.

Kim, Choo and Song, "Puzzle Mix: Exploiting Saliency and Local Statistics for Optimal Mixup",
ICML 2020; the Puzzle Mix baseline of Co-Mixup (Kim et al., ICLR 2021), recipes 4. Every image
``x1 = x[i]`` is mixed with ``x2 = x[perm[i]]``: :meth:`PuzzleMix.sample_params` draws the grid
side, ``lambda ~ Beta(alpha, alpha)`` and ``perm``, pools the saliency and the un-normalized
images (``x * std + mean``) and hands them to :mod:`comixup.solver.puzzle`, which builds every
pair's graph cut (unaries, data smoothness, prior), solves it and plans the transport of each
image's salient blocks into its mask region (the model and its deviations from the reference
code are described there). :meth:`PuzzleMix.apply` moves the blocks and returns
``x_mix = mask * x1' + (1 - mask) * x2'`` with the mask nearest-upsampled to the image, and
targets ``ratio * y + (1 - ratio) * y[perm]``, ``ratio`` the mean mask (its pixel mass).

The reference clips ``neigh_size`` and ``t_size`` to the block size (``H / g``), so on 32x32
images the grid ``g = 16`` uses 2x2 smoothness pooling and a 16x16 transport grid; so does this
module. One more deviation from the reference: an all-zero saliency map is uniform
(:func:`comixup.saliency.pooled_unary`) instead of NaN.

Rectangular images (not in the reference, whose code is square-only; the paper's Table 9 runs
Puzzle Mix on 160x100 spectrograms without released code) get the natural extension: the
reference's ``block_size = width // block_num`` becomes one size per axis, a ``g x g``
grid of ``(H/g) x (W/g)`` cells; the unaries are the saliency average-pooled to the cells, the
mask is upsampled to ``(H, W)``, ``neigh_size`` and ``t_size`` are clipped to each side of the
cell, and the transport runs on a square ``t x t`` grid in grid units (the reference's cost
matrix), moving ``(H/t) x (W/t)`` blocks whole, so it needs ``t_size=-1`` (or a ``t_size``
reaching both cell sides). ``g`` must divide both sides: cells of uneven size could not be
swapped by the transport. Square images take exactly the reference's path.

Call convention (shared by every mixer of this package)::

    puzzle = PuzzleMix(num_classes=100)
    x_mix, y_mix = puzzle(x, y, saliency)
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import torch
import torch.nn.functional as F

from .._checks import check_int, check_number
from .._precision import full_precision
from ..saliency import _exact_maps, _pooled_float32, _saliency_peak
from ..solver.puzzle import (
    _pair,
    apply_transport,
    graphcut_masks,
    graphcut_terms,
    pooled_smoothness_terms,
    transport_plan,
)
from ._host import host_copy, host_rows
from ._pool import ThreadedMixer
from .base import Mixer, MixParams, permutation_ratios
from .mixup import sample_lambda

__all__ = ["GRIDS", "PuzzleMix", "PuzzleParams"]

#: The grid sides ``g = 2^U{1..4}`` drawn per call when ``grid=-1`` (recipes 4).
GRIDS = (2, 4, 8, 16)
#: The most mixing levels of :class:`PuzzleMix`: the swap visits every pair of levels per
#: cycle, so the cost grows with ``L^2`` (the paper uses 3).
MAX_LEVELS = 64


# ----------------------------------------------------------------------------------------------
# argument checks
# ----------------------------------------------------------------------------------------------


def _check_channels(name: str, value) -> torch.Tensor | None:
    if value is None:
        return None
    try:
        t = torch.as_tensor(value, dtype=torch.float64).reshape(-1)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"{name} must be None, a number or a sequence of per-channel "
                        "numbers") from err
    if t.numel() == 0 or not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must hold finite numbers, got {value!r}")
    if name == "std" and bool((t <= 0).any()):
        raise ValueError(f"std must be > 0, got {value!r}")
    return t


def _check_grid(value):
    """``grid``: ``-1``, an int >= 1, or a non-empty sequence of ints >= 1 (the choices)."""
    if isinstance(value, (tuple, list)):
        if not value:
            raise ValueError("grid must be -1, an int >= 1 or a non-empty sequence of grid sides")
        return tuple(check_int("grid", g, 1) for g in value)
    grid = check_int("grid", value, -1)
    if grid == 0:
        raise ValueError("grid must be >= 1, -1 to draw g = 2^U{1..4} per call, or a sequence "
                         "of grid sides to draw from")
    return grid


def _grid_error(h: int, w: int, grid: int, choices: tuple[int, ...]) -> str:
    """The message for a grid side that does not divide the sides of ``x``."""
    if h == w:
        msg = f"grid {grid} must divide the image side {h}"
    else:
        msg = (f"grid {grid} must divide both sides of x, got x of size {h}x{w} (an n x n grid "
               f"of (H/n) x (W/n) cells)")
    if len(choices) > 1:
        fits = [g for g in choices if h % g == 0 and w % g == 0]
        msg += f"; it is one of the drawn grid sides {list(choices)}"
        if fits:
            msg += f": pass grid={fits}, the sides that divide {h}x{w}"
    return msg


@functools.lru_cache(maxsize=256)
def _geometry(h: int, w: int, grid: int, neigh_size: int, t_size: int, transport: bool,
              choices: tuple[int, ...] = ()):
    """``(block, neigh, t_size, t_grid)`` of a grid, clipped as the reference; ValueError if
    unsupported.

    Square images (the reference's) give int sides. A rectangular ``H x W`` image gives
    ``(height, width)`` pairs: the ``g x g`` grid has ``(H/g) x (W/g)`` cells, ``neigh_size`` and
    ``t_size`` are clipped to each side of the cell, and the transport grid ``t_grid x t_grid``
    must be square in grid units (so ``t_size`` must reach both cell sides, or be ``-1``).
    """
    if h % grid or w % grid:
        raise ValueError(_grid_error(h, w, grid, choices))
    square = h == w
    bh, bw = h // grid, w // grid
    nh, nw = min(neigh_size, bh), min(neigh_size, bw)
    if bh % nh or bw % nw:
        sides = f"side {bh}" if square else f"sides {bh}x{bw}"
        raise ValueError(f"neigh_size {neigh_size} must divide the block {sides} "
                         f"(image {h if square else f'{h}x{w}'} / grid {grid})")
    th, tw = (bh, bw) if t_size == -1 else (min(t_size, bh), min(t_size, bw))
    if transport and (bh % th or bw % tw):
        if square:
            raise ValueError(f"t_size {t_size} must divide the block side {bh} "
                             f"(image {h} / grid {grid})")
        raise ValueError(f"t_size {t_size} must divide the block sides {bh}x{bw} (image "
                         f"{h}x{w} / grid {grid}); on rectangular images use t_size=-1 (the "
                         "graph-cut grid's cells, the reference's default)")
    if transport and h // th != w // tw:
        raise ValueError(
            f"t_size {t_size} gives a {h // th}x{w // tw} transport grid on x of size {h}x{w} "
            f"(grid {grid}, cells {bh}x{bw}); the transport moves the cells of a square grid, "
            "so on rectangular images use t_size=-1 (the graph-cut grid's cells, the "
            "reference's default) or a t_size of at least both cell sides")
    if square:
        return bh, nh, th, h // th
    return (bh, bw), (nh, nw), (th, tw), h // th


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
        grid: the drawn labeling grid side ``g``.
        lam: the drawn ``lambda`` of the prior.
        perm: the permutation (CPU long tensor ``(B,)``).
        mask: ``(B, g, g)`` the graph cut's mixing levels, the weight of ``x1``.
        ratio: ``(B,)`` the mean mask, the weight of ``y`` in the targets.
        src1, src2: the transport plans of ``x1`` and ``x2``, ``(B, t*t)``
            (:func:`~comixup.solver.puzzle.transport_plan`), None without transport.
        t_size: side of the transported pixel blocks; neigh_size: the smoothness pooling size
            (both after clipping to the block).
        block: side of a grid cell in pixels (``H / g``).

    ``block``, ``t_size`` and ``neigh_size`` are ints for square images and ``(height, width)``
    pairs for rectangular ones (cells of ``(H/g) x (W/g)`` pixels).
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
    ``(x[i], x[perm[i]])`` (:func:`~comixup.solver.puzzle.graphcut_terms`,
    :func:`~comixup.solver.puzzle.graphcut_masks`), transports each image's salient blocks into
    its mask region (:func:`~comixup.solver.puzzle.transport_plan`) and returns
    ``mask * x1' + (1 - mask) * x2'`` with targets ``ratio * y + (1 - ratio) * y[perm]``,
    ``ratio`` the mean mask. See :mod:`comixup.solver.puzzle` for the model and the deviations
    from the reference code.

    Args:
        num_classes: number of classes ``K`` of the soft targets.
        grid: labeling grid side ``g``; ``-1`` (default) draws ``g = 2^U{1..4}`` per call as the
            reference; a sequence of sides (e.g. ``[2, 4]``) draws one of them uniformly per
            call (``(2, 4, 8, 16)`` draws as ``-1``). Both image sides must be multiples of every
            side drawn (of 16 for ``-1``); the grid is ``g x g`` with ``(H/g) x (W/g)`` cells.
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
            by its Tiny-ImageNet commands). The transport grid is square in grid units, so on
            rectangular images ``t_size`` must be ``-1`` or reach both cell sides.
        mean, std: per-channel normalization of ``x``; the smoothness statistic is computed on
            ``x * std + mean`` as the reference. ``None`` means 0 and 1.
        workers: threads solving chunks of pairs; None uses one per CPU. Results do not depend
            on it.
        generator: CPU ``torch.Generator`` for every draw; None uses torch's global generator.

    Call:
        ``puzzle(x, y, saliency, return_info=False)`` with ``x`` ``(B, C, H, W)`` of any float
        dtype on any device (square as the reference, or rectangular: see the module), ``y``
        integer labels ``(B,)`` or soft targets ``(B, K)``, and ``saliency`` ``(B, H, W)``
        non-negative. Returns ``(x_mix, y_mix)``, ``y_mix`` in ``x``'s
        dtype with rows summing to 1; with ``return_info=True`` also the :class:`PuzzleParams`
        (``ratios``, ``grid``, ``lam``, ``perm``, ``mask`` (``(B, g, g)`` levels, the weight of
        ``x1``), ``ratio`` (``(B,)``), ``t_size``, ``neigh_size`` and the transport plans
        ``src1``, ``src2`` (None without transport)). :meth:`sample_params` draws and solves
        the graph cuts and the transport plans (they depend on the images and the saliency);
        :meth:`apply` moves the blocks and mixes, so the same cut and transport apply to any
        other ``(B, C', H, W)`` tensor (e.g. object masks). A batch of one comes back unmixed
        with its target; no random numbers are drawn for it. Image sides that a grid side (or
        the clipped ``neigh_size``/``t_size`` the cell sides) do not divide, and on rectangular
        images a ``t_size`` that does not give a square transport grid, raise ``ValueError``.
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
        self.grid = _check_grid(grid)
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

    def _choices(self) -> tuple[int, ...]:
        """The grid sides drawn from (one side for a fixed grid)."""
        if self.grid == -1:
            return GRIDS
        return self.grid if isinstance(self.grid, tuple) else (self.grid,)

    def check_batch(self, x) -> None:
        """Every grid side must divide both sides of the images, and the clipped
        ``neigh_size`` / ``t_size`` the cells (ValueError)."""
        _, _, h, w = x.shape
        choices = self._choices()
        for g in choices:  # the grid sides first: their error names the sides that fit
            if h % g or w % g:
                raise ValueError(_grid_error(h, w, g, choices))
        for g in choices:
            _geometry(h, w, g, self.neigh_size, self.t_size, self.transport, choices)

    def unmixed_params(self, x) -> PuzzleParams:
        """A batch of one: ``ratios = [[1]]``, ``ratio = [1]``, the identity permutation."""
        compute = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
        return PuzzleParams(ratios=torch.ones(1, 1, dtype=compute, device=x.device),
                            perm=torch.zeros(1, dtype=torch.long),
                            ratio=torch.ones(1, device=x.device))

    @full_precision
    def sample_params(self, x, targets, saliency=None) -> PuzzleParams:
        """Draw the grid side (``grid=-1``), ``lambda`` and the permutation, then solve every
        pair's graph cut and (with ``transport``) the transport plans."""
        bsz, _, h, w = x.shape
        gen = self.generator
        choices = self._choices()
        if isinstance(self.grid, int) and self.grid != -1:
            grid = self.grid
        else:  # -1 draws from GRIDS, a sequence from its sides, uniformly
            grid = choices[int(torch.randint(0, len(choices), (1,), generator=gen))]
        lam = sample_lambda(self.alpha, gen)
        perm = torch.randperm(bsz, generator=gen)
        block, neigh, ts, t_grid = _geometry(h, w, grid, self.neigh_size, self.t_size,
                                             self.transport, choices)
        dev_perm = perm.to(x.device)
        compute = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
        sal = saliency.detach()

        # The saliency pooled to the grid (and to the transport grid) and the smoothness
        # statistic, on x's device; one copy to the CPU for the graph cut.
        peak = _saliency_peak(sal)
        s1, inexact1 = _pooled_float32(sal, grid, peak)
        st, inexact_t = s1, inexact1
        if self.transport and t_grid != grid:
            st, inexact_t = _pooled_float32(sal, t_grid, peak)
        p1 = F.avg_pool2d(self._unnormalize(x.detach().to(compute).contiguous()), neigh)
        (bh, bw), (nh, nw) = _pair(block), _pair(neigh)
        k = bh // nh if bh == bw and nh == nw else (bh // nh, bw // nw)
        down, right = pooled_smoothness_terms(p1, p1[dev_perm], k)
        s1_h, down_h, right_h, inexact = host_copy(s1, down, right,
                                                 torch.stack([inexact1, inexact_t], 1))
        inexact = inexact != 0
        if inexact.any():  # maps near the float32 limits, recomputed exactly (as pooled_unary)
            st_is_s1 = st is s1
            if inexact[:, 0].any():
                s1 = _exact_maps(sal, grid, peak, host_rows(inexact[:, 0], sal.device), s1)
                s1_h = s1.double().cpu().numpy()
            if st_is_s1:
                st = s1
            elif inexact[:, 1].any():
                st = _exact_maps(sal, t_grid, peak, host_rows(inexact[:, 1], sal.device), st)

        # Graph cut of every pair, on the CPU.
        unary, w_right, w_down = graphcut_terms(
            s1_h, s1_h[perm.numpy()], down_h, right_h, lam=lam, n_labels=self.n_labels,
            beta=self.beta, gamma=self.gamma, eta=self.eta,
        )
        workers = self.n_workers(bsz)
        labels = graphcut_masks(unary, w_right, w_down, workers=workers,
                                executor=self._executor(workers))
        mask = torch.from_numpy(labels).to(device=x.device, dtype=compute) / (self.n_labels - 1)

        # Transport plans inside the mask regions: x1's (mask > 0) and x2's (mask < 1) in one
        # batch of 2B images (the plan of an image does not depend on the others).
        src1 = src2 = None
        if self.transport:
            rep = t_grid // grid
            mask_t = mask.repeat_interleave(rep, 1).repeat_interleave(rep, 2) if rep > 1 else mask
            src = transport_plan(torch.cat([mask_t > 0, mask_t < 1]),
                                 torch.cat([st, st[dev_perm]]), self.t_eps)
            src1, src2 = src[:bsz], src[bsz:]
        ratio = mask.mean((1, 2))
        ratios = permutation_ratios([torch.arange(bsz), perm], [ratio, 1 - ratio], compute,
                                    x.device)
        return PuzzleParams(ratios=ratios, grid=grid, lam=lam, perm=perm, mask=mask, ratio=ratio,
                            src1=src1, src2=src2, t_size=ts, neigh_size=neigh, block=block)

    @full_precision
    def apply(self, x, targets, params: PuzzleParams):
        """Transport the blocks of ``x1 = x`` and ``x2 = x[perm]`` and return
        ``mask * x1' + (1 - mask) * x2'`` and ``ratio * y + (1 - ratio) * y[perm]``; ``x`` is any
        ``(B, C', H, W)`` floating tensor of the drawn size."""
        compute = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
        xc = x.to(compute).contiguous()  # autograd flows to x_mix, not to the mask
        dev_perm = params.perm.to(x.device)
        mask = params.mask.to(device=x.device, dtype=compute)
        if params.src1 is None:
            x1, x2 = xc, xc[dev_perm]
        else:  # x1 and x2 gathered into one (2B, C', H, W) batch and transported in place
            bsz = xc.shape[0]
            both = xc[torch.cat([torch.arange(bsz, device=x.device), dev_perm])]
            apply_transport(both, torch.cat([params.src1, params.src2]), params.t_size, out=both)
            x1, x2 = both[:bsz], both[bsz:]
        bh, bw = _pair(params.block)
        mask_px = mask.repeat_interleave(bh, 1).repeat_interleave(bw, 2)[:, None]
        x_mix = torch.lerp(x2, x1, mask_px).to(x.dtype)  # exact at levels 0 and 1
        if targets is None:
            return x_mix, None
        ratio = params.ratio.to(device=targets.device, dtype=targets.dtype)[:, None]
        return x_mix, ratio * targets + (1 - ratio) * targets[dev_perm.to(targets.device)]
