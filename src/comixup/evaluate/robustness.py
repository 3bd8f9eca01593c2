"""Robustness to background corruption (Section 5.4, Table 3, Appendix G).

The foreground (the pixels inside the ground-truth boxes, mask ``z``) is kept; the background
is corrupted, and the top-1 error on the corrupted test set is compared with the clean one.
Appendix G defines, for a test image ``x_j`` with box mask ``z_j``:

* ``"replace"``: ``x_j * z_j + x_i(j) * (1 - z_j)`` for a random permutation ``i`` of the test
  set. Here the permutation covers the whole test set, has no fixed point (no image is
  "corrupted" with itself) and is drawn from a seeded generator (:func:`derangement`);
  :class:`BackgroundCorrupted` applies it sample by sample, so it is not limited to a batch.
* ``"gaussian"``: ``x_j * z_j + eps * (1 - z_j)`` with ``eps ~ N(0, 0.1^2)`` on the ``[0, 1]``
  pixel scale, clipped to ``[0, 1]`` -- Appendix G's formula taken literally: the background is
  *replaced* by noise around 0 (after clipping, half the background pixels are 0 and the rest
  a small positive value: mean ``0.1 / sqrt(2 pi) = 0.0399``, std ``0.1 sqrt(1/2 - 1/(2 pi))
  = 0.0584``), i.e. a dark noisy background.
* ``"gaussian_add"``: ``x_j + eps`` outside the boxes, clipped to ``[0, 1]`` -- the reading of
  Section 5.4's words "adding Gaussian noise". The paper's Figure 10(b) is the way to decide
  between the two; both are offered and reported separately.

The dataset normalization is undone before the Gaussian modes and redone after (``mean`` /
``std`` of the dataset); pixels inside the boxes are returned bit-for-bit unchanged in every
mode. A pixel belongs to a box when its centre lies in it (:func:`box_mask`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .localization import box_mask

__all__ = [
    "MODES",
    "NOISE_STD",
    "BackgroundCorrupted",
    "corrupt_background",
    "derangement",
    "robustness",
]

#: Corruption modes: Appendix G's two (``replace``, ``gaussian``) and the additive reading.
MODES = ("replace", "gaussian", "gaussian_add")
#: Standard deviation of the Gaussian noise on the [0, 1] pixel scale (Appendix G).
NOISE_STD = 0.1


def _check_generator(generator) -> torch.Generator:
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    return generator


def derangement(n: int, *, generator: torch.Generator) -> torch.Tensor:
    """A uniformly random permutation of ``range(n)`` without fixed points.

    Drawn by rejection (``torch.randperm`` from ``generator`` until no ``perm[i] == i``;
    about ``e = 2.7`` draws on average, whatever ``n``).

    Args:
        n: an int >= 2.
        generator: the source of randomness.

    Returns:
        ``(n,)`` int64 tensor.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an int >= 2 (a derangement of fewer items does not exist), "
                         f"got {n!r}")
    _check_generator(generator)
    ar = torch.arange(n)
    for _ in range(10_000):
        perm = torch.randperm(n, generator=generator)
        if not (perm == ar).any():
            return perm
    raise RuntimeError("could not draw a derangement")  # pragma: no cover - p ~ (1 - 1/e)^1e4


def _channel_stats(values, name: str, channels: int, like: torch.Tensor) -> torch.Tensor:
    if values is None:
        raise ValueError(f"{name} is required by the Gaussian modes (the dataset normalization)")
    t = torch.as_tensor(values, dtype=like.dtype, device=like.device).flatten()
    if t.numel() == 1:
        t = t.expand(channels)
    if t.numel() != channels:
        raise ValueError(f"{name} must have one value per channel ({channels}), got {t.numel()}")
    if name == "std" and not (t > 0).all():
        raise ValueError("std must be positive")
    return t.view(1, channels, 1, 1)


def corrupt_background(
    x: torch.Tensor,
    boxes,
    mode: str,
    *,
    generator: torch.Generator | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    other: torch.Tensor | None = None,
    noise_std: float = NOISE_STD,
) -> torch.Tensor:
    """Corrupt the background of a batch outside its ground-truth boxes (Appendix G).

    Args:
        x: ``(B, C, H, W)`` normalized images (``(pixel - mean) / std``).
        boxes: the ground-truth boxes, ``(B, 4)`` / ``(B, K, 4)`` or a list of ``B`` lists of
            ``(x0, y0, x1, y1)`` boxes in pixel-edge coordinates (see :func:`box_mask`).
        mode: ``"replace"``, ``"gaussian"`` or ``"gaussian_add"`` (module docstring).
        generator: source of the noise (Gaussian modes) and of the in-batch permutation
            (``"replace"`` without ``other``).
        mean, std: the per-channel normalization of ``x`` (required by the Gaussian modes).
        other: ``(B, C, H, W)`` images whose pixels fill the background in ``"replace"`` mode
            (:class:`BackgroundCorrupted` passes the permuted test image). Without it the
            batch is permuted by a :func:`derangement` drawn from ``generator``.
        noise_std: the standard deviation of ``eps`` on the [0, 1] scale (0.1).

    Returns:
        A new tensor like ``x``; pixels inside the boxes are unchanged.
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point():
        raise ValueError(f"x must be a float (B, C, H, W) tensor, got "
                         f"{getattr(x, 'shape', type(x).__name__)}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
    b, c, h, w = x.shape
    batch = boxes.shape[0] if isinstance(boxes, torch.Tensor) else len(boxes)
    if batch != b:
        raise ValueError(f"boxes must hold {b} samples (one entry per image), got {batch}")
    inside = box_mask(boxes, h, w).to(x.device)[:, None]  # (B, 1, H, W)
    if mode == "replace":
        if other is None:
            perm = derangement(b, generator=_check_generator(generator)).to(x.device)
            other = x[perm]
        elif not isinstance(other, torch.Tensor) or other.shape != x.shape:
            raise ValueError(f"other must be a tensor of shape {tuple(x.shape)}, got "
                             f"{getattr(other, 'shape', type(other).__name__)}")
        return torch.where(inside, x, other.to(device=x.device, dtype=x.dtype))
    if isinstance(noise_std, bool) or not isinstance(noise_std, (int, float)) or noise_std < 0:
        raise ValueError(f"noise_std must be a number >= 0, got {noise_std!r}")
    _check_generator(generator)
    m = _channel_stats(mean, "mean", c, x)
    s = _channel_stats(std, "std", c, x)
    eps = torch.randn(x.shape, generator=generator, dtype=torch.float32).to(
        device=x.device, dtype=x.dtype) * noise_std
    if mode == "gaussian":
        pixels = eps
    else:  # gaussian_add
        pixels = x * s + m + eps
    background = (pixels.clamp(0.0, 1.0) - m) / s
    return torch.where(inside, x, background)


class BackgroundCorrupted(torch.utils.data.Dataset):
    """A test set with corrupted backgrounds (Table 3, Appendix G), sample by sample.

    ``BackgroundCorrupted(ds, mode, seed=s)[i]`` is ``ds[i]`` with the background outside
    ``ds.boxes(i)`` corrupted by :func:`corrupt_background`. In ``"replace"`` mode the pixels
    come from ``ds[permutation[i]]``, with :attr:`permutation` a :func:`derangement` of the
    whole dataset drawn from ``torch.Generator().manual_seed(seed)``; in the Gaussian modes the
    noise of sample ``i`` comes from a generator seeded by ``(seed, i)``, so the corrupted set
    does not depend on batching, workers or order. A sample without boxes has an empty mask:
    its whole image is corrupted.

    Args:
        dataset: a map-style dataset of ``(x, y)`` with ``has_boxes`` and ``boxes(i)``.
        mode: one of :data:`MODES`.
        seed: the seed of the permutation / noise.
        mean, std: the normalization of ``x`` (default: ``dataset.info``).
        noise_std: see :func:`corrupt_background`.
    """

    def __init__(self, dataset, mode: str, *, seed: int = 0, mean=None, std=None,
                 noise_std: float = NOISE_STD):
        if not getattr(dataset, "has_boxes", False):
            raise ValueError(f"dataset: {type(dataset).__name__} has no bounding boxes")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {seed!r}")
        info = getattr(dataset, "info", None)
        self.dataset = dataset
        self.mode = mode
        self.seed = seed
        self.mean = tuple(mean if mean is not None else getattr(info, "mean", ()))
        self.std = tuple(std if std is not None else getattr(info, "std", ()))
        if mode != "replace" and (not self.mean or not self.std):
            raise ValueError("mean and std are required (the dataset has no info)")
        self.noise_std = noise_std
        self.permutation = (derangement(len(dataset), generator=torch.Generator().manual_seed(seed))
                            if mode == "replace" else None)

    @property
    def info(self):
        """The wrapped dataset's :class:`~comixup.data.common.DatasetInfo` (if any)."""
        return getattr(self.dataset, "info", None)

    has_boxes = True

    def boxes(self, index: int):
        """The wrapped dataset's boxes of sample ``index`` (the kept foreground)."""
        return self.dataset.boxes(index)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        from ..data.loader import sample_seed

        x, y = self.dataset[index]
        boxes = [self.dataset.boxes(index)]
        if self.mode == "replace":
            other = self.dataset[int(self.permutation[index])][0]
            out = corrupt_background(x[None], boxes, "replace", other=other[None])
        else:
            g = torch.Generator().manual_seed(sample_seed(self.seed, index))
            out = corrupt_background(x[None], boxes, self.mode, generator=g, mean=self.mean,
                                     std=self.std, noise_std=self.noise_std)
        return out[0], y


def robustness(
    model: torch.nn.Module,
    dataset,
    num_classes: int,
    device: torch.device | str = "cpu",
    *,
    modes: Sequence[str] = ("replace", "gaussian"),
    seed: int = 0,
    batch_size: int = 100,
    workers: int = 0,
    clean_error: float | None = None,
    autocast_dtype: torch.dtype | None = None,
    progress: bool = False,
) -> dict:
    """Top-1 error on background-corrupted copies of a test set (Table 3).

    Args:
        model: the classifier.
        dataset: the clean test set (with boxes).
        num_classes: number of classes.
        device: where the model lives.
        modes: corruption modes (:data:`MODES`); Table 3 has ``replace`` and ``gaussian``.
        seed: seed of the permutation and the noise (:class:`BackgroundCorrupted`).
        batch_size, workers: of the evaluation loader.
        clean_error: the clean top-1 error (percent) of the same samples; evaluated when None.
        autocast_dtype: forward under :func:`torch.autocast` with this dtype.
        progress: a tqdm bar over each pass.

    Returns:
        ``{"clean_error", "seed", "<mode>": {"error", "error_top5", "ece", "loss",
        "samples", "increase"}, ...}``, errors in percent; ``increase`` is the corrupted minus
        the clean error (the parenthesized numbers of Table 3).
    """
    from tqdm.auto import tqdm

    from .metrics import evaluate

    modes = list(modes)
    if not modes or any(m not in MODES for m in modes):
        raise ValueError(f"modes must be a non-empty list of {list(MODES)}, got {modes!r}")

    def run(ds, desc):
        loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=False,
                                             num_workers=workers)
        bar = tqdm(loader, desc=desc, disable=not progress, leave=False, unit="batch",
                   dynamic_ncols=True)
        result = evaluate(model, bar, num_classes, device, autocast_dtype=autocast_dtype,
                          sync=False)
        result.pop("bins")
        return result

    if clean_error is None:
        clean_error = run(dataset, "clean")["error"]
    out: dict = {"clean_error": float(clean_error), "seed": seed}
    for mode in modes:
        r = run(BackgroundCorrupted(dataset, mode, seed=seed), mode)
        r["increase"] = r["error"] - float(clean_error)
        out[mode] = r
    return out
