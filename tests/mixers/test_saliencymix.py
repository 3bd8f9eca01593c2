"""SaliencyMix: the box on the source's saliency peak, pixel-share targets, the protocol."""

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comixup.mixers.mixup import sample_lambda
from comixup.mixers.saliencymix import SaliencyMix, saliency_box
from comixup.saliency import spectral_residual


def _batch(b=5, h=16, w=12, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, h, w, generator=gen), torch.randint(0, 7, (b,), generator=gen)


def _indicators(b, h, w):
    """(B, B, H, W): channel j of image i is 1 where i == j; mixed, it is each source's mask."""
    return torch.eye(b, dtype=torch.float64)[:, :, None, None].expand(b, b, h, w).contiguous()


def _peak(img):
    quant = torch.floor(spectral_residual(img[None]).double() * 255)
    p = int(quant.flatten().argmax())
    return divmod(p, img.shape[-1])


def test_box_is_centred_on_the_peak_of_the_first_source_and_draws_in_order():
    x, y = _batch()
    mix = SaliencyMix(7, alpha=1.0, generator=torch.Generator().manual_seed(3))
    _, _, p = mix(x, y, return_info=True)
    gen = torch.Generator().manual_seed(3)
    lam = sample_lambda(1.0, gen)
    perm = torch.randperm(5, generator=gen)
    assert p.lam == lam and torch.equal(p.perm, perm)
    cy, cx = _peak(x[perm[0]])
    rat = math.sqrt(1 - lam)
    ch, cw = int(16 * rat), int(12 * rat)
    box = (max(cy - ch // 2, 0), min(cy + ch // 2, 16), max(cx - cw // 2, 0), min(cx + cw // 2, 12))
    assert p.centres == [(cy, cx)] * 5 and p.boxes == [box] * 5
    assert saliency_box(16, 12, lam, cy, cx) == box


def test_box_follows_a_bright_spot_of_the_source():
    x = 0.1 * torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    spots = [(4, 4), (28, 27), (16, 5), (6, 25)]
    for i, (r, c) in enumerate(spots):
        x[i, :, r - 1:r + 2, c - 1:c + 2] = 1.0
    mix = SaliencyMix(3, per_image=True, generator=torch.Generator().manual_seed(0))
    _, _, p = mix(x, torch.zeros(4, dtype=torch.long), return_info=True)
    for i in range(4):
        r, c = spots[int(p.perm[i])]
        cy, cx = p.centres[i]
        assert abs(cy - r) <= 1 and abs(cx - c) <= 1
        assert p.boxes[i] == saliency_box(32, 32, p.lam, cy, cx)


@pytest.mark.parametrize("per_image", [False, True])
def test_ratios_are_the_pixel_shares_and_apply_reproduces_the_call(per_image):
    x, y = _batch(6, 10, 14, seed=2)
    mix = SaliencyMix(7, alpha=0.7, per_image=per_image,
                      generator=torch.Generator().manual_seed(5))
    x_mix, y_mix, p = mix(x, y, return_info=True)
    masks, _ = mix.apply(_indicators(6, 10, 14), None, p)
    torch.testing.assert_close(masks.mean((2, 3)).to(p.ratios.dtype), p.ratios)
    torch.testing.assert_close(p.ratios.sum(1), torch.ones(6))
    onehot = torch.nn.functional.one_hot(y, 7).float()
    torch.testing.assert_close(y_mix, p.ratios @ onehot)
    again, y_again = mix.apply(x, onehot, p)
    assert torch.equal(again, x_mix) and torch.equal(y_again, y_mix)
    for i, (y0, y1, x0, x1) in enumerate(p.boxes):
        assert torch.equal(x_mix[i, :, y0:y1, x0:x1], x[int(p.perm[i]), :, y0:y1, x0:x1])
    # any channel count
    five, _ = mix.apply(torch.rand(6, 5, 10, 14), None, p)
    assert five.shape == (6, 5, 10, 14)


def test_seed_determinism_batch_of_one_and_errors():
    x, y = _batch()
    a = SaliencyMix(7, generator=torch.Generator().manual_seed(9))(x, y)
    b = SaliencyMix(7, generator=torch.Generator().manual_seed(9))(x, y)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    one, y_one = SaliencyMix(7)(x[:1], y[:1])
    assert torch.equal(one, x[:1]) and torch.equal(y_one, torch.eye(7)[y[:1]])
    with pytest.raises(ValueError, match="alpha"):
        SaliencyMix(7, alpha=0.0)
    with pytest.raises(TypeError, match="per_image"):
        SaliencyMix(7, per_image=1)
    with pytest.raises(TypeError, match="saliency"):
        SaliencyMix(7)(x, y, torch.rand(5, 16, 12))
    _, _, p = SaliencyMix(7)(x, y, return_info=True)
    with pytest.raises(ValueError, match="image size"):
        SaliencyMix(7).apply(torch.rand(5, 3, 8, 8), None, p)


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(b=st.integers(2, 5), h=st.integers(1, 9), w=st.integers(1, 9),
       alpha=st.floats(0.05, 4.0), seed=st.integers(0, 2**16), per_image=st.booleans())
def test_property_ratios_rows_sum_to_one_and_targets_follow(b, h, w, alpha, seed, per_image):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(b, 3, h, w, generator=gen)
    y = torch.randint(0, 4, (b,), generator=gen)
    x_mix, y_mix, p = SaliencyMix(4, alpha=alpha, per_image=per_image, generator=gen)(
        x, y, return_info=True)
    assert x_mix.shape == x.shape and bool(torch.isfinite(x_mix).all())
    torch.testing.assert_close(p.ratios.sum(1), torch.ones(b))
    assert bool((p.ratios >= 0).all())
    torch.testing.assert_close(y_mix, p.ratios @ torch.nn.functional.one_hot(y, 4).float())
    masks, _ = SaliencyMix(4).apply(_indicators(b, h, w), None, p)
    torch.testing.assert_close(masks.mean((2, 3)).to(p.ratios.dtype), p.ratios)
