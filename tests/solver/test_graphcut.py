"""The grid graph cut: exact on binary problems, swap-optimal on multi-label ones."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from comixup.solver import grid_energy, grid_graphcut, level_labels


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
