"""Algorithm 1 (`solve`): output invariants, determinism, quality against brute force."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from comixup.analysis.problems import realistic_costs
from comixup.analysis.table6 import TABLE6_CONFIGS, table6_relative_error
from comixup.solver import dirichlet_prior, objective, solve


@settings(max_examples=40, deadline=None)
@given(
    m=st.integers(1, 12),
    h=st.integers(1, 5),
    w=st.integers(1, 5),
    n_out=st.integers(1, 12),
    levels=st.sampled_from([2, 3, 4]),
    threshold=st.sampled_from(["hard", "soft", "none"]),
    seed=st.integers(0, 2**31 - 1),
)
def test_labelings_are_valid_mixes_of_at_most_two_inputs(m, h, w, n_out, levels, threshold, seed):
    rng = np.random.default_rng(seed)
    cost = -rng.random((m, h, w))
    z = solve(cost, np.eye(m), n_out=n_out, levels=levels, threshold=threshold, rng=rng)
    assert z.shape == (n_out, h, w, m)
    np.testing.assert_allclose(z.sum(-1), 1.0)
    steps = (levels - 1) * z
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-9)  # on the level lattice
    assert ((z > 0).sum(-1) <= 2).all()
    if levels == 2:
        assert set(np.unique(z)) <= {0.0, 1.0}


def test_same_generator_seed_same_result():
    cost, A = realistic_costs(20, rng=np.random.default_rng(0))
    a = solve(cost, A, rng=np.random.default_rng(7))
    b = solve(cost, A, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)


def test_sweeps_lower_the_objective_on_realistic_saliency():
    values = {1: [], 4: []}
    for seed in range(10):
        cost, A = realistic_costs(20, rng=np.random.default_rng(seed))
        for n_iter in values:
            z = solve(cost, A, n_iter=n_iter, rng=np.random.default_rng(seed))
            values[n_iter].append(objective(cost, z, A, beta=0.32, gamma=1.0, tau=0.83))
    assert np.mean(values[4]) < np.mean(values[1])


def test_outputs_are_diverse_on_realistic_saliency():
    # The diversity term keeps outputs from copying the single most salient input.
    cost, A = realistic_costs(20, rng=np.random.default_rng(3))
    z = solve(cost, A, rng=np.random.default_rng(3))
    dominant = z.sum((1, 2)).argmax(-1)
    assert len(set(dominant.tolist())) >= 10


def test_prior_is_minus_eta_eff_log_dirichlet():
    rng = np.random.default_rng(0)
    lam = np.random.default_rng(0).dirichlet(np.full(5, 2.0))
    np.testing.assert_allclose(dirichlet_prior(5, 16, eta=0.05, alpha=2.0, rng=rng),
                               -(0.05 / 16) * np.log(lam + 1e-8))


def test_restarts_never_worse_than_one_run():
    cost, A = realistic_costs(10, rng=np.random.default_rng(1))
    kw = dict(beta=0.32, gamma=1.0, tau=0.83)
    one = solve(cost, A, eta=0.0, rng=np.random.default_rng(5))
    many = solve(cost, A, eta=0.0, rng=np.random.default_rng(5), restarts=5)
    assert objective(cost, many, A, **kw) <= objective(cost, one, A, **kw) + 1e-12


@pytest.mark.parametrize("m, side", TABLE6_CONFIGS)
def test_table6_relative_error_at_most_one_percent(m, side):
    # Acceptance: levels = 2, unary U[0, 1], paper hyperparameters, hard clipping, 100 seeds,
    # with 4 restarts and 100 polish kicks.
    result = table6_relative_error(m, side, seeds=100, restarts=4, polish=100)
    assert result["rel_error"] <= 0.01


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(levels=5), ValueError, "levels"),
        (dict(threshold="clip"), ValueError, "threshold"),
        (dict(n_out=0), ValueError, "n_out"),
        (dict(n_iter=0), ValueError, "n_iter"),
        (dict(beta=-1.0), ValueError, "beta"),
        (dict(alpha=0.0), ValueError, "alpha"),
        (dict(rng=np.random.RandomState(0)), TypeError, "rng"),
        (dict(restarts=0), ValueError, "restarts"),
        (dict(polish=-1), ValueError, "polish"),
    ],
)
def test_bad_arguments_raise(kwargs, error, match):
    with pytest.raises(error, match=match):
        solve(-np.ones((3, 2, 2)) / 4, np.eye(3), **kwargs)


def test_bad_cost_and_compatibility_raise():
    with pytest.raises(ValueError, match="cost"):
        solve(np.full((3, 2, 2), np.inf), np.eye(3))
    with pytest.raises(ValueError, match="A"):
        solve(np.zeros((3, 2, 2)), np.eye(2))
