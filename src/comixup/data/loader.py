"""Deterministic data loading: :func:`make_loader` and :func:`set_epoch`.

Determinism contract
    With the loader returned by :func:`make_loader` and ``set_epoch(loader, epoch)`` called before
    each epoch, the batches of an epoch (order *and* augmentations) are a function of
    ``(seed, epoch)`` only: they do not depend on the number of workers, on earlier epochs (so a
    resumed run sees the same data), or on what the training loop does with torch's global RNG.

How
    * The order comes from a sampler: :class:`EpochSampler` (a seeded permutation of
      ``range(len(dataset))`` for ``shuffle=True``, the identity otherwise) or the sampler passed
      as ``sampler=`` (e.g. a :class:`~torch.utils.data.distributed.DistributedSampler`, whose own
      ``set_epoch`` is called).
    * :class:`SeededSampler` pairs every index with a per-sample seed
      ``splitmix64(seed, epoch, index)``, and :class:`SeededDataset` evaluates the dataset under
      ``torch.random.fork_rng`` with torch's global RNG seeded by that seed. The random transforms
      of :mod:`comixup.data.transforms` draw from the global RNG, so each sample's augmentation is
      fixed by ``(seed, epoch, index)``; the caller's global RNG state is left untouched.
    * The :class:`~torch.utils.data.DataLoader` also gets a ``torch.Generator`` reseeded by
      :func:`set_epoch` (it sets the workers' base seed) and :func:`seed_worker` as
      ``worker_init_fn``, which seeds ``random`` and ``numpy`` in each worker from torch's worker
      seed, for datasets that use those libraries.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .._checks import check_int

__all__ = [
    "EpochSampler",
    "SeededDataset",
    "SeededSampler",
    "make_loader",
    "sample_seed",
    "seed_worker",
    "set_epoch",
]

_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def sample_seed(*values: int) -> int:
    """A well-mixed 63-bit seed from integers, e.g. ``sample_seed(seed, epoch, index)``."""
    h = 0x243F6A8885A308D3
    for v in values:
        h = _splitmix64(h ^ (int(v) & _MASK64))
    return h >> 1


class EpochSampler(Sampler[int]):
    """Indices ``0..n-1``: a permutation seeded by ``(seed, epoch)`` if ``shuffle``, else in order.

    Args:
        n: dataset length.
        shuffle: draw a new permutation per epoch.
        seed: base seed.
    """

    def __init__(self, n: int, *, shuffle: bool, seed: int = 0):
        self.n = check_int("n", n, 0)
        self.shuffle = bool(shuffle)
        self.seed = check_int("seed", seed, None)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation of ``epoch``."""
        self.epoch = check_int("epoch", epoch, 0)

    def __iter__(self) -> Iterator[int]:
        if not self.shuffle:
            return iter(range(self.n))
        g = torch.Generator().manual_seed(sample_seed(self.seed, self.epoch, 0x5EED))
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


class SeededSampler(Sampler):
    """Wrap a sampler so that it yields ``(index, sample_seed(seed, epoch, index))`` pairs.

    Args:
        sampler: any iterable of dataset indices (optionally with ``set_epoch``).
        seed: base seed.
    """

    def __init__(self, sampler, *, seed: int = 0):
        self.sampler = sampler
        self.seed = check_int("seed", seed, None)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch here and on the wrapped sampler (if it has ``set_epoch``)."""
        self.epoch = check_int("epoch", epoch, 0)
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(self.epoch)

    def __iter__(self):
        seed, epoch = self.seed, self.epoch
        for index in self.sampler:
            yield int(index), sample_seed(seed, epoch, int(index))

    def __len__(self) -> int:
        return len(self.sampler)


class SeededDataset(Dataset):
    """Evaluate ``dataset[index]`` with torch's global RNG seeded by a per-sample seed.

    ``SeededDataset(ds)[(index, seed)]`` returns ``ds[index]`` computed inside
    ``torch.random.fork_rng(devices=[])`` after seeding torch's default CPU generator with
    ``seed`` (``torch.default_generator.manual_seed``: about 1 us, where ``torch.manual_seed``
    takes about 60 us); a plain ``index`` is passed through unseeded. Other attributes
    (``boxes``, ``classes``, ...) are forwarded to the wrapped dataset, which is also available
    as ``.dataset``.
    """

    def __init__(self, dataset):
        self.dataset = dataset

    def __getitem__(self, key):
        if isinstance(key, tuple):
            index, seed = key
            with torch.random.fork_rng(devices=[]):
                torch.default_generator.manual_seed(seed)  # CPU only: ~1 us, not 60
                return self.dataset[index]
        return self.dataset[key]

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name):
        # "dataset" is not set yet while unpickling; dunders (e.g. __getitems__, which the
        # DataLoader looks up) must not be forwarded, since keys here are (index, seed) pairs.
        if name == "dataset" or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getstate__(self):
        return {"dataset": self.dataset}

    def __setstate__(self, state):
        self.dataset = state["dataset"]


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn``: seed ``random`` and ``numpy`` from the worker's torch seed."""
    s = torch.initial_seed() % (1 << 32)
    random.seed(s)
    np.random.seed(s)


def make_loader(
    dataset,
    *,
    batch_size: int,
    shuffle: bool,
    workers: int = 0,
    seed: int = 0,
    drop_last: bool = False,
    device=None,
    sampler=None,
    collate_fn=None,
    prefetch_factor: int | None = None,
) -> DataLoader:
    """A ``DataLoader`` whose epochs are deterministic from ``(seed, epoch)``.

    Call :func:`set_epoch` ``(loader, epoch)`` before iterating each epoch (as with a
    ``DistributedSampler``); without it every epoch repeats epoch 0. See the module docstring for
    the determinism contract.

    Args:
        dataset: a map-style dataset.
        batch_size: samples per batch (>= 1).
        shuffle: reshuffle every epoch (ignored, and must be left as the sampler wants, when
            ``sampler`` is given: the sampler decides the order).
        workers: number of worker processes (0 loads in the main process). Workers are not
            persistent, so that each epoch re-seeds them.
        seed: base seed for the order and the augmentations.
        drop_last: drop the last incomplete batch.
        device: the device the batches will go to; memory is pinned when it is a CUDA device.
        sampler: optional sampler over dataset indices, e.g. ``DistributedSampler(dataset,
            shuffle=True, seed=seed)``; its ``set_epoch`` is called by :func:`set_epoch`.
        collate_fn: optional collate function (default: torch's).
        prefetch_factor: batches prefetched per worker (default: torch's; only with workers > 0).

    Returns:
        The loader; ``loader.sampler`` is a :class:`SeededSampler` and ``loader.dataset`` a
        :class:`SeededDataset` forwarding attributes to ``dataset``.
    """
    batch_size = check_int("batch_size", batch_size, 1)
    workers = check_int("workers", workers, 0)
    seed = check_int("seed", seed, None)
    if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
        raise TypeError(f"dataset must be a map-style dataset, got {type(dataset).__name__}")
    if sampler is None:
        sampler = EpochSampler(len(dataset), shuffle=shuffle, seed=seed)
    seeded = SeededSampler(sampler, seed=seed)
    pin = torch.device(device).type == "cuda" if device is not None else False
    generator = torch.Generator().manual_seed(sample_seed(seed, 0, 0xB45E))
    kwargs = {}
    if workers > 0 and prefetch_factor is not None:
        kwargs["prefetch_factor"] = prefetch_factor
    loader = DataLoader(
        SeededDataset(dataset),
        batch_size=batch_size,
        sampler=seeded,
        num_workers=workers,
        pin_memory=pin,
        drop_last=bool(drop_last),
        worker_init_fn=seed_worker if workers > 0 else None,
        generator=generator,
        collate_fn=collate_fn,
        persistent_workers=False,
        **kwargs,
    )
    loader.comixup_seed = seed
    return loader


def set_epoch(loader_or_sampler, epoch: int) -> None:
    """Prepare ``epoch``: reseed the order, the augmentations and the workers' base seed.

    Args:
        loader_or_sampler: a loader from :func:`make_loader`, any ``DataLoader`` whose sampler has
            ``set_epoch``, or a sampler with ``set_epoch`` (e.g. a ``DistributedSampler``).
        epoch: the epoch number (>= 0).
    """
    epoch = check_int("epoch", epoch, 0)
    if isinstance(loader_or_sampler, DataLoader):
        loader = loader_or_sampler
        sampler = loader.sampler
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        elif hasattr(loader.batch_sampler, "set_epoch"):
            loader.batch_sampler.set_epoch(epoch)
        else:
            raise TypeError("the loader's sampler has no set_epoch; build it with make_loader")
        seed = getattr(loader, "comixup_seed", None)
        if seed is not None and loader.generator is not None:
            loader.generator.manual_seed(sample_seed(seed, epoch, 0xB45E))
    elif hasattr(loader_or_sampler, "set_epoch"):
        loader_or_sampler.set_epoch(epoch)
    else:
        raise TypeError(
            "loader_or_sampler must be a DataLoader or a sampler with set_epoch, got "
            f"{type(loader_or_sampler).__name__}"
        )
