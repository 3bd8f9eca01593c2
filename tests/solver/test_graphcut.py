"""The grid graph cut: exact on binary problems, swap-optimal on multi-label ones."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from comixup.solver import grid_energy, grid_graphcut, label_pair_costs, level_labels


def brute_force_min(unary, pairwise, weight):
    h, w, n_labels = unary.shape
    best = np.inf
    for flat in itertools.product(range(n_labels), repeat=h * w):
        best = min(best, grid_energy(unary, pairwise, np.array(flat).reshape(h, w), weight))
    return best


def mixing_pairwise(m, levels):
    """Co-Mixup's label-pair costs ||z - z'||^2 / 2 on the level lattice (a semi-metric)."""
    labels = level_labels(m, levels)
    return 0.5 * ((labels[:, None, :] - labels[None, :, :]) ** 2).sum(-1)


def test_binary_3x3_reaches_brute_force_optimum_in_100_cases():
    rng = np.random.default_rng(0)
    pairwise = np.array([[0.0, 1.0], [1.0, 0.0]])
    for case in range(100):
        unary = rng.normal(size=(3, 3, 2))
        if case % 2:
            weight = float(rng.uniform(0, 2))
        else:  # per-edge weights, as Puzzle Mix uses
            weight = (rng.uniform(0, 2, size=(3, 2)), rng.uniform(0, 2, size=(2, 3)))
        labels = grid_graphcut(unary, pairwise, weight)
        assert grid_energy(unary, pairwise, labels, weight) == pytest.approx(
            brute_force_min(unary, pairwise, weight), abs=1e-9
        )


@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(1, 5),
    w=st.integers(1, 5),
    m=st.integers(2, 4),
    levels=st.sampled_from([2, 3, 4]),
    weight=st.floats(0.0, 2.0),
    seed=st.integers(0, 2**31 - 1),
)
def test_multi_label_result_has_no_improving_single_cell_change(h, w, m, levels, weight, seed):
    rng = np.random.default_rng(seed)
    pairwise = mixing_pairwise(m, levels)
    n_labels = len(pairwise)
    unary = rng.normal(size=(h, w, n_labels))
    init = rng.integers(n_labels, size=(h, w))
    labels = grid_graphcut(unary, pairwise, weight, init=init)
    energy = grid_energy(unary, pairwise, labels, weight)
    assert energy <= grid_energy(unary, pairwise, init, weight) + 1e-12
    for r, c, lab in itertools.product(range(h), range(w), range(n_labels)):
        changed = labels.copy()
        changed[r, c] = lab
        assert grid_energy(unary, pairwise, changed, weight) >= energy - 1e-9


def test_pairwise_of_mixed_labels_is_a_semi_metric_not_a_metric():
    pairwise = mixing_pairwise(2, 3)  # labels e0, e1, (e0 + e1) / 2
    assert pairwise[0, 1] == 1.0 and pairwise[0, 2] == 0.25 and pairwise[1, 2] == 0.25
    assert pairwise[0, 2] + pairwise[2, 1] < pairwise[0, 1]


def test_zero_weight_gives_unary_argmin():
    rng = np.random.default_rng(3)
    unary = rng.normal(size=(4, 4, 5))
    labels = grid_graphcut(unary, 1 - np.eye(5), 0.0)
    np.testing.assert_array_equal(labels, unary.argmin(-1))


@pytest.mark.parametrize(
    "unary, pairwise, weight, match",
    [
        (np.zeros((2, 2)), np.zeros((2, 2)), 1.0, "unary"),
        (np.zeros((2, 2, 2)), np.zeros((3, 3)), 1.0, "pairwise"),
        (np.zeros((2, 2, 2)), np.array([[0, 1], [2, 0.0]]), 1.0, "symmetric"),
        (np.zeros((2, 2, 2)), np.array([[1, 1], [1, 0.0]]), 1.0, "zero diagonal"),
        (np.full((2, 2, 2), np.nan), 1 - np.eye(2), 1.0, "unary"),
        (np.zeros((2, 2, 2)), 1 - np.eye(2), -1.0, "weight"),
        (np.zeros((2, 2, 2)), 1 - np.eye(2), (np.zeros((2, 2)), np.zeros((1, 2))), "weight"),
    ],
)
def test_bad_arguments_raise(unary, pairwise, weight, match):
    with pytest.raises(ValueError, match=match):
        grid_graphcut(unary, pairwise, weight)


def brute_force_energies(unary, pairwise, weight):
    """Energy of every labeling of a tiny grid, vectorized."""
    h, w, n_labels = unary.shape
    grids = np.array(list(itertools.product(range(n_labels), repeat=h * w))).reshape(-1, h, w)
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    energy = unary[rows, cols, grids].sum((1, 2))
    energy += weight * pairwise[grids[:, :, 1:], grids[:, :, :-1]].sum((1, 2))
    energy += weight * pairwise[grids[:, 1:, :], grids[:, :-1, :]].sum((1, 2))
    return energy


@pytest.mark.parametrize(
    "m, levels, shape, from_argmin, from_any",
    # measured hits out of 100 (seed 0): argmin start 77/72/90/85, best start 95/92/100/96
    [(3, 3, (2, 2), 72, 90), (3, 3, (2, 3), 67, 87), (2, 4, (2, 3), 85, 95),
     (4, 3, (2, 2), 80, 91)],
)
def test_mixed_labels_reach_brute_force_minimum_under_reference_pair_costs(
        m, levels, shape, from_argmin, from_any):
    """Co-Mixup-like problems (one-hot unaries -s/n, mixes the mean of their parts minus the
    5e-4 bonus, edge weight beta/n): the swap never goes below the brute-force minimum and
    reaches it from the unary argmin in most cases; swap moves are exact per move, not globally,
    so a few problems keep a local minimum (the best of several starts reaches more)."""
    labels = level_labels(m, levels)
    pairwise = label_pair_costs(labels, "reference")
    rng = np.random.default_rng(0)
    n = shape[0] * shape[1]
    weight = 0.32 / n
    hits_argmin = hits_any = 0
    for _ in range(100):
        base = -rng.random((*shape, m)) / n
        unary = base @ labels.T - 5e-4 * (labels.max(1) < 1)
        best = brute_force_energies(unary, pairwise, weight).min()
        energies = [grid_energy(unary, pairwise, grid_graphcut(unary, pairwise, weight), weight)]
        for start in range(len(pairwise)):
            init = np.full(shape, start)
            energies.append(grid_energy(
                unary, pairwise, grid_graphcut(unary, pairwise, weight, init=init), weight))
        assert min(energies) >= best - 1e-12
        hits_argmin += bool(energies[0] <= best + 1e-12)
        hits_any += bool(min(energies) <= best + 1e-12)
    assert hits_argmin >= from_argmin and hits_any >= from_any


def test_reference_pair_costs_are_the_kernels():
    from comixup.solver.algorithm import _label_pair_cost

    labels = level_labels(3, 3)  # e0, e1, e2, then the three 50/50 mixes
    parts = [(0, 0, 1.0), (1, 1, 1.0), (2, 2, 1.0), (0, 1, 0.5), (0, 2, 0.5), (1, 2, 0.5)]
    for variant, squared in (("reference", False), ("squared", True)):
        dense = label_pair_costs(labels, variant)
        for a, (i1a, i2a, wa) in enumerate(parts):
            for b, (i1b, i2b, wb) in enumerate(parts):
                if a != b:
                    got = _label_pair_cost(i1a, i2a, wa, a >= 3, i1b, i2b, wb, b >= 3, squared)
                    assert got == pytest.approx(dense[a, b])
    ref = label_pair_costs(labels, "reference")
    assert ref[3, 0] == 0.25 and ref[3, 2] == 1.0 and ref[3, 4] == 1.0 and ref[0, 1] == 1.0
