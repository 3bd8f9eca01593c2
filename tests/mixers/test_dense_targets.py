"""Dense (per-pixel) and multi-label targets through every mixer.

The images are the one-hot codes of the class maps, so the mixed image itself says, pixel by
pixel, which sources went where: the dense targets must equal it. Independent checks rebuild
the expected per-pixel targets from the returned parameters (weights, boxes, masks, cells,
transport plans) without calling the mixer's ``apply``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from mixer_helpers import TinyNet

import comixup.mixers as mixers
from comixup.mixers import InputMixup, PuzzleMix, dense_targets
from comixup.saliency import realistic_saliency

K = 5
B = 4
SIZE = 16
IGNORE = -100
MANIFOLD = ("manifold", "manifold3", "manifold4")
NAMES = [n for n in mixers.names() if n not in MANIFOLD]
FAST = settings(max_examples=25, deadline=None)


def class_maps(b: int = B, size: int = SIZE, k: int = K, seed: int = 0, ignore: bool = True
               ) -> torch.Tensor:
    """``(b, size, size)`` int64 maps: a background class, three rectangles of other classes
    (so boundaries exist) and, with ``ignore``, one rectangle of ignored pixels."""
    g = torch.Generator().manual_seed(seed)
    maps = torch.randint(0, k, (b, 1, 1), generator=g).expand(b, size, size).clone()
    for i in range(b):
        for r in range(4 if ignore else 3):
            y0, x0 = torch.randint(0, size - 2, (2,), generator=g).tolist()
            hh, ww = torch.randint(2, size // 2 + 1, (2,), generator=g).tolist()
            label = IGNORE if r == 3 else int(torch.randint(0, k, (1,), generator=g))
            maps[i, y0:y0 + hh, x0:x0 + ww] = label
    return maps


def saliency(b: int = B, size: int = SIZE, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, size, size, generator=g) ** 2


def build(name: str, seed: int = 0):
    options = {"workers": 1} if name in ("puzzlemix", "comixup") else {}
    return mixers.create(name, K, generator=torch.Generator().manual_seed(seed), **options)


def call(mixer, x, y, sal, **kw):
    args = (x, y, sal) if mixer.uses_saliency else (x, y)
    return mixer(*args, return_info=True, **kw)


def mixed_with_codes(name: str, seed: int = 0):
    """Mix the one-hot codes of class maps with the maps as targets."""
    maps = class_maps(seed=seed)
    codes = dense_targets(maps, K)
    mixer = build(name, seed)
    x_mix, y_mix, params = call(mixer, codes, maps, saliency(seed=seed + 1))
    return maps, codes, x_mix, y_mix, params


# ------------------------------------------------------------------------------------------------
# dense targets follow the image, for every mixer
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("seed", [0, 1])
def test_dense_targets_equal_the_mixed_one_hot_image(name, seed):
    _, _, x_mix, y_mix, _ = mixed_with_codes(name, seed)
    assert y_mix.shape == (B, K, SIZE, SIZE) and y_mix.dtype == torch.float32
    torch.testing.assert_close(y_mix, x_mix, atol=1e-6, rtol=0)
    mass = y_mix.sum(1)
    assert bool((mass >= -1e-6).all()) and bool((mass <= 1 + 1e-6).all())
    # where the mixed pixel is one-hot, the target is that class; elsewhere the blend weights
    one_hot = (x_mix.amax(1) == 1) & ((x_mix.sum(1) - 1).abs() < 1e-6)
    assert torch.equal(x_mix.argmax(1)[one_hot], y_mix.argmax(1)[one_hot])
    assert bool(((y_mix.amax(1) - 1).abs()[one_hot] < 1e-6).all())
    blended = ~one_hot & (mass > 1e-6)
    torch.testing.assert_close(y_mix.permute(0, 2, 3, 1)[blended],
                               x_mix.permute(0, 2, 3, 1)[blended], atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_ignored_pixels_carry_no_mass(name):
    maps, _, _, y_mix, params = mixed_with_codes(name, 2)
    ignored = (maps == IGNORE).float()[:, None]
    mixer = build(name)
    # the share of ignored sources at every mixed pixel, through the drawn parameters
    lost = mixer.apply(ignored, None, params)[0][:, 0]
    assert bool((maps == IGNORE).any())
    torch.testing.assert_close(y_mix.sum(1), 1 - lost, atol=1e-6, rtol=0)


def test_identity_keeps_ignored_pixels_empty():
    maps, _, _, y_mix, _ = mixed_with_codes("vanilla")
    assert bool((y_mix.sum(1)[maps == IGNORE] == 0).all())
    assert bool((y_mix.sum(1)[maps != IGNORE] == 1).all())


# ------------------------------------------------------------------------------------------------
# independent checks from the parameters
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mixup", "mixup3", "mixup4"])
def test_input_mixup_blends_the_pixels_by_the_weights(name):
    _, codes, _, y_mix, p = mixed_with_codes(name, 3)
    expected = p.weights[0] * codes
    for w, perm in zip(p.weights[1:], p.perms):
        expected = expected + w * codes[perm]
    torch.testing.assert_close(y_mix, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", ["cutmix", "cutmix3"])
def test_cutmix_pastes_the_source_labels_inside_the_boxes(name):
    _, codes, _, y_mix, p = mixed_with_codes(name, 4)
    expected = codes.clone()
    for (y0, y1, x0, x1), perm in zip(p.boxes, p.perms):
        expected[:, :, y0:y1, x0:x1] = codes[perm][:, :, y0:y1, x0:x1]
    assert torch.equal(y_mix, expected)


@pytest.mark.parametrize("max_soft", [0.0, 0.2])
def test_fmix_takes_the_mask(max_soft):
    maps = class_maps(seed=5)
    codes = dense_targets(maps, K)
    mixer = mixers.create("fmix", K, max_soft=max_soft,
                          generator=torch.Generator().manual_seed(5))
    x_mix, y_mix, p = mixer(codes, maps, return_info=True)
    torch.testing.assert_close(y_mix, x_mix, atol=1e-6, rtol=0)
    mask = p.mask.float()
    binary = set(mask.unique().tolist()) <= {0.0, 1.0}
    assert binary == (max_soft == 0)   # a soft edge blends the labels
    torch.testing.assert_close(y_mix, mask * codes + (1 - mask) * codes[p.perm], atol=1e-6,
                               rtol=0)


def test_saliencymix_pastes_the_box():
    _, codes, _, y_mix, p = mixed_with_codes("saliencymix", 6)
    expected = codes.clone()
    for i, (y0, y1, x0, x1) in enumerate(p.boxes):
        expected[i, :, y0:y1, x0:x1] = codes[p.perm[i], :, y0:y1, x0:x1]
    assert torch.equal(y_mix, expected)


def test_guidedmixup_blends_by_the_pixel_mask():
    _, codes, _, y_mix, p = mixed_with_codes("guidedmixup-sr", 7)
    m = p.mask[:, None]
    torch.testing.assert_close(y_mix, m * codes + (1 - m) * codes[p.perm], atol=1e-6, rtol=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_comixup_gives_each_cell_its_sources_and_weights(seed):
    _, codes, _, y_mix, p = mixed_with_codes("comixup", seed)
    g = p.grid
    block = SIZE // g
    index = p.index.repeat_interleave(block, 1).repeat_interleave(block, 2)   # (B, H, W, 2)
    weight = p.weight.repeat_interleave(block, 1).repeat_interleave(block, 2)
    pix = codes.permute(0, 2, 3, 1)                                             # (B, H, W, K)
    rows = torch.arange(SIZE).view(1, SIZE, 1)
    cols = torch.arange(SIZE).view(1, 1, SIZE)
    expected = sum(weight[..., s, None].float() * pix[index[..., s], rows, cols]
                   for s in range(index.shape[-1]))
    torch.testing.assert_close(y_mix, expected.permute(0, 3, 1, 2), atol=1e-6, rtol=0)


def transported(t: torch.Tensor, src: torch.Tensor, t_size: int) -> torch.Tensor:
    """Block ``j`` of image ``b`` takes block ``src[b, j]`` (``-1``: stays), by loops."""
    out = t.clone()
    grid = t.shape[-1] // t_size
    for b in range(t.shape[0]):
        for j, i in enumerate(src[b].tolist()):
            if i < 0:
                continue
            (jr, jc), (ir, ic) = divmod(j, grid), divmod(i, grid)
            out[b, :, jr * t_size:(jr + 1) * t_size, jc * t_size:(jc + 1) * t_size] = \
                t[b, :, ir * t_size:(ir + 1) * t_size, ic * t_size:(ic + 1) * t_size]
    return out


def puzzle_with_codes(seed: int, transport: bool):
    """Puzzle Mix of 32x32 one-hot codes on peaked saliency; a low distance weight ``t_eps``
    so that the transport moves blocks."""
    maps = class_maps(b=6, size=32, seed=seed)
    codes = dense_targets(maps, K)
    sal = torch.from_numpy(realistic_saliency(6, 32, rng=np.random.default_rng(seed))).float()
    mixer = PuzzleMix(K, grid=4, t_eps=0.2, transport=transport, workers=1,
                      generator=torch.Generator().manual_seed(seed))
    x_mix, y_mix, p = mixer(codes, maps, sal, return_info=True)
    torch.testing.assert_close(y_mix, x_mix, atol=1e-6, rtol=0)
    return codes, y_mix, p


@pytest.mark.parametrize("transport", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_puzzlemix_transports_the_labels_then_blends_by_the_mask(transport, seed):
    codes, y_mix, p = puzzle_with_codes(seed, transport)
    assert set(p.mask.unique().tolist()) <= {0.0, 0.5, 1.0}
    m = p.mask.repeat_interleave(p.block, 1).repeat_interleave(p.block, 2)[:, None].float()
    x1, x2 = codes, codes[p.perm]
    if transport:
        own = torch.arange(p.src1.shape[1])
        moves = ((p.src1 >= 0) & (p.src1 != own)).sum() + ((p.src2 >= 0) & (p.src2 != own)).sum()
        assert int(moves) > 0  # the check is not vacuous: labels move
        x1, x2 = transported(x1, p.src1, p.t_size), transported(x2, p.src2, p.t_size)
        # without the transport the targets would differ
        assert not torch.allclose(y_mix, m * codes + (1 - m) * codes[p.perm])
    torch.testing.assert_close(y_mix, m * x1 + (1 - m) * x2, atol=1e-6, rtol=0)


def test_resizemix_nearest_pastes_resized_labels():
    _, codes, _, y_mix, p = mixed_with_codes("resizemix", 8)
    y0, y1, x0, x1 = p.box
    expected = codes.clone()
    expected[:, :, y0:y1, x0:x1] = F.interpolate(codes[p.perm], size=(y1 - y0, x1 - x0),
                                                 mode="nearest")
    assert torch.equal(y_mix, expected)
    assert bool(((y_mix.amax(1) == 1) | (y_mix.sum(1) == 0)).all())  # nearest keeps one-hot


# ------------------------------------------------------------------------------------------------
# the kinds of targets
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", mixers.names())
def test_distributions_give_what_the_class_map_gives(name):
    maps = class_maps(seed=9)
    x = torch.rand(B, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(9))
    sal = saliency(seed=10)
    x1, y1, _ = call(build(name, 3), x, maps, sal)
    x2, y2, _ = call(build(name, 3), x, dense_targets(maps, K), sal)
    assert torch.equal(x1, x2)
    torch.testing.assert_close(y1, y2, atol=0, rtol=0)


@pytest.mark.parametrize("name", mixers.names())
def test_dense_targets_change_no_draw(name):
    maps = class_maps(seed=11)
    labels = torch.randint(0, K, (B,), generator=torch.Generator().manual_seed(11))
    x = torch.rand(B, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(12))
    sal = saliency(seed=13)
    x1, y1, p1 = call(build(name, 5), x, labels, sal)
    x2, y2, p2 = call(build(name, 5), x, maps, sal)
    assert torch.equal(x1, x2)
    assert torch.equal(p1.ratios, p2.ratios)
    # apply_targets mixes masks next to labels with the parameters of the labels' call
    mixer = build(name, 5)
    torch.testing.assert_close(mixer.apply_targets(dense_targets(maps, K), p1), y2, atol=0,
                               rtol=0)
    onehot = F.one_hot(labels, K).float()
    torch.testing.assert_close(mixer.apply_targets(onehot, p1), y1, atol=1e-6, rtol=0)


def test_batch_of_one_keeps_its_dense_targets():
    maps = class_maps(b=1, seed=14)
    for name in NAMES:
        _, y_mix, p = call(build(name), dense_targets(maps, K), maps, saliency(b=1))
        assert torch.equal(y_mix, dense_targets(maps, K)), name
        assert torch.equal(build(name).apply_targets(dense_targets(maps, K), p), y_mix), name


def test_dense_targets_follow_x_dtype_and_mix_in_float32():
    maps = class_maps(seed=15)
    x = torch.rand(B, 3, SIZE, SIZE, dtype=torch.float16)
    _, y_mix, _ = call(build("cutmix"), x, maps, None)
    assert y_mix.dtype == torch.float16 and y_mix.shape == (B, K, SIZE, SIZE)
    x64 = dense_targets(maps, K, dtype=torch.float64)
    _, y64, _ = call(build("mixup"), x64, maps, None)
    assert y64.dtype == torch.float64


def test_dense_targets_helper_scatters_one_hot_with_empty_ignored_pixels():
    maps = torch.tensor([[[0, 2], [IGNORE, 1]]])
    out = dense_targets(maps, 3)
    assert out.shape == (1, 3, 2, 2) and out.dtype == torch.float32
    expected = torch.zeros(1, 3, 2, 2)
    expected[0, 0, 0, 0] = expected[0, 2, 0, 1] = expected[0, 1, 1, 1] = 1
    assert torch.equal(out, expected)
    assert torch.equal(dense_targets(maps.to(torch.uint8) * 0 + 255, 3, ignore_index=255),
                       torch.zeros(1, 3, 2, 2))
    # unchecked out-of-range labels give empty vectors instead of an out-of-bounds scatter
    assert torch.equal(dense_targets(torch.full((1, 2, 2), 7), 3, validate=False),
                       torch.zeros(1, 3, 2, 2))


# ------------------------------------------------------------------------------------------------
# multi-label targets
# ------------------------------------------------------------------------------------------------


def multi_hot(kind: str, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    hot = torch.rand(B, K, generator=g) < 0.4
    hot[0] = False    # a row with no label
    hot[1] = True     # a row with every label
    if kind == "bool":
        return hot
    if kind == "int":
        return hot.long()
    return torch.where(hot, torch.rand(B, K, generator=g), 0.0)   # soft, rows not summing to 1


@pytest.mark.parametrize("kind", ["bool", "int", "float"])
@pytest.mark.parametrize("name", mixers.names())
def test_multi_hot_targets_mix_by_the_ratios(name, kind):
    y = multi_hot(kind, 16)
    x = torch.rand(B, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(17))
    mixer = build(name, 6)
    if name in MANIFOLD:
        _, y_mix, p = mixer.forward_mixed(TinyNet(num_classes=K), x, y, return_info=True,
                                          multilabel=True)
    else:
        _, y_mix, p = call(mixer, x, y, saliency(seed=18), multilabel=True)
    yf = y.to(p.ratios.dtype)
    assert y_mix.shape == (B, K)
    torch.testing.assert_close(y_mix, (p.ratios @ yf).float(), atol=1e-5, rtol=0)
    torch.testing.assert_close(y_mix.sum(1), (p.ratios @ yf.sum(1)).float(), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", MANIFOLD)
def test_manifold_forward_mixed_blends_dense_targets_by_the_weights(name):
    maps = class_maps(seed=19)
    x = torch.rand(B, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(19))
    _, y_mix, p = build(name).forward_mixed(TinyNet(num_classes=K), x, maps, return_info=True)
    codes = dense_targets(maps, K)
    expected = p.weights[0] * codes
    for w, perm in zip(p.weights[1:], p.perms):
        expected = expected + w * codes[perm]
    torch.testing.assert_close(y_mix, expected, atol=1e-6, rtol=0)


# ------------------------------------------------------------------------------------------------
# errors
# ------------------------------------------------------------------------------------------------


def bad_targets():
    maps = class_maps(seed=20)
    dist = dense_targets(maps, K)
    half = dist.clone()
    half[0, :, 0, 0] = 0.5 / K
    negative = dist.clone()
    negative[0, 0, 0, 0] = -1.0
    negative[0, 1, 0, 0] = 2.0
    out_of_range = maps.clone()
    out_of_range[1, 3, 3] = K
    below = maps.clone()
    below[2, 0, 0] = -1
    return {
        "wrong size": (ValueError, maps[:, :-1], {}),
        "wrong batch": (ValueError, maps[:-1], {}),
        "out of range": (ValueError, out_of_range, {}),
        "negative label": (ValueError, below, {}),
        "float map": (TypeError, maps.float(), {}),
        "bool map": (TypeError, maps > 0, {}),
        "distribution sums to 0.5": (ValueError, half, {}),
        "negative distribution": (ValueError, negative, {}),
        "integer distribution": (TypeError, dist.long(), {}),
        "distribution wrong K": (ValueError, dist[:, :-1], {}),
        "distribution wrong size": (ValueError, dist[..., :-1], {}),
        "five dims": (ValueError, dist[..., None], {}),
        "multilabel above 1": (ValueError, torch.full((B, K), 2.0), {"multilabel": True}),
        "multilabel below 0": (ValueError, -torch.ones(B, K, dtype=torch.long),
                               {"multilabel": True}),
        "multilabel nan": (ValueError, torch.full((B, K), float("nan")), {"multilabel": True}),
        "multilabel labels": (ValueError, torch.zeros(B, dtype=torch.long),
                              {"multilabel": True}),
    }


@pytest.mark.parametrize("case", list(bad_targets()))
@pytest.mark.parametrize("name", ["cutmix", "puzzlemix", "manifold"])
def test_bad_targets_raise_naming_y(case, name):
    error, y, kw = bad_targets()[case]
    x = torch.rand(B, 3, SIZE, SIZE)
    mixer = build(name)
    with pytest.raises(error, match=r"\by\b"):
        call(mixer, x, y, saliency(), **kw)
    if name == "manifold":
        with pytest.raises(error, match=r"\by\b"):
            mixer.forward_mixed(TinyNet(num_classes=K), x, y, **kw)


def test_unchecked_values_are_not_read():
    maps = class_maps(seed=21)
    maps[0, 0, 0] = K   # out of range: not read with validate=False, and no crash
    x = torch.rand(B, 3, SIZE, SIZE)
    _, y_mix, _ = call(build("mixup"), x, maps, None, validate=False)
    assert y_mix.shape == (B, K, SIZE, SIZE)


def test_option_and_helper_errors():
    maps = class_maps(seed=22)
    x = torch.rand(B, 3, SIZE, SIZE)
    mixer = build("cutmix")
    with pytest.raises(TypeError, match="ignore_index"):
        mixer(x, maps, ignore_index=1.5)
    with pytest.raises(TypeError, match="multilabel"):
        mixer(x, torch.zeros(B, K), multilabel=1)
    with pytest.raises(TypeError, match=r"\by\b"):
        dense_targets(maps.float(), K)
    with pytest.raises(ValueError, match=r"\by\b"):
        dense_targets(maps[0], K)
    with pytest.raises(ValueError, match=r"\by\b"):
        dense_targets(maps, 2)
    with pytest.raises(TypeError, match="dtype"):
        dense_targets(maps, K, dtype=torch.long)
    _, _, p = mixer(x, maps, return_info=True)
    with pytest.raises(ValueError, match="targets"):
        mixer.apply_targets(torch.zeros(B, K + 1), p)
    with pytest.raises(ValueError, match="targets"):
        mixer.apply_targets(torch.zeros(B + 1, K), p)
    with pytest.raises(TypeError, match="targets"):
        mixer.apply_targets(maps, p)
    with pytest.raises(TypeError, match="params"):
        mixer.apply_targets(torch.zeros(B, K), None)


# ------------------------------------------------------------------------------------------------
# property: per-pixel mass
# ------------------------------------------------------------------------------------------------


@FAST
@given(seed=st.integers(0, 2**31 - 1), b=st.integers(2, 6), h=st.integers(1, 12),
       w=st.integers(1, 12), k=st.integers(1, 6), share=st.floats(0.0, 0.5))
def test_mixup_dense_mass_is_the_share_of_labelled_sources(seed, b, h, w, k, share):
    g = torch.Generator().manual_seed(seed)
    maps = torch.randint(0, k, (b, h, w), generator=g)
    ignored = torch.rand(b, h, w, generator=g) < share
    maps[ignored] = IGNORE
    x = torch.rand(b, 2, h, w, generator=g)
    _, y_mix, p = InputMixup(k, generator=g)(x, maps, return_info=True)
    mass = y_mix.sum(1)
    assert bool((mass >= -1e-6).all()) and bool((mass <= 1 + 1e-6).all())
    lam = p.weights[0]
    keep = (~ignored).float()
    torch.testing.assert_close(mass, lam * keep + (1 - lam) * keep[p.perm], atol=1e-6, rtol=0)
    clean = ~ignored & ~ignored[p.perm]
    assert bool(((mass[clean] - 1).abs() <= 1e-6).all())


def test_resizemix_bilinear_interpolates_labels_as_the_image():
    maps = class_maps(seed=23, ignore=False)
    codes = dense_targets(maps, K)
    mixer = mixers.create("resizemix", K, interpolation="bilinear", tau_min=0.5,
                          generator=torch.Generator().manual_seed(23))
    x_mix, y_mix, p = mixer(codes, maps, return_info=True)
    torch.testing.assert_close(y_mix, x_mix, atol=1e-6, rtol=0)
    y0, y1, x0, x1 = p.box
    expected = codes.clone()
    expected[:, :, y0:y1, x0:x1] = F.interpolate(codes[p.perm], size=(y1 - y0, x1 - x0),
                                                 mode="bilinear", align_corners=False)
    torch.testing.assert_close(y_mix, expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(y_mix.sum(1), torch.ones(B, SIZE, SIZE), atol=1e-5, rtol=0)
    assert bool((y_mix.amax(1) < 1 - 1e-3).any())   # blends at the label edges
