"""Eq. (1) without prior: `objective` against a direct, loop-by-loop evaluation."""

import itertools

import numpy as np
import pytest

from comixup.solver import level_labels, objective


def direct_eq1(cost, z, A, beta, gamma, tau, threshold):
    """Eq. (1) (recipes 2) written term by term, with explicit loops."""
    n_out, h, w, m = z.shape
    n = h * w
    b, g, t = beta / n, gamma / n, tau * n
    f = 0.0
    for j in range(n_out):
        for r, c in itertools.product(range(h), range(w)):
            f += float(cost[:, r, c] @ z[j, r, c])
            for dr, dc in ((0, 1), (1, 0)):
                if r + dr < h and c + dc < w:
                    f += b / 2 * float(np.sum((z[j, r, c] - z[j, r + dr, c + dc]) ** 2))
    o = z.reshape(n_out, n, m).sum(1)
    for j in range(n_out):
        p = A @ sum(o[k] for k in range(n_out) if k != j) if n_out > 1 else np.zeros(m)
        for i in range(m):
            if threshold == "hard":
                f += g * (p[i] if p[i] > t else 0.0) * o[j, i]
            elif threshold == "soft":
                f += g * max(p[i] - t, 0.0) * o[j, i]
            else:
                f += g * p[i] * o[j, i]
    return f


def random_labeling(rng, n_out, h, w, m, levels):
    labels = level_labels(m, levels)
    return labels[rng.integers(len(labels), size=(n_out, h, w))]


@pytest.mark.parametrize("threshold", ["hard", "soft", "none"])
@pytest.mark.parametrize("levels", [2, 3, 4])
def test_objective_matches_direct_evaluation(threshold, levels):
    rng = np.random.default_rng(levels)
    for _ in range(20):
        m, n_out = rng.integers(1, 5), rng.integers(1, 5)
        h, w = rng.integers(1, 4, size=2)
        cost = -rng.random((m, h, w))
        A = np.eye(m) + 0.1 * rng.random((m, m))
        A = (A + A.T) / 2
        z = random_labeling(rng, n_out, h, w, m, levels)
        beta, gamma, tau = rng.random(3) * [1, 2, 1]
        expected = direct_eq1(cost, z, A, beta, gamma, tau, threshold)
        got = objective(cost, z, A, beta=beta, gamma=gamma, tau=tau, threshold=threshold)
        assert got == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_smoothness_of_one_hot_labels_is_beta_times_one_minus_dot():
    # Two cells, labels e_0 and e_1: beta_eff/2 * ||e0 - e1||^2 = beta_eff * (1 - e0.e1).
    cost = np.zeros((2, 1, 2))
    z = np.array([[[[1.0, 0.0], [0.0, 1.0]]]])
    f = objective(cost, z, np.eye(2), beta=0.5, gamma=0.0, tau=0.0)
    assert f == pytest.approx(0.5 / 2 * (1 - 0))


def test_hard_clipping_only_counts_above_tau():
    cost = np.zeros((2, 1, 1))
    z = np.array([[[[1.0, 0.0]]], [[[1.0, 0.0]]]])  # both outputs use input 0 in their one cell
    # p_j[0] = 1; tau_eff = tau * 1.
    below = objective(cost, z, np.eye(2), beta=0, gamma=1, tau=1.0, threshold="hard")
    above = objective(cost, z, np.eye(2), beta=0, gamma=1, tau=0.5, threshold="hard")
    assert below == 0.0
    assert above == pytest.approx(2.0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(cost=np.zeros((2, 2))), "cost"),
        (dict(cost=np.full((2, 2, 2), np.nan)), "cost"),
        (dict(z=np.zeros((1, 2, 2, 3))), "z"),
        (dict(A=np.eye(3)), "A"),
        (dict(threshold="clip"), "threshold"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    args = dict(cost=np.zeros((2, 2, 2)), z=np.full((1, 2, 2, 2), 0.5), A=np.eye(2),
                threshold="hard")
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        objective(args["cost"], args["z"], args["A"], beta=0.3, gamma=1, tau=0.8,
                  threshold=args["threshold"])
