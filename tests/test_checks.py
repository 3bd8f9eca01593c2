"""The validation layer: the shared checks, and one test group per class of bad input
that used to crash unclearly, pass NaN silently or corrupt memory. Every error is a TypeError or
a ValueError whose message names the argument."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from comixup import (
    CoMixup,
    CutMix,
    InputMixup,
    ManifoldMixup,
    MultiCutMix,
    MultiInputMixup,
    PuzzleMix,
)
from comixup._checks import (
    MIN_CLASSES,
    check_array,
    check_choice,
    check_device,
    check_int,
    check_num_classes,
    check_number,
    check_tensor,
)
from comixup.saliency import clean_loss_and_saliency, pooled_unary
from comixup.solver import grid_energy, grid_graphcut, objective, solve, solve_exact
from comixup.solver.puzzle import level_prior
from comixup.vat import VAT

K = 4
PAIR = np.array([[0.0, 1.0], [1.0, 0.0]])



def _batch(b=4, size=16):
    gen = torch.Generator().manual_seed(0)
    return (torch.rand(b, 3, size, size, generator=gen), torch.arange(b) % K,
            torch.rand(b, size, size, generator=gen))


def _mixers():
    def gen():
        return torch.Generator().manual_seed(0)

    return {
        "mixup": InputMixup(K, generator=gen()),
        "cutmix": CutMix(K, generator=gen()),
        "mixup3": MultiInputMixup(K, k=3, generator=gen()),
        "cutmix3": MultiCutMix(K, k=3, generator=gen()),
        "puzzlemix": PuzzleMix(K, grid=4, workers=1, generator=gen()),
        "comixup": CoMixup(K, workers=1, generator=gen()),
    }


def _call(mixer, x, y, sal):
    return mixer(x, y, sal) if mixer.uses_saliency else mixer(x, y)


# -- the shared checks ------------------------------------------------------------------------


@pytest.mark.parametrize("value,exc", [
    (None, TypeError), ("1", TypeError), (1j, TypeError), (True, TypeError),
    (np.bool_(True), TypeError), (float("nan"), ValueError), (math.inf, ValueError),
    (-1.0, ValueError),
])
def test_check_number_names_the_argument(value, exc):
    with pytest.raises(exc, match="beta"):
        check_number("beta", value)


def test_check_number_open_bounds():
    assert check_number("p", 0.0, high=1.0, high_open=True) == 0.0
    with pytest.raises(ValueError, match=r"p must be a finite number in \[0.0, 1.0\), got 1.0"):
        check_number("p", 1.0, high=1.0, high_open=True)
    with pytest.raises(ValueError, match=r"lr must be a finite number in \(0.0, inf\]"):
        check_number("lr", 0.0, low_open=True)


def test_check_int_choice_device_and_classes():
    assert check_int("n", np.int64(3), 1) == 3 and check_int("seed", -5, None) == -5
    for bad, exc in [(3.0, TypeError), (True, TypeError), (0, ValueError), (9, ValueError)]:
        with pytest.raises(exc, match="n_iter"):
            check_int("n_iter", bad, 1, 8)
    assert check_choice("threshold", "soft", ("hard", "soft")) == "soft"
    for bad in (3.0, True, "3"):
        with pytest.raises(ValueError, match="levels must be one of"):
            check_choice("levels", bad, (2, 3, 4))
    for good in ("auto", "cpu", "cuda", "cuda:1"):
        assert check_device("device", good) == good
    for bad in ("tpu", "cuda:", "cuda:x", " cpu"):
        with pytest.raises(ValueError, match="device"):
            check_device("device", bad)
    with pytest.raises(TypeError, match="device"):
        check_device("device", 0)
    assert check_num_classes(MIN_CLASSES) == MIN_CLASSES
    with pytest.raises(ValueError, match="num_classes"):
        check_num_classes(MIN_CLASSES - 1)


@pytest.mark.parametrize("value,exc", [
    ("abc", TypeError), ([[1, 2], [3]], TypeError), (None, TypeError), ([1j, 2], TypeError),
    ([True, False], TypeError), ([1.0, float("nan")], ValueError),
    ([[1.0], [math.inf]], ValueError),
    (torch.zeros(2, device="meta"), ValueError), (torch.zeros(2, dtype=torch.complex64), TypeError),
])
def test_check_array_names_the_argument(value, exc):
    with pytest.raises(exc, match="cost"):
        check_array("cost", value)


def test_check_array_and_tensor_accept_good_values():
    assert check_array("A", [[1, 2], [3, 4]]).dtype == np.float64
    assert check_array("A", torch.ones(2, 2), ndim=2).shape == (2, 2)
    t = torch.ones(2)
    assert check_tensor("x", t) is t
    with pytest.raises(TypeError, match="x must have a floating dtype"):
        check_tensor("x", torch.ones(2, dtype=torch.long))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_check_tensor_finds_every_non_finite_value(dtype):
    """NaN, inf and -inf at any position (vectorized body or tail, strided views, a 0-d tensor),
    while the largest finite values of the dtype pass."""
    big = torch.finfo(dtype).max
    for n in (1, 7, 16, 33, 1000):
        for pos in {0, n // 2, n - 1}:
            for bad in (math.nan, math.inf, -math.inf):
                t = torch.rand(n).to(dtype)
                t[pos] = bad
                with pytest.raises(ValueError, match="x contains NaN or inf"):
                    check_tensor("x", t)
                strided = torch.rand(n, 2).to(dtype)
                strided[pos, 0] = bad
                with pytest.raises(ValueError, match="x contains NaN or inf"):
                    check_tensor("x", strided[:, 0])
                with pytest.raises(ValueError, match="x contains NaN or inf"):
                    check_tensor("x", torch.tensor(bad, dtype=dtype))
        t = torch.rand(n).to(dtype)
        t[0], t[-1] = big, -big
        assert check_tensor("x", t.requires_grad_()) is t


# -- class 1: non-finite and huge values in the mixers ------------------------------------------


@pytest.mark.parametrize("name", list(_mixers()))
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_x_raises_in_every_mixer(name, bad):
    x, y, sal = _batch()
    x[1, 0, 2, 3] = bad
    with pytest.raises(ValueError, match="x contains NaN or inf"):
        _call(_mixers()[name], x, y, sal)


def test_non_finite_x_raises_in_manifold_mixup_and_vat():
    x, y, _ = _batch()
    x[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="x contains NaN or inf"):
        ManifoldMixup(K).forward_mixed(lambda t, **kw: t.flatten(1)[:, :K], x, y)
    with pytest.raises(ValueError, match="x contains NaN or inf"):
        VAT()(lambda t: t.flatten(1)[:, :K], x, torch.zeros(4, K))


@pytest.mark.parametrize("name", ["puzzlemix", "comixup"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_saliency_raises(name, bad):
    x, y, sal = _batch()
    sal[2, 5, 5] = bad
    with pytest.raises(ValueError, match="saliency contains NaN or inf"):
        _call(_mixers()[name], x, y, sal)


@pytest.mark.parametrize("name", ["puzzlemix", "comixup"])
@pytest.mark.parametrize("scale", [3e38, 1e30, 1e-30, 1e-44])
def test_huge_and_tiny_saliency_mixes(name, scale):
    x, y, sal = _batch()
    x_mix, y_mix = _call(_mixers()[name], x, y, (sal * scale).float())
    assert torch.isfinite(x_mix).all() and torch.isfinite(y_mix).all()
    torch.testing.assert_close(y_mix.sum(1), torch.ones(4))


@pytest.mark.parametrize("scale", [3e38, 3.4e38, 1e-40, 1.0])
def test_pooled_unary_is_exact_for_any_finite_map(scale):
    sal = torch.rand(3, 12, 12, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    want = torch.nn.functional.adaptive_avg_pool2d(sal[:, None], 4)[:, 0]
    want = want / want.sum((1, 2), keepdim=True)
    got = pooled_unary((sal * scale).float(), 4)
    torch.testing.assert_close(got, want.float(), rtol=1e-5, atol=1e-7)
    assert pooled_unary(torch.zeros(1, 4, 4), 2).eq(0.25).all()  # all-zero: uniform


def test_the_engine_still_cleans_an_overflowed_saliency_before_the_mixer():
    class Overflow(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(3 * 16 * 16, K))

        def forward(self, x):
            return (x.flatten(1) * 1e38) @ self.w * 1e38  # inf logits, non-finite gradient

    x, y, _ = _batch()
    _, saliency = clean_loss_and_saliency(Overflow(), x, y)
    assert saliency.eq(0).all()  # zeros: uniform saliency for the mixer
    x_mix, y_mix = CoMixup(K, workers=1)(x, y, saliency)
    assert torch.isfinite(x_mix).all() and torch.isfinite(y_mix).all()


# -- class 2: energy overflow in solve ----------------------------------------------------------


@pytest.mark.parametrize("kwargs", [
    {"cost_scale": 1e308}, {"a_scale": 1e308}, {"eta": 1e308}, {"cost_scale": 1e308, "eta": 0.0},
])
def test_solve_raises_when_the_objective_overflows(kwargs):
    rng = np.random.default_rng(0)
    cost = -rng.random((3, 2, 2)) * kwargs.get("cost_scale", 1.0)
    A = np.eye(3) * kwargs.get("a_scale", 1.0)
    try:
        z = solve(cost, A, eta=kwargs.get("eta", 0.05), rng=rng)
    except ValueError as err:
        assert "the objective is not finite for these costs" in str(err)
    else:  # a draw of the prior whose objective stays finite: a valid labeling
        assert np.isfinite(z).all()
        np.testing.assert_allclose(z.sum(-1), 1.0)
    with pytest.raises(ValueError, match="the objective is not finite for these costs"):
        solve(cost * 0 - 1e308, A, rng=np.random.default_rng(0))


def test_comixup_with_a_huge_eta_raises():
    x, y, sal = _batch()
    with pytest.raises(ValueError, match="the objective is not finite.*eta"):
        CoMixup(K, eta=1e308, workers=1, generator=torch.Generator().manual_seed(0))(x, y, sal)


# -- class 3: unchecked arguments in objective and solve_exact ----------------------------------


@pytest.mark.parametrize("name", ["beta", "gamma", "tau"])
@pytest.mark.parametrize("value,exc", [
    (None, TypeError), ("0.3", TypeError), (0.3j, TypeError), (float("nan"), ValueError),
    (math.inf, ValueError), (-1.0, ValueError),
])
def test_objective_and_solve_exact_check_the_hyperparameters(name, value, exc):
    cost, A = -np.ones((2, 2, 2)) / 4, np.eye(2)
    z = np.full((2, 2, 2, 2), 0.5)
    kw = {"beta": 0.32, "gamma": 1.0, "tau": 0.83, name: value}
    with pytest.raises(exc, match=name):
        objective(cost, z, A, **kw)
    with pytest.raises(exc, match=name):
        solve_exact(cost, A, **kw)


@pytest.mark.parametrize("bad", [float("nan"), math.inf])
def test_objective_checks_z(bad):
    z = np.full((2, 2, 2, 2), 0.5)
    z[0, 1, 1, 0] = bad
    with pytest.raises(ValueError, match="z contains NaN or inf"):
        objective(-np.ones((2, 2, 2)), z, np.eye(2), beta=0.3, gamma=1.0, tau=0.8)
    with pytest.raises(ValueError, match="z must have shape"):
        objective(-np.ones((2, 2, 2)), np.ones((2, 2, 2, 1)), np.eye(2), beta=0.3, gamma=1.0,
                  tau=0.8)
    with pytest.raises(ValueError, match="objective is not finite"):
        objective(np.full((2, 2, 2), -1e308), np.full((2, 2, 2, 2), 0.5), np.eye(2), beta=0.3,
                  gamma=1.0, tau=0.8)


@pytest.mark.parametrize("scale,shift", [(1e308, 0.0), (2.0, 0.0), (1.0, 0.25), (0.5, 0.0),
                                         (-1.0, 0.5)])
def test_objective_names_z_when_it_is_not_a_labeling(scale, shift):
    # a labeling scaled or shifted off the simplex used to overflow or pass, blaming cost/A
    cost = -np.ones((2, 2, 2)) / 4
    z = np.zeros((2, 2, 2, 2))
    z[..., 0] = 1.0
    z[1, 0, 0] = [0.5, 0.5]
    assert np.isfinite(objective(cost, z, np.eye(2), beta=0.3, gamma=1.0, tau=0.8))
    with pytest.raises(ValueError, match=r"^z must be a labeling.*one-hot or a distribution") \
            as err:
        objective(cost, z * scale + shift, np.eye(2), beta=0.3, gamma=1.0, tau=0.8)
    assert "cost" not in str(err.value) and "A " not in str(err.value)


@pytest.mark.parametrize("levels,exc", [(3.0, TypeError), (True, TypeError), (5, ValueError),
                                        ("3", TypeError)])
def test_levels_is_checked_the_same_way_everywhere(levels, exc):
    cost, A = -np.ones((2, 1, 2)), np.eye(2)
    with pytest.raises(exc, match="levels"):
        solve_exact(cost, A, levels=levels)
    with pytest.raises(exc, match="levels"):
        solve(cost, A, levels=levels)
    with pytest.raises(exc, match="levels"):
        CoMixup(K, levels=levels)


# -- class 4: unconverted arrays ---------------------------------------------------------------


@pytest.mark.parametrize("bad", ["abc", [[1.0, 2.0], [3.0]], None, {"a": 1}])
def test_arrays_that_do_not_convert_name_the_argument(bad):
    cost, A = -np.ones((2, 2, 2)) / 4, np.eye(2)
    unary = np.zeros((2, 2, 2))
    for name, call in [
        ("cost", lambda: solve(bad, A)),
        ("A", lambda: solve(cost, bad)),
        ("cost", lambda: solve_exact(bad, A)),
        ("z", lambda: objective(cost, bad, A, beta=0.3, gamma=1.0, tau=0.8)),
        ("unary", lambda: grid_graphcut(bad, PAIR)),
        ("pairwise", lambda: grid_graphcut(unary, bad)),
        ("weight", lambda: grid_graphcut(unary, PAIR, weight=bad)),
        ("labels", lambda: grid_energy(unary, PAIR, bad)),
    ]:
        with pytest.raises((TypeError, ValueError), match=name):
            call()


# -- class 5: NaN init in grid_graphcut ---------------------------------------------------------


@pytest.mark.parametrize("init,match", [
    (np.array([[np.nan, 0.0], [0.0, 1.0]]), "init contains NaN or inf"),
    (np.array([[np.inf, 0.0], [0.0, 1.0]]), "init contains NaN or inf"),
    (np.array([[0.5, 0.0], [0.0, 1.0]]), "init must hold integer labels"),
    (np.array([[2, 0], [0, 1]]), r"init labels must lie in \[0, 2\)"),
    (np.array([[True, False], [False, True]]), "init must be an array of real numbers"),
])
def test_grid_graphcut_never_casts_bad_init(init, match):
    with pytest.raises((TypeError, ValueError), match=match):
        grid_graphcut(np.zeros((2, 2, 2)), PAIR, init=init)


def test_grid_graphcut_takes_integral_float_init_and_refuses_overflow():
    unary = np.array([[[0.0, 1.0], [1.0, 0.0]], [[0.0, 1.0], [1.0, 0.0]]])
    labels = grid_graphcut(unary, PAIR, weight=0.0, init=np.array([[1.0, 0.0], [1.0, 0.0]]))
    np.testing.assert_array_equal(labels, [[0, 1], [0, 1]])
    with pytest.raises(ValueError, match="overflows"):
        grid_graphcut(np.full((2, 2, 2), 1e308), PAIR)


# -- class 6: unsupported tensors ---------------------------------------------------------------


@pytest.mark.parametrize("name", list(_mixers()))
def test_complex_labels_and_meta_tensors_name_the_argument(name):
    x, y, sal = _batch()
    mixer = _mixers()[name]
    with pytest.raises(TypeError, match="y must be real-valued"):
        _call(mixer, x, y.to(torch.complex64), sal)
    with pytest.raises(ValueError, match="x is on the meta device"):
        _call(mixer, x.to("meta"), y, sal)
    with pytest.raises(TypeError, match="x must be real-valued"):
        _call(mixer, x.to(torch.complex64), y, sal)
    if mixer.uses_saliency:
        with pytest.raises(ValueError, match="saliency is on the meta device"):
            mixer(x, y, sal.to("meta"))


# -- class 7: PuzzleMix n_labels -----------------------------------------------------------------


def test_puzzlemix_n_labels_is_bounded_and_the_prior_never_overflows():
    with pytest.raises(ValueError, match="n_labels"):
        PuzzleMix(K, n_labels=2000)
    with pytest.raises(TypeError, match="n_labels"):
        PuzzleMix(K, n_labels=3.0)
    for lam in (0.0, 0.3, 1.0):
        prior = level_prior(lam, 2000, 0.2, 16)
        assert prior.shape == (2000,) and np.isfinite(prior).all()
    np.testing.assert_allclose(level_prior(0.3, 3, 0.2, 16),  # binomial P(l), as before
                               0.2 * -np.log(np.array([0.49, 0.42, 0.09]) + 1e-8) / 16,
                               rtol=1e-12)


def test_sources_cite_only_documents_of_the_repository():
    # docstrings cite docs/recipes.md as "recipes N"; "notes N" pointed outside the repository
    import pathlib
    import re

    import comixup

    root = pathlib.Path(comixup.__file__).parent
    cited = [(p.name, m.group(0)) for p in sorted(root.rglob("*.py"))
             for m in re.finditer(r"\bnotes \d", p.read_text())]
    assert cited == []
