"""Pieces shared by the dataset modules: :class:`DatasetInfo`, subsetting, root lookup, images,
and :class:`SampleListDataset`, the base of the datasets stored as one file per sample."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from .._checks import check_int
from .._errors import InputError

__all__ = [
    "BoxedDataset",
    "DatasetInfo",
    "SampleListDataset",
    "check_split",
    "find_dataset_dir",
    "first_per_class",
    "load_rgb",
    "select_subset",
]


@dataclass(frozen=True)
class DatasetInfo:
    """Static description of a dataset, available without any file on disk.

    Attributes:
        num_classes: number of classes (labels, or class-map values, are
            ``0..num_classes-1``).
        channels: channels of the returned tensors.
        image_size: ``(H, W)`` of the returned tensors (for ImageNet, the default crop size).
        mean: per-channel mean used for normalization.
        std: per-channel standard deviation used for normalization.
        task: what the second element of a sample is: ``"classification"`` (an int label, the
            default) or ``"segmentation"`` (an int64 ``(H, W)`` class map, 0 = background, so
            ``num_classes`` counts the background).
    """

    num_classes: int
    channels: int
    image_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    task: str = "classification"


def select_subset(n: int, limit: int | None, seed: int = 0) -> np.ndarray:
    """Sorted indices of a deterministic subset of ``limit`` of ``n`` samples.

    ``limit=None`` (or ``limit >= n``) keeps every sample in order; otherwise the first ``limit``
    entries of ``numpy.random.default_rng(seed).permutation(n)`` are kept, sorted.
    """
    if limit is None:
        return np.arange(n)
    limit = check_int("limit", limit, 1)
    if limit >= n:
        return np.arange(n)
    seed = check_int("seed", seed, None)
    return np.sort(np.random.default_rng(seed).permutation(n)[:limit])


def first_per_class(labels: np.ndarray, per_class: int | None, num_classes: int) -> np.ndarray:
    """Sorted indices of the first ``per_class`` samples of each class, in file order.

    ``per_class=None`` keeps every sample. Used for the ``labels_per_class`` option of the
    datasets held in memory (a balanced training subset that does not change with the seed).
    """
    if per_class is None:
        return np.arange(len(labels))
    if isinstance(per_class, bool) or not isinstance(per_class, int):
        raise TypeError(f"labels_per_class must be an int, got {per_class!r}")
    if per_class < 1:
        raise ValueError(f"labels_per_class must be >= 1, got {per_class}")
    return np.sort(np.concatenate(
        [np.flatnonzero(labels == c)[:per_class] for c in range(num_classes)]))


def check_split(split: str, allowed: Sequence[str], dataset: str) -> str:
    """Return ``split`` or raise an InputError (a ValueError) naming the allowed values."""
    if split not in allowed:
        raise InputError(f"split must be one of {list(allowed)} for {dataset}, got {split!r}")
    return split


def find_dataset_dir(root, dirname: str, marker: str, layout: str, dataset: str) -> Path:
    """Locate a dataset directory.

    ``root/dirname`` is used when it exists and contains ``marker``; otherwise ``root`` itself if
    it contains ``marker``. Raises FileNotFoundError naming the expected path and ``layout``.
    """
    if root is None:
        raise InputError(f"root is required for {dataset}: the directory that contains {dirname}/")
    root = Path(os.path.expanduser(str(root)))
    for candidate in (root / dirname, root):
        if (candidate / marker).exists():
            return candidate
    raise FileNotFoundError(
        f"{dataset} not found: expected {root / dirname / marker} (or {root / marker}). "
        f"Expected layout under {root / dirname}:\n{layout}\n"
        "Pass --download to fetch it (comixup.data.download), or see docs/data.md."
    )


def load_rgb(path) -> np.ndarray:
    """Decode an image file with Pillow into an ``(H, W, 3)`` uint8 array; a missing, unreadable
    or damaged file is an :class:`~comixup._errors.InputError` naming it."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InputError(f"{path}: not a readable image ({exc})") from None


class BoxedDataset(Dataset):
    """Base for datasets with optional per-image bounding boxes.

    Subclasses implement ``_raw_boxes(i) -> (boxes, (H, W))``, the boxes of sample ``i`` (after
    subsetting) in pixel-edge coordinates of the stored image of size ``(H, W)``, or ``None``
    when the sample has no boxes. :meth:`boxes` maps them through ``self.box_transform`` (the
    deterministic geometry of the evaluation pipeline; ``None`` for an identity).
    """

    box_transform = None

    @property
    def has_boxes(self) -> bool:
        """Whether this dataset carries boxes."""
        return False

    def _raw_boxes(self, index: int):
        raise NotImplementedError

    def boxes(self, index: int) -> list[tuple[float, float, float, float]]:
        """Boxes ``(x0, y0, x1, y1)`` of sample ``index``, in pixels of the returned image.

        Coordinates are pixel edges (a full ``H x W`` image is ``(0, 0, W, H)``). They refer to
        the image returned with ``train_transform=False``; with random training augmentation they
        refer to the image before augmentation. Raises ValueError if the dataset has no boxes.
        """
        if not self.has_boxes:
            raise ValueError(f"{type(self).__name__} has no bounding boxes")
        n = len(self)
        index = check_int("index", index, None)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} samples")
        raw = self._raw_boxes(int(index) % n)
        if raw is None:
            return []
        boxes, size = raw
        boxes = [tuple(float(v) for v in b) for b in boxes]
        if self.box_transform is not None:
            boxes, _ = self.box_transform.map_boxes(boxes, size)
        return [tuple(float(v) for v in b) for b in boxes]


class SampleListDataset(Dataset):
    """Base of the datasets stored as one file per sample and listed as ``(path, label)`` pairs
    (ImageNet, Tiny-ImageNet, Speech Commands).

    The constructor checks ``split`` against :attr:`splits`, locates the dataset directory
    (:func:`find_dataset_dir` with :attr:`dirname`, :meth:`_marker` and :attr:`layout`), lists
    the samples with :meth:`_list_samples`, keeps a deterministic subset of them
    (:func:`select_subset`) in :attr:`samples` and their labels in :attr:`targets`, then calls
    :meth:`_setup`. ``dataset[i]`` is ``(self._load(path), label)`` of ``samples[i]``.

    Args:
        root: directory containing :attr:`dirname` (or that directory itself).
        split: one of :attr:`splits`.
        train_transform: the training (random) augmentation instead of the evaluation pipeline,
            passed to :meth:`_setup`.
        limit: keep a deterministic subset of this many samples.
        seed: seed of the ``limit`` subset.
    """

    #: The dataset's name in messages.
    dataset: str = ""
    #: The directory looked for under ``root``.
    dirname: str = ""
    #: The expected layout, shown when the dataset is not found.
    layout: str = ""
    #: The accepted values of ``split``.
    splits: tuple[str, ...] = ("train", "val", "test")

    def __init__(
        self,
        root,
        *,
        split: str = "train",
        train_transform: bool = False,
        limit: int | None = None,
        seed: int = 0,
    ):
        check_split(split, self.splits, self.dataset)
        base = find_dataset_dir(root, self.dirname, self._marker(split), self.layout, self.dataset)
        samples = self._list_samples(base, split)
        keep = select_subset(len(samples), limit, seed)
        self.split = split
        self.samples = [samples[i] for i in keep]
        self.targets = [t for _, t in self.samples]
        self._setup(base, keep, train_transform)

    def _marker(self, split: str) -> str:  # pragma: no cover - abstract
        """The file or folder whose presence identifies the dataset directory."""
        raise NotImplementedError

    def _list_samples(self, base: Path, split: str) -> list:  # pragma: no cover - abstract
        """The ``(path, label)`` samples of ``split`` in the dataset directory ``base``."""
        raise NotImplementedError

    def _setup(self, base: Path, keep: np.ndarray, train_transform: bool) -> None:
        """Finish the construction once the subset ``keep`` (indices into the listed samples)
        is chosen: ``info``, transforms, per-sample extras."""

    def _load(self, path: Path):  # pragma: no cover - abstract
        """The input tensor of the sample stored at ``path``."""
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, y = self.samples[index]
        return self._load(path), y
