"""Narasimhan-Bilmes (Appendix D.2): the modular bound, monotonicity, brute-force optima."""

import itertools

import numpy as np
import pytest

from comixup.analysis.narasimhan_bilmes import (
    element_index,
    modular_bound,
    narasimhan_bilmes,
    set_diversity,
)
from comixup.analysis.problems import uniform_problem
from comixup.solver import objective, solve_exact

KW = dict(beta=0.32, gamma=1.0, tau=0.83)


def _all_subsets(n_out, h, w, m):
    size = n_out * h * w * m
    for bits in itertools.product([0.0, 1.0], repeat=size):
        yield np.array(bits).reshape(n_out, h, w, m)


def _problems(seed):
    rng = np.random.default_rng(seed)
    for trial in range(6):
        labels = rng.integers(2, size=(2, 1, 2))
        A = np.eye(2) if trial % 2 == 0 else np.array([[1.0, 0.3], [0.3, 1.0]])
        tau = [0.0, 0.3, 0.6][trial % 3]
        yield labels, A, tau, rng


@pytest.mark.parametrize("threshold", ["none", "soft"])
def test_bound_is_tight_at_the_labeling_and_an_upper_bound_on_every_subset(threshold):
    # Exhaustive over the 2^8 subsets of the ground set (m' = 2 outputs, 1x2 grid, m = 2).
    for labels, A, tau, rng in _problems(0):
        w = modular_bound(labels, A, tau=tau, threshold=threshold, rng=rng)
        X = np.eye(2)[labels]
        assert (w * X).sum() == pytest.approx(set_diversity(X, A, tau=tau, threshold=threshold))
        for S in _all_subsets(2, 1, 2, 2):
            assert (w * S).sum() >= set_diversity(S, A, tau=tau, threshold=threshold) - 1e-12


def test_hard_clipping_bound_is_tight_but_not_always_an_upper_bound():
    # The hard clip p [p > tau] jumps at tau: f_c is not supermodular, and enumeration finds
    # a subset where the chain bound undercuts it (why narasimhan_bilmes checks every step).
    undercut = 0
    for labels, A, tau, rng in _problems(1):
        w = modular_bound(labels, A, tau=tau, threshold="hard", rng=rng)
        X = np.eye(2)[labels]
        assert (w * X).sum() == pytest.approx(set_diversity(X, A, tau=tau, threshold="hard"))
        undercut += sum((w * S).sum() < set_diversity(S, A, tau=tau) - 1e-9
                        for S in _all_subsets(2, 1, 2, 2))
    assert undercut > 0


def test_bound_equals_hand_computed_chain_increments():
    # m' = 2, one cell, m = 1: the ground set is {(0,0,0), (1,0,0)}; A = I, no clipping:
    # f_c(S) = gamma/n * sum_j p_j o_j = 2 * o_0 * o_1 (n = 1). Whatever the order, the
    # first element gets 0 and the second 2.
    w = modular_bound(np.zeros((2, 1, 1), int), np.eye(1), threshold="none",
                      rng=np.random.default_rng(0))
    assert sorted(w.ravel().tolist()) == [0.0, 2.0]
    assert element_index(1, 0, 0, n=1, m=1) == 1


def test_set_diversity_is_the_objective_diversity_term_on_labelings():
    rng = np.random.default_rng(3)
    for threshold in ("hard", "soft", "none"):
        cost = np.zeros((3, 2, 2))
        z = np.eye(3)[rng.integers(3, size=(3, 2, 2))]
        A = np.eye(3) + 0.1
        f = objective(cost, z, A, beta=0.0, gamma=1.0, tau=0.3, threshold=threshold)
        assert set_diversity(z, A, tau=0.3, threshold=threshold) == pytest.approx(f)


@pytest.mark.parametrize("threshold", ["hard", "soft", "none"])
def test_never_increases_the_true_objective(threshold):
    for seed in range(15):
        rng = np.random.default_rng(seed)
        m = 2 + seed % 4
        cost = rng.random((m, 3, 3))
        z, info = narasimhan_bilmes(cost, np.eye(m), threshold=threshold, rng=rng,
                                    patience=3, return_info=True, **KW)
        hist = np.array(info["history"])
        assert (np.diff(hist) < 0).all()
        assert objective(cost, z, np.eye(m), threshold=threshold, **KW) == pytest.approx(hist[-1])
        assert set(np.unique(z)) <= {0.0, 1.0} and np.allclose(z.sum(-1), 1)


def test_reaches_the_brute_force_optimum_on_some_tiny_problems():
    hits = 0
    for seed in range(20):
        cost, A = uniform_problem(2, 2, rng=np.random.default_rng(seed))
        z = narasimhan_bilmes(cost, A, rng=np.random.default_rng(seed), **KW)
        f_opt = solve_exact(cost, A, **KW)[1]
        f = objective(cost, z, A, **KW)
        assert f >= f_opt - 1e-9
        hits += abs(f - f_opt) < 1e-9
    assert hits >= 3


def test_arguments_are_checked():
    cost = np.random.default_rng(0).random((2, 2, 2))
    with pytest.raises(TypeError, match="rng"):
        narasimhan_bilmes(cost, np.eye(2), rng=0)
    with pytest.raises(ValueError, match="A must be non-negative"):
        narasimhan_bilmes(cost, -np.eye(2), rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="init"):
        narasimhan_bilmes(cost, np.eye(2), rng=np.random.default_rng(0), init=np.zeros((2, 3, 3)))
    with pytest.raises(ValueError, match="patience"):
        narasimhan_bilmes(cost, np.eye(2), rng=np.random.default_rng(0), patience=0)
    with pytest.raises(ValueError, match="labels"):
        modular_bound(np.full((2, 1, 1), 5), np.eye(2), rng=np.random.default_rng(0))
