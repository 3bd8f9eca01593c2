"""Tests for comixup.mixers.fmix: FMix (Harris et al., arXiv 2002.12047), checked against a
naive NumPy re-implementation of the reference's mask given the same noise."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from mixer_helpers import coded_batch

from comixup.analysis.host_reads import count_host_reads
from comixup.mixers.fmix import (
    FMix,
    binarise_mask,
    fft_frequencies,
    low_freq_field,
    spectrum_scale,
)
from comixup.mixers.mixup import sample_lambda

FAST = settings(max_examples=25, deadline=None)
SIZES = [(1, 1), (2, 3), (3, 4), (4, 4), (5, 7), (6, 3)]


def numpy_columns(w: int) -> int:
    return len(np.fft.fftfreq(w)[: w // 2 + 2] if w % 2 == 1 else np.fft.fftfreq(w)[: w // 2 + 1])


def numpy_field(h: int, w: int, decay: float, noise: np.ndarray) -> np.ndarray:
    """The reference's make_low_freq_image before its [0, 1] rescaling, written out."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[: numpy_columns(w)]
    freqs = np.sqrt(fx * fx + fy * fy)
    scale = 1.0 / np.maximum(freqs, 1.0 / max(h, w)) ** decay
    spec = scale[None, :, :, None] * noise
    spectrum = spec[..., 0] + 1j * spec[..., 1]
    return np.real(np.fft.irfftn(spectrum, (h, w), axes=(-2, -1)))[0]


def numpy_mask(field: np.ndarray, lam: float, round_up: bool, max_soft: float) -> np.ndarray:
    """The reference's binarise_mask, with ties ordered by flat index (lowest first)."""
    flat = field.reshape(-1)
    idx = np.argsort(-flat, kind="stable")
    n = flat.size
    num = math.ceil(lam * n) if round_up else math.floor(lam * n)
    eff = min(lam, 1 - lam) if (max_soft > lam or max_soft > 1 - lam) else max_soft
    soft = int(n * eff)
    out = np.zeros(n)
    out[idx[: num + soft]] = 1
    out[idx[num - soft:]] = 0
    out[idx[num - soft: num + soft]] = np.linspace(1, 0, 2 * soft)
    return out.reshape(field.shape)


def replay(seed: int, alpha: float, b: int, h: int, w: int):
    g = torch.Generator().manual_seed(seed)
    lam = sample_lambda(alpha, g)
    noise = torch.randn(1, h, numpy_columns(w), 2, generator=g, dtype=torch.float64)
    round_up = float(torch.rand(1, generator=g, dtype=torch.float64)) > 0.5
    perm = torch.randperm(b, generator=g)
    return lam, noise, round_up, perm


# ---------------------------------------------------------------- the spectrum and the field


@pytest.mark.parametrize("h,w", SIZES)
@pytest.mark.parametrize("decay", [0.0, 1.0, 3.0])
def test_spectrum_scale_is_the_reference_formula(h, w, decay):
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[: numpy_columns(w)]
    freqs = np.sqrt(fx * fx + fy * fy)
    np.testing.assert_allclose(fft_frequencies(h, w).numpy(), freqs, rtol=0, atol=1e-15)
    expected = np.ones(1) / np.maximum(freqs, np.array([1.0 / max(w, h)])) ** decay
    np.testing.assert_allclose(spectrum_scale(h, w, decay).numpy(), expected, rtol=1e-13)


def test_spectrum_scale_on_a_3x4_grid_by_hand():
    # rows fftfreq(3) = 0, 1/3, -1/3; columns fftfreq(4)[:3] = 0, 1/4, -1/2; floor 1/4
    f = np.array([[0.0, 0.25, 0.5], [1 / 3, (1 / 9 + 1 / 16) ** 0.5, (1 / 9 + 1 / 4) ** 0.5],
                  [1 / 3, (1 / 9 + 1 / 16) ** 0.5, (1 / 9 + 1 / 4) ** 0.5]])
    expected = 1 / np.maximum(f, 0.25) ** 3
    np.testing.assert_allclose(spectrum_scale(3, 4, 3).numpy(), expected, rtol=1e-13)
    assert spectrum_scale(3, 4, 3)[0, 0] == 64.0  # the DC bin takes the floor 1 / max(H, W)


@pytest.mark.parametrize("h,w", SIZES)
def test_field_matches_numpy_given_the_same_noise(h, w):
    noise = torch.randn(1, h, numpy_columns(w), 2, generator=torch.Generator().manual_seed(h * w),
                        dtype=torch.float64)
    field = low_freq_field(h, w, 3.0, noise=noise)
    assert field.shape == (h, w) and field.dtype == torch.float64
    np.testing.assert_allclose(field.numpy(), numpy_field(h, w, 3.0, noise.numpy()),
                               rtol=1e-10, atol=1e-12)


def test_field_noise_shape_is_checked():
    with pytest.raises(ValueError, match="noise"):
        low_freq_field(4, 5, noise=torch.zeros(1, 4, 3, 2))  # odd width: 4 columns


# ---------------------------------------------------------------- the mask


@FAST
@given(h=st.integers(1, 9), w=st.integers(1, 9), lam=st.floats(0.0, 1.0), up=st.booleans(),
       max_soft=st.sampled_from([0.0, 0.0, 0.1, 0.3, 0.5]), seed=st.integers(0, 2**31 - 1))
def test_mask_is_the_reference_top_of_the_field(h, w, lam, up, max_soft, seed):
    field = low_freq_field(h, w, 3.0, torch.Generator().manual_seed(seed))
    mask = binarise_mask(field, lam, up, max_soft)
    n = h * w
    num = math.ceil(lam * n) if up else math.floor(lam * n)
    np.testing.assert_array_equal(mask.numpy(), numpy_mask(field.numpy(), lam, up, max_soft))
    assert float(mask.sum()) == pytest.approx(num, abs=1e-9)
    if max_soft == 0.0:
        ones = mask == 1
        assert int(ones.sum()) == num and bool(((mask == 0) | ones).all())
        if 0 < num < n:  # the ones are the highest pixels of the field
            assert field[ones].min() >= field[~ones].max()


def test_mask_ties_go_to_the_lowest_index():
    mask = binarise_mask(torch.zeros(2, 3), 0.5, True)
    assert mask.flatten().tolist() == [1, 1, 1, 0, 0, 0]


# ---------------------------------------------------------------- the mixer


@pytest.mark.parametrize("h,w", [(4, 4), (5, 7), (8, 3)])
def test_draws_replay_in_the_reference_order(h, w):
    b, seed = 5, 11
    lam, noise, round_up, perm = replay(seed, 1.0, b, h, w)
    x, y = coded_batch(b, h, w)
    mixer = FMix(b, generator=torch.Generator().manual_seed(seed))
    x_mix, y_mix, p = mixer(x, y, return_info=True)
    assert p.lam == lam and p.round_up == round_up and torch.equal(p.perm, perm)
    field = numpy_field(h, w, 3.0, noise.numpy())
    np.testing.assert_allclose(p.field.numpy(), field, rtol=1e-10, atol=1e-12)
    mask = numpy_mask(p.field.numpy(), lam, round_up, 0.0)
    np.testing.assert_array_equal(p.mask.numpy(), mask)
    m = torch.from_numpy(mask)
    torch.testing.assert_close(x_mix, m * x + (1 - m) * x[perm], rtol=0, atol=0)
    share = mask.sum() / (h * w)
    torch.testing.assert_close(y_mix, share * torch.eye(b, dtype=torch.float64)
                               + (1 - share) * torch.eye(b, dtype=torch.float64)[perm])


@pytest.mark.parametrize("h,w,max_soft", [(6, 6, 0.0), (5, 9, 0.0), (6, 6, 0.2)])
def test_targets_are_the_pixel_shares(h, w, max_soft):
    b = 4
    x, y = coded_batch(b, h, w)
    mixer = FMix(b, max_soft=max_soft, generator=torch.Generator().manual_seed(3))
    x_mix, y_mix, p = mixer(x, y, return_info=True)
    mass = x_mix.sum(dim=(2, 3)) / (h * w)
    torch.testing.assert_close(mass, p.ratios, rtol=0, atol=1e-12)
    torch.testing.assert_close(y_mix, p.ratios, rtol=0, atol=1e-12)  # ratios @ one-hot
    assert p.share == float(p.mask.mean())
    n = h * w
    assert p.share * n == pytest.approx(math.ceil(p.lam * n) if p.round_up
                                        else math.floor(p.lam * n))
    assert abs(p.share - p.lam) < 1 / n + 1e-12


def test_apply_on_any_channel_count():
    b, h, w = 4, 8, 6
    g = torch.Generator().manual_seed(0)
    x = torch.rand(b, 3, h, w, generator=g)
    y = torch.randint(0, 5, (b,), generator=g)
    mixer = FMix(5, generator=torch.Generator().manual_seed(2))
    x_mix, _, p = mixer(x, y, return_info=True)
    stack = torch.cat([x, x[:, :1] * 2, torch.ones(b, 4, h, w)], dim=1)
    out, none = mixer.apply(stack, None, p)
    assert none is None
    torch.testing.assert_close(out[:, :3], x_mix, rtol=0, atol=0)
    torch.testing.assert_close(out[:, 3:4], x_mix[:, :1] * 2, rtol=0, atol=1e-6)
    torch.testing.assert_close(out[:, 4:], torch.ones(b, 4, h, w))
    with pytest.raises(ValueError, match="batch size"):
        mixer.apply(x[:2], None, p)
    with pytest.raises(ValueError, match="image size"):
        mixer.apply(x[..., :4], None, p)


def test_batch_of_one_is_unmixed_and_draws_nothing():
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    x = torch.rand(1, 2, 5, 5)
    x_mix, y_mix, p = FMix(3, generator=g)(x, torch.tensor([2]), return_info=True)
    torch.testing.assert_close(x_mix, x)
    assert y_mix.tolist() == [[0.0, 0.0, 1.0]] and p.ratios.tolist() == [[1.0]]
    assert torch.equal(g.get_state(), state)


def test_determinism_given_the_seed():
    x = torch.rand(6, 3, 9, 7, generator=torch.Generator().manual_seed(0))
    y = torch.arange(6) % 4
    a = FMix(4, alpha=0.5, generator=torch.Generator().manual_seed(9))(x, y)
    b = FMix(4, alpha=0.5, generator=torch.Generator().manual_seed(9))(x, y)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_low_precision_masks_are_exact():
    x, y = coded_batch(3, 8, 8, torch.float16)
    x_mix, y_mix, p = FMix(3, generator=torch.Generator().manual_seed(1))(x, y, return_info=True)
    assert x_mix.dtype == torch.float16 and y_mix.dtype == torch.float16
    mass = x_mix.double().sum(dim=(2, 3)) / 64
    torch.testing.assert_close(mass, p.ratios.double(), rtol=0, atol=1e-12)


def test_no_host_read_of_the_batch():
    x = torch.rand(4, 3, 8, 8)
    y = torch.tensor([0, 1, 2, 1])
    mixer = FMix(3, generator=torch.Generator().manual_seed(0))
    reads = count_host_reads(lambda: mixer(x, y, validate=False), [x, y])
    assert reads.batch == 0


@pytest.mark.parametrize("kw,name", [({"alpha": 0.0}, "alpha"), ({"alpha": "1"}, "alpha"),
                                     ({"decay_power": -1.0}, "decay_power"),
                                     ({"decay_power": float("nan")}, "decay_power"),
                                     ({"max_soft": 0.6}, "max_soft"),
                                     ({"generator": 3}, "generator")])
def test_bad_options_name_the_argument(kw, name):
    with pytest.raises((ValueError, TypeError), match=name):
        FMix(3, **kw)


def test_repr():
    assert repr(FMix(10)) == "FMix(num_classes=10, alpha=1.0, decay_power=3.0, max_soft=0.0)"


# ---------------------------------------------------------------- properties


@FAST
@given(b=st.integers(2, 5), h=st.integers(1, 10), w=st.integers(1, 10),
       alpha=st.sampled_from([0.2, 1.0, 2.0]), max_soft=st.sampled_from([0.0, 0.0, 0.25]),
       seed=st.integers(0, 2**31 - 1))
def test_ratios_rows_sum_to_one_and_targets_are_ratios_times_onehot(b, h, w, alpha, max_soft,
                                                                    seed):
    x, y = coded_batch(b, h, w)
    mixer = FMix(b, alpha=alpha, max_soft=max_soft, generator=torch.Generator().manual_seed(seed))
    x_mix, y_mix, p = mixer(x, y, return_info=True)
    assert p.ratios.shape == (b, b)
    torch.testing.assert_close(p.ratios.sum(1), torch.ones(b, dtype=p.ratios.dtype))
    onehot = torch.eye(b, dtype=torch.float64)[y]
    torch.testing.assert_close(y_mix, p.ratios @ onehot, rtol=0, atol=1e-12)
    torch.testing.assert_close(x_mix.sum(dim=(2, 3)) / (h * w), p.ratios, rtol=0, atol=1e-12)
