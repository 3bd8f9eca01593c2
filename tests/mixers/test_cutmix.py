"""Tests for comixup.mixers.cutmix: CutMix (Yun et al., ICCV 2019; recipes 4)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from mixer_helpers import coded_batch

from comixup.mixers.cutmix import CutMix, rand_box
from comixup.mixers.mixup import sample_lambda

FAST = settings(max_examples=25, deadline=None)


def pixel_mass(x: torch.Tensor) -> torch.Tensor:
    return x.sum(dim=(2, 3)) / (x.shape[2] * x.shape[3])


def replay(seed: int, alpha: float, b: int, h: int, w: int):
    """Replay CutMix's draws: lambda, permutation, box."""
    g = torch.Generator().manual_seed(seed)
    lam = sample_lambda(alpha, g)
    perm = torch.randperm(b, generator=g)
    box = rand_box(h, w, lam, g)
    return lam, perm, box


# ---------------------------------------------------------------- rand_box


@FAST
@given(
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    lam=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**31 - 1),
)
def test_rand_box_geometry(h, w, lam, seed):
    y0, y1, x0, x1 = rand_box(h, w, lam, torch.Generator().manual_seed(seed))
    assert 0 <= y0 <= y1 <= h and 0 <= x0 <= x1 <= w
    # replay the centre: row, then column
    g = torch.Generator().manual_seed(seed)
    cy = int(torch.randint(0, h, (1,), generator=g))
    cx = int(torch.randint(0, w, (1,), generator=g))
    cut_h = int(h * math.sqrt(1 - lam))
    cut_w = int(w * math.sqrt(1 - lam))
    top, left = cy - cut_h // 2, cx - cut_w // 2
    assert (y0, y1) == (max(top, 0), min(top + cut_h, h))
    assert (x0, x1) == (max(left, 0), min(left + cut_w, w))


def test_rand_box_unclipped_area_is_one_minus_lambda():
    # a centred-enough box on a large image is not clipped: area ratio = 1 - lam up to truncation
    found = 0
    for seed in range(40):
        y0, y1, x0, x1 = rand_box(100, 60, 0.75, torch.Generator().manual_seed(seed))
        if y1 - y0 == 50 and x1 - x0 == 30:
            found += 1
            assert (y1 - y0) * (x1 - x0) / (100 * 60) == 0.25
    assert found > 0


def test_rand_box_extremes():
    g = torch.Generator().manual_seed(0)
    y0, y1, x0, x1 = rand_box(8, 8, 1.0, g)
    assert (y1 - y0) * (x1 - x0) == 0
    y0, y1, x0, x1 = rand_box(8, 8, 0.0, g)  # full-size box, clipped unless centred
    assert y1 == 8 or y0 == 0


@pytest.mark.parametrize(
    "args, exc, word",
    [
        ((0, 4, 0.5), ValueError, "h"),
        ((4.0, 4, 0.5), TypeError, "h"),
        ((4, -1, 0.5), ValueError, "w"),
        ((4, 4, 1.5), ValueError, "lam"),
        ((4, 4, None), TypeError, "lam"),
        ((4, 4, 0.5, "gen"), TypeError, "generator"),
    ],
)
def test_rand_box_bad_arguments(args, exc, word):
    with pytest.raises(exc, match=word):
        rand_box(*args)


# ---------------------------------------------------------------- CutMix


@pytest.mark.parametrize("h, w", [(8, 8), (5, 12), (13, 4)])
def test_targets_equal_pasted_area_exactly_including_clipped_boxes(h, w):
    clipped = 0
    for seed in range(30):
        x, y = coded_batch(5, h, w)
        x_mix, y_mix = CutMix(5, alpha=1.0, generator=torch.Generator().manual_seed(seed))(x, y)
        lam, perm, (y0, y1, x0, x1) = replay(seed, 1.0, 5, h, w)
        area = (y1 - y0) * (x1 - x0) / (h * w)
        cut_h = int(h * math.sqrt(1 - lam))
        cut_w = int(w * math.sqrt(1 - lam))
        if (y1 - y0, x1 - x0) != (cut_h, cut_w):
            clipped += 1
        # the target is the measured pixel mass of each source, not 1 - lam
        torch.testing.assert_close(pixel_mass(x_mix), y_mix, rtol=0, atol=1e-12)
        for i in range(5):
            if perm[i] != i:
                assert abs(float(y_mix[i, perm[i]]) - area) < 1e-12
                assert abs(float(y_mix[i, i]) - (1 - area)) < 1e-12
    assert clipped > 0  # the border case was exercised


@pytest.mark.parametrize("h, w", [(6, 6), (4, 11)])
def test_pixels_come_from_the_box_of_the_permuted_batch(h, w):
    x = torch.randn(6, 3, h, w)
    y = torch.arange(6) % 4
    for seed in range(5):
        x_mix, _ = CutMix(4, generator=torch.Generator().manual_seed(seed))(x, y)
        _, perm, (y0, y1, x0, x1) = replay(seed, 1.0, 6, h, w)
        expected = x.clone()
        expected[:, :, y0:y1, x0:x1] = x[perm][:, :, y0:y1, x0:x1]
        assert torch.equal(x_mix, expected)


def test_soft_target_input():
    x = torch.randn(4, 2, 6, 5)
    y = torch.softmax(torch.randn(4, 3), dim=1)
    _x_mix, y_mix = CutMix(3, generator=torch.Generator().manual_seed(1))(x, y)
    _, perm, (y0, y1, x0, x1) = replay(1, 1.0, 4, 6, 5)
    a = (y1 - y0) * (x1 - x0) / 30
    torch.testing.assert_close(y_mix, (1 - a) * y + a * y[perm])


def test_determinism_with_a_fixed_generator():
    x = torch.randn(8, 3, 9, 9)
    y = torch.randint(0, 10, (8,))
    outs = [CutMix(10, generator=torch.Generator().manual_seed(s))(x, y) for s in (4, 4, 5)]
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])
    assert not torch.equal(outs[0][0], outs[2][0])


def test_batch_of_one_is_unmixed_with_one_hot_target():
    x = torch.randn(1, 3, 4, 6)
    x_mix, y_mix = CutMix(4, generator=torch.Generator().manual_seed(0))(x, torch.tensor([2]))
    assert torch.equal(x_mix, x) and x_mix is not x
    assert torch.equal(y_mix, torch.tensor([[0.0, 0, 1, 0]]))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_dtypes_are_kept_and_targets_sum_to_one(dtype):
    x = torch.randn(5, 3, 6, 7).to(dtype)
    x_mix, y_mix = CutMix(4, generator=torch.Generator().manual_seed(0))(x, torch.arange(5) % 4)
    assert x_mix.dtype == dtype and y_mix.dtype == dtype
    tol = 1e-2 if dtype in (torch.float16, torch.bfloat16) else 1e-6
    torch.testing.assert_close(
        y_mix.double().sum(1), torch.ones(5, dtype=torch.float64), rtol=0, atol=tol
    )


def test_gradient_flows_to_the_input():
    x = torch.randn(4, 2, 5, 5, requires_grad=True)
    x_mix, _ = CutMix(2, generator=torch.Generator().manual_seed(0))(x, torch.tensor([0, 1, 0, 1]))
    x_mix.sum().backward()
    # every output pixel comes from exactly one input pixel, and perm is a bijection
    torch.testing.assert_close(x.grad, torch.ones_like(x))


@FAST
@given(
    b=st.integers(1, 7),
    h=st.integers(1, 12),
    w=st.integers(1, 12),
    alpha=st.sampled_from([0.2, 1.0, 2.0]),
    seed=st.integers(0, 2**31 - 1),
)
def test_property_targets_are_pixel_mass_and_sum_to_one(b, h, w, alpha, seed):
    x, y = coded_batch(b, h, w)
    x_mix, y_mix = CutMix(b, alpha=alpha, generator=torch.Generator().manual_seed(seed))(x, y)
    assert x_mix.shape == x.shape and y_mix.shape == (b, b)
    assert torch.isfinite(x_mix).all() and torch.isfinite(y_mix).all()
    torch.testing.assert_close(y_mix.sum(1), torch.ones(b, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(pixel_mass(x_mix), y_mix, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "kwargs, exc, word",
    [
        ({"num_classes": 0}, ValueError, "num_classes"),
        ({"num_classes": 3, "alpha": 0}, ValueError, "alpha"),
        ({"num_classes": 3, "alpha": -2.0}, ValueError, "alpha"),
        ({"num_classes": 3, "alpha": None}, TypeError, "alpha"),
        ({"num_classes": 3, "generator": object()}, TypeError, "generator"),
    ],
)
def test_bad_constructor_arguments(kwargs, exc, word):
    with pytest.raises(exc, match=word):
        CutMix(**kwargs)


def test_bad_call_arguments():
    with pytest.raises(ValueError, match="x"):
        CutMix(3)(torch.zeros(2, 4, 4), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="y"):
        CutMix(3)(torch.zeros(2, 1, 4, 4), torch.tensor([0, 5]))
