"""The fixed cases of the solver's reproducibility test (``test_reference.py``).

:func:`run_cases` runs :func:`comixup.solver.solve` on fixed random partitions for every
``levels`` (2, 3, 4), ``threshold`` (hard, soft, none) and ``pairwise`` (reference, squared),
with a few seeds, and also with ``restarts``, ``polish``, ``n_out`` and a non-square grid; then
:func:`comixup.solver.objective` on the results and :func:`comixup.solver.solve_exact` on tiny
problems. ``reference_outputs.npz`` holds what the code returned when the fixture was made
(``python tests/solver/reference_cases.py`` rewrites it); the test checks the outputs are
bit-identical.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

FIXTURE = Path(__file__).with_name("reference_outputs.npz")


def problem(seed: int, m: int = 6, h: int = 4, w: int = 4):
    """``(cost, A)``: negated normalized saliency ``(m, h, w)`` and a compatibility matrix."""
    rng = np.random.default_rng(1000 + seed)
    sal = rng.random((m, h, w)) ** 2
    cost = -sal / sal.sum((1, 2), keepdims=True)
    a = rng.random((m, m))
    a = (a + a.T) / 2
    np.fill_diagonal(a, 1.0)
    return cost, a


def run_cases() -> dict[str, np.ndarray]:
    """Every case's output by name (labelings float64, objectives as 0-d float64 arrays)."""
    from comixup.solver import objective, solve, solve_exact

    out: dict[str, np.ndarray] = {}
    for levels, threshold, pairwise, seed in itertools.product(
            (2, 3, 4), ("hard", "soft", "none"), ("reference", "squared"), (0, 1)):
        cost, a = problem(seed)
        key = f"solve/{levels}/{threshold}/{pairwise}/{seed}"
        z = solve(cost, a, levels=levels, threshold=threshold, pairwise=pairwise,
                  rng=np.random.default_rng(seed))
        out[key] = z
        out[key + "/f"] = np.array(objective(cost, z, a, beta=0.32, gamma=1.0, tau=0.83,
                                             threshold=threshold))
    extra = {
        "restarts": {"restarts": 3},
        "polish": {"polish": 4, "levels": 2},
        "n_out": {"n_out": 3, "n_iter": 5},
        "params": {"beta": 0.5, "gamma": 2.0, "eta": 0.1, "tau": 0.5, "alpha": 0.7,
                   "resolve": False},
        "no_prior": {"eta": 0.0},
    }
    for name, kwargs in extra.items():
        cost, a = problem(7)
        out[f"solve/{name}"] = solve(cost, a, rng=np.random.default_rng(3), **kwargs)
    cost, a = problem(8, m=5, h=3, w=5)
    out["solve/non_square"] = solve(cost, a, rng=np.random.default_rng(4))
    for m, h, w, levels, threshold in ((2, 2, 2, 2, "hard"), (2, 2, 2, 3, "soft"),
                                        (3, 2, 2, 2, "none"), (2, 3, 3, 2, "hard")):
        cost, a = problem(9, m=m, h=h, w=w)
        z, f = solve_exact(cost, a, levels=levels, threshold=threshold, tau=0.3)
        key = f"exact/{m}/{h}x{w}/{levels}/{threshold}"
        out[key] = z
        out[key + "/f"] = np.array(f)
    return out


if __name__ == "__main__":
    np.savez_compressed(FIXTURE, **run_cases())
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size} bytes)")
