"""Copies between the device and the host for the mixers with a CPU solver.

Co-Mixup's Algorithm 1 and Puzzle Mix's graph cut and transport run on the CPU (NumPy and
numba) whatever the device. Their inputs go to the host in one transfer per call
(:func:`host_copy` over :func:`to_host`: from a GPU a ``non_blocking`` copy into pinned memory,
then a wait on that copy alone), and their results come back by :func:`to_device`
(``non_blocking`` from pinned memory), so that the device keeps working while the CPU solves.
This is the one read of batch values a call of such a mixer makes
(:mod:`comixup.analysis.host_reads` counts it).
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

__all__ = ["host_copy", "host_rows", "to_device", "to_host"]


def to_host(t: torch.Tensor) -> torch.Tensor:
    """``t`` on the CPU. From a GPU the copy goes, ``non_blocking``, into pinned memory and only
    that copy is waited for (an event, not a device synchronisation of later work).

    The copy runs on the current stream of ``t``'s device, so the event is recorded on that
    stream: on ``cuda:1`` while the current device is ``cuda:0``, an event on the current
    device's stream would complete before the copy has landed."""
    if t.device.type != "cuda":
        return t.cpu()
    host = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
    host.copy_(t, non_blocking=True)
    done = torch.cuda.Event()
    done.record(torch.cuda.current_stream(t.device))
    done.synchronize()
    return host


def to_device(src: torch.Tensor, out: torch.Tensor) -> None:
    """Copy the CPU tensor ``src`` into ``out``; to a GPU from pinned memory, ``non_blocking``
    (the caching host allocator keeps the pinned buffer until the copy has run)."""
    if out.device.type == "cuda":
        src = src.pin_memory()
        out.copy_(src, non_blocking=True)
    else:
        out.copy_(src)


def host_copy(*tensors: torch.Tensor) -> list[np.ndarray]:
    """float64 NumPy copies of tensors that share their first dimension, by one transfer
    (:func:`to_host`): the one read of batch values a call of a CPU solver makes."""
    flat = to_host(torch.cat([t.reshape(t.shape[0], -1) for t in tensors], 1)).double().numpy()
    bounds = list(itertools.accumulate((t[0].numel() for t in tensors), initial=0))
    return [flat[:, a:b].reshape(t.shape) for t, a, b in zip(tensors, bounds, bounds[1:])]


def host_rows(flags: np.ndarray, device) -> torch.Tensor:
    """The indices of the true entries of a host array, as a long tensor on ``device``."""
    return torch.from_numpy(np.flatnonzero(flags)).to(device)
