"""Saliency and compatibility for Co-Mixup (Kim et al., ICLR 2021).

* :func:`input_saliency`: per-pixel saliency from the input gradient, the l2 norm of the gradient
  across channels (Section 4.1, Simonyan et al. 2013; recipes 1.1: ``sqrt(mean_c grad^2)``, a
  constant factor away from the l2 norm and irrelevant after normalization).
* :func:`pooled_unary`: the saliency average-pooled to the labeling grid and normalized to sum 1
  per input; the unary cost is its negation (recipes 1.3, Appendix E).
* :func:`compatibility`: ``A = (1 - omega) I + omega A_c`` with ``A_c`` the l1 distance between the
  most salient locations (Section 4.1, recipes 1.6).
* :func:`spectral_residual`: static saliency from the image alone by the spectral residual
  (Hou and Zhang, CVPR 2007), as OpenCV computes it or as the GuidedMixup code does; the
  saliency of SaliencyMix and Guided-SR.
* :func:`clean_loss_and_saliency`: the clean half of the paper's training step, one clean
  forward/backward that keeps the weight gradients and yields the saliency (Appendix C); the
  training engine calls it too.
* :func:`realistic_saliency`: synthetic maps, one Gaussian object per image plus weak noise,
  the saliency of the benchmarks and of the tests that need a realistic batch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ._checks import check_choice, check_int, check_number, check_tensor, check_values
from ._precision import autocast_off
from .losses import IGNORE_INDEX, check_loss, clean_loss

__all__ = [
    "clean_loss_and_saliency",
    "compatibility",
    "input_saliency",
    "pooled_unary",
    "realistic_saliency",
    "salient_location",
    "spectral_residual",
]


def input_saliency(grad: torch.Tensor) -> torch.Tensor:
    """Per-pixel saliency ``sqrt(mean over channels of grad^2)`` of an input gradient (recipes 1.1).

    Args:
        grad: gradient of the loss with respect to the input, ``(B, C, H, W)``.

    Returns:
        ``(B, H, W)`` non-negative saliency in float32.
    """
    check_tensor("grad", grad, finite=False)
    if grad.dim() != 4:
        raise ValueError(f"grad must be a (B, C, H, W) tensor, got shape {tuple(grad.shape)}")
    return grad.detach().float().pow(2).mean(1).sqrt()


def pooled_unary(saliency: torch.Tensor, grid: int, *, validate: bool | None = None
                 ) -> torch.Tensor:
    """Average-pool saliency to a ``grid x grid`` labeling grid and normalize each map to sum 1.

    Sizes that ``grid`` does not divide use adaptive average pooling. An all-zero map becomes
    uniform (``1 / grid^2`` per cell), so it is legal input (recipes 1.3).

    The normalization is exact for any finite map: when the float32 pooling and sum of a map
    would overflow or lose its tiny values (``float32`` maps near ``3e38`` or below ``1e-30``),
    that map is scaled by its maximum in float64 before it is pooled and summed. Every other map
    takes the float32 path, so ordinary saliency gives the same bits as before.

    Args:
        saliency: ``(B, H, W)`` non-negative, finite saliency.
        grid: the number of cells per side, ``g``, an int >= 1.
        validate: check that the map is finite (:func:`comixup._checks.check_values`: by
            default on the CPU only, where it costs no device synchronisation).

    Returns:
        ``(B, g, g)`` float32 maps that sum to 1; the unary cost of Eq. (1) is their negation.
    """
    check_tensor("saliency", saliency, finite=check_values(validate, saliency))
    if saliency.dim() != 3:
        raise ValueError(f"saliency must have shape (B, H, W), got {tuple(saliency.shape)}")
    grid = check_int("grid", grid, 1)
    peak = _saliency_peak(saliency) if saliency.numel() else None
    out, inexact = _pooled_float32(saliency, grid, peak)
    if inexact is None:
        return out
    # no value is read back: the exact path is computed for every map and selected where the
    # float32 one is inexact (the same bits as recomputing those maps alone, _exact_maps)
    scaled = saliency.detach().double() / peak.clamp_min(1e-300)[:, None, None]
    exact = F.adaptive_avg_pool2d(scaled.unsqueeze(1), grid).squeeze(1)
    exact = exact / exact.sum((1, 2), keepdim=True).clamp_min(1e-300)
    return torch.where(inexact[:, None, None], exact.float(), out)


def _saliency_peak(saliency: torch.Tensor) -> torch.Tensor:
    """``(B,)`` float64 maximum of every map (the maximum is exact in any dtype, so it is taken
    before the conversion)."""
    return saliency.detach().amax((1, 2)).double()


def _pooled_float32(saliency: torch.Tensor, grid: int, peak: torch.Tensor | None):
    """:func:`pooled_unary`'s float32 path, without argument checks or reads to the host.

    Returns ``(maps, inexact)``: the ``(B, g, g)`` float32 maps and a ``(B,)`` bool tensor of the
    maps whose float32 path is inexact (an overflow, or a sum too small to divide by), which
    :func:`_exact_maps` recomputes; ``inexact`` is None when ``peak`` is None (no saliency values).
    """
    pooled = F.adaptive_avg_pool2d(saliency.float().unsqueeze(1), grid).squeeze(1)
    total = pooled.sum((1, 2), keepdim=True)
    uniform = torch.full_like(pooled, 1.0 / (grid * grid))
    out = torch.where(total > 0, pooled / total.clamp_min(1e-30), uniform)
    if peak is None:
        return out, None
    inexact = ~torch.isfinite(total.view(-1)) | ((total.view(-1) < 1e-30) & (peak > 0)) \
        | (peak.float() * saliency.shape[1] * saliency.shape[2] > _F32_SAFE)
    return out, inexact


def _exact_maps(saliency: torch.Tensor, grid: int, peak: torch.Tensor, rows: torch.Tensor,
                maps: torch.Tensor) -> torch.Tensor:
    """``maps`` with the maps ``rows`` (a long tensor) recomputed exactly: scaled by their peak in
    float64 before they are pooled and summed."""
    scaled = saliency.detach()[rows].double() / peak[rows, None, None]
    exact = F.adaptive_avg_pool2d(scaled.unsqueeze(1), grid).squeeze(1)
    exact = exact / exact.sum((1, 2), keepdim=True)
    maps = maps.clone()
    maps[rows] = exact.float()
    return maps


#: Largest float32 magnitude whose pooled sums stay far from overflow (float32 max / 1e6).
_F32_SAFE = 3.0e32


def salient_location(saliency: torch.Tensor, window: int = 8, stride: int = 1, *,
                     validate: bool | None = None) -> torch.Tensor:
    """Row and column of each input's most salient ``window x window`` region (Section 4.1).

    The saliency is average-pooled with the given window at ``stride`` (1 in the CIFAR
    reference; 8, non-overlapping windows, in the ImageNet reference), the window shrinking to
    the image size for small images; ties resolve to the first location in row-major order.
    ``validate`` as for :func:`pooled_unary`.

    Returns:
        ``(B, 2)`` long tensor of ``(row, col)`` in pooled coordinates.
    """
    stride = check_int("stride", stride, 1)
    window = check_int("window", window, 1)
    check_tensor("saliency", saliency, finite=check_values(validate, saliency))
    if saliency.dim() != 3:
        raise ValueError(f"saliency must have shape (B, H, W), got {tuple(saliency.shape)}")
    b, h, w = saliency.shape
    kh, kw = min(window, h), min(window, w)
    # Window sums from an integral image (same argmax as avg_pool2d, a fraction of the cost).
    integral = F.pad(saliency.double().cumsum(1).cumsum(2), (1, 0, 1, 0))
    pooled = (integral[:, kh:, kw:] - integral[:, :-kh, kw:]
              - integral[:, kh:, :-kw] + integral[:, :-kh, :-kw])
    pooled = pooled[:, ::stride, ::stride]
    flat = pooled.reshape(b, -1).argmax(1)
    width = pooled.shape[-1]
    return torch.stack([flat // width, flat % width], dim=1)


def compatibility(locations: torch.Tensor, omega: float = 1e-3) -> torch.Tensor:
    """The compatibility matrix ``A = (1 - omega) I + omega A_c`` of one partition (recipes 1.6).

    ``A_c[i, j] = |r_i - r_j| + |c_i - c_j|`` is normalized within the partition to
    ``A_c * m / sum(A_c)``; when all locations coincide ``A_c`` stays zero.

    Args:
        locations: ``(m, 2)`` salient locations from :func:`salient_location`.
        omega: weight of ``A_c`` (paper: 0.001, Appendix E).

    Returns:
        ``(m, m)`` float64 tensor on the locations' device.
    """
    omega = check_number("omega", omega, high=1.0)
    check_tensor("locations", locations, floating=False)
    if locations.dim() != 2 or locations.shape[1] != 2:
        raise ValueError(f"locations must have shape (m, 2), got {tuple(locations.shape)}")
    loc = locations.double()
    m = loc.shape[0]
    a_c = (loc[:, None, :] - loc[None, :, :]).abs().sum(-1)
    total = a_c.sum()
    a_c = torch.where(total > 0, a_c * m / total.clamp_min(1e-30), a_c)
    eye = torch.eye(m, dtype=torch.float64, device=loc.device)
    return (1.0 - omega) * eye + omega * a_c


def _no_sync(model):
    """``model.no_sync()`` for a DistributedDataParallel model, else a null context."""
    no_sync = getattr(model, "no_sync", None)
    return no_sync() if callable(no_sync) else contextlib.nullcontext()


@contextlib.contextmanager
def _own_forward(model):
    """Run ``model`` (or the module a DistributedDataParallel wraps) on its own ``forward``.

    Accelerate's ``prepare`` under ``mixed_precision`` replaces a model's ``forward`` with one
    wrapped in its autocast and keeps the original as ``_original_forward``; an autocast entered
    inside the forward cannot be left from outside, so the float32 saliency pass puts the original
    back for its duration. Any other model is left as it is.
    """
    module = getattr(model, "module", model)
    patched = module.__dict__.get("forward")
    original = module.__dict__.get("_original_forward")
    if patched is None or original is None:
        yield
        return
    module.forward = original
    try:
        yield
    finally:
        module.forward = patched


def clean_loss_and_saliency(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    loss: str = "bce",
    clean_lam: float = 1.0,
    backward: Callable[[torch.Tensor], None] | None = None,
    sync: Callable[[], contextlib.AbstractContextManager] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The clean half of the saliency methods' training step; returns ``(clean_loss, saliency)``.

    This is the paper's step (Appendix C) as both reference code bases run it, and the one the
    training engine calls:

    * ``clean_lam > 0``: forward the clean batch in the model's current (train) mode with input
      gradients on; clean loss ``clean_scale(loss, C, clean_lam) * CE`` (``clean_lam * 2 * CE / C``
      for the ``"bce"`` family, ``clean_lam * CE`` for ``"ce"``, :mod:`comixup.losses`);
      ``backward`` it. The weight gradients are *kept* (accumulated in ``.grad``), so the caller
      adds the mixed loss and takes one optimizer step for both.
    * ``clean_lam == 0`` (Puzzle Mix's CIFAR commands): the forward runs in eval mode (BatchNorm
      uses and keeps its running statistics) and only the input gradient of the cross-entropy is
      computed; no weight gradient is touched. The model's mode is restored afterwards.

    The saliency is :func:`input_saliency` of the input gradient. A map that is not finite (an
    fp16 overflow step, which the gradient scaler then skips) becomes zeros, which the mixers
    treat as uniform saliency.

    Precision: the clean forward and backward run in float32 with autocast off, whatever the
    caller's autocast (the input is cast to float32 when it is of lower precision; float64
    stays), so mixed-precision training gets the saliency of full-precision training. In
    bfloat16 the input gradient keeps 8 bits of mantissa: on a width-8 PreActResNet18 and 32
    random inputs its pixel correlation with the float32 saliency averaged 0.94, and the most
    salient 8x8 window agreed for 47% of the inputs. The clean loss's weight gradients therefore
    come from this float32 pass too.

    Args:
        model: the classifier (possibly DistributedDataParallel), or a per-pixel model.
        x: clean inputs ``(B, C, H, W)``.
        y: integer labels ``(B,)``, or class maps ``(B, H, W)`` for a per-pixel model: the
            saliency is then the input gradient of the per-pixel cross-entropy (pixels labelled
            -100 left out).
        loss: the loss family, ``"bce"`` or ``"ce"`` (:data:`comixup.losses.LOSSES`).
        clean_lam: weight of the clean loss, a finite number >= 0.
        backward: ``backward(loss)`` accumulates the gradients (e.g. an AMP scaler's
            ``scaler.scale(loss).backward()``); plain ``loss.backward()`` by default.
        sync: a factory of the context the backward runs in; by default ``model.no_sync()`` for a
            DistributedDataParallel model (gradients are all-reduced once, with the mixed loss's)
            and nothing otherwise.

    Returns:
        The detached scaled clean loss (0 when ``clean_lam == 0``) and the ``(B, H, W)`` float32
        saliency.
    """
    check_loss(loss)
    clean_lam = check_number("clean_lam", clean_lam)
    check_tensor("x", x, finite=check_values(None, x))
    backward = backward or (lambda value: value.backward())
    compute = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    inp = x.detach().to(compute).requires_grad_(True)
    with (sync or (lambda: _no_sync(model)))(), torch.autocast(x.device.type, enabled=False), \
            _own_forward(model):
        if clean_lam > 0:
            logits = model(inp)
            scaled = clean_loss(logits, y, loss, clean_lam)
            backward(scaled)
            grad, value = inp.grad, scaled.detach()
        else:
            was_training = model.training
            model.eval()
            try:
                ce = F.cross_entropy(model(inp).float(), y, ignore_index=IGNORE_INDEX)
                (grad,) = torch.autograd.grad(ce, inp, allow_unused=True)
            finally:
                model.train(was_training)
            value = torch.zeros((), device=x.device)
    if grad is None:
        raise ValueError("model: its output does not depend on its input x, so there is no input "
                         "gradient to take the saliency from")
    saliency = input_saliency(grad)
    finite = torch.isfinite(saliency).flatten(1).all(1)  # no read back: a select, not a branch
    saliency = torch.where(finite[:, None, None], saliency, torch.zeros_like(saliency))
    return value, saliency


# ----------------------------------------------------------------------------------------------
# static saliency: the spectral residual (Hou and Zhang, CVPR 2007)
# ----------------------------------------------------------------------------------------------

#: The pipelines of :func:`spectral_residual`: working size (None: the image's own, down to
#: 128 when it is taller), luminance weights, padding of the 3x3 box mean, Gaussian blur
#: (size, sigma), whether the magnitude is squared after the blur.
_SR_VARIANTS = {
    "opencv": dict(size=(64, 64), gray=(0.299, 0.587, 0.114), box_pad="reflect",
                   blur=(5, 8.0), square=True),
    "guidedmixup": dict(size=None, gray=(0.2989, 0.587, 0.114), box_pad="replicate",
                        blur=(7, 3.0), square=False),
}


def gaussian_blur(maps: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``(B, H, W)`` maps with mirrored borders (OpenCV's
    ``BORDER_REFLECT_101``, torchvision's ``gaussian_blur``); kernel
    ``exp(-(i - (size - 1) / 2)^2 / (2 sigma^2))`` normalized to sum 1, ``size`` odd; in the
    maps' dtype whatever autocast is active."""
    with autocast_off(maps.device):
        return _gaussian_blur(maps, size, sigma)


def _gaussian_blur(maps: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    half = size // 2
    pos = torch.arange(size, dtype=maps.dtype, device=maps.device) - (size - 1) / 2
    kernel = torch.exp(-pos**2 / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    out = maps.unsqueeze(1)
    # reflect padding needs a side longer than the pad; replicate covers the 1-pixel edge cases
    mode = "reflect" if min(maps.shape[-2:]) > half else "replicate"
    out = F.pad(out, (half, half, half, half), mode=mode)
    out = F.conv2d(out, kernel.view(1, 1, 1, size))
    out = F.conv2d(out, kernel.view(1, 1, size, 1))
    return out.squeeze(1)


def _gray(x: torch.Tensor, weights) -> torch.Tensor:
    """Luminance ``(B, H, W)``: the weighted RGB channels for 3 channels, else their mean."""
    if x.shape[1] == 3:
        w = torch.tensor(weights, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x * w).sum(1)
    return x.mean(1)


def spectral_residual(x: torch.Tensor, *, variant: str = "opencv") -> torch.Tensor:
    """Static saliency by the spectral residual (Hou and Zhang, CVPR 2007), batched.

    With ``variant="opencv"`` (OpenCV's ``StaticSaliencySpectralResidual``): luminance,
    bilinear resize to 64x64, 2-D FFT, log amplitude minus its 3x3 box mean (mirrored
    borders), back with the original phase, inverse FFT, magnitude, 5x5 Gaussian blur with
    sigma 8, squared, divided by its maximum, bilinear resize to the image. With
    ``variant="guidedmixup"`` (the Guided-SR code of Kang and Kim, AAAI 2023): the image's own
    size (down to 128x128 when taller), the box mean with replicated borders, ``1e-10`` added
    to the squared amplitude, a 7x7 blur with sigma 3 and no squaring.

    Differences from OpenCV: the input is RGB (OpenCV's ``BGR2GRAY`` weighs the channels in
    the other order; any other channel count is averaged); frequencies of zero amplitude
    (below ``1e-10`` of the largest) have no phase and are dropped instead of giving
    ``log 0``, so a constant image has a constant map; every step is in float64 like
    OpenCV's, but resizing is :func:`torch.nn.functional.interpolate` (half-pixel bilinear,
    OpenCV's ``INTER_LINEAR``; OpenCV downsizes with ``INTER_LINEAR_EXACT``, the same up to
    rounding). Both variants are scaled to a maximum of 1 (the GuidedMixup code normalizes
    the sum later, which this does not change).

    Args:
        x: images ``(B, C, H, W)`` of a floating dtype, on any device (RGB for ``C = 3``).
        variant: ``"opencv"`` (default) or ``"guidedmixup"``.

    Returns:
        Non-negative maps ``(B, H, W)`` scaled to maximum 1 at the working size (resizing
        back to a smaller image may miss the peak; all zeros for a map that vanishes), in
        ``x``'s dtype promoted to at least float32, on ``x``'s device. Reads nothing back
        from the device.
    """

    variant = check_choice("variant", variant, tuple(_SR_VARIANTS))
    check_tensor("x", x, finite=False)
    if x.dim() != 4 or min(x.shape) == 0:
        raise ValueError(f"x must have shape (B, C, H, W) with no empty dimension, "
                         f"got {tuple(x.shape)}")
    cfg = _SR_VARIANTS[variant]
    out_dtype = torch.promote_types(x.dtype, torch.float32)
    h, w = x.shape[-2:]
    gray = _gray(x.detach().to(torch.float64), cfg["gray"])
    size = cfg["size"]
    if size is None and h > 128:
        size = (128, 128)
    if size is not None and tuple(size) != (h, w):
        gray = F.interpolate(gray.unsqueeze(1), size=size, mode="bilinear", align_corners=False,
                             antialias=variant == "guidedmixup").squeeze(1)
    spec = torch.fft.fft2(gray)
    if variant == "opencv":
        amp = spec.abs()
        floor = 1e-10 * amp.flatten(1).amax(1).view(-1, 1, 1)
        keep = amp > floor
        log_amp = torch.log(torch.where(keep, amp, floor.clamp_min(1e-300).expand_as(amp)))
    else:
        amp = torch.sqrt(spec.real**2 + spec.imag**2 + 1e-10)
        keep = None
        log_amp = torch.log(amp)
    padded = F.pad(log_amp.unsqueeze(1), (1, 1, 1, 1),
                   mode=cfg["box_pad"] if min(log_amp.shape[-2:]) > 1 else "replicate")
    box = F.avg_pool2d(padded, 3, stride=1).squeeze(1)
    scale = torch.exp(log_amp - box) / amp
    residual = spec * scale
    if keep is not None:
        residual = torch.where(keep, residual, torch.zeros_like(residual))
    sal = torch.fft.ifft2(residual).abs()
    sal = gaussian_blur(sal, *cfg["blur"])
    if cfg["square"]:
        sal = sal * sal
    peak = sal.flatten(1).amax(1).view(-1, 1, 1)
    sal = torch.where(peak > 0, sal / torch.where(peak > 0, peak, torch.ones_like(peak)),
                      torch.zeros_like(sal))
    if tuple(sal.shape[-2:]) != (h, w):
        sal = F.interpolate(sal.unsqueeze(1), size=(h, w), mode="bilinear",
                            align_corners=False).squeeze(1)
    return sal.to(out_dtype)


def realistic_saliency(batch: int, size: int = 32, *, rng: np.random.Generator) -> np.ndarray:
    """Saliency maps with one Gaussian object per image plus weak noise, ``(batch, size, size)``.

    Object centres are uniform in the image, widths uniform in ``[size/16, size/4]``, peak heights
    uniform in ``[0.5, 1]``; the noise is ``|N(0, 0.05^2)|`` per pixel. This is the "realistic
    saliency" of the solver benchmark (one Gaussian object per 32x32 image plus weak noise);
    :func:`comixup.analysis.problems.realistic_costs` pools it into Algorithm 1's problems.

    Args:
        batch: number of maps, an int >= 1.
        size: image side, an int >= 1.
        rng: the ``numpy.random.Generator`` of every draw.

    Returns:
        A float64 array ``(batch, size, size)`` of non-negative values.
    """
    batch = check_int("batch", batch, 1)
    size = check_int("size", size, 1)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    centre = rng.uniform(0, size, size=(batch, 2))
    width = rng.uniform(size / 16, size / 4, size=batch)
    height = rng.uniform(0.5, 1.0, size=batch)
    d2 = (yy[None] - centre[:, 0, None, None]) ** 2 + (xx[None] - centre[:, 1, None, None]) ** 2
    sal = height[:, None, None] * np.exp(-d2 / (2 * width[:, None, None] ** 2))
    return sal + np.abs(rng.normal(0, 0.05, size=sal.shape))
