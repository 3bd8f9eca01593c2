"""The thread pool of the mixers whose numba kernels release the GIL (Co-Mixup, Puzzle Mix).

:class:`ThreadedMixer` is a mixin: a mixer that solves independent problems (Co-Mixup's
partitions, Puzzle Mix's graph cuts) sets ``workers`` and gets one lazily made pool, grown on
demand and dropped when the mixer is pickled. Results never depend on the number of threads:
every problem carries its own seed.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

__all__ = ["ThreadedMixer"]


class ThreadedMixer:
    """Mixin for mixers whose numba kernels release the GIL and run in a thread pool.

    Subclasses set ``self.workers`` (None: one thread per CPU). The pool is created lazily, grown
    when more workers are needed, and dropped when the mixer is pickled (e.g. into data-loader
    workers or a checkpoint).
    """

    workers: int | None = None
    _pool: ThreadPoolExecutor | None = None
    _pool_size: int = 0

    def n_workers(self, n_tasks: int) -> int:
        """The threads a call uses for ``n_tasks`` independent tasks (Co-Mixup's partitions,
        Puzzle Mix's graph cuts): ``workers``, or one per CPU the process may run on, and at
        most one per task."""
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        return max(1, min(self.workers or cpus or 1, n_tasks))

    def _executor(self, workers: int) -> ThreadPoolExecutor | None:
        """The shared pool with at least ``workers`` threads, or None for a single thread."""
        if workers <= 1:
            return None
        if self._pool is None or self._pool_size < workers:
            if self._pool is not None:
                self._pool.shutdown(wait=False)
            self._pool = ThreadPoolExecutor(max_workers=workers,
                                            thread_name_prefix=type(self).__name__.lower())
            self._pool_size = workers
        return self._pool

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_pool", None)
        state.pop("_pool_size", None)
        return state
