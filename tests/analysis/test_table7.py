"""The problem setting of ``analyze table7`` against the magnitudes of the paper's Table 7."""

import numpy as np
import pytest

from comixup.analysis.problems import (
    bernoulli_masks,
    bernoulli_objective_mean,
    normalized_abs_normal_problem,
)
from comixup.analysis.table7 import PAPER_TABLE7, SETTINGS
from comixup.solver.objective import objective_kernel


def _random_guess_objective(m, seed, kw, side=8):
    cost, A = normalized_abs_normal_problem(m, side, rng=np.random.default_rng(seed))
    z = bernoulli_masks(m, m, side, side, 1, rng=np.random.default_rng([seed, 3]))[0]
    n = side * side
    return objective_kernel(cost.reshape(m, n), z.reshape(m, n, m), A, side, side,
                            kw["beta"] / n, kw["gamma"] / n, kw["tau"] * n, 0)


def test_normalized_abs_normal_problem():
    cost, A = normalized_abs_normal_problem(4, 8, rng=np.random.default_rng(0))
    assert cost.shape == (4, 8, 8) and (cost >= 0).all()
    np.testing.assert_allclose(cost.reshape(4, -1).sum(1), 1.0)
    np.testing.assert_array_equal(A, np.eye(4))


@pytest.mark.parametrize("m", [5, 10])
def test_random_guess_mean_within_paper_std(m):
    """The closed-form mean of the random guess is within the paper's std of its mean."""
    kw = SETTINGS["reference"]["kw"]
    mean = bernoulli_objective_mean(m, m, 8, beta=kw["beta"], gamma=kw["gamma"])
    paper, std = PAPER_TABLE7["Random"][m]
    assert abs(mean - paper) < std


def test_random_guess_closed_form_matches_samples():
    """A handful of seeds at m = 5 agree with the closed form (sampling std about 40)."""
    kw = SETTINGS["reference"]["kw"]
    f = [_random_guess_objective(5, s, kw) for s in range(8)]
    mean = bernoulli_objective_mean(5, 5, 8, beta=kw["beta"], gamma=kw["gamma"])
    assert abs(np.mean(f) - mean) < 3 * 45 / np.sqrt(len(f))
    paper, std = PAPER_TABLE7["Random"][5]
    assert abs(np.mean(f) - paper) < 2 * std
