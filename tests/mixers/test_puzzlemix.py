"""PuzzleMix (Kim, Choo and Song, ICML 2020; recipes 4): masks, transport in the mixture,
targets, determinism, dtypes, errors. The graph cut and the transport themselves are tested in
tests/solver/test_puzzle.py."""

import math
import pickle
from typing import ClassVar

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from comixup.mixers.puzzlemix import GRIDS, PuzzleMix
from comixup.saliency import pooled_unary, realistic_saliency
from comixup.solver.puzzle import (
    apply_transport,
    graphcut_masks,
    graphcut_terms,
    smoothness_terms,
    transport_plan,
)


def batch(b=6, size=16, c=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(b, c, size, size, generator=gen)
    y = torch.randint(0, 10, (b,), generator=gen)
    sal = torch.from_numpy(realistic_saliency(b, size, rng=np.random.default_rng(seed))).float()
    return x, y, sal


def one_hot_coded(b, size):
    """x_i = e_i in channel space: channel i of x_mix[j] is the weight of input i at each pixel."""
    x = torch.zeros(b, b, size, size)
    x[torch.arange(b), torch.arange(b)] = 1.0
    return x


# ------------------------------------------------------------------------------------------------
# masks
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("grid", [-1, 2, 4, 8, 16])
def test_masks_take_the_three_levels_and_compose_the_output(grid):
    x, y, sal = batch(8, 32, seed=grid + 5)
    pm = PuzzleMix(10, grid=grid, transport=False, workers=1,
                   generator=torch.Generator().manual_seed(1))
    x_mix, _, info = pm(x, y, sal, return_info=True)
    g = info.grid
    assert g in GRIDS and (grid == -1 or g == grid)
    mask = info.mask
    assert mask.shape == (8, g, g)
    assert set(mask.unique().tolist()) <= {0.0, 0.5, 1.0}
    m = mask.repeat_interleave(32 // g, 1).repeat_interleave(32 // g, 2)[:, None]
    torch.testing.assert_close(x_mix, m * x + (1 - m) * x[info.perm])
    torch.testing.assert_close(info.ratio, mask.mean((1, 2)))


@pytest.mark.parametrize("grid", [2, 4, 8])
def test_params_are_the_solver_functions_of_the_pooled_saliency(grid):
    """sample_params is pooled_unary, smoothness_terms, graphcut_terms, graphcut_masks and the
    transport plans of x1's and x2's regions, bit for bit, also for maps whose float32 pooling
    is inexact (huge, tiny) and for an all-zero map."""
    x, y, sal = batch(8, 32, seed=grid + 30)
    sal = sal.double()
    sal[1] *= 1e300
    sal[2] *= 1e-300
    sal[3] = 0.0
    pm = PuzzleMix(10, grid=grid, workers=1, generator=torch.Generator().manual_seed(grid))
    _, _, info = pm(x, y, sal, return_info=True)
    perm = info.perm
    s1 = pooled_unary(sal, grid)
    terms = graphcut_terms(s1, s1[perm], *smoothness_terms(x, x[perm], grid, info.neigh_size),
                           lam=info.lam)
    mask = torch.from_numpy(graphcut_masks(*terms)).float() / 2
    assert torch.equal(info.mask, mask)
    t = 32 // info.t_size
    st = pooled_unary(sal, t)
    mask_t = mask.repeat_interleave(t // grid, 1).repeat_interleave(t // grid, 2)
    assert torch.equal(info.src1, transport_plan(mask_t > 0, st, 0.8))
    assert torch.equal(info.src2, transport_plan(mask_t < 1, st[perm], 0.8))


class _HostReads(TorchFunctionMode):
    """Records every call that reads tensor values into Python or NumPy."""

    READS: ClassVar[set[str]] = {"__bool__", "__float__", "__int__", "__index__", "item",
                                 "tolist", "numpy", "__array__", "cpu"}

    def __init__(self):
        super().__init__()
        self.reads = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in self.READS:
            self.reads.append(name)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("grid", [-1, 4])
def test_one_copy_to_the_host_per_call(grid):
    """sample_params reads the draws (grid side, lambda, permutation) and copies the pooled
    saliency and smoothness terms to the CPU once for the graph cut; apply reads nothing."""
    x, y, sal = batch(8, 32, seed=3)
    pm = PuzzleMix(10, grid=grid, workers=1, generator=torch.Generator().manual_seed(0))
    targets = F.one_hot(y, 10).float()
    with _HostReads() as sampled:
        params = pm.sample_params(x, targets, sal)
    draws = ["__float__", "numpy"] + (["__int__"] if grid == -1 else [])
    assert sorted(sampled.reads) == sorted(draws + ["cpu", "numpy"])
    with _HostReads() as applied:
        pm.apply(x, targets, params)
    assert applied.reads == []


# ------------------------------------------------------------------------------------------------
# transport
# ------------------------------------------------------------------------------------------------


def test_mixture_uses_the_transported_images_inside_each_region():
    x, y, sal = batch(8, 32, seed=11)
    # gamma = 0: the mask depends on the saliency only, so the block-coded images below get it too
    pm = PuzzleMix(10, grid=4, gamma=0.0, workers=1, generator=torch.Generator().manual_seed(3))
    x_mix, _, info = pm(x, y, sal, return_info=True)
    perm, mask, ts = info.perm, info.mask, info.t_size
    assert ts == 4
    t = 32 // ts
    mt = mask.repeat_interleave(t // 4, 1).repeat_interleave(t // 4, 2).view(8, -1)
    src1, src2 = info.src1, info.src2
    assert ((src1 >= 0) == (mt > 0)).all() and ((src2 >= 0) == (mt < 1)).all()
    m = mask.repeat_interleave(8, 1).repeat_interleave(8, 2)[:, None]
    expect = m * apply_transport(x, src1, ts) + (1 - m) * apply_transport(x[perm], src2, ts)
    torch.testing.assert_close(x_mix, expect)
    # x1's blocks only where mask > 0: block-coded images, one code range per image
    coded = (torch.arange(8).view(8, 1, 1, 1) * 1000.0
             + torch.arange(t * t).view(1, 1, t, t).float())
    coded = coded.repeat_interleave(ts, 2).repeat_interleave(ts, 3)
    pm = PuzzleMix(8, grid=4, gamma=0.0, workers=1, generator=torch.Generator().manual_seed(3))
    out, _, info2 = pm(coded, torch.arange(8), sal, return_info=True)
    assert torch.equal(info2.mask, mask)
    blocks = out[:, 0, ::ts, ::ts].reshape(8, -1)
    for b in range(8):
        full = mt[b] == 1
        none = mt[b] == 0
        codes1 = blocks[b][full]
        assert ((codes1 // 1000) == b).all()
        assert codes1.unique().numel() == codes1.numel()
        codes2 = blocks[b][none]
        assert ((codes2 // 1000) == perm[b]).all()
        assert codes2.unique().numel() == codes2.numel()


# ------------------------------------------------------------------------------------------------
# rectangular images: an n x n grid of (H/n) x (W/n) cells
# ------------------------------------------------------------------------------------------------


def rect_batch(b=6, h=16, w=8, c=3, seed=0):
    """Random images and a realistic saliency (one object per image) of size ``h x w``."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(b, c, h, w, generator=gen)
    y = torch.randint(0, 10, (b,), generator=gen)
    sal = realistic_saliency(b, max(h, w), rng=np.random.default_rng(seed))[:, :h, :w]
    return x, y, torch.from_numpy(sal.copy()).float()


def cell_of_pixels(h, w, g):
    """``(h, w)`` long tensor: the row-major index of the grid cell of every pixel, by loops."""
    cell = torch.empty(h, w, dtype=torch.long)
    for r in range(h):
        for c in range(w):
            cell[r, c] = (r // (h // g)) * g + c // (w // g)
    return cell


@pytest.mark.parametrize("transport", [False, True])
@pytest.mark.parametrize("grid", [2, 4, 8])
def test_rectangular_masks_have_cells_of_h_over_g_by_w_over_g(grid, transport):
    """One-hot coded 16x8 images: channel i of x_mix[b] is input i's weight at each pixel; it is
    the mask level of the pixel's (16/g) x (8/g) cell, and the target is the pixel share."""
    b, h, w = 7, 16, 8
    _, _, sal = rect_batch(b, h, w, seed=grid)
    pm = PuzzleMix(b, grid=grid, neigh_size=2, t_size=-1, transport=transport, workers=1,
                   generator=torch.Generator().manual_seed(grid))
    x = torch.zeros(b, b, h, w)
    x[torch.arange(b), torch.arange(b)] = 1.0
    x_mix, y_mix, info = pm(x, torch.arange(b), sal, return_info=True)
    assert info.mask.shape == (b, grid, grid)
    assert info.block == (h // grid, w // grid) and info.t_size == (h // grid, w // grid)
    assert info.neigh_size == (min(2, h // grid), min(2, w // grid))
    cell = cell_of_pixels(h, w, grid)
    expect = torch.zeros(b, b, h, w)
    share = torch.zeros(b)  # the pixel share of x1 = x[i] in output i
    for i in range(b):
        for r in range(h):
            for c in range(w):
                level = float(info.mask[i].view(-1)[cell[r, c]])
                expect[i, i, r, c] += level
                expect[i, int(info.perm[i]), r, c] += 1.0 - level
                share[i] += level / (h * w)
    assert torch.equal(x_mix, expect)
    torch.testing.assert_close(info.ratio, share, rtol=0, atol=1e-6)
    torch.testing.assert_close(y_mix, x_mix.mean((2, 3)), rtol=0, atol=1e-6)
    # the masks are not trivial: some image takes both inputs
    assert ((info.mask > 0) & (info.mask < 1)).any() or (info.mask.amin((1, 2))
                                                         < info.mask.amax((1, 2))).any()


@pytest.mark.parametrize("grid", [2, 4])
def test_rectangular_params_are_the_solver_functions(grid):
    """On 16x8 images sample_params is pooled_unary, smoothness_terms (per-axis neighbourhood),
    graphcut_terms, graphcut_masks and transport_plan on the g x g grid, bit for bit."""
    x, y, sal = rect_batch(8, 16, 8, seed=grid + 40)
    pm = PuzzleMix(10, grid=grid, neigh_size=2, t_size=-1, workers=1,
                   generator=torch.Generator().manual_seed(grid))
    _, _, info = pm(x, y, sal, return_info=True)
    perm = info.perm
    s1 = pooled_unary(sal, grid)
    torch.testing.assert_close(s1, F.avg_pool2d(sal[:, None], (16 // grid, 8 // grid))[:, 0]
                               / F.avg_pool2d(sal[:, None], (16 // grid, 8 // grid))
                               .sum((1, 2, 3))[:, None, None])
    terms = graphcut_terms(s1, s1[perm], *smoothness_terms(x, x[perm], grid, (2, 2)),
                           lam=info.lam)
    mask = torch.from_numpy(graphcut_masks(*terms)).float() / 2
    assert torch.equal(info.mask, mask)
    assert torch.equal(info.src1, transport_plan(mask > 0, s1, 0.8))
    assert torch.equal(info.src2, transport_plan(mask < 1, s1[perm], 0.8))


def test_rectangular_transport_moves_whole_cells():
    """Images whose pixels are the one-hot codes of (image, cell): every (16/4) x (8/4) cell of
    x_mix is constant (a cell moves whole), holds x1's planned cell with the mask weight and
    x2's with the rest, and every cell of a region comes from a distinct source cell."""
    b, h, w, g = 6, 16, 8, 4
    n = g * g
    _, _, sal = rect_batch(b, h, w, seed=5)
    sal = sal**4  # peaked: with a small t_eps many cells move
    cell = cell_of_pixels(h, w, g)
    x = torch.zeros(b, b * n, h, w)
    for i in range(b):
        x[i, i * n + cell, torch.arange(h)[:, None], torch.arange(w)[None, :]] = 1.0
    pm = PuzzleMix(b, grid=g, neigh_size=2, t_size=-1, t_eps=0.05, workers=1,
                   generator=torch.Generator().manual_seed(5))
    x_mix, _, info = pm(x, torch.arange(b), sal, return_info=True)
    mask = info.mask.view(b, n)
    moved = 0
    for i in range(b):
        p = int(info.perm[i])
        region1, region2 = mask[i] > 0, mask[i] < 1
        for src, region in ((info.src1[i], region1), (info.src2[i], region2)):
            used = src[region]
            assert (src[~region] == -1).all() and (used >= 0).all()
            assert used.unique().numel() == used.numel()
            moved += int((used != torch.arange(n)[region]).sum())
        for j in range(n):
            pix = x_mix[i][:, cell == j]  # (channels, pixels of cell j)
            assert torch.equal(pix, pix[:, :1].expand_as(pix))  # the cell is intact
            expect = torch.zeros(b * n)
            s1 = int(info.src1[i, j]) if info.src1[i, j] >= 0 else j
            s2 = int(info.src2[i, j]) if info.src2[i, j] >= 0 else j
            expect[i * n + s1] += float(mask[i, j])
            expect[p * n + s2] += 1.0 - float(mask[i, j])
            assert torch.equal(pix[:, 0], expect)
    assert moved >= 4  # the test sees cells that move


def test_the_speech_geometry_mixes():
    """160x100 spectrograms with the speech presets' Puzzle Mix options (grid sides 2 and 4, the
    neighbourhood 5, the transport on the grid's cells): both sides drawn, cells 80x50 and
    40x25, targets the pixel shares."""
    b = 5
    gen = torch.Generator().manual_seed(0)
    x = torch.zeros(b, b, 160, 100)
    x[torch.arange(b), torch.arange(b)] = 1.0
    sal = torch.rand(b, 160, 100, generator=gen) ** 4
    pm = PuzzleMix(b, grid=[2, 4], neigh_size=5, t_size=-1, workers=1,
                   generator=torch.Generator().manual_seed(1))
    seen = set()
    for _ in range(12):
        x_mix, y_mix, info = pm(x, torch.arange(b), sal, return_info=True)
        seen.add((info.grid, info.block, info.neigh_size))
        torch.testing.assert_close(x_mix.sum(1), torch.ones(b, 160, 100))
        torch.testing.assert_close(y_mix, x_mix.mean((2, 3)), rtol=0, atol=1e-6)
    assert seen == {(2, (80, 50), (5, 5)), (4, (40, 25), (5, 5))}


def test_a_sequence_of_grid_sides_is_drawn_uniformly():
    x, y, sal = batch(6, 32, seed=8)
    a = PuzzleMix(10, grid=(2, 4, 8, 16), generator=torch.Generator().manual_seed(4))
    b = PuzzleMix(10, grid=-1, generator=torch.Generator().manual_seed(4))
    for _ in range(6):  # the same draws as grid=-1, so the same results
        xa, ya, ia = a(x, y, sal, return_info=True)
        xb, yb, ib = b(x, y, sal, return_info=True)
        assert ia.grid == ib.grid and torch.equal(xa, xb) and torch.equal(ya, yb)
    pm = PuzzleMix(10, grid=[4, 2], generator=torch.Generator().manual_seed(0))
    assert pm.grid == (4, 2) and "grid=(4, 2)" in repr(pm)
    grids = [pm(x, y, sal, return_info=True)[2].grid for _ in range(40)]
    assert set(grids) == {2, 4} and 10 <= grids.count(2) <= 30


# ------------------------------------------------------------------------------------------------
# targets, determinism, dtypes, errors
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", [True, False])
@pytest.mark.parametrize("grid", [-1, 2, 8])
def test_targets_are_the_pixel_mass_of_each_source(transport, grid):
    b, size = 9, 32
    x = one_hot_coded(b, size)
    _, _, sal = batch(b, size, seed=grid + 20)
    pm = PuzzleMix(b, grid=grid, transport=transport, workers=2,
                   generator=torch.Generator().manual_seed(grid + 100))
    x_mix, y_mix = pm(x, torch.arange(b), sal)
    torch.testing.assert_close(x_mix.sum(1), torch.ones(b, size, size))
    torch.testing.assert_close(y_mix, x_mix.mean((2, 3)))
    torch.testing.assert_close(y_mix.sum(1), torch.ones(b))
    soft = torch.softmax(torch.randn(b, b, generator=torch.Generator().manual_seed(0)), 1)
    pm2 = PuzzleMix(b, grid=grid, transport=transport,
                    generator=torch.Generator().manual_seed(grid + 100))
    x2, y2 = pm2(x, soft, sal)
    torch.testing.assert_close(x2, x_mix)
    torch.testing.assert_close(y2, y_mix @ soft)
    torch.testing.assert_close(y2.sum(1), torch.ones(b))


def test_deterministic_and_independent_of_workers():
    x, y, sal = batch(13, 32, seed=4)
    for grid in (-1, 8, 16):
        results = [PuzzleMix(10, grid=grid, workers=w,
                             generator=torch.Generator().manual_seed(9))(x, y, sal)
                   for w in (1, 2, 3, 1)]
        for xm, ym in results[1:]:
            assert torch.equal(xm, results[0][0]) and torch.equal(ym, results[0][1])
    torch.manual_seed(5)
    a = PuzzleMix(10)(x, y, sal)
    torch.manual_seed(5)
    b = PuzzleMix(10)(x, y, sal)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.mark.parametrize("grid", [1, 2, 8])
def test_other_level_counts_and_grids(grid):
    x, y, sal = batch(5, 8, seed=grid)
    x_mix, y_mix, info = PuzzleMix(10, grid=grid, n_labels=4,
                                   generator=torch.Generator().manual_seed(0))(
        x, y, sal, return_info=True)
    levels = info.mask * 3  # four levels {0, 1/3, 2/3, 1}
    torch.testing.assert_close(levels, levels.round())
    # autograd flows from x_mix to x (the mask is a constant): every pixel's weights sum to 1
    xr = x.clone().requires_grad_()
    PuzzleMix(10, grid=grid, generator=torch.Generator().manual_seed(0))(
        xr, y, sal)[0].sum().backward()
    torch.testing.assert_close(xr.grad.sum(), torch.tensor(float(x.numel())))
    torch.testing.assert_close(y_mix.sum(1), torch.ones(5))
    assert torch.isfinite(x_mix).all()
    # an all-zero saliency map is legal (uniform)
    x_mix, _ = PuzzleMix(10, grid=grid)(x, y, torch.zeros_like(sal))
    assert torch.isfinite(x_mix).all()


def test_dtypes_normalization_and_pickle():
    x, y, sal = batch(4, 16, seed=2)
    for dtype in (torch.float64, torch.bfloat16, torch.float16):
        xm, ym = PuzzleMix(10, grid=4, generator=torch.Generator().manual_seed(0))(
            x.to(dtype), y, sal)
        assert xm.dtype == dtype and ym.dtype == dtype and xm.shape == x.shape
        assert torch.allclose(ym.float().sum(1), torch.ones(4), atol=1e-2)
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.3, 0.25]
    xn = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    _, _, i1 = PuzzleMix(10, grid=4, mean=mean, std=std,
                         generator=torch.Generator().manual_seed(0))(
        xn, y, sal, return_info=True)
    _, _, i2 = PuzzleMix(10, grid=4, generator=torch.Generator().manual_seed(0))(
        x, y, sal, return_info=True)
    assert torch.equal(i1.mask, i2.mask)
    pm = PuzzleMix(10, workers=2)
    pm(x, y, sal)
    clone = pickle.loads(pickle.dumps(pm))
    assert clone.workers == 2 and "PuzzleMix(" in repr(clone)


def test_batch_of_one_is_unmixed():
    x, y, sal = batch(1, 16)
    gen = torch.Generator().manual_seed(0)
    state = gen.get_state()
    xm, ym = PuzzleMix(10, generator=gen)(x, y, sal)
    assert torch.equal(xm, x) and torch.equal(ym, F.one_hot(y, 10).float())
    assert torch.equal(gen.get_state(), state)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"num_classes": 0}, ValueError, "num_classes"),
        ({"grid": 0}, ValueError, "grid"),
        ({"grid": 2.0}, TypeError, "grid"),
        ({"grid": []}, ValueError, "grid"),
        ({"grid": [2, 0]}, ValueError, "grid"),
        ({"grid": [2, 4.0]}, TypeError, "grid"),
        ({"alpha": 0.0}, ValueError, "alpha"),
        ({"beta": -1.0}, ValueError, "beta"),
        ({"gamma": math.nan}, ValueError, "gamma"),
        ({"eta": -0.1}, ValueError, "eta"),
        ({"n_labels": 1}, ValueError, "n_labels"),
        ({"neigh_size": 0}, ValueError, "neigh_size"),
        ({"transport": "yes"}, TypeError, "transport"),
        ({"t_eps": -1.0}, ValueError, "t_eps"),
        ({"t_size": 0}, ValueError, "t_size"),
        ({"std": [1.0, 0.0, 1.0]}, ValueError, "std"),
        ({"mean": [math.inf]}, ValueError, "mean"),
        ({"workers": 0}, ValueError, "workers"),
        ({"generator": 1}, TypeError, "generator"),
    ],
)
def test_bad_constructor_arguments(kwargs, exc, match):
    kw = {"num_classes": 10}
    kw.update(kwargs)
    with pytest.raises(exc, match=match):
        PuzzleMix(**kw)


def test_bad_call_arguments():
    x, y, sal = batch(4, 16)
    pm = PuzzleMix(10, grid=4)
    with pytest.raises(ValueError, match="grid 4 must divide both sides of x, got x of size 16x10"):
        pm(torch.rand(4, 3, 16, 10), y, torch.rand(4, 16, 10))  # 4 divides 16, not 10
    with pytest.raises(ValueError, match=r"grid 3 must divide both sides of x.*16x8"):
        PuzzleMix(10, grid=3)(torch.rand(4, 3, 16, 8), y, torch.rand(4, 16, 8))  # neither side
    with pytest.raises(ValueError, match=r"grid 8 .* drawn grid sides \[2, 4, 8, 16\]: pass "
                                         r"grid=\[2, 4\], the sides that divide 160x100"):
        PuzzleMix(30, neigh_size=5, t_size=-1)(torch.rand(4, 1, 160, 100), y,
                                              torch.rand(4, 160, 100))
    with pytest.raises(ValueError, match="neigh_size 4 must divide the block sides 40x25"):
        PuzzleMix(30, grid=4, t_size=-1)(torch.rand(4, 1, 160, 100), y, torch.rand(4, 160, 100))
    with pytest.raises(ValueError, match="t_size 4 must divide the block sides 40x25.*t_size=-1"):
        PuzzleMix(30, grid=4, neigh_size=5)(torch.rand(4, 1, 160, 100), y,
                                           torch.rand(4, 160, 100))
    with pytest.raises(ValueError, match="t_size 10 gives a 16x10 transport grid"):
        PuzzleMix(30, grid=2, neigh_size=5, t_size=10)(torch.rand(4, 1, 160, 100), y,
                                                      torch.rand(4, 160, 100))
    with pytest.raises(ValueError, match="grid"):
        PuzzleMix(10, grid=3)(x, y, sal)
    with pytest.raises(ValueError, match="divide"):
        PuzzleMix(10)(torch.rand(4, 3, 24, 24), y, torch.rand(4, 24, 24))  # 16 does not divide 24
    with pytest.raises(ValueError, match="t_size"):
        PuzzleMix(10, grid=2, t_size=3)(x, y, sal)
    with pytest.raises(ValueError, match="saliency"):
        pm(x, y, sal[:, :8])
    with pytest.raises(ValueError, match="saliency"):
        pm(x, y, -sal)
    with pytest.raises(ValueError, match="y"):
        pm(x, y[:3], sal)
    with pytest.raises(ValueError, match="x"):
        pm(x[0], y, sal)
    with pytest.raises(ValueError, match="mean"):
        PuzzleMix(10, grid=4, mean=[0.1, 0.2])(x, y, sal)
