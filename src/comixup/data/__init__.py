"""comixup.data: datasets, transforms and deterministic loaders for the training engine.

* :data:`DATASETS`, :func:`dataset_info`, :func:`build_dataset`: the datasets by name
  (:mod:`comixup.data.registry`); ``docs/data.md`` gives each expected directory layout.
* :func:`make_loader`, :func:`set_epoch`: a DataLoader whose epochs are deterministic from
  ``(seed, epoch)`` (:mod:`comixup.data.loader`).
* :mod:`comixup.data.transforms`: tensor transforms drawing from an explicit generator.
* :mod:`comixup.data.download`: fetching the standard datasets with their published
  checksums (``--download``), unpacked by :mod:`comixup.data.archive`, which refuses members
  that would write outside their target.
* :mod:`comixup.data.synthetic`: the embedded benchmark with localized objects, boxes and
  masks (``synthetic-seg``: its segmentation task, ``info.task == "segmentation"``).
"""

from . import transforms
from .common import DatasetInfo, select_subset
from .loader import make_loader, set_epoch
from .registry import DATASETS, build_dataset, dataset_info

__all__ = [
    "DATASETS",
    "DatasetInfo",
    "build_dataset",
    "dataset_info",
    "make_loader",
    "select_subset",
    "set_epoch",
    "transforms",
]
