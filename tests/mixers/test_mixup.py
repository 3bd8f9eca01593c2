"""Tests for comixup.mixers.mixup: Input Mixup (Zhang et al., ICLR 2018; recipes 4)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from mixer_helpers import coded_batch

from comixup.mixers.mixup import InputMixup, mix_pair, sample_lambda

FAST = settings(max_examples=25, deadline=None)


def pixel_mass(x: torch.Tensor) -> torch.Tensor:
    """Share of each channel in each image: (B, C)."""
    return x.sum(dim=(2, 3)) / (x.shape[2] * x.shape[3])


# ---------------------------------------------------------------- sample_lambda


@pytest.mark.parametrize("alpha", [0.2, 1.0, 2.0])
@pytest.mark.parametrize("seed", [0, 1, 7])
def test_sample_lambda_reproduces_torch_beta(alpha, seed):
    lam = sample_lambda(alpha, torch.Generator().manual_seed(seed))
    torch.manual_seed(seed)
    a = torch.tensor(alpha, dtype=torch.float64)
    ref = torch.distributions.Beta(a, a).sample()
    assert lam == float(ref)
    assert 0.0 <= lam <= 1.0


def test_sample_lambda_default_generator_follows_manual_seed():
    torch.manual_seed(3)
    a = sample_lambda(1.0)
    torch.manual_seed(3)
    assert sample_lambda(1.0) == a


# ---------------------------------------------------------------- mix_pair


def test_mix_pair_is_the_convex_combination():
    x = torch.randn(5, 3, 4, 4)
    perm = torch.tensor([2, 0, 1, 4, 3])
    out = mix_pair(x, perm, 0.3)
    assert torch.equal(out, 0.3 * x + 0.7 * x[perm])
    assert torch.equal(mix_pair(x, perm, 1.0), x)
    assert torch.equal(mix_pair(x, perm, 0.0), x[perm])


def test_mix_pair_works_on_hidden_states_of_any_rank():
    h = torch.randn(4, 7)
    perm = torch.tensor([1, 0, 3, 2])
    assert torch.equal(mix_pair(h, perm, 0.25), 0.25 * h + 0.75 * h[perm])


@pytest.mark.parametrize(
    "args, exc, word",
    [
        (("x", torch.arange(2), 0.5), TypeError, "x"),
        ((torch.zeros(2, 3, dtype=torch.long), torch.arange(2), 0.5), ValueError, "x"),
        ((torch.zeros(2, 3), [1, 0], 0.5), TypeError, "perm"),
        ((torch.zeros(2, 3), torch.arange(3), 0.5), ValueError, "perm"),
        ((torch.zeros(2, 3), torch.tensor([1.0, 0.0]), 0.5), TypeError, "perm"),
        ((torch.zeros(2, 3), torch.arange(2), 1.5), ValueError, "lam"),
        ((torch.zeros(2, 3), torch.arange(2), -0.1), ValueError, "lam"),
        ((torch.zeros(2, 3), torch.arange(2), "0.5"), TypeError, "lam"),
    ],
)
def test_mix_pair_bad_arguments(args, exc, word):
    with pytest.raises(exc, match=word):
        mix_pair(*args)


# ---------------------------------------------------------------- InputMixup


@pytest.mark.parametrize("alpha", [0.2, 1.0, 2.0])
@pytest.mark.parametrize("seed", [0, 5])
def test_output_is_exactly_the_convex_combination(alpha, seed):
    x = torch.randn(6, 3, 5, 7)
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    x_mix, y_mix = InputMixup(5, alpha=alpha, generator=torch.Generator().manual_seed(seed))(x, y)
    g = torch.Generator().manual_seed(seed)  # replay the draws: lambda, then the permutation
    lam = sample_lambda(alpha, g)
    perm = torch.randperm(6, generator=g)
    assert torch.equal(x_mix, lam * x + (1 - lam) * x[perm])
    onehot = torch.nn.functional.one_hot(y, 5).float()
    assert torch.equal(y_mix, lam * onehot + (1 - lam) * onehot[perm])


@pytest.mark.parametrize("seed", range(5))
def test_targets_equal_pixel_mass_of_each_source(seed):
    x, y = coded_batch(6)
    x_mix, y_mix = InputMixup(6, generator=torch.Generator().manual_seed(seed))(x, y)
    torch.testing.assert_close(pixel_mass(x_mix), y_mix, rtol=0, atol=1e-12)


def test_soft_target_input_is_mixed_with_the_same_weights():
    x = torch.randn(4, 2, 3, 3)
    y = torch.softmax(torch.randn(4, 3), dim=1)
    _x_mix, y_mix = InputMixup(3, generator=torch.Generator().manual_seed(2))(x, y)
    g = torch.Generator().manual_seed(2)
    lam = sample_lambda(1.0, g)
    perm = torch.randperm(4, generator=g)
    torch.testing.assert_close(y_mix, lam * y + (1 - lam) * y[perm])


def test_determinism_with_a_fixed_generator():
    x = torch.randn(8, 3, 6, 6)
    y = torch.randint(0, 10, (8,))
    a = InputMixup(10, generator=torch.Generator().manual_seed(11))(x, y)
    b = InputMixup(10, generator=torch.Generator().manual_seed(11))(x, y)
    c = InputMixup(10, generator=torch.Generator().manual_seed(12))(x, y)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_generator_advances_between_calls():
    mixer = InputMixup(10, generator=torch.Generator().manual_seed(0))
    x = torch.randn(8, 3, 6, 6)
    y = torch.randint(0, 10, (8,))
    assert not torch.equal(mixer(x, y)[0], mixer(x, y)[0])


def test_batch_of_one_is_unmixed_with_one_hot_target():
    x = torch.randn(1, 3, 4, 4)
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    x_mix, y_mix = InputMixup(5, generator=g)(x, torch.tensor([3]))
    assert torch.equal(x_mix, x) and x_mix is not x
    assert torch.equal(y_mix, torch.tensor([[0.0, 0, 0, 1, 0]]))
    assert torch.equal(g.get_state(), state)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_dtypes_are_kept_and_targets_sum_to_one(dtype):
    x = torch.randn(5, 3, 4, 4).to(dtype)
    x_mix, y_mix = InputMixup(4, generator=torch.Generator().manual_seed(0))(x, torch.arange(5) % 4)
    assert x_mix.dtype == dtype and y_mix.dtype == dtype
    assert x_mix.shape == x.shape and y_mix.shape == (5, 4)
    tol = 1e-2 if dtype in (torch.float16, torch.bfloat16) else 1e-6
    torch.testing.assert_close(
        y_mix.double().sum(1), torch.ones(5, dtype=torch.float64), rtol=0, atol=tol
    )


def test_gradient_flows_to_the_input():
    x = torch.randn(4, 2, 3, 3, requires_grad=True)
    x_mix, _ = InputMixup(2, generator=torch.Generator().manual_seed(0))(
        x, torch.tensor([0, 1, 0, 1])
    )
    x_mix.sum().backward()
    torch.testing.assert_close(x.grad, torch.ones_like(x))


@FAST
@given(
    b=st.integers(1, 9),
    c=st.integers(1, 4),
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    alpha=st.sampled_from([0.2, 1.0, 2.0, 0.05]),
    seed=st.integers(0, 2**31 - 1),
)
def test_property_targets_sum_to_one_and_outputs_finite(b, c, h, w, alpha, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(b, c, h, w, generator=gen)
    y = torch.randint(0, 7, (b,), generator=gen)
    x_mix, y_mix = InputMixup(7, alpha=alpha, generator=gen)(x, y)
    assert x_mix.shape == x.shape and y_mix.shape == (b, 7)
    assert torch.isfinite(x_mix).all() and torch.isfinite(y_mix).all()
    assert (y_mix >= 0).all()
    torch.testing.assert_close(y_mix.sum(1), torch.ones(b), rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, exc, word",
    [
        ({"num_classes": 0}, ValueError, "num_classes"),
        ({"num_classes": 2.0}, TypeError, "num_classes"),
        ({"num_classes": 3, "alpha": 0.0}, ValueError, "alpha"),
        ({"num_classes": 3, "alpha": -1.0}, ValueError, "alpha"),
        ({"num_classes": 3, "alpha": math.nan}, ValueError, "alpha"),
        ({"num_classes": 3, "alpha": math.inf}, ValueError, "alpha"),
        ({"num_classes": 3, "alpha": "1"}, TypeError, "alpha"),
        ({"num_classes": 3, "alpha": True}, TypeError, "alpha"),
        ({"num_classes": 3, "generator": 0}, TypeError, "generator"),
    ],
)
def test_bad_constructor_arguments(kwargs, exc, word):
    with pytest.raises(exc, match=word):
        InputMixup(**kwargs)


def test_sample_lambda_bad_arguments():
    with pytest.raises(ValueError, match="alpha"):
        sample_lambda(0.0)
    with pytest.raises(TypeError, match="generator"):
        sample_lambda(1.0, generator="g")


@pytest.mark.parametrize(
    "x, y, exc, word",
    [
        (torch.zeros(2, 3, 4), torch.tensor([0, 1]), ValueError, "x"),
        (torch.zeros(2, 1, 3, 3, dtype=torch.int64), torch.tensor([0, 1]), TypeError, "x"),
        (torch.zeros(0, 1, 3, 3), torch.zeros(0, dtype=torch.long), ValueError, "x"),
        (torch.zeros(2, 1, 3, 3), torch.tensor([0, 3]), ValueError, "y"),
        (torch.zeros(2, 1, 3, 3), torch.tensor([0, 1, 2]), ValueError, "y"),
        (torch.zeros(2, 1, 3, 3), torch.tensor([0.0, 1.0]), TypeError, "y"),
        (torch.zeros(2, 1, 3, 3), torch.full((2, 3), 0.5), ValueError, "y"),
    ],
)
def test_bad_call_arguments(x, y, exc, word):
    with pytest.raises(exc, match=word):
        InputMixup(3)(x, y)
