"""Appendix C, Figure 6: the execution time of Algorithm 1 per partition.

:func:`solver_timing` is the measurement behind both ``comixup bench solver`` and
``comixup analyze timing``: for each ``m`` and |L| it solves the same realistic problems
(:func:`comixup.analysis.problems.realistic_costs`: one Gaussian object per 32x32 image, pooled
to the 4x4 grid, the compatibility of Section 4.1) with :func:`comixup.solver.solve` at the
paper's hyperparameters (``n_iter = 4``, ``m' = m``), on one thread after a JIT warm-up, and
reports the mean and median time of one call and the mean objective (Eq. (1) without prior).

:func:`run_timing` draws Figure 6: the mean time over |L| in {2, 3, 4} at ``m = 20`` (left) and
over ``m`` in {2, 10, 20, 50, 100} (right), one curve per |L| / ``m``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from .._checks import check_int
from ._io import out_dir, progress, pyplot, write_csv
from .problems import realistic_costs

__all__ = ["FIGURE6_LEVELS", "FIGURE6_MS", "PAPER_FIGURE6", "run_timing", "solver_timing"]

#: The grid of Figure 6 (Appendix C).
FIGURE6_MS = (2, 10, 20, 50, 100)
FIGURE6_LEVELS = (2, 3, 4)
#: What the paper's Figure 6 gives as numbers: about 1.2 ms at m = 20, |L| = 3 (the
#: classification setting), a left panel (over |L| at m = 20) whose axis spans 1.1-1.3 ms and a
#: right panel (over m at |L| = 3) whose axis spans 0-10 ms. Only the first is plotted.
PAPER_FIGURE6 = {"m": 20, "levels": 3, "ms": 1.2, "levels_axis_ms": (1.1, 1.3),
                 "m_axis_ms": (0.0, 10.0)}


def solver_timing(ms: Sequence[int] = FIGURE6_MS, levels: Sequence[int] = FIGURE6_LEVELS, *,
                  problems: int = 50, scale_reps: bool = True, show_progress: bool = False
                  ) -> Iterator[dict]:
    """Time :func:`comixup.solver.solve` per partition; yields one row per ``(m, |L|)``.

    Problem ``s`` of size ``m`` is ``realistic_costs(m, rng=default_rng(1000 + s))`` and is
    solved with ``rng=default_rng(s)``; every |L| sees the same problems. With ``scale_reps``
    only ``max(5, problems // (m // 10))`` problems are used for ``m > 20`` (the benchmark's
    rule); without it, ``problems`` for every ``m`` (Figure 6: 100 trials).

    Rows: ``m``, ``levels``, ``problems``, ``median_ms``, ``mean_ms``, ``mean_f``, ``std_f``.
    """
    from ..solver import objective, solve

    problems = check_int("problems", problems, 1)
    for m in ms:
        check_int("m", m, 2)
    for lv in levels:
        if lv not in (2, 3, 4):
            raise ValueError(f"levels must hold values in (2, 3, 4), got {lv!r}")
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass
    warm_cost, warm_a = realistic_costs(4, rng=np.random.default_rng(0))
    for lv in levels:
        solve(warm_cost, warm_a, levels=lv, rng=np.random.default_rng(0))
    for m in ms:
        reps = problems if (m <= 20 or not scale_reps) else max(5, problems // (m // 10))
        cases = [realistic_costs(m, rng=np.random.default_rng(1000 + s)) for s in range(reps)]
        for lv in levels:
            times, values = [], []
            bar = progress(enumerate(cases), total=reps, desc=f"timing m={m} |L|={lv}",
                           enabled=show_progress)
            for s, (cost, A) in bar:
                rng = np.random.default_rng(s)
                t0 = time.perf_counter()
                z = solve(cost, A, levels=lv, rng=rng)
                times.append(time.perf_counter() - t0)
                values.append(objective(cost, z, A, beta=0.32, gamma=1.0, tau=0.83))
            yield dict(m=m, levels=lv, problems=reps, median_ms=1e3 * statistics.median(times),
                       mean_ms=1e3 * float(np.mean(times)), mean_f=float(np.mean(values)),
                       std_f=float(np.std(values)))


def run_timing(*, problems: int = 100, ms: Sequence[int] = FIGURE6_MS,
               levels: Sequence[int] = FIGURE6_LEVELS, out=None, show_progress: bool = True,
               log: Callable[[str], None] = print) -> dict:
    """``comixup analyze timing``: Figure 6 (Appendix C) as ``timing.png`` and ``timing.csv``.

    Runs :func:`solver_timing` with ``problems`` trials for every ``(m, |L|)`` (no reduction for
    large ``m``) and plots the mean time per partition against |L| (one curve per ``m``) and
    against ``m`` (one curve per |L|), with the paper's one stated value (about 1.2 ms at
    m = 20, |L| = 3) as a star.

    Returns:
        dict with ``rows``, ``seconds`` and ``files``.
    """
    t0 = time.perf_counter()
    rows = list(solver_timing(ms, levels, problems=problems, scale_reps=False,
                              show_progress=show_progress))
    seconds = time.perf_counter() - t0
    log(f"# Figure 6: mean time of Algorithm 1 per partition ({problems} problems, 1 thread)")
    log(f"{'m':>4} {'|L|':>4} {'mean ms':>9} {'median ms':>10} {'mean f':>9}")
    for r in rows:
        log(f"{r['m']:>4} {r['levels']:>4} {r['mean_ms']:>9.3f} {r['median_ms']:>10.3f} "
            f"{r['mean_f']:>9.2f}")
    files = []
    if out is not None:
        d = out_dir(out)
        files.append(str(write_csv(d / "timing.csv", rows)))
        files.append(str(_plot(rows, d / "timing.png")))
        log(f"wrote {', '.join(files)} ({seconds:.1f} s)")
    return dict(rows=rows, seconds=seconds, files=files)


def _panel(ax, xs, curves, paper_x, xlabel):
    """One panel of the Figure 6 plot: a line over ``xs`` per ``label: (times, bold)`` of
    ``curves`` (the paper's setting drawn thicker), the paper's point at ``paper_x``, labels."""
    for label, (times, bold) in curves.items():
        ax.plot(xs, times, marker="o", lw=2.5 if bold else 1, label=label)
    ax.plot([paper_x], [PAPER_FIGURE6["ms"]], "k*", ms=10, label="paper, m = 20, |L| = 3")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("mean time per partition (ms)")


def _plot(rows, path):
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8, 3.2))
    ms = sorted({r["m"] for r in rows})
    lvs = sorted({r["levels"] for r in rows})
    t = {(r["m"], r["levels"]): r["mean_ms"] for r in rows}
    _panel(ax1, lvs, {f"m = {m}": ([t[m, lv] for lv in lvs], m == 20) for m in ms},
           PAPER_FIGURE6["levels"], "|L|")
    ax1.set_xticks(lvs)
    ax1.set_yscale("log")
    ax1.legend(fontsize=7)
    _panel(ax2, ms, {f"|L| = {lv}": ([t[m, lv] for m in ms], lv == 3) for lv in lvs},
           PAPER_FIGURE6["m"], "m (= m')")
    ax2.legend(fontsize=7)
    fig.suptitle("Algorithm 1 time (Figure 6; 4x4 grid, n_iter = 4, 1 thread)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
