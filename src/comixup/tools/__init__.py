"""Tools built on the library, above every layer of it: the benchmarks of ``comixup bench``.

=====================================  ==========================================================
module                                 what (command)
=====================================  ==========================================================
:mod:`~comixup.tools.bench`            the solver, every mixer per batch, the graph cut's pair
                                       costs (``comixup bench solver|mixers|pairwise``)
:mod:`~comixup.tools.bench_gpu`        the GPU code paths checked and timed in one command
                                       (``comixup bench gpu``)
=====================================  ==========================================================

The library never imports this package; what the benchmarks measure comes from the layers
below (the problems and Table 6 from :mod:`comixup.analysis`, the synthetic saliency from
:mod:`comixup.saliency`, Co-Mixup's solve from :meth:`comixup.mixers.CoMixup.solve_partitions`).
The modules are imported on demand (``from comixup.tools import bench``).
"""

__all__ = ["bench", "bench_gpu"]
