"""FMix (Harris et al., "FMix: Enhancing Mixed Sample Data Augmentation", arXiv 2002.12047,
2020; reference code: github ecs-vlc/FMix, ``fmix.py``).

FMix draws ``lambda ~ Beta(alpha, alpha)`` and one binary mask per batch from a low-frequency
random field: complex Gaussian noise on the half-spectrum of an ``H x W`` real FFT, each
frequency bin scaled by ``1 / max(f, 1 / max(H, W)) ** decay_power`` (``f`` the bin's
frequency magnitude in cycles per pixel, as ``numpy.fft.fftfreq``), brought back by an inverse
real FFT. The ``num`` largest pixels of that field become 1, the rest 0, where ``num`` is
``ceil(lambda * H * W)`` or ``floor(lambda * H * W)`` with probability 1/2 each (the
reference's rounding). With ``max_soft > 0`` the ``2 * soft`` pixels ranked around the cut,
``soft = int(H * W * min(max_soft, lambda, 1 - lambda))``, fall linearly from 1 to 0 (the
reference's ``max_soft`` ramp; only clipped to ``min(lambda, 1 - lambda)`` when ``max_soft``
exceeds either, as in the reference). A random permutation ``perm`` of the batch is drawn and
the batch becomes ``mask * x + (1 - mask) * x[perm]``.

Targets: ``x`` is weighted by the mask's actual mean ``share = sum(mask) / (H * W)`` (``num /
(H * W)``, also with the soft ramp) and ``x[perm]`` by ``1 - share``. The reference weights
its loss by the drawn ``lambda`` instead; the two differ by less than ``1 / (H * W)``.

Paper and reference settings: ``alpha = 1``, ``decay_power = 3``, ``max_soft = 0`` for every
image experiment (CIFAR-10/100, Fashion-MNIST, Tiny-ImageNet; ``trainer.py``'s defaults,
which the experiment scripts do not override). The FMix Fashion-MNIST recipe that the
``fashion-mnist-preactresnet18`` preset cites is this setting.

Randomness: the reference draws ``lambda`` from scipy's Beta (NumPy's global generator), the
noise with ``numpy.random.randn``, the ceil-or-floor coin with Python's ``random.random()``
and the permutation with ``torch.randperm``. NumPy's bits cannot be reproduced here, so every
draw comes from one CPU :class:`torch.Generator` in the same order: ``lambda``
(:func:`comixup.mixers.mixup.sample_lambda`), the noise (``torch.randn`` of the reference's
shape ``(1, H, F, 2)``, float64, where ``F`` is the number of frequency columns below), the coin
(``torch.rand``, float64; the count rounds up when it exceeds 0.5) and the permutation.

Deviations from the reference code, none of which changes the mask's distribution:

* The reference builds ``W // 2 + 2`` frequency columns for an odd width (one more than the
  inverse real FFT reads; ``irfftn`` drops the last). The same number of columns is drawn here,
  so the draw count matches, and the extra one is likewise unused.
* The reference rescales the field to ``[0, 1]`` (minus its minimum, over its maximum) before
  ranking. A monotone map does not change the ranking, so the raw field is ranked (and a
  constant field, e.g. a 1 x 1 image, gives no 0 / 0).
* Ties of the field are ordered by flat index, lowest first (a stable descending sort); the
  reference reverses NumPy's unstable ascending quicksort, so its order of exact ties is
  unspecified. Continuous noise has ties with probability 0.
* The reference's ``reformulate`` option (``lambda ~ Beta(alpha + 1, alpha)`` with the loss on
  the first label only) is not offered: it is off in every experiment of the paper, and its
  targets are not the pixel shares.
* Images need not be square (the reference takes a ``size`` option; here the mask takes
  ``x``'s size).
"""

from __future__ import annotations

import dataclasses
import math

import torch

from .._checks import check_generator, check_int, check_number
from .._precision import full_precision
from .base import Mixer, MixParams, check_drawn_for, permutation_ratios
from .mixup import sample_lambda

__all__ = ["FMix", "FMixParams", "binarise_mask", "fft_frequencies", "low_freq_field",
           "spectrum_scale"]


def _n_columns(w: int) -> int:
    """The reference's number of frequency columns: ``W // 2 + 1``, or ``W // 2 + 2`` for an odd
    width (capped at ``W``: one column for ``W = 1``)."""
    return min(w // 2 + 2, w) if w % 2 == 1 else w // 2 + 1


def fft_frequencies(h: int, w: int) -> torch.Tensor:
    """The frequency magnitudes ``sqrt(fy ** 2 + fx ** 2)`` of the reference's half-spectrum.

    ``fy`` runs over ``numpy.fft.fftfreq(H)`` (all ``H`` rows) and ``fx`` over the first
    ``F`` entries of ``numpy.fft.fftfreq(W)``, ``F = W // 2 + 1`` (``min(W // 2 + 2, W)`` for an odd
    ``W``, as the reference).

    Returns:
        A float64 CPU tensor ``(H, F)``.
    """
    h = check_int("h", h, 1)
    w = check_int("w", w, 1)
    fy = torch.fft.fftfreq(h, dtype=torch.float64)
    fx = torch.fft.fftfreq(w, dtype=torch.float64)[:_n_columns(w)]
    return torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)


def spectrum_scale(h: int, w: int, decay_power: float = 3.0) -> torch.Tensor:
    """The amplitude of every frequency bin: ``1 / max(f, 1 / max(H, W)) ** decay_power``.

    Args:
        h: image height, an int >= 1.
        w: image width, an int >= 1.
        decay_power: the decay ``d`` of the ``1 / f ** d`` spectrum, a finite number >= 0.

    Returns:
        A float64 CPU tensor ``(H, F)`` (:func:`fft_frequencies`).
    """
    decay_power = check_number("decay_power", decay_power)
    freqs = fft_frequencies(h, w)
    return 1.0 / freqs.clamp_min(1.0 / max(h, w)) ** decay_power


def low_freq_field(h: int, w: int, decay_power: float = 3.0,
                   generator: torch.Generator | None = None, *,
                   noise: torch.Tensor | None = None) -> torch.Tensor:
    """A low-frequency random field: scaled complex Gaussian noise, inverse real FFT.

    Args:
        h: image height, an int >= 1.
        w: image width, an int >= 1.
        decay_power: the spectrum's decay, a finite number >= 0.
        generator: CPU :class:`torch.Generator` for the noise; ``None`` uses torch's default.
        noise: the ``(1, H, F, 2)`` float64 noise to use instead of a draw (real and imaginary
            parts in the last dimension), e.g. to compare with another implementation.

    Returns:
        A float64 CPU tensor ``(H, W)``, unnormalized (see the module docstring).
    """
    scale = spectrum_scale(h, w, decay_power)
    if noise is None:
        noise = torch.randn(1, h, scale.shape[1], 2, generator=check_generator(generator),
                            dtype=torch.float64)
    elif tuple(noise.shape) != (1, h, scale.shape[1], 2):
        raise ValueError(f"noise must have shape {(1, h, scale.shape[1], 2)}, "
                         f"got {tuple(noise.shape)}")
    spec = scale[None, :, :, None] * noise.to(torch.float64)
    spectrum = torch.complex(spec[..., 0], spec[..., 1])
    return torch.fft.irfftn(spectrum, s=(h, w), dim=(-2, -1))[0]


def _ramp(m: int) -> torch.Tensor:
    """``m`` values from 1 down to 0, rounded as ``numpy.linspace(1, 0, m)``: ``1 + i * step``
    with the last set to 0 exactly."""
    if m == 1:
        return torch.ones(1, dtype=torch.float64)
    ramp = torch.arange(m, dtype=torch.float64) * (-1.0 / (m - 1)) + 1.0
    ramp[-1] = 0.0
    return ramp


def binarise_mask(field: torch.Tensor, lam: float, round_up: bool,
                  max_soft: float = 0.0) -> torch.Tensor:
    """The mask of the top ``num`` pixels of ``field`` (the reference's ``binarise_mask``).

    Args:
        field: a real ``(H, W)`` tensor (the low-frequency field).
        lam: the drawn ``lambda`` in ``[0, 1]``.
        round_up: ``num = ceil(lam * H * W)`` if true, else ``floor(lam * H * W)``.
        max_soft: the half-width of the soft ramp as a share of the pixels, in ``[0, 0.5]``.

    Returns:
        A float64 CPU tensor ``(H, W)`` in ``[0, 1]`` whose sum is ``num``: 1 on the ``num -
        soft`` highest pixels, a linear ramp from 1 to 0 over the next ``2 * soft``, 0
        elsewhere (ties of ``field`` ordered by flat index, lowest first).
    """
    lam = check_number("lam", lam, high=1.0)
    max_soft = check_number("max_soft", max_soft, high=0.5)
    flat = field.detach().to("cpu", torch.float64).reshape(-1)
    n = flat.numel()
    order = torch.argsort(flat, descending=True, stable=True)
    num = math.ceil(lam * n) if round_up else math.floor(lam * n)
    eff_soft = min(lam, 1.0 - lam) if (max_soft > lam or max_soft > 1.0 - lam) else max_soft
    soft = int(n * eff_soft)
    low, high = max(num - soft, 0), min(num + soft, n)
    values = torch.zeros(n, dtype=torch.float64)
    values[:low] = 1.0
    if high > low:
        values[low:high] = _ramp(high - low)
    mask = torch.empty(n, dtype=torch.float64)
    mask[order] = values
    return mask.reshape(field.shape)


@dataclasses.dataclass
class FMixParams(MixParams):
    """Parameters of :class:`FMix`.

    Attributes:
        ratios: ``(B, B)`` share of every input in every output (:class:`MixParams`): ``share``
            for the image itself, ``1 - share`` for ``x[perm]``.
        lam: the drawn ``lambda``.
        round_up: the coin: the pixel count was rounded up.
        perm: the permutation (CPU long tensor ``(B,)``).
        field: the low-frequency field ``(H, W)`` (float64, CPU).
        mask: the mask ``(H, W)`` in ``[0, 1]`` (float64, CPU; binary unless ``max_soft > 0``),
            the weight of the image itself.
        share: the mask's mean, the target weight of the image itself.
        size: the image size ``(H, W)`` the mask was drawn for.
    """

    lam: float | None = None
    round_up: bool | None = None
    perm: torch.Tensor | None = None
    field: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    share: float | None = None
    size: tuple[int, int] | None = None


class FMix(Mixer):
    """FMix (Harris et al., arXiv 2002.12047, 2020): one low-frequency binary mask per batch;
    ``mask * x + (1 - mask) * x[perm]``, targets weighted by the mask's pixel share.

    Args:
        num_classes: number of classes of the soft targets, an int >= 1.
        alpha: Beta concentration of ``lambda``, a finite number > 0; default 1.0 (the paper's
            setting in every experiment).
        decay_power: the decay ``d`` of the ``1 / f ** d`` spectrum, a finite number >= 0;
            default 3 (the paper's).
        max_soft: half-width of the soft edge as a share of the pixels, in ``[0, 0.5]``;
            default 0 (a binary mask, the paper's).
        generator: CPU :class:`torch.Generator` for every draw (``lambda``, the noise, the
            rounding coin, then the permutation); ``None`` uses torch's default generator.

    ``return_info=True`` gives an :class:`FMixParams`. Images need not be square. See the
    module docstring for the deviations from the reference code.
    """

    _repr_keys = ("num_classes", "alpha", "decay_power", "max_soft")

    def __init__(self, num_classes: int, *, alpha: float = 1.0, decay_power: float = 3.0,
                 max_soft: float = 0.0, generator: torch.Generator | None = None) -> None:
        super().__init__(num_classes, generator=generator)
        self.alpha = check_number("alpha", alpha, low_open=True)
        self.decay_power = check_number("decay_power", decay_power)
        self.max_soft = check_number("max_soft", max_soft, high=0.5)

    @full_precision
    def sample_params(self, x, targets, saliency=None) -> FMixParams:
        """Draw ``lambda``, the noise, the rounding coin and the permutation, in this order,
        and build the mask on the CPU."""
        b, _, h, w = x.shape
        lam = sample_lambda(self.alpha, self.generator)
        field = low_freq_field(h, w, self.decay_power, self.generator)
        round_up = float(torch.rand(1, generator=self.generator, dtype=torch.float64)) > 0.5
        perm = torch.randperm(b, generator=self.generator)
        mask = binarise_mask(field, lam, round_up, self.max_soft)
        share = float(mask.sum()) / (h * w)
        ratios = permutation_ratios([torch.arange(b), perm], [share, 1.0 - share],
                                    targets.dtype, x.device)
        return FMixParams(ratios=ratios, lam=lam, round_up=round_up, perm=perm, field=field,
                          mask=mask, share=share, size=(h, w))

    @full_precision
    def apply(self, x, targets, params: FMixParams):
        """``mask * x + (1 - mask) * x[perm]`` for any ``(B, C', H, W)`` of the drawn batch and
        image size, and the targets mixed by ``share``."""
        check_drawn_for(x, params.perm.numel(), params.size, "mask was")
        perm = params.perm.to(x.device)
        mask = params.mask.to(device=x.device, dtype=x.dtype)
        x_mix = mask * x + (1.0 - mask) * x[perm]
        if targets is None:
            return x_mix, None
        y_mix = params.share * targets + (1.0 - params.share) * targets[perm.to(targets.device)]
        return x_mix, y_mix
