"""What ``comixup bench gpu`` measures around its code, and the process state it must leave alone.

* :class:`Clock`: wall time of a call, read after the device has finished its work;
* :class:`PeakMemory`: the peak memory of a block: on CUDA the caching allocator's peak
  allocated and reserved bytes (:func:`torch.cuda.reset_peak_memory_stats`, then
  :func:`torch.cuda.max_memory_allocated` and :func:`torch.cuda.max_memory_reserved`), on the
  CPU the process's peak resident set size;
* :class:`ExplicitWaits`: the explicit host waits of a block (``torch.cuda.synchronize()``,
  ``Event.synchronize()``, ``Stream.synchronize()``), which
  ``torch.cuda.set_sync_debug_mode`` does not report: the wait of
  :func:`comixup.mixers._host.to_host` on its copy is one;
* :class:`Settings`: the process-wide settings a benchmark may change (cuDNN and matmul flags,
  deterministic algorithms, torch threads, grad mode, the validation policy, the sync debug
  mode), saved on entering a block and restored on leaving it, also after an error.
"""

from __future__ import annotations

import functools
import os
import resource
import time

import torch

from .._validation import get_validation, validation

__all__ = ["Clock", "ExplicitWaits", "PeakMemory", "Settings"]

_MIB = 2.0**20

#: The :class:`PeakMemory` blocks open now, outermost first.
_ACTIVE: list = []


class Clock:
    """Wall time of a call, read after the device has finished its work (CUDA)."""

    def __init__(self, device: torch.device):
        self.device = device

    def sync(self) -> None:
        """Wait for the device's queued work (nothing on the CPU)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def time(self, fn):
        """``(seconds, fn())``."""
        self.sync()
        t0 = time.perf_counter()
        result = fn()
        self.sync()
        return time.perf_counter() - t0, result


def _read_hwm() -> int | None:
    """The process's peak resident set size in bytes since its last reset (Linux ``VmHWM``)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_hwm() -> bool:
    """Reset the peak resident set size to the current one (Linux >= 4.0); False if it cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class PeakMemory:
    """The peak memory of a ``with`` block on ``device``, nested blocks included.

    On CUDA: the peak bytes allocated and reserved by the caching allocator
    (``peak_allocated_mib``, ``peak_reserved_mib``). On the CPU: the peak resident set size of
    the process (``peak_rss_mib``), reset at the block's start where Linux allows it
    (``/proc/self/clear_refs``); elsewhere the peak since the process started
    (``getrusage``), and :meth:`figures` says so (``rss_scope = "process"``).

    Blocks nest: a block resets the peak counters when it starts, so it first hands the peaks
    reached so far to the blocks around it, and hands them its own when it ends; the outer
    figures are therefore the peaks over everything they enclose.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.peak: dict[str, float] = {}
        self.scope = "block"

    def _current(self) -> dict[str, float]:
        if self.device.type == "cuda":
            return {"peak_allocated_mib": torch.cuda.max_memory_allocated(self.device) / _MIB,
                    "peak_reserved_mib": torch.cuda.max_memory_reserved(self.device) / _MIB}
        hwm = _read_hwm() if self.scope == "block" else None
        if hwm is None:  # kilobytes on Linux
            hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return {"peak_rss_mib": hwm / _MIB}

    def _reset(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        elif not (_read_hwm() is not None and _reset_hwm()):
            self.scope = "process"

    @staticmethod
    def _note(values: dict[str, float]) -> None:
        for meter in _ACTIVE:
            for key, value in values.items():
                meter.peak[key] = max(meter.peak.get(key, 0.0), value)

    def __enter__(self) -> PeakMemory:
        self._note(self._current())  # what the enclosing blocks reached before this one
        self._reset()
        self.peak = {}
        _ACTIVE.append(self)
        return self

    def __exit__(self, *exc) -> None:
        self._note(self._current())
        _ACTIVE.remove(self)

    def figures(self) -> dict:
        """The peaks in MiB (the keys above), and ``rss_scope`` on the CPU."""
        out = dict(self.peak)
        if self.device.type != "cuda":
            out["rss_scope"] = self.scope
        return out


class ExplicitWaits:
    """Count the explicit host waits on CUDA work inside a ``with`` block: the calls of
    ``torch.cuda.synchronize``, ``torch.cuda.Event.synchronize`` and
    ``torch.cuda.Stream.synchronize`` (the attribute the code calls through is wrapped for the
    block and restored after it). ``count`` holds the number, ``sites`` the callers' names.

    These are synchronisations that ``torch.cuda.set_sync_debug_mode`` does not report (it
    reports the implicit ones: ``.item()``, a blocking copy). On the CPU nothing waits, and the
    count stays 0.
    """

    def __init__(self):
        self.count = 0
        self._saved: list = []

    def _wrap(self, owner, name: str) -> None:
        original = getattr(owner, name)

        @functools.wraps(original)
        def counted(*args, **kwargs):
            self.count += 1
            return original(*args, **kwargs)

        self._saved.append((owner, name, original))
        setattr(owner, name, counted)

    def __enter__(self) -> ExplicitWaits:
        self._wrap(torch.cuda, "synchronize")
        self._wrap(torch.cuda.Event, "synchronize")
        self._wrap(torch.cuda.Stream, "synchronize")
        return self

    def __exit__(self, *exc) -> None:
        for owner, name, original in reversed(self._saved):
            setattr(owner, name, original)
        self._saved.clear()


class Settings:
    """The process-wide settings a benchmark section may change, restored when a ``with``
    block ends (normally or by an error).

    :meth:`read` gives them as a dict; after the block, ``changed`` maps every setting the
    block had changed to ``(what the block left, what was restored)``.
    """

    def __init__(self):
        self.saved: dict = {}
        self.changed: dict = {}

    @staticmethod
    def read() -> dict:
        """The current settings, by name."""
        settings = {
            "cudnn.benchmark": torch.backends.cudnn.benchmark,
            "cudnn.deterministic": torch.backends.cudnn.deterministic,
            "cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
            "deterministic_warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
            "num_threads": torch.get_num_threads(),
            "grad_enabled": torch.is_grad_enabled(),
            "validation": get_validation(),
            "CUBLAS_WORKSPACE_CONFIG": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
        }
        if torch.cuda.is_available():
            settings["sync_debug_mode"] = torch.cuda.get_sync_debug_mode()
        return settings

    @staticmethod
    def write(settings: dict) -> None:
        """Set every setting of ``settings`` (a dict of :meth:`read`)."""
        torch.backends.cudnn.benchmark = settings["cudnn.benchmark"]
        torch.backends.cudnn.deterministic = settings["cudnn.deterministic"]
        torch.backends.cudnn.allow_tf32 = settings["cudnn.allow_tf32"]
        torch.set_float32_matmul_precision(settings["float32_matmul_precision"])
        torch.use_deterministic_algorithms(settings["deterministic_algorithms"],
                                           warn_only=settings["deterministic_warn_only"])
        torch.set_num_threads(settings["num_threads"])
        torch.set_grad_enabled(settings["grad_enabled"])
        validation(settings["validation"])
        if settings["CUBLAS_WORKSPACE_CONFIG"] is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
        else:
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = settings["CUBLAS_WORKSPACE_CONFIG"]
        if "sync_debug_mode" in settings:
            torch.cuda.set_sync_debug_mode(settings["sync_debug_mode"])

    def __enter__(self) -> Settings:
        self.saved = self.read()
        self.changed = {}
        return self

    def __exit__(self, *exc) -> None:
        left = self.read()
        self.changed = {k: (left[k], v) for k, v in self.saved.items() if left.get(k) != v}
        self.write(self.saved)
