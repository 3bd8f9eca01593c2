"""Appendix D.2, Tables 7 and 8: Algorithm 1 against Narasimhan-Bilmes and random labelings.

``comixup analyze table7`` solves, for every ``m`` and seed, one problem with ``m' = m`` outputs
and reports the mean (std over seeds) of the objective, Eq. (1) (Table 7), and the mean wall time
to convergence of the two algorithms (Table 8), beside the paper's values, for

* Algorithm 1, :func:`comixup.solver.solve` (``levels=2``, ``eta=0``; otherwise its defaults,
  ``n_iter = 4``),
* the procedure of Narasimhan and Bilmes,
  :func:`comixup.analysis.narasimhan_bilmes.narasimhan_bilmes` (same start distribution), and
* one random guess.

Settings (``--setting``, :data:`SETTINGS`):

* ``reference`` (default): the problem of the reference implementation's Table 7 script
  (``unittest/match_bp.py``): an 8x8 grid (``n = 64``), unary ``|N(0, 1)|`` per cell normalized
  to sum 1 per input (:func:`~comixup.analysis.problems.normalized_abs_normal_problem`),
  ``A = I``, no prior, hard clipping, ``beta = 0.8``, ``tau = 0.83``, ``gamma = 0.5``, and the
  script's random guess, independent Bernoulli(1/2) entries of the labeling tensor (not a
  labeling; :func:`~comixup.analysis.problems.bernoulli_masks`), scored with the objective's
  kernel. Its mean is ``gamma p^2 n m^2 (m - 1) + ...`` in closed form
  (:func:`~comixup.analysis.problems.bernoulli_objective_mean`): 821 and 7285 at m = 5 and 10
  against the paper's 809 (22) and 7269 (92), and within the paper's std up to m = 100. The
  script sets ``gamma = 1.0``, which doubles the leading term (1621 at m = 5); ``gamma = 0.5``
  is the value that reproduces the paper's random column.
* ``table6``: the setting of Table 6 (:func:`comixup.analysis.problems.uniform_problem`: unary
  uniform on ``[0, 1]`` with the paper's Dirichlet prior folded in, ``A = I``, hard clipping,
  ``beta = 0.32, gamma = 1, tau = 0.83``, |L| = 2) on a 4x4 grid, random guess a uniformly
  random one-hot labeling. Its random column is 11x (m = 5) to 3,700x (m = 100) below the
  paper's.

Seeds: problem ``s`` uses ``numpy.random.default_rng(s)``; Algorithm 1, Narasimhan-Bilmes and
the random guess draw from ``default_rng([s, 1])``, ``[s, 2]`` and ``[s, 3]``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from .._checks import check_int
from ._io import markdown_table, out_dir, progress, write_csv
from .narasimhan_bilmes import narasimhan_bilmes
from .problems import (
    bernoulli_masks,
    normalized_abs_normal_problem,
    random_labelings,
    uniform_problem,
)

__all__ = ["PAPER_TABLE7", "PAPER_TABLE8", "SETTINGS", "TABLE7_MS", "run_table7", "table7_rows"]

#: The ``m`` of Tables 7 and 8.
TABLE7_MS = (5, 10, 20, 50, 100)
#: Table 7 of the paper: mean (std) objective over 100 seeds, keyed by method and m.
PAPER_TABLE7 = {
    "Algorithm 1": {5: (3.1, 1.7), 10: (15, 6.6), 20: (54, 15), 50: (205, 26), 100: (469, 31)},
    "Narasimhan-Bilmes": {5: (269, 58), 10: (1071, 174), 20: (4344, 701), 50: (24955, 4439),
                          100: (85782, 14337)},
    "Random": {5: (809, 22), 10: (7269, 92), 20: (60964, 413), 50: (980973, 2462),
               100: (7925650, 10381)},
}
#: Table 8 of the paper: convergence time (s).
PAPER_TABLE8 = {
    "Algorithm 1": {5: 0.02, 10: 0.04, 20: 0.11, 50: 0.54, 100: 2.71},
    "Narasimhan-Bilmes": {5: 0.06, 10: 0.09, 20: 0.27, 50: 1.27, 100: 7.08},
}
METHODS = ("Algorithm 1", "Narasimhan-Bilmes", "Random")
_KW = dict(beta=0.32, gamma=1.0, tau=0.83, threshold="hard")
#: The problem settings of ``analyze table7``: hyperparameters, default grid side and a label.
SETTINGS = {
    "reference": dict(kw=dict(beta=0.8, gamma=0.5, tau=0.83, threshold="hard"), grid=8,
                      label="reference script's problem (|N(0, 1)| unary normalized to sum 1 "
                            "per input, A = I, eta = 0, hard clipping, beta = 0.8, gamma = 0.5, "
                            "tau = 0.83), random guess Bernoulli(1/2) per entry"),
    "table6": dict(kw=_KW, grid=4,
                   label="Table 6 setting (|L| = 2, unary U[0, 1] + Dirichlet prior, A = I, "
                         "hard clipping, beta = 0.32, gamma = 1, tau = 0.83), random guess "
                         "uniformly random one-hot labeling"),
}


def _warm_up():
    from ..solver import solve

    cost, A = uniform_problem(3, 2, rng=np.random.default_rng(0))
    solve(cost, A, eta=0.0, levels=2, rng=np.random.default_rng(0), **_KW)
    narasimhan_bilmes(cost, A, rng=np.random.default_rng(0), **_KW)


def table7_rows(ms: Sequence[int] = (5, 10, 20), *, seeds: int = 20, grid: int | None = None,
                patience: int = 1, setting: str = "reference",
                show_progress: bool = False) -> list[dict]:
    """Per-seed results of Tables 7 and 8: one dict per (m, seed, method).

    Keys: ``m``, ``seed``, ``method`` (one of :data:`METHODS`), ``f`` (the objective) and
    ``seconds`` (time of the call; 0 for the random labeling); Narasimhan-Bilmes rows also have
    ``iterations``. ``patience`` is passed to
    :func:`~comixup.analysis.narasimhan_bilmes.narasimhan_bilmes`. ``setting`` is a key of
    :data:`SETTINGS`; ``grid`` defaults to its grid side.
    """
    from .._checks import check_choice
    from ..solver import objective, solve
    from ..solver.hyperparameters import Hyperparameters
    from ..solver.objective import objective_kernel, threshold_mode

    setting = check_choice("setting", setting, tuple(SETTINGS))
    kw = SETTINGS[setting]["kw"]
    seeds = check_int("seeds", seeds, 1)
    grid = check_int("grid", SETTINGS[setting]["grid"] if grid is None else grid, 1)
    ms = [check_int("m", m, 2) for m in ms]
    _warm_up()
    rows = []
    for m in ms:
        bar = progress(range(seeds), desc=f"table7 m={m}", enabled=show_progress)
        for seed in bar:
            problem = uniform_problem if setting == "table6" else normalized_abs_normal_problem
            cost, A = problem(m, grid, rng=np.random.default_rng(seed))
            t0 = time.perf_counter()
            z = solve(cost, A, eta=0.0, levels=2, rng=np.random.default_rng([seed, 1]), **kw)
            t1 = time.perf_counter()
            rows.append(dict(m=m, seed=seed, method=METHODS[0], f=objective(cost, z, A, **kw),
                             seconds=t1 - t0))
            z, info = narasimhan_bilmes(cost, A, rng=np.random.default_rng([seed, 2]),
                                        patience=patience, return_info=True, **kw)
            rows.append(dict(m=m, seed=seed, method=METHODS[1], f=objective(cost, z, A, **kw),
                             seconds=time.perf_counter() - t1, iterations=info["iterations"]))
            rng = np.random.default_rng([seed, 3])
            if setting == "table6":
                z = random_labelings(m, m, grid, grid, 1, rng=rng)[0]
                f = objective(cost, z, A, **kw)
            else:  # not a labeling: the objective's kernel, scaled as objective() scales
                z = bernoulli_masks(m, m, grid, grid, 1, rng=rng)[0]
                n = grid * grid
                eff = Hyperparameters(beta=kw["beta"], gamma=kw["gamma"],
                                      tau=kw["tau"]).effective(n)
                f = float(objective_kernel(cost.reshape(m, n), z.reshape(m, n, m), A, grid,
                                           grid, eff.beta, eff.gamma, eff.tau,
                                           threshold_mode(kw["threshold"])))
            rows.append(dict(m=m, seed=seed, method=METHODS[2], f=f, seconds=0.0))
    return rows


def _summary(rows):
    out = []
    for m in sorted({r["m"] for r in rows}):
        for method in METHODS:
            sel = [r for r in rows if r["m"] == m and r["method"] == method]
            f = np.array([r["f"] for r in sel])
            s = np.array([r["seconds"] for r in sel])
            pf = PAPER_TABLE7[method].get(m, (None, None))
            out.append(dict(m=m, method=method, seeds=len(sel), mean_f=float(f.mean()),
                            std_f=float(f.std()), mean_seconds=float(s.mean()),
                            mean_iterations=float(np.mean([r.get("iterations", 0) for r in sel])),
                            paper_mean_f=pf[0], paper_std_f=pf[1],
                            paper_seconds=PAPER_TABLE8.get(method, {}).get(m)))
    return out


def _markdown(summary, seeds, grid, patience, setting="reference") -> str:
    ms = sorted({r["m"] for r in summary})
    get = {(r["m"], r["method"]): r for r in summary}
    t7 = []
    for method in METHODS:
        cells = [method]
        for m in ms:
            r = get[m, method]
            cells += [f"{r['mean_f']:.1f} ({r['std_f']:.1f})",
                      f"{r['paper_mean_f']:g} ({r['paper_std_f']:g})"
                      if r["paper_mean_f"] is not None else "-"]
        t7.append(cells)
    header = ["method"]
    for m in ms:
        header += [f"m = {m} ours", f"m = {m} paper"]
    ratio = []
    for num in ("Narasimhan-Bilmes", "Random"):
        cells = [f"{num} / Algorithm 1"]
        for m in ms:
            a, b = get[m, "Algorithm 1"], get[m, num]
            ours = b["mean_f"] / a["mean_f"] if a["mean_f"] else float("nan")
            paper = (b["paper_mean_f"] / a["paper_mean_f"]) if a["paper_mean_f"] else None
            cells += [f"{ours:.2f}", f"{paper:.0f}" if paper else "-"]
        ratio.append(cells)
    t8 = []
    for method in METHODS[:2]:
        cells = [method]
        for m in ms:
            r = get[m, method]
            cells += [f"{r['mean_seconds']:.4f}",
                      f"{r['paper_seconds']:g}" if r["paper_seconds"] is not None else "-"]
        t8.append(cells)
    nb_iters = ", ".join(f"m = {m}: {get[m, 'Narasimhan-Bilmes']['mean_iterations']:.1f}"
                         for m in ms)
    return (f"Table 7 (Appendix D.2): mean (std) objective over {seeds} seeds; "
            f"{SETTINGS[setting]['label']}, m' = m, {grid}x{grid} grid (n = {grid * grid}); "
            f"Narasimhan-Bilmes patience {patience}.\n\n"
            + markdown_table(header, t7 + ratio)
            + "\nTable 8: mean convergence time (s), one thread.\n\n"
            + markdown_table(header, t8)
            + f"\nNarasimhan-Bilmes permutations drawn (mean): {nb_iters}.\n")


def run_table7(*, ms: Sequence[int] = (5, 10, 20, 50, 100), seeds: int = 20,
               grid: int | None = None, patience: int = 1, setting: str = "reference", out=None,
               show_progress: bool = True,
               log: Callable[[str], None] = print) -> dict:
    """``comixup analyze table7``: Tables 7 and 8 (Appendix D.2), ours beside the paper's.

    Runs :func:`table7_rows`, prints Markdown and, with ``out``, writes ``table7.md``,
    ``table7.csv`` (the summary) and ``table7_runs.csv`` (every run) there.

    Returns:
        dict with ``rows`` (per run), ``summary``, ``markdown``, ``seconds`` and ``files``.
    """
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass
    t0 = time.perf_counter()
    rows = table7_rows(ms, seeds=seeds, grid=grid, patience=patience, setting=setting,
                       show_progress=show_progress)
    summary = _summary(rows)
    side = SETTINGS[setting]["grid"] if grid is None else grid
    md = _markdown(summary, seeds, side, patience, setting)
    seconds = time.perf_counter() - t0
    log(md)
    files = []
    if out is not None:
        d = out_dir(out)
        (d / "table7.md").write_text(md)
        files = [str(d / "table7.md"), str(write_csv(d / "table7.csv", summary)),
                 str(write_csv(d / "table7_runs.csv", rows))]
        log(f"wrote {', '.join(files)} ({seconds:.1f} s)")
    return dict(rows=rows, summary=summary, markdown=md, seconds=seconds, files=files)
