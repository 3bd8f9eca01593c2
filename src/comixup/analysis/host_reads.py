"""Count the reads of tensor values back to the host that a call makes.

On a GPU, every ``.item()``, ``float(t)``, ``bool(t)``, ``int(t)``, ``.tolist()`` or ``.numpy()``
of a tensor on the device waits for every queued kernel: a device synchronisation. A mixer
called once per batch should make none beyond the copy a CPU solver needs.

:func:`count_host_reads` runs a function under a :class:`~torch.utils._python_dispatch.
TorchDispatchMode` and counts two things:

* ``scalar``: every ``aten._local_scalar_dense`` (what ``.item()``, ``float``, ``int`` and
  ``bool`` of a one-element tensor dispatch to), whatever the tensor;
* ``batch``: the host reads of values *computed from the batch*: ``_local_scalar_dense``,
  ``.tolist()`` and ``.numpy()`` of a tensor derived from one of the ``tracked`` tensors (the
  inputs, e.g. the images, labels and saliency, and a model's parameters). An op's outputs are
  derived when any of its tensor inputs is. These are the reads that stall a GPU: draws from a
  CPU :class:`torch.Generator` are read on the host for free and are not counted here.

It also counts a third kind, the implicit reads:

* ``sizes``: the ops whose output size depends on tensor values (``nonzero``, ``unique``,
  ``masked_select``, ``bincount``, ``repeat_interleave`` by a tensor, indexing by a boolean
  mask), whatever the tensor: on a GPU each waits for the device to report a count, a
  synchronisation that no ``.item()`` shows. Like ``scalar`` it counts CPU work too (e.g. a
  ``bincount`` of a CPU tensor, free); ``size_ops`` names them.

On a CPU-only machine the counts are what a CUDA run of the same code would make, since
the code path does not depend on the device.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Callable, Iterable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

__all__ = ["HostReads", "count_host_reads"]


@dataclasses.dataclass
class HostReads:
    """The reads :func:`count_host_reads` counted.

    Attributes:
        scalar: ``aten._local_scalar_dense`` calls (``.item()``, ``float``, ``int``, ``bool``)
            on any tensor, generator draws included.
        batch: host reads (scalar reads, ``.tolist()``, ``.numpy()``) of tensors computed from
            the tracked tensors: the device synchronisations of a GPU run.
        ops: the ops whose results were read (``batch`` reads), in call order.
        sizes: calls of ops whose output size depends on tensor values (a device
            synchronisation on a GPU), on any tensor.
        size_ops: those ops, in call order.
    """

    scalar: int = 0
    batch: int = 0
    ops: list[str] = dataclasses.field(default_factory=list)
    sizes: int = 0
    size_ops: list[str] = dataclasses.field(default_factory=list)


#: The ops whose output size depends on the values of their inputs.
_SIZED = {"nonzero", "_unique2", "_unique", "unique_dim", "unique_consecutive", "masked_select",
          "bincount"}


def _sized(func, args, kwargs) -> bool:
    """Whether a call's output size depends on tensor values (a count read back on a GPU)."""
    name = func.overloadpacket.__name__
    if name in _SIZED:
        return True
    if func is torch.ops.aten.repeat_interleave.Tensor:  # repeats given by a tensor
        return kwargs.get("output_size") is None
    if name in ("index", "index_put", "index_put_"):
        indices = args[1] if len(args) > 1 else ()
        return any(isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8)
                   for i in indices)
    return False


class _Tracker(TorchDispatchMode):
    """Marks every tensor computed from a tracked one (by identity: tensors compare by value)."""

    def __init__(self, tracked: Iterable[torch.Tensor]):
        super().__init__()
        self.derived: dict[int, tuple[weakref.ref, str]] = {}
        for t in tracked:
            self.mark(t, "an input")
        self.reads = HostReads()

    def mark(self, t: torch.Tensor, producer: str) -> None:
        key = id(t)
        self.derived[key] = (weakref.ref(t, lambda _, key=key: self.derived.pop(key, None)),
                             producer)

    def is_derived(self, t) -> bool:
        entry = self.derived.get(id(t)) if isinstance(t, torch.Tensor) else None
        return entry is not None and entry[0]() is t

    def note(self, t: torch.Tensor, what: str) -> None:
        self.reads.batch += 1
        self.reads.ops.append(f"{what} of {self.derived[id(t)][1]}")

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        inputs, _ = tree_flatten((args, kwargs))
        derived = any(self.is_derived(t) for t in inputs)
        if _sized(func, args, kwargs):
            self.reads.sizes += 1
            self.reads.size_ops.append(str(func.overloadpacket.__name__))
        if func is torch.ops.aten._local_scalar_dense.default:
            self.reads.scalar += 1
            if derived:
                self.note(args[0], "scalar read")
        out = func(*args, **kwargs)
        if derived:
            outputs, _ = tree_flatten(out)
            for t in outputs:
                if isinstance(t, torch.Tensor):
                    self.mark(t, str(func.overloadpacket.__name__))
        return out


def count_host_reads(fn: Callable[[], object], tracked: Iterable[torch.Tensor] = ()
                     ) -> HostReads:
    """Call ``fn()`` and count its host reads (see the module docstring).

    Args:
        fn: a function of no argument, e.g. ``lambda: mixer(x, y, saliency)``.
        tracked: the tensors that would live on the device (the batch, a model's parameters);
            reads of values computed from them are the ``batch`` count.

    Returns:
        A :class:`HostReads`.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    tracked = list(tracked)
    for i, t in enumerate(tracked):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"tracked[{i}] must be a tensor, got {type(t).__name__}")
    mode = _Tracker(tracked)
    tolist, numpy = torch.Tensor.tolist, torch.Tensor.numpy

    def counted(method, what):
        def wrapper(self, *args, **kwargs):
            if mode.is_derived(self):
                mode.note(self, what)
            return method(self, *args, **kwargs)
        return wrapper

    torch.Tensor.tolist = counted(tolist, ".tolist()")
    torch.Tensor.numpy = counted(numpy, ".numpy()")
    try:
        with mode:
            fn()
    finally:
        torch.Tensor.tolist, torch.Tensor.numpy = tolist, numpy
    return mode.reads
