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

from comixup.bench import realistic_saliency
from comixup.mixers.puzzlemix import GRIDS, PuzzleMix
from comixup.saliency import pooled_unary
from comixup.solver import (
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
