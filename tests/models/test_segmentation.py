"""Tests of the fully convolutional model (comixup.models.segmentation)."""

from __future__ import annotations

import pytest
import torch

from comixup import models


def _net(**options):
    torch.manual_seed(0)
    return models.create("preactresnet18_unet", 7, initial_channels=4, **options).eval()


@pytest.mark.parametrize("size, stride", [((32, 32), 1), ((24, 40), 1), ((64, 64), 2)])
def test_per_pixel_logits_at_the_input_size(size, stride):
    net = _net(stem_stride=stride)
    out = net(torch.randn(2, 3, *size))
    assert out.shape == (2, 7, *size)
    assert torch.isfinite(out).all()


def test_output_depends_on_the_local_input_through_the_skips():
    net = _net()
    x = torch.randn(1, 3, 32, 32)
    y = x.clone()
    y[..., :8, :8] += 3.0
    diff = (net(x) - net(y)).abs().sum(1)[0]
    # the top-left corner changes more than the opposite one
    assert diff[:8, :8].mean() > 5 * diff[-8:, -8:].mean()


def test_only_the_input_depth_mixes_and_mix_fn_runs_once():
    net = _net()
    assert net.mix_depths == (0,)
    x = torch.randn(3, 3, 16, 16)
    calls = []

    def first_two(h):
        calls.append(h.shape)
        return h[:2]

    out = net(x, mix_depth=0, mix_fn=first_two)
    assert calls == [(3, 3, 16, 16)]
    assert torch.allclose(out, net(x[:2]), atol=1e-6)
    with pytest.raises(ValueError, match="mix_depth"):
        net(x, mix_depth=1, mix_fn=first_two)


def test_features_and_no_pooled_head():
    net = _net()
    assert net.features(torch.randn(2, 3, 32, 32)).shape == (2, 32, 4, 4)
    with pytest.raises(TypeError, match="skip connections"):
        net.logits_from_features(torch.randn(2, 32, 4, 4))


def test_bad_options_name_the_argument():
    with pytest.raises(ValueError, match="initial_channels"):
        models.create("preactresnet18_unet", 3, initial_channels=0)
    with pytest.raises(ValueError, match="stem_stride"):
        models.create("preactresnet18_unet", 3, stem_stride=3)
