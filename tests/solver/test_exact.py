"""Brute force: the level lattice and the enumeration against an independent search."""

import itertools

import numpy as np
import pytest

from comixup.solver import level_labels, objective, solve_exact


def test_level_lattice_sizes_and_sums():
    assert level_labels(3, 2).shape == (3, 3)
    assert level_labels(3, 3).shape == (6, 3)  # 3 one-hot + 3 halves
    assert level_labels(2, 4).shape == (4, 2)
    for m, levels in ((2, 2), (3, 3), (3, 4)):
        labels = level_labels(m, levels)
        np.testing.assert_allclose(labels.sum(1), 1.0)
        np.testing.assert_array_equal(labels[:m], np.eye(m))


@pytest.mark.parametrize("threshold", ["hard", "soft", "none"])
def test_solve_exact_matches_independent_enumeration(threshold):
    rng = np.random.default_rng(1)
    m, h, w = 2, 1, 3
    cost = rng.random((m, h, w))
    A = np.eye(m)
    kw = dict(beta=0.32, gamma=1.0, tau=0.5, threshold=threshold)
    z, f = solve_exact(cost, A, levels=3, **kw)
    labels = level_labels(m, 3)
    best = min(
        objective(cost, labels[np.array(c)].reshape(m, h, w, m), A, **kw)
        for c in itertools.product(range(len(labels)), repeat=m * h * w)
    )
    assert f == pytest.approx(best)
    assert objective(cost, z, A, **kw) == pytest.approx(f)


def test_solve_exact_refuses_huge_problems():
    with pytest.raises(ValueError, match="too large"):
        solve_exact(np.zeros((5, 4, 4)), np.eye(5))
