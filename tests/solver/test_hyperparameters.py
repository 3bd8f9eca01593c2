"""Tests for comixup.solver.hyperparameters: Eq. (1)'s hyperparameters held once."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from comixup import CoMixup
from comixup.solver import Hyperparameters, objective, solve, solve_exact


def test_the_paper_defaults_and_their_scaling():
    hp = Hyperparameters()
    assert (hp.beta, hp.gamma, hp.eta, hp.tau, hp.alpha, hp.omega) == (0.32, 1.0, 0.05, 0.83, 2.0,
                                                                        0.001)
    eff = hp.effective(16)
    assert eff == (0.32 / 16, 1.0 / 16, 0.05 / 16, 0.83 * 16)
    assert (eff.beta, eff.gamma, eff.eta, eff.tau) == tuple(eff)
    assert hp.solver_arguments() == {"beta": 0.32, "gamma": 1.0, "eta": 0.05, "tau": 0.83,
                                     "alpha": 2.0}
    with pytest.raises(dataclasses.FrozenInstanceError):
        hp.beta = 1.0


@pytest.mark.parametrize("kwargs, exc, word", [
    ({"beta": -1.0}, ValueError, "beta"),
    ({"gamma": float("nan")}, ValueError, "gamma"),
    ({"tau": "0.8"}, TypeError, "tau"),
    ({"alpha": 0.0}, ValueError, "alpha"),
    ({"omega": 1.5}, ValueError, "omega"),
    ({"eta": True}, TypeError, "eta"),
])
def test_bad_values_are_named(kwargs, exc, word):
    with pytest.raises(exc, match=word):
        Hyperparameters(**kwargs)


def test_every_entry_point_takes_its_defaults_from_one_place():
    hp = Hyperparameters()
    for fn, names in ((solve, ("beta", "gamma", "eta", "tau", "alpha")),
                      (solve_exact, ("beta", "gamma", "tau")),
                      (CoMixup, ("beta", "gamma", "eta", "tau", "alpha", "omega"))):
        params = inspect.signature(fn).parameters
        for name in names:
            assert params[name].default == getattr(hp, name), (fn, name)
    comix = CoMixup(10, tau=0.5, omega=0.01)
    assert comix.hyperparameters == Hyperparameters(tau=0.5, omega=0.01)
    assert comix.tau == 0.5 and comix.beta == 0.32


def test_entry_points_check_through_it():
    import numpy as np

    cost = -np.full((2, 2, 2), 0.25)
    A = np.eye(2)
    with pytest.raises(ValueError, match="alpha"):
        solve(cost, A, alpha=0.0)
    with pytest.raises(ValueError, match="tau"):
        solve_exact(cost, A, tau=-1.0)
    with pytest.raises(ValueError, match="gamma"):
        objective(cost, np.ones((2, 2, 2, 2)) / 2, A, beta=0.3, gamma=-1.0, tau=0.8)
    with pytest.raises(ValueError, match="omega"):
        CoMixup(10, omega=2.0)
