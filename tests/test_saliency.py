"""Saliency, pooled unary, salient location, compatibility and the clean step."""

import pytest
import torch
import torch.nn.functional as F

from comixup.saliency import (
    clean_loss_and_saliency,
    compatibility,
    input_saliency,
    pooled_unary,
    realistic_saliency,
    salient_location,
)


def test_input_saliency_is_root_mean_square_over_channels():
    grad = torch.randn(2, 3, 4, 5)
    expected = torch.sqrt((grad**2).mean(1))
    torch.testing.assert_close(input_saliency(grad), expected)


def test_pooled_unary_sums_to_one_and_zero_maps_are_uniform():
    sal = torch.rand(3, 10, 7)
    sal[1] = 0
    pooled = pooled_unary(sal, 4)
    assert pooled.shape == (3, 4, 4)
    torch.testing.assert_close(pooled.sum((1, 2)), torch.ones(3))
    torch.testing.assert_close(pooled[1], torch.full((4, 4), 1 / 16))


def test_salient_location_matches_avg_pool_argmax():
    gen = torch.Generator().manual_seed(0)
    sal = torch.rand(5, 20, 17, generator=gen)
    pooled = F.avg_pool2d(sal.unsqueeze(1), 8, stride=1).squeeze(1)
    flat = pooled.reshape(5, -1).argmax(1)
    expected = torch.stack([flat // pooled.shape[-1], flat % pooled.shape[-1]], 1)
    torch.testing.assert_close(salient_location(sal), expected)
    assert salient_location(torch.rand(2, 4, 3)).shape == (2, 2)  # window shrinks to the image


def test_compatibility_normalization_and_zero_guard():
    loc = torch.tensor([[0, 0], [0, 3], [4, 0]])
    A = compatibility(loc, omega=0.001)
    a_c = torch.tensor([[0, 3, 4], [3, 0, 7], [4, 7, 0]], dtype=torch.float64)
    a_c = a_c * 3 / a_c.sum()
    torch.testing.assert_close(A, 0.999 * torch.eye(3, dtype=torch.float64) + 0.001 * a_c)
    same = compatibility(torch.zeros(4, 2, dtype=torch.long))
    torch.testing.assert_close(same, 0.999 * torch.eye(4, dtype=torch.float64))
    with pytest.raises(ValueError, match="omega"):
        compatibility(loc, omega=2.0)


@pytest.mark.parametrize("loss, factor", [("bce", 2 / 5), ("ce", 1.0)])
def test_clean_step_keeps_weight_gradients_and_returns_saliency(loss, factor):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 6 * 6, 5))
    x = torch.randn(4, 3, 6, 6)
    y = torch.tensor([0, 1, 2, 3])
    loss_value, sal = clean_loss_and_saliency(model, x, y, loss=loss, clean_lam=0.5)
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    inp = x.clone().requires_grad_(True)
    ref = F.cross_entropy(model(inp), y) * 0.5 * factor  # clean_lam * (2 / C or 1) * CE
    ref.backward()
    torch.testing.assert_close(loss_value, ref.detach())
    for g, p in zip(grads, model.parameters()):
        torch.testing.assert_close(g, p.grad)
    torch.testing.assert_close(sal, input_saliency(inp.grad))
    assert not x.requires_grad


def test_clean_step_uses_the_given_backward_and_sync_and_zeroes_non_finite_maps():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 5))
    x, y = torch.randn(2, 3, 4, 4), torch.tensor([0, 1])
    entered = []

    class Sync:
        def __enter__(self):
            entered.append(True)

        def __exit__(self, *exc):
            return False

    def overflow(loss):  # an fp16 overflow: the scaled gradients are inf
        (loss * float("inf")).backward()

    _, sal = clean_loss_and_saliency(model, x, y, backward=overflow, sync=Sync)
    assert entered == [True]
    assert torch.equal(sal, torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match="loss"):
        clean_loss_and_saliency(model, x, y, loss="mse")
    with pytest.raises(ValueError, match="clean_lam"):
        clean_loss_and_saliency(model, x, y, clean_lam=-1.0)


def test_salient_location_stride_uses_non_overlapping_windows():
    sal = torch.zeros(1, 16, 16)
    sal[0, 5:13, 3:11] = 1.0  # the best 8x8 window at stride 1 starts at (5, 3)
    assert salient_location(sal).tolist() == [[5, 3]]
    sal[0, 8:16, 8:16] += 0.1 * torch.rand(8, 8)  # at stride 8 only (0|8, 0|8) are candidates
    loc = salient_location(sal, stride=8).tolist()
    windows = {(r, c): float(sal[0, 8 * r:8 * r + 8, 8 * c:8 * c + 8].sum())
               for r in (0, 1) for c in (0, 1)}
    assert tuple(loc[0]) == max(windows, key=windows.get)
    with pytest.raises(ValueError, match="stride"):
        salient_location(sal, stride=0)


def _pixel_correlation(a, b):
    a, b = a.flatten(1).double(), b.flatten(1).double()
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))


@pytest.mark.parametrize("clean_lam", [1.0, 0.0])
def test_saliency_under_bf16_autocast_equals_the_float32_saliency(clean_lam):
    from comixup import models

    torch.manual_seed(0)
    model = models.create("preactresnet18", 10, in_channels=3, initial_channels=8)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(8, 3, 32, 32, generator=g), torch.randint(0, 10, (8,), generator=g)
    loss32, sal32 = clean_loss_and_saliency(model, x, y, loss="ce", clean_lam=clean_lam)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss16, sal16 = clean_loss_and_saliency(model, x, y, loss="ce", clean_lam=clean_lam)
        assert torch.is_autocast_enabled("cpu")  # the caller's autocast is left on
    assert sal16.dtype == torch.float32
    torch.testing.assert_close(sal16, sal32, rtol=1e-5, atol=1e-6 * float(sal32.max()))
    torch.testing.assert_close(loss16, loss32, rtol=1e-6, atol=0)
    assert _pixel_correlation(sal16, sal32).min() > 0.99999
    # the same input gradient taken in bfloat16 is visibly another map (what the fp32 pass avoids)
    inp = x.clone().requires_grad_(True)
    model.train(clean_lam > 0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        F.cross_entropy(model(inp).float(), y).backward()
    assert _pixel_correlation(input_saliency(inp.grad), sal32).min() < 0.999


# -- spectral residual -------------------------------------------------------------------------

import math  # noqa: E402

import numpy as np  # noqa: E402

from comixup.saliency import spectral_residual  # noqa: E402


def _np_resize(img, out_h, out_w):
    """Half-pixel bilinear resize without antialiasing, pixel by pixel."""
    in_h, in_w = img.shape
    out = np.zeros((out_h, out_w))

    def src(i, n_in, n_out):
        s = max((i + 0.5) * n_in / n_out - 0.5, 0.0)
        i0 = math.floor(s)
        i1 = min(i0 + 1, n_in - 1)
        return i0, i1, s - i0

    for r in range(out_h):
        r0, r1, a = src(r, in_h, out_h)
        for c in range(out_w):
            c0, c1, b = src(c, in_w, out_w)
            out[r, c] = ((1 - a) * ((1 - b) * img[r0, c0] + b * img[r0, c1])
                         + a * ((1 - b) * img[r1, c0] + b * img[r1, c1]))
    return out


def _np_spectral_residual(rgb):
    """OpenCV's StaticSaliencySpectralResidual on one RGB image (C, H, W), written naively."""
    gray = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    small = _np_resize(gray, 64, 64)
    spec = np.fft.fft2(small)
    amp, phase = np.abs(spec), np.angle(spec)
    log_amp = np.log(amp)
    padded = np.pad(log_amp, 1, mode="reflect")   # BORDER_REFLECT_101
    box = np.zeros_like(log_amp)
    for r in range(64):
        for c in range(64):
            box[r, c] = padded[r:r + 3, c:c + 3].mean()
    res = np.exp(log_amp - box) * np.exp(1j * phase)
    mag = np.abs(np.fft.ifft2(res))
    k = np.exp(-((np.arange(5) - 2.0) ** 2) / (2 * 8.0**2))
    k /= k.sum()
    padded = np.pad(mag, 2, mode="reflect")
    blurred = np.zeros_like(mag)
    for r in range(64):
        for c in range(64):
            blurred[r, c] = (np.outer(k, k) * padded[r:r + 5, c:c + 5]).sum()
    sal = blurred**2
    sal /= sal.max()
    return _np_resize(sal, rgb.shape[1], rgb.shape[2])


def test_spectral_residual_matches_a_naive_single_image_implementation():
    x = torch.rand(2, 3, 20, 27, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    got = spectral_residual(x)
    assert got.dtype == torch.float64 and got.shape == (2, 20, 27)
    for i in range(2):
        np.testing.assert_allclose(got[i].numpy(), _np_spectral_residual(x[i].numpy()),
                                   rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("variant", ["opencv", "guidedmixup"])
def test_spectral_residual_shape_range_and_dtype(variant):
    x = torch.rand(3, 3, 17, 40)
    sal = spectral_residual(x, variant=variant)
    assert sal.shape == (3, 17, 40) and sal.dtype == torch.float32
    # the maximum is 1 at the working size; resizing back may miss it
    peak = sal.flatten(1).amax(1)
    assert bool((sal >= 0).all()) and bool((peak <= 1 + 1e-6).all()) and bool((peak > 0).all())
    big = spectral_residual(torch.rand(1, 1, 150, 130), variant=variant)
    assert big.shape == (1, 150, 130) and bool(torch.isfinite(big).all())


def test_spectral_residual_constant_image_is_constant_and_scale_free():
    sal = spectral_residual(torch.full((2, 3, 16, 16), 0.3, dtype=torch.float64))
    torch.testing.assert_close(sal, torch.ones_like(sal))
    x = torch.rand(2, 3, 16, 16, dtype=torch.float64)
    torch.testing.assert_close(spectral_residual(7.5 * x), spectral_residual(x))


@pytest.mark.parametrize("variant", ["opencv", "guidedmixup"])
def test_spectral_residual_finds_a_bright_spot(variant):
    gen = torch.Generator().manual_seed(1)
    x = 0.2 * torch.rand(3, 3, 32, 32, generator=gen)
    spots = [(5, 20), (16, 16), (24, 6)]
    for i, (r, c) in enumerate(spots):
        x[i, :, r - 1:r + 2, c - 1:c + 2] = 1.0
    peak = spectral_residual(x, variant=variant).flatten(1).argmax(1)
    for i, (r, c) in enumerate(spots):
        assert abs(int(peak[i]) // 32 - r) <= 1 and abs(int(peak[i]) % 32 - c) <= 1


def test_spectral_residual_errors_name_the_argument():
    with pytest.raises(ValueError, match="variant"):
        spectral_residual(torch.rand(1, 3, 8, 8), variant="fine")
    with pytest.raises(ValueError, match="x must have shape"):
        spectral_residual(torch.rand(3, 8, 8))


@pytest.mark.parametrize("clean_lam", [1.0, 0.0])
def test_clean_step_names_a_model_whose_output_ignores_its_input(clean_lam):
    class Constant(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bias = torch.nn.Parameter(torch.zeros(4))

        def forward(self, x):
            return self.bias.expand(x.shape[0], 4)

    x, y = torch.rand(2, 3, 8, 8), torch.tensor([0, 1])
    with pytest.raises(ValueError, match="model: its output does not depend on its input x"):
        clean_loss_and_saliency(Constant(), x, y, clean_lam=clean_lam)


def test_realistic_saliency_peaks_at_one_object_per_map():
    sal = realistic_saliency(64, 32, rng=np.random.default_rng(0))
    assert sal.shape == (64, 32, 32) and sal.dtype == np.float64 and (sal >= 0).all()
    np.testing.assert_array_equal(sal, realistic_saliency(64, 32, rng=np.random.default_rng(0)))
    # the object's peak (height in [0.5, 1]) stands above the |N(0, 0.05^2)| noise
    assert (sal.max((1, 2)) >= 0.5).all()
    assert float(np.median(sal)) < 0.2


def test_realistic_saliency_errors_name_the_argument():
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
        realistic_saliency(2, 8, rng=0)
    with pytest.raises(ValueError, match="batch"):
        realistic_saliency(0, 8, rng=np.random.default_rng(0))
