"""Tests of comixup.losses: the two families on labels, soft targets and per-pixel targets."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from comixup.losses import IGNORE_INDEX, clean_loss, one_hot, target_loss


def _logits(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_one_hot_of_labels_and_of_class_maps_with_ignored_pixels():
    assert one_hot(torch.tensor([2, 0]), 3).tolist() == [[0, 0, 1], [1, 0, 0]]
    maps = torch.tensor([[[1, IGNORE_INDEX], [0, 2]]])
    out = one_hot(maps, 3)
    assert out.shape == (1, 3, 2, 2)
    assert out[0, :, 0, 1].tolist() == [0, 0, 0]
    assert out[0, :, 1, 1].tolist() == [0, 0, 1]
    assert out.sum(1).tolist() == [[[1, 0], [1, 1]]]


@pytest.mark.parametrize("family", ["ce", "bce"])
def test_a_class_map_equals_its_one_hot_encoding(family):
    logits = _logits(2, 4, 5, 6)
    maps = torch.randint(0, 4, (2, 5, 6), generator=torch.Generator().manual_seed(1))
    maps[0, 0, :3] = IGNORE_INDEX
    hard = target_loss(logits, maps, family)
    soft = target_loss(logits, one_hot(maps, 4), family)
    assert torch.allclose(hard, soft, atol=1e-6)


def test_dense_losses_equal_the_per_pixel_classification_losses():
    logits = _logits(2, 4, 3, 3)
    maps = torch.randint(0, 4, (2, 3, 3), generator=torch.Generator().manual_seed(2))
    flat_logits = logits.permute(0, 2, 3, 1).reshape(-1, 4)
    for family in ("ce", "bce"):
        dense = target_loss(logits, maps, family)
        flat = target_loss(flat_logits, maps.flatten(), family)
        assert torch.allclose(dense, flat, atol=1e-6), family


def test_ignored_pixels_are_left_out():
    logits = _logits(1, 3, 2, 2)
    maps = torch.tensor([[[0, 1], [2, IGNORE_INDEX]]])
    expected = F.cross_entropy(logits.permute(0, 2, 3, 1).reshape(-1, 3)[:3],
                               torch.tensor([0, 1, 2]))
    for family in ("ce", "bce"):
        changed = logits.clone()
        changed[0, :, 1, 1] = torch.tensor([50.0, -50.0, 0.0])  # the ignored pixel's logits
        assert torch.allclose(target_loss(logits, maps, family),
                              target_loss(changed, maps, family)), family
    assert torch.allclose(target_loss(logits, maps, "ce"), expected, atol=1e-6)
    assert torch.allclose(clean_loss(logits, maps, "ce"), expected, atol=1e-6)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(0.0, 1.0))
def test_a_blended_pixel_target_is_the_blend_of_the_losses(seed, lam):
    logits = _logits(2, 3, 4, 4, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    a, b = (one_hot(torch.randint(0, 3, (2, 4, 4), generator=g), 3) for _ in range(2))
    mixed = target_loss(logits, lam * a + (1 - lam) * b, "ce")
    blend = lam * target_loss(logits, a, "ce") + (1 - lam) * target_loss(logits, b, "ce")
    assert torch.allclose(mixed, blend, atol=1e-5)
