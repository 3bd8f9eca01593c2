"""Fashion-MNIST and MNIST from their four IDX files (``.gz`` or uncompressed).

Layout (the files as distributed, e.g. by Debian's ``dataset-fashion-mnist`` package, which puts
them in ``/usr/share/datasets/fashion-mnist/``)::

    <root>/train-images-idx3-ubyte[.gz]   60,000 x 28 x 28 uint8, magic 0x00000803
    <root>/train-labels-idx1-ubyte[.gz]   60,000 uint8 labels 0-9, magic 0x00000801
    <root>/t10k-images-idx3-ubyte[.gz]    10,000 x 28 x 28
    <root>/t10k-labels-idx1-ubyte[.gz]    10,000 labels

An IDX file is a big-endian header -- two zero bytes, a type byte (``0x08``: unsigned byte), the
number of dimensions, then one 32-bit size per dimension -- followed by the values in C order
(Y. LeCun's MNIST page). :func:`read_idx` checks all of it and names the file in every error.

How the 28 x 28 grayscale images enter the models (recipes 3): one input channel; the image is
padded with 2 background (zero) pixels on every side to 32 x 32, so that every mixing grid of the
CIFAR recipes divides it (Puzzle Mix's 8 x 8 and 16 x 16 blocks, Co-Mixup's 4 x 4 grid); the
training augmentation is then the FMix repository's Fashion-MNIST one, a random crop with 4
pixels of zero padding and a horizontal flip, followed by the normalization. The evaluation
pipeline pads and normalizes only.

Boxes: the datasets carry one box per image, the tight box around the non-zero pixels of the
original image (the object on its black background) in the padded frame, so the box-based
evaluations (CAM localization, background corruption) run on them. They are derived from the
pixels, not annotated.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np
import torch

from .._errors import InputError
from .cifar import cifar_transform
from .common import BoxedDataset, DatasetInfo, check_split, first_per_class, select_subset

__all__ = [
    "DEFAULT_ROOTS",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_INFO",
    "MNIST",
    "MNIST_INFO",
    "FashionMNIST",
    "read_idx",
]

#: Where each dataset is read from when no ``root`` is given (Debian's data packages).
DEFAULT_ROOTS = {
    "fashion-mnist": "/usr/share/datasets/fashion-mnist",
    "mnist": "/usr/share/datasets/mnist",  # no Debian package: the default for a manual copy
}
#: How to get each dataset, for the error of a missing directory.
_HOW_TO_GET = {
    "fashion-mnist": "with `apt-get install dataset-fashion-mnist` (Debian, Ubuntu; it puts them "
                     "in the default directory), with --download (comixup.data.download), or "
                     "put them in a directory and pass it as --data-dir (root=...)",
    "mnist": "with --download (comixup.data.download), or from the MNIST database's web page "
             "into the default directory or one passed as --data-dir (root=...)",
}
#: The file stems of each split, images then labels.
_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
#: Samples per split in the published files.
_COUNTS = {"train": 60_000, "test": 10_000}

#: The IDX type byte of unsigned bytes, the only type these datasets use.
_UBYTE = 0x08
_SIDE = 28  # stored image side
_PAD = 2  # background pixels added on every side: 28 -> 32

#: Fashion-MNIST's class names (Xiao et al., 2017), in label order.
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                         "Sneaker", "Bag", "Ankle boot")

#: Fashion-MNIST after the 32 x 32 padding, normalized as the FMix repository normalizes it:
#: with MNIST's customary statistics (recipes 3; Fashion-MNIST's own are 0.2860 / 0.3530).
FASHION_MNIST_INFO = DatasetInfo(
    num_classes=10, channels=1, image_size=(32, 32), mean=(0.1307,), std=(0.3081,)
)
#: MNIST after the 32 x 32 padding, with its customary statistics.
MNIST_INFO = DatasetInfo(
    num_classes=10, channels=1, image_size=(32, 32), mean=(0.1307,), std=(0.3081,)
)


def _open_bytes(path: Path) -> bytes:
    """The content of ``path``, decompressed when it is gzip; an unreadable or damaged file is
    an InputError naming it."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise InputError(f"{path}: damaged gzip file ({exc})") from None
    return raw


def read_idx(path, *, ndim: int, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Read one IDX file of unsigned bytes (``.gz`` or not) into a uint8 array.

    Args:
        path: the file.
        ndim: the expected number of dimensions (3 for images, 1 for labels).
        shape: the expected sizes of the dimensions after the first (e.g. ``(28, 28)``).

    Returns:
        The ``(N, *shape)`` uint8 array.

    Raises:
        FileNotFoundError: no such file.
        InputError: the file is not such an IDX file (magic number, dimensions, or a size that
            does not match its length), or it cannot be read; the message names the file (an
            :class:`~comixup._errors.InputError` is a ValueError).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    data = _open_bytes(path)
    header = 4 + 4 * ndim
    if len(data) < 4:
        raise InputError(f"{path}: {len(data)} bytes, too short for an IDX header")
    magic = int.from_bytes(data[:4], "big")
    expected = (_UBYTE << 8) | ndim
    if magic != expected:
        raise InputError(
            f"{path}: bad magic number 0x{magic:08x}, expected 0x{expected:08x} (an IDX file of "
            f"unsigned bytes with {ndim} dimension{'s' if ndim > 1 else ''})")
    if len(data) < header:
        raise InputError(f"{path}: truncated header ({len(data)} bytes, expected {header})")
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if shape is not None and dims[1:] != tuple(shape):
        raise InputError(f"{path}: items of size {dims[1:]}, expected {tuple(shape)}")
    size = int(np.prod(dims, dtype=np.int64))
    if len(data) - header != size:
        state = "truncated" if len(data) - header < size else "has trailing bytes"
        raise InputError(f"{path}: {state}: {len(data) - header} data bytes for dimensions "
                         f"{dims} ({size} expected)")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _find_file(root: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem):
        if (root / name).is_file():
            return root / name
    raise FileNotFoundError(f"{root / stem}.gz: no such file (nor {root / stem})")


def _tight_boxes(images: np.ndarray) -> np.ndarray:
    """``(N, 4)`` float boxes ``(x0, y0, x1, y1)`` around the non-zero pixels of each image,
    in pixel edges of the padded frame; an all-zero image gets the whole stored image."""
    rows = images.any(axis=2)  # (N, H)
    cols = images.any(axis=1)  # (N, W)
    h, w = images.shape[1:]
    empty = ~rows.any(axis=1)
    y0 = np.where(empty, 0, rows.argmax(axis=1))
    y1 = np.where(empty, h, h - rows[:, ::-1].argmax(axis=1))
    x0 = np.where(empty, 0, cols.argmax(axis=1))
    x1 = np.where(empty, w, w - cols[:, ::-1].argmax(axis=1))
    return np.stack([x0, y0, x1, y1], axis=1).astype(np.float64) + _PAD


class MNIST(BoxedDataset):
    """MNIST-format dataset held in memory as uint8, returning ``(x, y)``.

    ``x`` is a normalized float32 ``(1, 32, 32)`` tensor (the 28 x 28 image padded with 2
    background pixels on every side), ``y`` an int. ``boxes(i)`` is the tight box around the
    non-zero pixels of image ``i`` (module docstring).

    Args:
        root: the directory holding the four files (default: :data:`DEFAULT_ROOTS`).
        split: ``"train"`` or ``"test"``.
        train_transform: apply the training augmentation (random crop with ``padding`` + flip).
        limit: keep a deterministic subset of this many samples (see
            :func:`~comixup.data.common.select_subset`), applied after ``labels_per_class``.
        seed: seed of the ``limit`` subset.
        labels_per_class: of the training split, keep only the first ``labels_per_class``
            images of each class, in file order (a balanced subset that does not change with
            the seed); the test split is always whole.
        padding: random-crop padding of the training augmentation (default 4).

    Raises:
        FileNotFoundError: the directory or a file is missing (the message says how to get the
            data).
        ValueError: a file is damaged, the counts of images and labels differ, or a label is
            outside 0-9 (the message names the file).
    """

    #: The dataset's name in messages and :data:`DEFAULT_ROOTS`.
    dataset = "mnist"
    info = MNIST_INFO
    classes: tuple[str, ...] = tuple(str(i) for i in range(10))
    has_boxes = True

    def __init__(
        self,
        root=None,
        *,
        split: str = "train",
        train_transform: bool = False,
        limit: int | None = None,
        seed: int = 0,
        labels_per_class: int | None = None,
        padding: int = 4,
    ):
        check_split(split, ("train", "test"), self.dataset)
        base = Path(os.path.expanduser(str(root if root is not None
                                           else DEFAULT_ROOTS[self.dataset])))
        if not base.is_dir():
            raise FileNotFoundError(
                f"{self.dataset} not found: {base} is not a directory. Get the four IDX files "
                f"({', '.join(s + '.gz' for pair in _FILES.values() for s in pair)}) "
                f"{_HOW_TO_GET[self.dataset]}; the default directory is "
                f"{DEFAULT_ROOTS[self.dataset]}")
        image_path, label_path = (_find_file(base, stem) for stem in _FILES[split])
        images = read_idx(image_path, ndim=3, shape=(_SIDE, _SIDE))
        labels = read_idx(label_path, ndim=1)
        if len(images) != len(labels):
            raise InputError(f"{label_path}: {len(labels)} labels for the {len(images)} images "
                             f"of {image_path}")
        if len(labels) and labels.max() >= 10:
            bad = int(np.flatnonzero(labels >= 10)[0])
            raise InputError(f"{label_path}: label {int(labels[bad])} of sample {bad} is "
                             "outside 0-9")
        labels = labels.astype(np.int64)
        keep = first_per_class(labels, labels_per_class if split == "train" else None, 10)
        keep = keep[select_subset(len(keep), limit, seed)]
        kept = images[keep]
        self.split = split
        self.root = base
        self.indices = keep
        self.data = torch.from_numpy(np.pad(kept, ((0, 0), (_PAD, _PAD), (_PAD, _PAD))))
        self.targets = labels[keep].tolist()
        self.all_boxes = torch.from_numpy(_tight_boxes(kept))
        # the crop + flip + normalization of the CIFAR pipeline, on the padded 32 x 32 frame
        self.transform = cifar_transform(self.info, train_transform, padding)

    def _raw_boxes(self, index: int):
        return [self.all_boxes[index].tolist()], tuple(self.info.image_size)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        x = self.data[index][None].float().div_(255.0)
        return self.transform(x), self.targets[index]


class FashionMNIST(MNIST):
    """Fashion-MNIST (Xiao et al., 2017): 10 classes of clothing in the MNIST format; see
    :class:`MNIST` for the arguments. Default root: Debian's ``dataset-fashion-mnist``."""

    dataset = "fashion-mnist"
    info = FASHION_MNIST_INFO
    classes = FASHION_MNIST_CLASSES
