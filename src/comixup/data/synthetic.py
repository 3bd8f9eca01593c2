"""The embedded ``synthetic`` benchmark: localized objects over class-free clutter.

Each class is a conjunction of three attributes of one object: a *shape* (disk, square,
triangle, ring, plus, rhombus, star, crescent, hexagon), a *texture* (solid, stripes, checker,
dots, concentric rings) and a *colour* (a palette of 8). The attribute values used are drawn from
the seed so that every value is shared by about two classes: no single attribute identifies a
class, only the conjunction does.

An image (see ``docs/figures/synthetic_samples.png``) is painted in this order:

1. a smooth random colour field (a bilinearly upsampled 4 x 4 grid of muted colours);
2. ``num_distractors`` objects whose attribute triple is *not* a class triple, at random
   positions, scales and orientations;
3. ``num_fragments`` *fragments of class objects*: a full class object (of a class drawn
   uniformly, independently of the image's label) cut by a random half-plane near its centre,
   so that at most about 60% of it remains;
4. the class-defining object, complete and on top, at a random position (inside the image),
   radius ``scale`` x image side and orientation, with jittered colour;
5. Gaussian pixel noise, then quantization to uint8.

Steps 1-3 carry no information about the label. The ground-truth box is the bounding box of the
object's visible pixels (alpha > 0.5), in pixel-edge coordinates ``(x0, y0, x1, y1)``, and the
ground-truth mask is those pixels: a class map with ``label + 1`` on them and 0 (background)
elsewhere, fragments and distractors included. :class:`SyntheticSegmentation` serves it as a
segmentation task (``synthetic-seg``: ``num_classes + 1`` classes, background first).

Everything is drawn with numpy from ``numpy.random.SeedSequence`` streams derived from
``(seed, split, chunk)``; images are rendered in vectorized chunks of 512 (signed-distance
functions with anti-aliased edges, no Python loop over pixels). Sample ``i`` of a split does
not depend on ``num_train`` / ``num_test`` (a smaller set is a prefix of a larger one), and
``image_size`` only changes the resolution: ``synthetic64`` renders the same scenes as
``synthetic`` at 64 x 64 (with its own pixel noise). Datasets are
cached as ``synthetic-<hash>-<split>.npz`` (written atomically) under ``root/synthetic/`` when a
root is given, else under ``$COMIXUP_CACHE`` or ``~/.cache/comixup``.

Calibration (``docs/data.md``): a vanilla PreActResNet18 of width 16 trained on the defaults
(5000 train / 1000 test, flip augmentation, SGD 0.1 Nesterov, wd 1e-4, batch 100) reaches 0.4%
training and 20.5% test error after 20 cosine epochs, 0.1% / 16.9% after 30 step-decay epochs.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from . import transforms as T
from .common import BoxedDataset, DatasetInfo, check_split, select_subset

__all__ = [
    "COLOURS",
    "SHAPES",
    "SYNTHETIC64_INFO",
    "SYNTHETIC64_SEG_INFO",
    "SYNTHETIC_INFO",
    "SYNTHETIC_SEG_INFO",
    "TEXTURES",
    "Synthetic",
    "SyntheticConfig",
    "SyntheticSegmentation",
    "cache_dir",
    "class_attributes",
    "generate",
    "load_or_generate",
    "mask_dtype",
    "save_sample_grid",
    "save_segmentation_grid",
    "segmentation_info",
    "synthetic_info",
]

#: Version of the generator, part of the cache key: bump it whenever the images change.
GENERATOR_VERSION = 1
_CHUNK = 512

SHAPES = ("disk", "square", "triangle", "ring", "plus", "rhombus", "star", "crescent", "hexagon")
TEXTURES = ("solid", "stripes", "checker", "dots", "rings")
COLOURS = {
    "red": (0.90, 0.12, 0.12),
    "green": (0.12, 0.72, 0.18),
    "blue": (0.18, 0.30, 0.95),
    "yellow": (0.95, 0.85, 0.10),
    "magenta": (0.85, 0.18, 0.80),
    "cyan": (0.10, 0.80, 0.85),
    "orange": (1.00, 0.55, 0.05),
    "white": (0.95, 0.95, 0.95),
}
COLOURS_NAMES = tuple(COLOURS)
_PALETTE = np.array(list(COLOURS.values()), dtype=np.float32)


@dataclass(frozen=True)
class SyntheticConfig:
    """Parameters of the synthetic benchmark (all of them enter the cache key).

    Attributes:
        num_classes: number of classes (at most 360 = 9 shapes x 5 textures x 8 colours).
        image_size: side of the square images.
        num_train: training images.
        num_test: test images.
        seed: generation seed (class attributes and images).
        scale: range of the object radius as a fraction of the image side.
        num_fragments: fragments of class objects per image (clutter).
        num_distractors: non-class objects per image (clutter).
        noise: standard deviation of the Gaussian pixel noise (pixel values in [0, 1]).
        colour_jitter: standard deviation of the per-object colour jitter.
    """

    num_classes: int = 10
    image_size: int = 32
    num_train: int = 5000
    num_test: int = 1000
    seed: int = 0
    scale: tuple[float, float] = (0.12, 0.24)
    num_fragments: int = 5
    num_distractors: int = 4
    noise: float = 0.08
    colour_jitter: float = 0.12

    def __post_init__(self):
        for name in (
            "num_classes",
            "image_size",
            "num_train",
            "num_test",
            "seed",
            "num_fragments",
            "num_distractors",
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise TypeError(f"{name} must be an int, got {type(v).__name__}")
        if not 2 <= self.num_classes <= len(SHAPES) * len(TEXTURES) * len(COLOURS):
            raise ValueError(f"num_classes must be in [2, 360], got {self.num_classes}")
        if self.image_size < 8:
            raise ValueError(f"image_size must be >= 8, got {self.image_size}")
        for name in ("num_train", "num_test", "num_fragments", "num_distractors", "seed"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        lo, hi = (float(s) for s in self.scale)
        if not 0.02 <= lo <= hi <= 0.5:
            raise ValueError(f"scale must satisfy 0.02 <= lo <= hi <= 0.5, got {self.scale}")
        object.__setattr__(self, "scale", (lo, hi))
        if self.noise < 0 or self.colour_jitter < 0:
            raise ValueError("noise and colour_jitter must be >= 0")

    def key(self) -> str:
        """A short hash of the configuration and generator version (the cache key)."""
        payload = json.dumps({"v": GENERATOR_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha1(payload.encode()).hexdigest()[:16]


def _seq(*entropy: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(e) for e in entropy]))


def class_attributes(config: SyntheticConfig) -> np.ndarray:
    """The ``(num_classes, 3)`` table of (shape, texture, colour) indices of each class.

    About ``num_classes / 2`` values of each attribute are used (fewer if the vocabulary is
    smaller), each by a balanced number of classes, and all triples are distinct.
    """
    k = config.num_classes
    sizes = (len(SHAPES), len(TEXTURES), len(COLOURS))
    rng = _seq(config.seed, 7919)
    used = [max(2, min(n, -(-k // 2))) for n in sizes]
    while np.prod(used) < k:
        used = [min(n, u + 1) for n, u in zip(sizes, used)]
    vocab = [rng.permutation(n)[:u] for n, u in zip(sizes, used)]
    for _ in range(2000):
        cols = [v[rng.permutation(np.resize(np.arange(len(v)), k))] for v in vocab]
        table = np.stack(cols, axis=1)
        if len({tuple(r) for r in table}) == k:
            return table.astype(np.int64)
    # Fallback for dense settings: distinct triples drawn without replacement.
    grid = np.stack(np.meshgrid(*vocab, indexing="ij"), -1).reshape(-1, 3)
    return grid[rng.choice(len(grid), size=k, replace=False)].astype(np.int64)


# --------------------------------------------------------------------------------------------
# Rendering: signed distance functions in object-local units (object radius = 1).


def _box_sdf(u, v, a, b):
    qx, qy = np.abs(u) - a, np.abs(v) - b
    return np.hypot(np.maximum(qx, 0), np.maximum(qy, 0)) + np.minimum(np.maximum(qx, qy), 0)


def _shape_sdf(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    r = np.hypot(u, v)
    name = SHAPES[shape]
    if name == "disk":
        return r - 0.95
    if name == "square":
        return _box_sdf(u, v, 0.78, 0.78)
    if name == "triangle":
        d = -v - 0.5  # three half-planes of an equilateral triangle of circumradius 1
        for ang in (np.pi / 6, 5 * np.pi / 6):
            d = np.maximum(d, np.cos(ang) * u + np.sin(ang) * v - 0.5)
        return d
    if name == "ring":
        return np.abs(r - 0.68) - 0.30
    if name == "plus":
        return np.minimum(_box_sdf(u, v, 0.95, 0.30), _box_sdf(u, v, 0.30, 0.95))
    if name == "rhombus":  # half-diagonals 1 and 0.55: not a rotated square
        return (np.abs(u) * 0.55 + np.abs(v) - 0.55) / np.hypot(1.0, 0.55)
    if name == "star":
        theta = np.arctan2(v, u)
        return (r - (0.62 + 0.38 * np.cos(5 * theta))) * 0.6
    if name == "crescent":
        return np.maximum(r - 0.95, 0.72 - np.hypot(u - 0.45, v))
    if name == "hexagon":
        au, av = np.abs(u), np.abs(v)
        return np.maximum(au * 0.8660254 + av * 0.5, av) - 0.85
    raise ValueError(f"unknown shape {shape}")


def _texture(texture: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    name = TEXTURES[texture]
    if name == "solid":
        return np.zeros_like(u)
    if name == "stripes":
        return (np.sin(3.0 * np.pi * u) > 0).astype(u.dtype)
    if name == "checker":
        return (np.sin(2.4 * np.pi * u) * np.sin(2.4 * np.pi * v) > 0).astype(u.dtype)
    if name == "dots":
        fu, fv = np.mod(u * 1.5, 1.0) - 0.5, np.mod(v * 1.5, 1.0) - 0.5
        return (np.hypot(fu, fv) < 0.28).astype(u.dtype)
    if name == "rings":
        return (np.sin(3.0 * np.pi * np.hypot(u, v)) > 0).astype(u.dtype)
    raise ValueError(f"unknown texture {texture}")


def _upsample_matrix(out: int, inp: int) -> np.ndarray:
    """``(out, inp)`` bilinear interpolation weights (align_corners=False)."""
    pos = (np.arange(out) + 0.5) * inp / out - 0.5
    pos = np.clip(pos, 0, inp - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, inp - 1)
    w = pos - lo
    m = np.zeros((out, inp), dtype=np.float32)
    m[np.arange(out), lo] += 1 - w
    m[np.arange(out), hi] += w
    return m


def _paint(img, layer, s, xs, ys):
    """Alpha-composite one object per image of ``img`` ``(B, 3, S, S)`` in place.

    ``layer`` holds per-image arrays: ``cx, cy, radius, angle`` (pixels / radians), ``shape,
    texture`` (ints), ``colour`` ``(B, 3)`` and optionally ``cut_angle, cut_offset`` for a
    half-plane cut (offset in object radii). Returns the alpha ``(B, S, S)``.
    """
    b = img.shape[0]
    dx = xs[None] - layer["cx"][:, None, None]
    dy = ys[None] - layer["cy"][:, None, None]
    c, sn = np.cos(layer["angle"])[:, None, None], np.sin(layer["angle"])[:, None, None]
    rad = layer["radius"][:, None, None]
    u = (c * dx + sn * dy) / rad
    v = (-sn * dx + c * dy) / rad
    sdf = np.empty((b, s, s), dtype=np.float32)
    tex = np.empty((b, s, s), dtype=np.float32)
    for k in np.unique(layer["shape"]):
        m = layer["shape"] == k
        sdf[m] = _shape_sdf(int(k), u[m], v[m])
    for k in np.unique(layer["texture"]):
        m = layer["texture"] == k
        tex[m] = _texture(int(k), u[m], v[m])
    alpha = np.clip(0.5 - sdf * rad, 0.0, 1.0)
    if "cut_angle" in layer:
        ca = layer["cut_angle"][:, None, None]
        dist = np.cos(ca) * dx + np.sin(ca) * dy - layer["cut_offset"][:, None, None] * rad
        alpha *= np.clip(0.5 - dist, 0.0, 1.0)
    shade = 1.0 - 0.6 * tex
    colour = layer["colour"][:, :, None, None] * shade[:, None]
    a = alpha[:, None]
    img *= 1.0 - a
    img += a * colour
    return alpha


def _head(layer: dict, m: int) -> dict:
    return {key: value[:m] for key, value in layer.items()}


def _render_chunk(
    config: SyntheticConfig, table: np.ndarray, split_id: int, chunk: int, m: int = _CHUNK
):
    """Render the first ``m`` images of chunk ``chunk``.

    Every parameter is drawn for the whole chunk (so image ``i`` does not depend on ``m``) and
    only the first ``m`` images are painted. Returns ``(images uint8 (m, S, S, 3), labels,
    boxes (m, 4), masks (m, S, S))``: the mask is ``label + 1`` where the class object's alpha
    exceeds 0.5 (the pixels the box is the bounding box of) and 0 elsewhere (see
    :func:`mask_dtype`). The masks draw nothing from the generators: the images, labels and
    boxes are those of a renderer without them.
    """
    rng = _seq(config.seed, split_id, chunk)
    n, s, k = _CHUNK, config.image_size, config.num_classes
    lo, hi = config.scale
    labels = rng.integers(0, k, size=n)
    # Smooth background.
    grid = rng.uniform(0.15, 0.85, size=(n, 3, 4, 4)).astype(np.float32)[:m]
    grid = 0.5 * grid + 0.5 * grid.mean(axis=1, keepdims=True)  # muted colours
    up = _upsample_matrix(s, 4)
    img = np.einsum("hi,bcij,wj->bchw", up, grid, up).astype(np.float32)
    ys, xs = np.meshgrid(
        np.arange(s, dtype=np.float32) + 0.5, np.arange(s, dtype=np.float32) + 0.5, indexing="ij"
    )
    sizes = (len(SHAPES), len(TEXTURES), len(COLOURS))
    class_set = {tuple(r) for r in table}
    used = [np.unique(table[:, a]) for a in range(3)]

    def colour_of(idx):
        """Palette colours ``idx`` with per-object jitter and brightness, for the whole chunk."""
        col = _PALETTE[idx] + rng.normal(0, config.colour_jitter, size=(n, 3)).astype(np.float32)
        col *= rng.uniform(0.8, 1.1, size=(n, 1)).astype(np.float32)
        return np.clip(col, 0.0, 1.0)

    def placement(scale_lo, scale_hi, inside):
        """Random radius, centre (fully inside the image if ``inside``) and angle per image."""
        radius = rng.uniform(scale_lo, scale_hi, size=n) * s
        if inside:
            cx = rng.uniform(0.0, 1.0, size=n) * (s - 1.8 * radius) + 0.9 * radius
            cy = rng.uniform(0.0, 1.0, size=n) * (s - 1.8 * radius) + 0.9 * radius
        else:
            cx, cy = rng.uniform(0, s, size=n), rng.uniform(0, s, size=n)
        return {
            "cx": cx.astype(np.float32),
            "cy": cy.astype(np.float32),
            "radius": radius.astype(np.float32),
            "angle": rng.uniform(0, 2 * np.pi, size=n).astype(np.float32),
        }

    for _ in range(config.num_distractors):
        # Attribute triples from the used vocabulary that are not class triples.
        attrs = np.stack([u[rng.integers(0, len(u), size=n)] for u in used], axis=1)
        for _retry in range(50):
            bad = np.array([tuple(r) in class_set for r in attrs])
            if not bad.any():
                break
            attrs[bad] = np.stack(
                [rng.integers(0, sz, size=int(bad.sum())) for sz in sizes], axis=1
            )
        else:  # pragma: no cover - only for absurdly dense class sets
            attrs[bad, 0] = -1
        keep = attrs[:, 0] >= 0
        layer = placement(0.6 * lo, hi, inside=False)
        layer.update(
            shape=np.where(keep, attrs[:, 0], 0), texture=attrs[:, 1], colour=colour_of(attrs[:, 2])
        )
        layer["radius"] = np.where(keep, layer["radius"], 1e-3).astype(np.float32)
        _paint(img, _head(layer, m), s, xs, ys)
    for _ in range(config.num_fragments):
        cls = rng.integers(0, k, size=n)
        layer = placement(lo, hi, inside=False)
        layer.update(
            shape=table[cls, 0],
            texture=table[cls, 1],
            colour=colour_of(table[cls, 2]),
            cut_angle=rng.uniform(0, 2 * np.pi, size=n).astype(np.float32),
            cut_offset=rng.uniform(-0.35, 0.2, size=n).astype(np.float32),
        )
        _paint(img, _head(layer, m), s, xs, ys)
    layer = placement(lo, hi, inside=True)
    layer.update(
        shape=table[labels, 0], texture=table[labels, 1], colour=colour_of(table[labels, 2])
    )
    layer = _head(layer, m)
    alpha = _paint(img, layer, s, xs, ys)
    if config.noise:  # a separate stream, drawn for the m painted images only
        noise = _seq(config.seed, split_id, chunk, 1).normal(0.0, config.noise, size=img.shape)
        img += noise.astype(np.float32)
    images = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)

    mask = alpha > 0.5
    rows, cols = mask.any(axis=2), mask.any(axis=1)
    empty = ~rows.any(axis=1)
    y0 = np.argmax(rows, axis=1)
    y1 = s - np.argmax(rows[:, ::-1], axis=1)
    x0 = np.argmax(cols, axis=1)
    x1 = s - np.argmax(cols[:, ::-1], axis=1)
    boxes = np.stack([x0, y0, x1, y1], axis=1).astype(np.float32)
    if empty.any():  # pragma: no cover - objects are at least a few pixels wide
        c = np.stack([layer["cx"], layer["cy"]], 1)[empty]
        boxes[empty] = np.concatenate([np.floor(c), np.floor(c) + 1], axis=1)
    labels = labels[:m].astype(np.int64)
    masks = np.where(mask, labels[:, None, None] + 1, 0).astype(mask_dtype(config))
    return images, labels, boxes, masks


def mask_dtype(config: SyntheticConfig) -> np.dtype:
    """dtype of the class maps of ``config``: uint8, or int16 when ``num_classes + 1 > 255``."""
    return np.dtype(np.uint8 if config.num_classes + 1 <= 255 else np.int16)


def generate(config: SyntheticConfig, split: str, n: int | None = None):
    """Render a split in memory.

    Args:
        config: the benchmark parameters.
        split: ``"train"`` or ``"test"``.
        n: number of images (default ``config.num_train`` / ``config.num_test``); sample ``i`` is
            the same for every ``n > i``.

    Returns:
        dict with ``images`` ``(n, S, S, 3)`` uint8, ``labels`` ``(n,)`` int64, ``boxes``
        ``(n, 4)`` float32, ``masks`` ``(n, S, S)`` (:func:`mask_dtype`: the class map, 0 for
        background and ``label + 1`` on the class object, whose bounding box is the box;
        fragments and distractors are background) and ``attributes`` (:func:`class_attributes`).
    """
    check_split(split, ("train", "test"), "synthetic")
    total = (config.num_train if split == "train" else config.num_test) if n is None else n
    if isinstance(total, bool) or not isinstance(total, (int, np.integer)) or total < 0:
        raise ValueError(f"n must be an int >= 0, got {n!r}")
    table = class_attributes(config)
    split_id = 0 if split == "train" else 1
    total = int(total)
    parts = [
        _render_chunk(config, table, split_id, c, min(_CHUNK, total - c * _CHUNK))
        for c in range(-(-total // _CHUNK))
    ]
    s = config.image_size
    if parts:
        images, labels, boxes, masks = (np.concatenate(p)[:total] for p in zip(*parts))
    else:
        images = np.zeros((0, s, s, 3), np.uint8)
        labels, boxes = np.zeros(0, np.int64), np.zeros((0, 4), np.float32)
        masks = np.zeros((0, s, s), mask_dtype(config))
    return {
        "images": images,
        "labels": labels,
        "boxes": boxes,
        "masks": masks,
        "attributes": table,
    }


_KEYS = ("images", "labels", "boxes", "masks", "attributes")


def cache_dir(root=None) -> Path:
    """Where synthetic datasets are cached: ``root/synthetic``, else ``$COMIXUP_CACHE``, else
    ``~/.cache/comixup``."""
    if root is not None:
        return Path(os.path.expanduser(str(root))) / "synthetic"
    env = os.environ.get("COMIXUP_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "comixup"


def load_or_generate(config: SyntheticConfig, split: str, root=None, *, cache: bool = True):
    """:func:`generate` through the on-disk cache (see :func:`cache_dir`).

    The file ``synthetic-<config.key()>-<split>.npz`` is written atomically (temporary file in
    the same directory, then :func:`os.replace`), so concurrent processes never read a partial
    file. With ``cache=False`` nothing is read or written. A cached file that lacks one of the
    arrays (e.g. written before ``masks`` existed) or cannot be read is regenerated and replaced.
    """
    check_split(split, ("train", "test"), "synthetic")
    if not cache:
        return generate(config, split)
    path = cache_dir(root) / f"synthetic-{config.key()}-{split}.npz"
    if path.exists():
        try:
            with np.load(path) as z:
                return {k: z[k] for k in _KEYS}
        except (OSError, ValueError, KeyError):
            pass  # corrupt or foreign file: regenerate
    data = generate(config, split)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return data


def synthetic_info(config: SyntheticConfig) -> DatasetInfo:
    """The :class:`DatasetInfo` of a configuration (normalization constants are fixed)."""
    return DatasetInfo(
        num_classes=config.num_classes,
        channels=3,
        image_size=(config.image_size, config.image_size),
        mean=_MEAN,
        std=_STD,
    )


# Normalization constants: per-channel mean and std of the default training set (rounded).
_MEAN = (0.49, 0.47, 0.51)
_STD = (0.22, 0.20, 0.21)
SYNTHETIC_INFO = synthetic_info(SyntheticConfig())
SYNTHETIC64_INFO = synthetic_info(SyntheticConfig(image_size=64))


def segmentation_info(config: SyntheticConfig) -> DatasetInfo:
    """The :class:`DatasetInfo` of the segmentation task of a configuration:
    ``num_classes = config.num_classes + 1`` (class 0 is the background) and
    ``task="segmentation"``; the images and their normalization are those of
    :func:`synthetic_info`."""
    info = synthetic_info(config)
    return replace(info, num_classes=info.num_classes + 1, task="segmentation")


SYNTHETIC_SEG_INFO = segmentation_info(SyntheticConfig())
SYNTHETIC64_SEG_INFO = segmentation_info(SyntheticConfig(image_size=64))


def _class_names(attributes: np.ndarray) -> list[str]:
    return [f"{COLOURS_NAMES[c]} {TEXTURES[t]} {SHAPES[s]}" for s, t, c in attributes]


def _check_config(config) -> SyntheticConfig:
    config = SyntheticConfig() if config is None else config
    if not isinstance(config, SyntheticConfig):
        raise TypeError(f"config must be a SyntheticConfig, got {type(config).__name__}")
    return config


class Synthetic(BoxedDataset):
    """The synthetic benchmark returning ``(x, y)``: normalized float32 ``(3, S, S)`` and an int.

    Every image has exactly one box, the class object's, available from :meth:`boxes` (and as
    the ``(N, 4)`` tensor ``all_boxes``).

    Args:
        config: generation parameters (default :class:`SyntheticConfig`).
        split: ``"train"`` or ``"test"``.
        train_transform: apply a random horizontal flip (preceded by ``RandomCrop(S, padding)``
            when ``padding > 0``). Objects are already at random positions, so no crop by
            default: the benchmark is calibrated so that a vanilla network overfits it.
        limit: keep a deterministic subset of this many samples.
        seed: seed of the ``limit`` subset (the data themselves depend on ``config.seed``).
        root: cache location (see :func:`cache_dir`).
        cache: read/write the on-disk cache.
        padding: random-crop padding of the training augmentation (default 0: flip only).
    """

    def __init__(
        self,
        config: SyntheticConfig | None = None,
        *,
        split: str = "train",
        train_transform: bool = False,
        limit: int | None = None,
        seed: int = 0,
        root=None,
        cache: bool = True,
        padding: int = 0,
    ):
        config = _check_config(config)
        check_split(split, ("train", "test"), self.name)
        data = load_or_generate(config, split, root, cache=cache)
        keep = select_subset(len(data["labels"]), limit, seed)
        self.config = config
        self.split = split
        self.attributes = data["attributes"]
        self.images = torch.from_numpy(np.ascontiguousarray(data["images"][keep]))
        self.targets = data["labels"][keep].tolist()
        self.all_boxes = torch.from_numpy(np.ascontiguousarray(data["boxes"][keep]))
        steps = []
        if train_transform:
            if padding:
                steps.append(T.RandomCrop(config.image_size, padding=padding))
            steps.append(T.RandomHorizontalFlip())
        self._setup(data, keep, steps)

    #: The dataset's registry name (in error messages).
    name = "synthetic"

    def _setup(self, data: dict, keep: np.ndarray, steps: list) -> None:
        """The task's part of the construction: info, class names and transforms."""
        self.info = synthetic_info(self.config)
        self.classes = _class_names(self.attributes)
        self.transform = T.Compose(steps + [T.Normalize(self.info.mean, self.info.std)])

    has_boxes = True

    def _raw_boxes(self, index: int):
        return [tuple(self.all_boxes[index].tolist())], self.info.image_size

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        x = self.images[index].permute(2, 0, 1).float().div_(255.0)
        return self.transform(x), self.targets[index]


class SyntheticSegmentation(Synthetic):
    """The synthetic benchmark as a segmentation task, returning ``(x, mask)``.

    ``x`` is the normalized float32 ``(3, S, S)`` image of :class:`Synthetic` (the same pixels),
    ``mask`` its int64 ``(S, S)`` class map: 0 for background (the colour field, distractors and
    fragments) and ``label + 1`` on the class object (alpha > 0.5: its bounding box is the
    image's box). So :attr:`info` has ``num_classes = config.num_classes + 1`` and
    ``task="segmentation"``, and :attr:`classes` is ``["background", *object classes]``.
    :attr:`targets` keeps the image-level labels (0-based object classes), e.g. for samplers.
    There are no boxes to evaluate localization with (``has_boxes`` is False).

    Args:
        config: generation parameters (default :class:`SyntheticConfig`).
        split: ``"train"`` or ``"test"``.
        train_transform: apply a random horizontal flip (preceded by ``RandomCrop(S, padding)``
            when ``padding > 0``) to the image and its mask jointly
            (:class:`~comixup.data.transforms.JointTransform`; padded mask pixels are background).
            The draws are those of :class:`Synthetic`'s augmentation: torch's global RNG, which
            :func:`~comixup.data.make_loader` seeds per sample from ``(seed, epoch, index)``.
        limit: keep a deterministic subset of this many samples.
        seed: seed of the ``limit`` subset (the data themselves depend on ``config.seed``).
        root: cache location (see :func:`cache_dir`).
        cache: read/write the on-disk cache.
        padding: random-crop padding of the training augmentation (default 0: flip only).
    """

    name = "synthetic-seg"
    has_boxes = False

    def _setup(self, data: dict, keep: np.ndarray, steps: list) -> None:
        """Segmentation info, ``"background"`` first, the masks and the joint transform."""
        self.info = segmentation_info(self.config)
        self.classes = ["background", *_class_names(self.attributes)]
        self.masks = torch.from_numpy(np.ascontiguousarray(data["masks"][keep]))
        self.joint_transform = T.JointTransform(steps)
        self.transform = T.Normalize(self.info.mean, self.info.std)

    def __getitem__(self, index: int):
        x = self.images[index].permute(2, 0, 1).float().div_(255.0)
        x, mask = self.joint_transform(x, self.masks[index].long())
        return self.transform(x), mask


def _save_grid(path, config, split: str, rows: int, cols: int, dpi: int, panel) -> Path:
    """The figure shared by the grids: the first ``rows * cols`` images of ``split`` rendered
    directly (no cache), one axis each drawn by ``panel(ax, data, i, side)``, saved to
    ``path``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    config = _check_config(config)
    if int(rows) < 1 or int(cols) < 1:
        raise ValueError(f"rows and cols must be >= 1, got {rows}, {cols}")
    data = generate(config, split, n=int(rows) * int(cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.8 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        panel(ax, data, i, config.image_size)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def save_sample_grid(
    path,
    config: SyntheticConfig | None = None,
    *,
    split: str = "train",
    rows: int = 4,
    cols: int = 8,
    dpi: int = 100,
) -> Path:
    """Save a ``rows x cols`` grid of images with their boxes and class names (matplotlib).

    Args:
        path: output image file (PNG recommended).
        config: the benchmark (default :class:`SyntheticConfig`); images are rendered directly,
            the first ``rows * cols`` of ``split``, without touching the cache.
        split: ``"train"`` or ``"test"``.
        rows, cols: grid shape.
        dpi: resolution of the figure.

    Returns:
        The path written.
    """
    from matplotlib import patches

    def panel(ax, data, i, s):
        ax.imshow(data["images"][i], interpolation="nearest", extent=(0, s, s, 0))
        x0, y0, x1, y1 = data["boxes"][i]
        ax.add_patch(
            patches.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, lw=1.2, edgecolor="lime")
        )
        sh, tx, co = data["attributes"][data["labels"][i]]
        ax.set_title(
            f"{data['labels'][i]}: {COLOURS_NAMES[co]}\n{TEXTURES[tx]} {SHAPES[sh]}", fontsize=6
        )

    return _save_grid(path, config, split, rows, cols, dpi, panel)


def save_segmentation_grid(
    path,
    config: SyntheticConfig | None = None,
    *,
    split: str = "train",
    rows: int = 2,
    cols: int = 4,
    dpi: int = 100,
) -> Path:
    """Save a ``rows x cols`` grid of images with their class masks overlaid (matplotlib).

    Each panel shows the image with the object's mask tinted (one colour per class, 50% opacity)
    and outlined in lime, titled with the mask value (``label + 1``) and the class name.

    Args:
        path: output image file (PNG recommended).
        config: the benchmark (default :class:`SyntheticConfig`); images are rendered directly,
            the first ``rows * cols`` of ``split``, without touching the cache.
        split: ``"train"`` or ``"test"``.
        rows, cols: grid shape.
        dpi: resolution of the figure.

    Returns:
        The path written.
    """
    import matplotlib

    cmap = matplotlib.colormaps["tab20"].resampled(
        max(_check_config(config).num_classes, 2))

    def panel(ax, data, i, s):
        mask = data["masks"][i].astype(np.int64)
        label = int(data["labels"][i])
        overlay = np.zeros((s, s, 4), np.float32)
        overlay[mask > 0] = (*cmap(label % cmap.N)[:3], 0.5)
        ax.imshow(data["images"][i], interpolation="nearest", extent=(0, s, s, 0))
        ax.imshow(overlay, interpolation="nearest", extent=(0, s, s, 0))
        ax.contour(
            np.arange(s) + 0.5, np.arange(s) + 0.5, (mask > 0).astype(np.float32),
            levels=[0.5], colors="lime", linewidths=0.8,
        )
        sh, tx, co = data["attributes"][label]
        ax.set_title(
            f"mask {label + 1}: {COLOURS_NAMES[co]}\n{TEXTURES[tx]} {SHAPES[sh]}", fontsize=6
        )
        ax.set_xlim(0, s)
        ax.set_ylim(s, 0)

    return _save_grid(path, config, split, rows, cols, dpi, panel)
