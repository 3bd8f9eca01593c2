"""Appendix D.1, Table 6: Algorithm 1 against brute force on tiny problems.

``comixup analyze table6`` runs the three configurations of Table 6, ``(m = m' = 2, n = 4)``,
``(2, 9)`` and ``(3, 4)``, in the paper's setting
(:func:`comixup.analysis.problems.uniform_problem`: |L| = 2, unary uniform on ``[0, 1]``, the
paper's hyperparameters ``beta = 0.32, gamma = 1, tau = 0.83`` and its Dirichlet prior,
``A = I``, hard clipping), and compares, per seed,

* the brute-force optimum (:func:`comixup.solver.solve_exact`),
* uniformly random labelings (the mean objective of ``random_samples`` draws),
* :func:`comixup.solver.solve` with its defaults (the paper's Algorithm 1), and
* ``solve(..., restarts=4, polish=100)``, the documented optional improvements,

with the relative error ``(f - f_opt) / (f_random - f_opt)`` of Appendix D.1, averaged over
seeds. The paper reports 0.004, 0.01 and 0.002. ``comixup bench solver`` prints the same rows
from the same function, :func:`table6_rows`.
"""

from __future__ import annotations

import time

import numpy as np

from .._checks import check_int
from ._io import markdown_table, out_dir, progress, write_csv
from .problems import random_labelings, uniform_problem

__all__ = ["PAPER_TABLE6", "TABLE6_CONFIGS", "VARIANTS", "run_table6", "table6_relative_error",
           "table6_rows"]

#: The brute-force configurations of Table 6 (Appendix D.1): (m = m', grid side), n = side^2.
TABLE6_CONFIGS = ((2, 2), (2, 3), (3, 2))

#: Table 6 of the paper, keyed by (m, n): mean objective of Algorithm 1, of the brute-force
#: optimum, of random guessing, and the mean relative error.
PAPER_TABLE6 = {
    (2, 4): dict(ours=1.91, optimum=1.90, random=3.54, rel_error=0.004),
    (2, 9): dict(ours=1.93, optimum=1.91, random=3.66, rel_error=0.01),
    (3, 4): dict(ours=2.89, optimum=2.85, random=22.02, rel_error=0.002),
}

#: The two runs of :func:`comixup.solver.solve` compared: (label, restarts, polish).
VARIANTS = (("solve defaults", 1, 0), ("solve restarts=4 polish=100", 4, 100))

_KW = dict(beta=0.32, gamma=1.0, tau=0.83, threshold="hard")


def _per_seed(m, side, seeds, restarts, polish, levels, random_samples, optima, bar):
    """Per-seed objectives ``(f_solve, f_opt, f_random)`` and the solve time; fills ``optima``."""
    from ..solver import objective, solve, solve_exact

    f_solve, f_opt, f_rand, seconds = [], [], [], 0.0
    for seed in progress(range(seeds), desc=bar, enabled=bar is not None):
        rng = np.random.default_rng(seed)
        cost, A = uniform_problem(m, side, rng=rng)
        t0 = time.perf_counter()
        z = solve(cost, A, eta=0.0, levels=levels, rng=rng, restarts=restarts, polish=polish, **_KW)
        seconds += time.perf_counter() - t0
        if seed not in optima:
            optima[seed] = solve_exact(cost, A, levels=levels, **_KW)[1]
        draws = random_labelings(m, m, side, side, random_samples, rng=rng)
        f_solve.append(objective(cost, z, A, **_KW))
        f_opt.append(optima[seed])
        f_rand.append(float(np.mean([objective(cost, d, A, **_KW) for d in draws])))
    return np.array(f_solve), np.array(f_opt), np.array(f_rand), seconds


def table6_relative_error(m: int, side: int, *, seeds: int = 100, restarts: int = 4,
                          polish: int = 100, levels: int = 2, random_samples: int = 500,
                          optima: dict | None = None, desc: str | None = None) -> dict:
    """Appendix D.1 / Table 6: Algorithm 1 against brute force on one tiny configuration.

    For each seed ``s`` (``numpy.random.default_rng(s)``, drawn in this order): the problem of
    :func:`~comixup.analysis.problems.uniform_problem` (``m' = m``, ``n = side^2``),
    :func:`comixup.solver.solve` with the given ``restarts`` / ``polish`` (and ``eta = 0``: the
    prior is in the cost), then ``random_samples`` random labelings. The brute-force optimum
    comes from :func:`comixup.solver.solve_exact`.

    Args:
        m, side: the configuration (``m = m'`` inputs and outputs, a ``side x side`` grid).
        seeds: number of seeds (the paper: 100).
        restarts, polish: passed to :func:`comixup.solver.solve`.
        levels: |L| (Table 6: 2).
        random_samples: random labelings averaged per seed.
        optima: a dict ``seed -> f_opt`` reused and filled in (brute force runs once per seed
            when several variants are compared).
        desc: label of a tqdm progress bar (None: no bar).

    Returns:
        dict with ``m``, ``n``, the means over seeds ``f_solve``, ``f_opt``, ``f_random``, the
        mean and max relative error ``rel_error``, ``max_rel_error`` and ``solve_ms`` (mean time
        of one ``solve`` call).
    """
    m = check_int("m", m, 1)
    side = check_int("side", side, 1)
    seeds = check_int("seeds", seeds, 1)
    random_samples = check_int("random_samples", random_samples, 1)
    optima = {} if optima is None else optima
    fs, fo, fr, seconds = _per_seed(m, side, seeds, restarts, polish, levels, random_samples,
                                    optima, desc)
    rel = (fs - fo) / (fr - fo)
    return dict(m=m, n=side * side, f_solve=float(fs.mean()), f_opt=float(fo.mean()),
                f_random=float(fr.mean()), rel_error=float(rel.mean()),
                max_rel_error=float(rel.max()), solve_ms=1e3 * seconds / seeds)


def table6_rows(*, seeds: int = 100, configs=TABLE6_CONFIGS, show_progress: bool = False
                ) -> list[dict]:
    """Table 6's measurements: one row per configuration and :data:`VARIANTS` entry, in that
    order, the brute force run once per seed and shared by the variants.

    Every row holds ``m``, ``n``, ``method`` (the variant's label), ``restarts``, ``polish``,
    ``seeds``, the results of :func:`table6_relative_error` (``f_solve``, ``f_opt``,
    ``f_random``, ``rel_error``, ``max_rel_error``, ``solve_ms``) and the paper's values
    (``paper_ours``, ``paper_optimum``, ``paper_random``, ``paper_rel_error``; None for a
    configuration the paper does not have). ``comixup analyze table6`` and ``comixup bench
    solver`` print these rows.
    """
    seeds = check_int("seeds", seeds, 1)
    rows = []
    for m, side in configs:
        optima: dict = {}
        for label, restarts, polish in VARIANTS:
            r = table6_relative_error(m, side, seeds=seeds, restarts=restarts, polish=polish,
                                      optima=optima,
                                      desc=f"table6 m={m} n={side * side} {label}"
                                      if show_progress else None)
            paper = PAPER_TABLE6.get((m, side * side), {})
            rows.append(dict(m=m, n=side * side, method=label, restarts=restarts, polish=polish,
                             seeds=seeds, **{k: r[k] for k in ("f_solve", "f_opt", "f_random",
                                                                "rel_error", "max_rel_error",
                                                                "solve_ms")},
                             paper_ours=paper.get("ours"), paper_optimum=paper.get("optimum"),
                             paper_random=paper.get("random"),
                             paper_rel_error=paper.get("rel_error")))
    return rows


def run_table6(*, seeds: int = 100, out=None, show_progress: bool = True,
               configs=TABLE6_CONFIGS, log=print) -> dict:
    """``comixup analyze table6``: Table 6 (Appendix D.1), ours beside the paper's.

    Runs :func:`table6_rows` (:func:`table6_relative_error` for every configuration and both
    :data:`VARIANTS`, brute force once per seed), prints a Markdown table and, with ``out``,
    writes ``table6.md`` and ``table6.csv`` there.

    Returns:
        dict with ``rows`` (one per configuration and variant), ``markdown``, ``seconds`` and
        ``files``.
    """
    t0 = time.perf_counter()
    rows = table6_rows(seeds=seeds, configs=configs, show_progress=show_progress)
    seconds = time.perf_counter() - t0
    table = []
    for i in range(0, len(rows), len(VARIANTS)):
        group = rows[i:i + len(VARIANTS)]
        r0 = group[0]
        cells = [f"({r0['m']}, {r0['n']})",
                 f"{r0['paper_ours']} / {r0['paper_optimum']} / {r0['paper_random']}",
                 f"{r0['paper_rel_error']}", f"{r0['f_opt']:.3f}", f"{r0['f_random']:.3f}"]
        for r in group:
            cells += [f"{r['f_solve']:.3f}",
                      f"**{r['rel_error']:.3f}** (max {r['max_rel_error']:.2f})"]
        table.append(cells)
    header = ["(m = m', n)", "paper: ours / optimum / random", "paper rel. error",
              "brute force", "random"]
    for label, _, _ in VARIANTS:
        header += [f"{label}: f", f"{label}: rel. error"]
    md = (f"Table 6 (Appendix D.1): mean objective over {seeds} seeds; |L| = 2, unary U[0, 1], "
          f"beta = 0.32, gamma = 1, tau = 0.83, the Dirichlet prior (eta = 0.05, alpha = 2), "
          f"A = I, hard clipping; relative error (f - f_opt) / (f_random - f_opt).\n\n"
          + markdown_table(header, table))
    log(md)
    files = []
    if out is not None:
        d = out_dir(out)
        (d / "table6.md").write_text(md)
        files = [str(d / "table6.md"), str(write_csv(d / "table6.csv", rows))]
        log(f"wrote {', '.join(files)} ({seconds:.1f} s)")
    return dict(rows=rows, markdown=md, seconds=seconds, files=files)
