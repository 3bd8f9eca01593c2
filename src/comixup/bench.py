"""Benchmarks behind ``comixup bench``: the solver and the mixing methods.

Timings are medians over repeated runs after a JIT warm-up; they depend on the machine and on
what else runs on it, so the table prints the thread count and the CPU count it ran with.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

__all__ = ["realistic_saliency", "realistic_costs", "bench_solver", "bench_mixers"]


def realistic_saliency(batch: int, size: int = 32, *, rng: np.random.Generator) -> np.ndarray:
    """Saliency maps with one Gaussian object per image plus weak noise, ``(batch, size, size)``.

    Object centres are uniform in the image, widths uniform in ``[size/16, size/4]``, peak heights
    uniform in ``[0.5, 1]``; the noise is ``|N(0, 0.05^2)|`` per pixel. This is the "realistic
    saliency" of the solver benchmark (issue: one Gaussian object per 32x32 image plus weak noise).
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    centre = rng.uniform(0, size, size=(batch, 2))
    width = rng.uniform(size / 16, size / 4, size=batch)
    height = rng.uniform(0.5, 1.0, size=batch)
    d2 = (yy[None] - centre[:, 0, None, None]) ** 2 + (xx[None] - centre[:, 1, None, None]) ** 2
    sal = height[:, None, None] * np.exp(-d2 / (2 * width[:, None, None] ** 2))
    return sal + np.abs(rng.normal(0, 0.05, size=sal.shape))


def realistic_costs(m: int, grid: int = 4, size: int = 32, *, rng: np.random.Generator):
    """Unary cost ``(m, grid, grid)`` and compatibility ``A`` of one partition of realistic saliency.

    Builds the saliency with :func:`realistic_saliency`, then runs the same pooling,
    normalization and compatibility code as :class:`comixup.CoMixup` (notes 1.3, 1.6).
    """
    from .saliency import compatibility, pooled_unary, salient_location

    sal = torch.from_numpy(realistic_saliency(m, size, rng=rng)).float()
    cost = -pooled_unary(sal, grid).double().numpy()
    A = compatibility(salient_location(sal)).numpy()
    return cost, A


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def bench_solver(args: argparse.Namespace | None = None) -> list[dict]:
    """``comixup bench solver``: Algorithm 1 time and objective on realistic saliency.

    For m in {2, 10, 20, 50, 100} and |L| in {2, 3, 4}: the median time per partition (one
    thread, after warm-up) and the mean objective (Eq. (1) without prior) over the same problems;
    then ``CoMixup`` end to end on a batch of 100x3x32x32 with 1 and 2 workers.
    """
    from .solver import objective, solve

    quick = bool(getattr(args, "quick", False))
    ms = (2, 10, 20) if quick else (2, 10, 20, 50, 100)
    problems = 10 if quick else 50
    torch.set_num_threads(1)
    rows = []
    print(f"# comixup bench solver  (cpus={os.cpu_count()}, torch threads=1, numba, 4x4 grid, n_iter=4)")
    print(f"{'m':>4} {'|L|':>4} {'median ms':>10} {'mean f':>10} {'std f':>8}")
    warm_cost, warm_a = realistic_costs(4, rng=np.random.default_rng(0))
    for levels in (2, 3, 4):
        solve(warm_cost, warm_a, levels=levels, rng=np.random.default_rng(0))
    for m in ms:
        reps = problems if m <= 20 else max(5, problems // (m // 10))
        cases = [realistic_costs(m, rng=np.random.default_rng(1000 + s)) for s in range(reps)]
        for levels in (2, 3, 4):
            times, values = [], []
            for s, (cost, A) in enumerate(cases):
                rng = np.random.default_rng(s)
                t0 = time.perf_counter()
                z = solve(cost, A, levels=levels, rng=rng)
                times.append(time.perf_counter() - t0)
                values.append(objective(cost, z, A, beta=0.32, gamma=1.0, tau=0.83))
            row = dict(m=m, levels=levels, median_ms=1e3 * statistics.median(times),
                       mean_f=float(np.mean(values)), std_f=float(np.std(values)))
            rows.append(row)
            print(f"{m:>4} {levels:>4} {row['median_ms']:>10.3f} {row['mean_f']:>10.3f} {row['std_f']:>8.3f}")
    _bench_comixup_end_to_end(rows, quick)
    return rows


def _bench_comixup_end_to_end(rows: list, quick: bool) -> None:
    from .mixers.comixup import CoMixup

    rng = np.random.default_rng(0)
    x = torch.rand(100, 3, 32, 32)
    y = torch.randint(0, 100, (100,), generator=torch.Generator().manual_seed(0))
    sal = torch.from_numpy(realistic_saliency(100, 32, rng=rng)).float()
    print(f"{'CoMixup 100x3x32x32':<24} {'workers':>8} {'median ms':>10}")
    for workers in (1, 2):
        comix = CoMixup(100, workers=workers, generator=torch.Generator().manual_seed(0))
        for _ in range(3):
            comix(x, y, sal)
        t = _median_ms(lambda: comix(x, y, sal), 10 if quick else 50)
        rows.append(dict(m="CoMixup", levels=3, workers=workers, median_ms=t))
        print(f"{'':<24} {workers:>8} {t:>10.3f}")


def bench_mixers(args: argparse.Namespace | None = None) -> list[dict]:
    """``comixup bench mixers``: per-batch cost of every mixing method (filled in by the baselines)."""
    raise NotImplementedError("bench mixers lands with the baselines")
