"""CIFAR-10 and CIFAR-100 from the standard python pickle archives.

Layout (the extracted ``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz``)::

    <root>/cifar-10-batches-py/data_batch_1 ... data_batch_5, test_batch, batches.meta
    <root>/cifar-100-python/train, test, meta

Each batch is a pickled dict with ``b"data"`` (``N x 3072`` uint8, the red, green then blue
32x32 planes of each image) and ``b"labels"`` (CIFAR-10) or ``b"fine_labels"`` (CIFAR-100). The
class names come from ``batches.meta`` (``b"label_names"``) / ``meta`` (``b"fine_label_names"``).

The batches are read with :func:`safe_unpickle`, never a plain ``pickle.load``: a pickle names
functions that loading calls, so a crafted batch file would otherwise run any code it likes.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .._errors import InputError
from . import transforms as T
from .common import DatasetInfo, check_split, find_dataset_dir, first_per_class, select_subset

__all__ = ["CIFAR", "CIFAR10_INFO", "CIFAR100_INFO", "cifar_transform", "safe_unpickle"]

#: CIFAR-10 statistics of the reference code.
CIFAR10_INFO = DatasetInfo(
    num_classes=10,
    channels=3,
    image_size=(32, 32),
    mean=tuple(v / 255 for v in (125.3, 123.0, 113.9)),
    std=tuple(v / 255 for v in (63.0, 62.1, 66.7)),
)
#: CIFAR-100 statistics of the reference code.
CIFAR100_INFO = DatasetInfo(
    num_classes=100,
    channels=3,
    image_size=(32, 32),
    mean=tuple(v / 255 for v in (129.3, 124.1, 112.4)),
    std=tuple(v / 255 for v in (68.2, 65.4, 70.4)),
)

_SPECS = {
    10: {
        "dirname": "cifar-10-batches-py",
        "train": [f"data_batch_{i}" for i in range(1, 6)],
        "test": ["test_batch"],
        "meta": "batches.meta",
        "label_key": "labels",
        "names_key": "label_names",
        "info": CIFAR10_INFO,
    },
    100: {
        "dirname": "cifar-100-python",
        "train": ["train"],
        "test": ["test"],
        "meta": "meta",
        "label_key": "fine_labels",
        "names_key": "fine_label_names",
        "info": CIFAR100_INFO,
    },
}


def cifar_transform(info: DatasetInfo, train: bool, padding: int = 2) -> T.Compose:
    """The CIFAR pipeline on a float ``(3, 32, 32)`` image in ``[0, 1]``.

    ``train=True``: ``RandomCrop(32, padding)`` + ``RandomHorizontalFlip()`` + ``Normalize``;
    otherwise ``Normalize`` only.
    """
    steps = (
        [T.RandomCrop(info.image_size, padding=padding), T.RandomHorizontalFlip()] if train else []
    )
    return T.Compose(steps + [T.Normalize(info.mean, info.std)])


def _get(d: dict, key: str, path):
    if key.encode() in d:
        return d[key.encode()]
    if key in d:
        return d[key]
    raise InputError(f"{path}: key {key!r} missing from the CIFAR pickle (keys: {list(d)[:8]})")


#: The only globals a CIFAR batch may name: numpy's array reconstruction (numpy 1 spells the
#: module ``numpy.core.multiarray``, numpy 2 ``numpy._core.multiarray``). Dicts, lists, bytes,
#: strings and ints are pickle opcodes that name no global.
_ALLOWED_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
})
_RECONSTRUCT = (np._core if hasattr(np, "_core") else np.core).multiarray._reconstruct


class _Refused(pickle.UnpicklingError):
    """A global outside :data:`_ALLOWED_GLOBALS`."""


class _BatchUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`_ALLOWED_GLOBALS`; any other global (``os.system``,
    ``builtins.eval``, ...) is refused before it is looked up, so it is never called."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise _Refused(f"it names the global {module}.{name}, which a CIFAR "
                                         "batch never holds")
        if name == "_reconstruct":
            # both spellings resolve to the installed numpy's function, without touching the
            # deprecated numpy.core alias of numpy 2
            return _RECONSTRUCT
        return getattr(np, name)


def safe_unpickle(path) -> dict:
    """Read the pickled dict of a CIFAR batch file without running code.

    Only dicts, lists, bytes, strings, ints and numpy arrays (through numpy's array
    reconstruction) are admitted: what the published batches hold.

    Raises:
        ValueError: the file names any other global, is not a pickle or is damaged, or does not
            hold a dict; the message names the file.
        OSError: it cannot be read.
    """
    path = Path(path)
    with open(path, "rb") as f:
        try:
            d = _BatchUnpickler(f, encoding="bytes").load()
        except _Refused as exc:
            raise InputError(f"{path}: refused as a CIFAR batch: {exc}") from None
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError,
                AttributeError) as exc:
            raise InputError(f"{path}: not a readable CIFAR batch pickle "
                             f"({type(exc).__name__}: {exc})") from None
    if not isinstance(d, dict):
        raise InputError(f"{path}: does not hold a pickled dict (found {type(d).__name__})")
    return d


class CIFAR(Dataset):
    """CIFAR-10 / CIFAR-100 held in memory as uint8, returning ``(x, y)``.

    ``x`` is a normalized float32 ``(3, 32, 32)`` tensor, ``y`` an int. CIFAR has no boxes
    (``has_boxes`` is False and there is no ``boxes`` method).

    Args:
        root: directory containing ``cifar-10-batches-py/`` or ``cifar-100-python/`` (or that
            directory itself).
        num_classes: 10 or 100.
        split: ``"train"`` or ``"test"``.
        train_transform: apply the training augmentation (random crop with ``padding`` + flip).
        limit: keep a deterministic subset of this many samples (see
            :func:`~comixup.data.common.select_subset`), applied after ``labels_per_class``.
        seed: seed of the ``limit`` subset.
        labels_per_class: of the training split, keep only the first ``labels_per_class`` images
            of each class, in file order (the reference's option, made deterministic); the test
            split is always whole.
        padding: random-crop padding of the training augmentation (default 2).
    """

    def __init__(
        self,
        root,
        num_classes: int = 10,
        *,
        split: str = "train",
        train_transform: bool = False,
        limit: int | None = None,
        seed: int = 0,
        labels_per_class: int | None = None,
        padding: int = 2,
    ):
        if num_classes not in _SPECS:
            raise ValueError(f"num_classes must be 10 or 100, got {num_classes!r}")
        spec = _SPECS[num_classes]
        name = f"cifar{num_classes}"
        check_split(split, ("train", "test"), name)
        layout = (
            "    "
            + ", ".join(spec["train"] + spec["test"] + [spec["meta"]])
            + "  (python pickle batches from the CIFAR website)"
        )
        first = spec[split][0]
        base = find_dataset_dir(root, spec["dirname"], first, layout, name)
        data, labels = [], []
        for fname in spec[split]:
            path = base / fname
            if not path.exists():
                raise FileNotFoundError(
                    f"{name}: missing {path}. Expected layout under {base}:\n{layout}"
                )
            d = safe_unpickle(path)
            data.append(np.asarray(_get(d, "data", path), dtype=np.uint8).reshape(-1, 3, 32, 32))
            labels.append(np.asarray(_get(d, spec["label_key"], path), dtype=np.int64))
        data = np.concatenate(data)
        labels = np.concatenate(labels)
        if len(data) != len(labels):
            raise InputError(f"{name}: {len(data)} images but {len(labels)} labels in {base}")
        if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
            raise InputError(f"{name}: labels outside 0..{num_classes - 1} in {base}")
        meta = base / spec["meta"]
        if meta.exists():
            names = _get(safe_unpickle(meta), spec["names_key"], meta)
            self.classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
        else:
            self.classes = [str(i) for i in range(num_classes)]

        keep = first_per_class(labels, labels_per_class if split == "train" else None,
                               num_classes)
        keep = keep[select_subset(len(keep), limit, seed)]
        self.info = spec["info"]
        self.split = split
        self.indices = keep
        self.data = torch.from_numpy(np.ascontiguousarray(data[keep]))
        self.targets = labels[keep].tolist()
        self.transform = cifar_transform(self.info, train_transform, padding)

    has_boxes = False

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        x = self.data[index].float().div_(255.0)
        return self.transform(x), self.targets[index]
