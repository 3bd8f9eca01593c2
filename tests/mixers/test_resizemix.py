"""Tests for comixup.mixers.resizemix: ResizeMix (Qin et al., arXiv 2012.11101), the pasted
patch checked against F.interpolate by hand."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from mixer_helpers import coded_batch

from comixup.analysis.host_reads import count_host_reads
from comixup.mixers.resizemix import ResizeMix, resize_box

FAST = settings(max_examples=25, deadline=None)


def replay(seed: int, b: int, h: int, w: int, lo: float = 0.1, hi: float = 0.8):
    """OpenMixup's order: permutation, tau, centre column, centre row."""
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(b, generator=g)
    tau = lo + (hi - lo) * float(torch.rand(1, generator=g, dtype=torch.float64))
    cx = int(torch.randint(0, w, (1,), generator=g))
    cy = int(torch.randint(0, h, (1,), generator=g))
    return perm, tau, cy, cx


def test_resize_box_geometry():
    assert resize_box(10, 10, 0.5, 5, 5) == (3, 8, 3, 8)  # exactly 5 x 5, centred
    assert resize_box(10, 10, 0.5, 0, 9) == (0, 3, 7, 10)  # clipped at two borders
    assert resize_box(8, 12, 0.25, 4, 6) == (3, 5, 5, 8)  # 2 x 3 on a non-square image
    assert resize_box(4, 4, 0.1, 2, 2) == (2, 2, 2, 2)  # int(0.4) = 0: empty


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
@pytest.mark.parametrize("h,w,seed", [(16, 16, 0), (12, 20, 5), (9, 7, 3), (32, 32, 8)])
def test_pasted_region_is_the_resized_source(mode, h, w, seed):
    b = 5
    x = torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(100 + seed))
    y = torch.arange(b) % 3
    perm, tau, cy, cx = replay(seed, b, h, w)
    mixer = ResizeMix(3, interpolation=mode, generator=torch.Generator().manual_seed(seed))
    x_mix, y_mix, p = mixer(x, y, return_info=True)
    assert torch.equal(p.perm, perm) and p.tau == tau
    y0, y1, x0, x1 = resize_box(h, w, tau, cy, cx)
    assert p.box == (y0, y1, x0, x1)
    assert (y1 - y0, x1 - x0) == (min(y1, h) - y0, min(x1, w) - x0)
    assert y1 - y0 <= int(h * tau) and x1 - x0 <= int(w * tau)
    expected = x.clone()
    if y1 > y0 and x1 > x0:
        kw = {"align_corners": False} if mode == "bilinear" else {}
        expected[:, :, y0:y1, x0:x1] = F.interpolate(x[perm], size=(y1 - y0, x1 - x0),
                                                     mode=mode, **kw)
    torch.testing.assert_close(x_mix, expected, rtol=0, atol=0)
    share = (y1 - y0) * (x1 - x0) / (h * w)
    assert p.share == share
    onehot = torch.eye(3, dtype=torch.float32)[y]
    torch.testing.assert_close(y_mix, (1 - share) * onehot + share * onehot[perm])


@pytest.mark.parametrize("seed,box,rows,cols", [(4, (0, 2, 0, 2), [0, 2], [0, 2]),
                                                (0, (2, 4, 0, 1), [0, 2], [0])])
def test_nearest_on_a_tiny_input_by_hand(seed, box, rows, cols):
    # 2 images of 4 x 4, tau 0.5: a 2 x 2 box (seed 4), or one clipped to 2 x 1 (seed 0) into
    # which the whole source is squeezed; nearest keeps source rows / columns 0 and 2
    x = torch.arange(32, dtype=torch.float64).reshape(2, 1, 4, 4)
    mixer = ResizeMix(1, tau_min=0.5, tau_max=0.5, generator=torch.Generator().manual_seed(seed))
    x_mix, _, p = mixer(x, torch.zeros(2, dtype=torch.long), return_info=True)
    assert p.box == box
    y0, y1, x0, x1 = box
    src = x[p.perm][:, 0]
    torch.testing.assert_close(x_mix[:, 0, y0:y1, x0:x1], src[:, rows][:, :, cols])
    assert p.share == (y1 - y0) * (x1 - x0) / 16


@pytest.mark.parametrize("h,w", [(8, 8), (10, 6)])
def test_targets_are_the_pixel_shares_with_nearest(h, w):
    b = 4
    x, y = coded_batch(b, h, w)
    mixer = ResizeMix(b, generator=torch.Generator().manual_seed(2))
    x_mix, y_mix, p = mixer(x, y, return_info=True)
    mass = x_mix.sum(dim=(2, 3)) / (h * w)
    torch.testing.assert_close(mass, p.ratios, rtol=0, atol=1e-12)
    torch.testing.assert_close(y_mix, p.ratios, rtol=0, atol=1e-12)


def test_apply_on_any_channel_count():
    b, h, w = 4, 12, 10
    x = torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(0))
    mixer = ResizeMix(5, generator=torch.Generator().manual_seed(4))
    x_mix, _, p = mixer(x, torch.tensor([0, 1, 2, 3]), return_info=True)
    masks = (torch.rand(b, 7, h, w, generator=torch.Generator().manual_seed(1)) > 0.5).double()
    stack = torch.cat([x.double(), masks], dim=1)
    out, none = mixer.apply(stack, None, p)
    assert none is None
    torch.testing.assert_close(out[:, :3].float(), x_mix, rtol=0, atol=1e-6)
    assert set(out[:, 3:].unique().tolist()) <= {0.0, 1.0}  # nearest keeps masks binary
    with pytest.raises(ValueError, match="batch size"):
        mixer.apply(x[:3], None, p)
    with pytest.raises(ValueError, match="image size"):
        mixer.apply(x[..., :8], None, p)


def test_empty_box_pastes_nothing():
    x = torch.rand(3, 2, 4, 4)
    mixer = ResizeMix(3, tau_min=0.1, tau_max=0.2, generator=torch.Generator().manual_seed(0))
    x_mix, y_mix, p = mixer(x, torch.tensor([0, 1, 2]), return_info=True)
    assert p.share == 0.0
    torch.testing.assert_close(x_mix, x, rtol=0, atol=0)
    torch.testing.assert_close(y_mix, torch.eye(3))


def test_batch_of_one_is_unmixed_and_draws_nothing():
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    x = torch.rand(1, 3, 8, 8)
    x_mix, y_mix, p = ResizeMix(2, generator=g)(x, torch.tensor([1]), return_info=True)
    torch.testing.assert_close(x_mix, x)
    assert y_mix.tolist() == [[0.0, 1.0]] and p.ratios.tolist() == [[1.0]]
    assert torch.equal(g.get_state(), state)


def test_determinism_given_the_seed():
    x = torch.rand(6, 3, 16, 12, generator=torch.Generator().manual_seed(0))
    y = torch.arange(6) % 4
    a = ResizeMix(4, interpolation="bilinear", generator=torch.Generator().manual_seed(9))(x, y)
    b = ResizeMix(4, interpolation="bilinear", generator=torch.Generator().manual_seed(9))(x, y)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision(dtype):
    x, y = coded_batch(3, 16, 16, dtype)
    x_mix, y_mix, p = ResizeMix(3, generator=torch.Generator().manual_seed(1))(
        x, y, return_info=True)
    assert x_mix.dtype == dtype and y_mix.dtype == dtype
    torch.testing.assert_close(x_mix.double().sum(dim=(2, 3)) / 256, p.ratios.double(),
                               rtol=0, atol=1e-12)


def test_no_host_read_of_the_batch():
    x = torch.rand(4, 3, 16, 16)
    y = torch.tensor([0, 1, 2, 1])
    mixer = ResizeMix(3, generator=torch.Generator().manual_seed(0))
    reads = count_host_reads(lambda: mixer(x, y, validate=False), [x, y])
    assert reads.batch == 0


@pytest.mark.parametrize("kw,name", [({"tau_min": -0.1}, "tau_min"), ({"tau_max": 1.5}, "tau_max"),
                                     ({"tau_min": 0.5, "tau_max": 0.4}, "tau_max"),
                                     ({"tau_min": "0.1"}, "tau_min"),
                                     ({"interpolation": "bicubic"}, "interpolation"),
                                     ({"generator": 1}, "generator")])
def test_bad_options_name_the_argument(kw, name):
    with pytest.raises((ValueError, TypeError), match=name):
        ResizeMix(3, **kw)


def test_repr():
    assert repr(ResizeMix(10)) == ("ResizeMix(num_classes=10, tau_min=0.1, tau_max=0.8, "
                                   "interpolation='nearest')")


@FAST
@given(b=st.integers(2, 5), h=st.integers(1, 24), w=st.integers(1, 24),
       mode=st.sampled_from(["nearest", "bilinear"]), seed=st.integers(0, 2**31 - 1))
def test_ratios_rows_sum_to_one_and_targets_are_ratios_times_onehot(b, h, w, mode, seed):
    x, y = coded_batch(b, h, w)
    mixer = ResizeMix(b, interpolation=mode, generator=torch.Generator().manual_seed(seed))
    x_mix, y_mix, p = mixer(x, y, return_info=True)
    torch.testing.assert_close(p.ratios.sum(1), torch.ones(b, dtype=p.ratios.dtype))
    onehot = torch.eye(b, dtype=torch.float64)[y]
    torch.testing.assert_close(y_mix, p.ratios @ onehot, rtol=0, atol=1e-12)
    y0, y1, x0, x1 = p.box
    assert p.share == (y1 - y0) * (x1 - x0) / (h * w) and 0.1 <= p.tau <= 0.8
    if mode == "nearest":  # a resized one-hot image stays one-hot: pixel mass is exact
        torch.testing.assert_close(x_mix.sum(dim=(2, 3)) / (h * w), p.ratios, rtol=0,
                                   atol=1e-12)
