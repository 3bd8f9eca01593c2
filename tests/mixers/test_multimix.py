"""Tests for comixup.mixers.multimix: the multi-input baselines of Co-Mixup Table 4 (recipes 4)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from mixer_helpers import coded_batch

from comixup.mixers.cutmix import CutMix, _box_from_area
from comixup.mixers.dirichlet import sample_weights
from comixup.mixers.mixup import InputMixup
from comixup.mixers.multimix import MultiCutMix, MultiInputMixup

FAST = settings(max_examples=25, deadline=None)


def pixel_mass(x: torch.Tensor) -> torch.Tensor:
    return x.sum(dim=(2, 3)) / (x.shape[2] * x.shape[3])


def replay(seed: int, k: int, alpha: float, b: int):
    """Replay the draws shared by both multi mixers: weights, then k - 1 permutations."""
    g = torch.Generator().manual_seed(seed)
    w = sample_weights(k, alpha, g)
    perms = [torch.arange(b)] + [torch.randperm(b, generator=g) for _ in range(k - 1)]
    return g, w, perms


# ---------------------------------------------------------------- sample_weights


@pytest.mark.parametrize("k", [2, 3, 4, 8])
@pytest.mark.parametrize("alpha", [0.2, 1.0, 2.0])
@pytest.mark.parametrize("seed", [0, 9])
def test_sample_weights_reproduce_torch_dirichlet(k, alpha, seed):
    w = sample_weights(k, alpha, torch.Generator().manual_seed(seed))
    torch.manual_seed(seed)
    ref = torch.distributions.Dirichlet(torch.full((k,), alpha, dtype=torch.float64)).sample()
    assert w.dtype == torch.float64 and w.shape == (k,)
    assert torch.equal(w[:-1], ref[:-1])  # documented: the last entry is 1 - sum(others)
    torch.testing.assert_close(w, ref, rtol=0, atol=1e-12)
    assert (w >= 0).all()
    assert abs(float(w.sum()) - 1.0) < 1e-12


def test_sample_weights_bad_arguments():
    with pytest.raises(ValueError, match="k"):
        sample_weights(1, 1.0)
    with pytest.raises(ValueError, match="alpha"):
        sample_weights(3, -1.0)


# ---------------------------------------------------------------- MultiInputMixup


@pytest.mark.parametrize("k", [2, 3, 4])
@pytest.mark.parametrize("seed", [0, 3])
def test_multi_mixup_targets_are_the_dirichlet_weights_used(k, seed):
    b = 6
    x, y = coded_batch(b, 3, 4)
    x_mix, y_mix = MultiInputMixup(
        b, k=k, alpha=1.0, generator=torch.Generator().manual_seed(seed)
    )(x, y)
    _, w, perms = replay(seed, k, 1.0, b)
    expected_x = sum(float(w[j]) * x[perms[j]] for j in range(k))
    torch.testing.assert_close(x_mix, expected_x, rtol=0, atol=1e-12)
    expected_y = torch.zeros(b, b, dtype=torch.float64)
    for j in range(k):
        expected_y[torch.arange(b), perms[j]] += w[j]
    torch.testing.assert_close(y_mix, expected_y, rtol=0, atol=1e-12)
    torch.testing.assert_close(pixel_mass(x_mix), y_mix, rtol=0, atol=1e-12)


def test_multi_mixup_with_default_generator_follows_torch_dirichlet():
    b, k = 5, 3
    x, y = coded_batch(b, 2, 2)
    torch.manual_seed(21)
    d = torch.distributions.Dirichlet(torch.full((k,), 2.0, dtype=torch.float64)).sample()
    perms = [torch.arange(b)] + [torch.randperm(b) for _ in range(k - 1)]
    torch.manual_seed(21)
    _, y_mix = MultiInputMixup(b, k=k, alpha=2.0)(x, y)
    expected = torch.zeros(b, b, dtype=torch.float64)
    for j in range(k):
        expected[torch.arange(b), perms[j]] += d[j]
    torch.testing.assert_close(y_mix, expected, rtol=0, atol=1e-12)


@FAST
@given(seed=st.integers(0, 2**31 - 1), alpha=st.sampled_from([0.2, 1.0, 2.0]), b=st.integers(2, 6))
def test_k2_mixup_is_input_mixup_bit_for_bit(seed, alpha, b):
    x = torch.randn(b, 2, 3, 5, generator=torch.Generator().manual_seed(seed))
    y = torch.arange(b) % 3
    a = MultiInputMixup(3, k=2, alpha=alpha, generator=torch.Generator().manual_seed(seed))(x, y)
    r = InputMixup(3, alpha=alpha, generator=torch.Generator().manual_seed(seed))(x, y)
    assert torch.equal(a[0], r[0]) and torch.equal(a[1], r[1])


# ---------------------------------------------------------------- MultiCutMix


@pytest.mark.parametrize("k", [2, 3, 4])
@pytest.mark.parametrize("h, w", [(8, 8), (5, 13)])
def test_multi_cutmix_targets_equal_pixel_mass_and_boxes_overlay_in_order(k, h, w):
    b = 5
    overlapped = 0
    for seed in range(15):
        x, y = coded_batch(b, h, w)
        x_mix, y_mix = MultiCutMix(b, k=k, generator=torch.Generator().manual_seed(seed))(x, y)
        g, wts, perms = replay(seed, k, 1.0, b)
        boxes = [_box_from_area(h, w, float(wts[j]), g) for j in range(1, k)]
        expected = x.clone()
        painted = torch.zeros(h, w, dtype=torch.bool)
        for (y0, y1, x0, x1), p in zip(boxes, perms[1:]):
            if painted[y0:y1, x0:x1].any():
                overlapped += 1
            painted[y0:y1, x0:x1] = True
            expected[:, :, y0:y1, x0:x1] = x[p][:, :, y0:y1, x0:x1]
        assert torch.equal(x_mix, expected)  # later boxes on top
        torch.testing.assert_close(pixel_mass(x_mix), y_mix, rtol=0, atol=1e-12)
        torch.testing.assert_close(
            y_mix.sum(1), torch.ones(b, dtype=torch.float64), rtol=0, atol=1e-12
        )
    if k >= 3:
        assert overlapped > 0  # the overlap case was exercised


@FAST
@given(
    seed=st.integers(0, 2**31 - 1),
    alpha=st.sampled_from([0.2, 1.0, 2.0]),
    b=st.integers(2, 6),
    h=st.integers(1, 10),
    w=st.integers(1, 10),
)
def test_k2_cutmix_is_cutmix_bit_for_bit(seed, alpha, b, h, w):
    x = torch.randn(b, 2, h, w, generator=torch.Generator().manual_seed(seed))
    y = torch.arange(b) % 3
    a = MultiCutMix(3, k=2, alpha=alpha, generator=torch.Generator().manual_seed(seed))(x, y)
    r = CutMix(3, alpha=alpha, generator=torch.Generator().manual_seed(seed))(x, y)
    assert torch.equal(a[0], r[0]) and torch.equal(a[1], r[1])


# ---------------------------------------------------------------- shared behaviour


@pytest.mark.parametrize("cls", [MultiInputMixup, MultiCutMix])
def test_determinism_with_a_fixed_generator(cls):
    x = torch.randn(8, 3, 9, 7)
    y = torch.randint(0, 10, (8,))
    outs = [cls(10, k=4, generator=torch.Generator().manual_seed(s))(x, y) for s in (2, 2, 3)]
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])
    assert not torch.equal(outs[0][0], outs[2][0])


@pytest.mark.parametrize("cls", [MultiInputMixup, MultiCutMix])
def test_batch_of_one_is_unmixed_with_one_hot_target(cls):
    x = torch.randn(1, 3, 4, 5)
    x_mix, y_mix = cls(3, k=3, generator=torch.Generator().manual_seed(0))(x, torch.tensor([1]))
    assert torch.equal(x_mix, x) and x_mix is not x
    assert torch.equal(y_mix, torch.tensor([[0.0, 1, 0]]))


@pytest.mark.parametrize("cls", [MultiInputMixup, MultiCutMix])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_dtypes_are_kept_and_targets_sum_to_one(cls, dtype):
    x = torch.randn(5, 3, 6, 7).to(dtype)
    x_mix, y_mix = cls(4, k=3, generator=torch.Generator().manual_seed(0))(x, torch.arange(5) % 4)
    assert x_mix.dtype == dtype and y_mix.dtype == dtype
    tol = 1e-2 if dtype in (torch.float16, torch.bfloat16) else 1e-9
    torch.testing.assert_close(
        y_mix.double().sum(1), torch.ones(5, dtype=torch.float64), rtol=0, atol=tol
    )


@FAST
@given(
    cls=st.sampled_from([MultiInputMixup, MultiCutMix]),
    k=st.integers(2, 8),
    b=st.integers(1, 7),
    h=st.integers(1, 10),
    w=st.integers(1, 10),
    alpha=st.sampled_from([0.2, 1.0, 2.0]),
    seed=st.integers(0, 2**31 - 1),
)
def test_property_targets_are_pixel_mass_and_sum_to_one(cls, k, b, h, w, alpha, seed):
    x, y = coded_batch(b, h, w)
    x_mix, y_mix = cls(b, k=k, alpha=alpha, generator=torch.Generator().manual_seed(seed))(x, y)
    assert x_mix.shape == x.shape and y_mix.shape == (b, b)
    assert torch.isfinite(x_mix).all() and torch.isfinite(y_mix).all()
    assert (y_mix >= 0).all()
    torch.testing.assert_close(y_mix.sum(1), torch.ones(b, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(pixel_mass(x_mix), y_mix, rtol=0, atol=1e-12)


@pytest.mark.parametrize("cls", [MultiInputMixup, MultiCutMix])
@pytest.mark.parametrize(
    "kwargs, exc, word",
    [
        ({"num_classes": 0}, ValueError, "num_classes"),
        ({"num_classes": 3, "k": 1}, ValueError, "k"),
        ({"num_classes": 3, "k": 9}, ValueError, "k"),
        ({"num_classes": 3, "k": 2.0}, TypeError, "k"),
        ({"num_classes": 3, "k": True}, TypeError, "k"),
        ({"num_classes": 3, "alpha": 0.0}, ValueError, "alpha"),
        ({"num_classes": 3, "alpha": float("nan")}, ValueError, "alpha"),
        ({"num_classes": 3, "generator": 1}, TypeError, "generator"),
    ],
)
def test_bad_constructor_arguments(cls, kwargs, exc, word):
    with pytest.raises(exc, match=word):
        cls(**kwargs)


@pytest.mark.parametrize("cls", [MultiInputMixup, MultiCutMix])
def test_bad_call_arguments(cls):
    with pytest.raises(TypeError, match="x"):
        cls(3)(torch.zeros(2, 1, 4, 4, dtype=torch.int32), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="y"):
        cls(3)(torch.zeros(2, 1, 4, 4), torch.tensor([0, 1, 2]))
