"""Fuzzing of the public API: hypothesis draws the arguments of the mixers and of the
solver functions, good and bad mixed (NaN, inf, huge and tiny values, wrong types, strings,
ragged lists, complex numbers, wrong shapes and dtypes). Every case must either raise a
ValueError or TypeError whose message names an argument, or return finite outputs whose
invariants hold (labelings that sum to 1, mixed batches of ``x``'s shape and dtype with soft
targets that sum to 1)."""

from __future__ import annotations

import re

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comixup import CoMixup, CutMix, InputMixup, MultiCutMix, MultiInputMixup, PuzzleMix
from comixup.solver import grid_graphcut, objective, solve, solve_exact

FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

SOLVER_ARGS = ("cost", "A", "z", "n_out", "beta", "gamma", "eta", "tau", "alpha", "n_iter",
               "levels", "threshold", "resolve", "restarts", "polish", "pairwise", "unary",
               "weight", "init", "max_cycles", "rng")
MIXER_ARGS = ("x", "y", "saliency", "num_classes", "alpha", "beta", "gamma", "eta", "tau",
              "omega", "grid", "partition", "n_iter", "levels", "threshold", "k", "n_labels",
              "neigh_size", "t_size", "t_eps", "workers", "generator", "PuzzleMix", "CoMixup")



def _names_an_argument(err: Exception, names) -> bool:
    text = str(err)
    return any(re.search(rf"(?<![\w]){re.escape(n)}(?![\w])", text) for n in names)


def _expect_named(call, names):
    """``call()``; a ValueError/TypeError must name one of ``names``. Returns the result or
    None when it raised."""
    try:
        return call()
    except (ValueError, TypeError) as err:
        assert _names_an_argument(err, names), f"{type(err).__name__}: {err}"
        return None


# -- values -------------------------------------------------------------------------------------

_floats = st.one_of(
    st.floats(-2.0, 2.0),
    st.sampled_from([0.0, 1e-300, 1e-40, 3e38, 1e300, 1e308, -1e308, float("nan"),
                     float("inf"), -float("inf")]),
)
_bad = st.sampled_from([None, "0.3", 0.3j, [1.0, 2.0], True, object()])
_number = st.one_of(st.floats(0.0, 3.0), _floats, _bad)
_weight = st.one_of(st.floats(0.0, 3.0), st.floats(0.0, 3.0), st.floats(0.0, 3.0), _number)


@st.composite
def _array(draw, shape):
    """A float array of ``shape`` with fuzzed entries, or something that is not one."""
    kind = draw(st.sampled_from(["good", "good", "good", "special", "bad"]))
    if kind == "bad":
        return draw(st.sampled_from(["abc", [[1.0, 2.0], [3.0]], None, np.ones(3, complex),
                                     np.ones((1,) * (len(shape) + 1)), np.zeros(shape, bool)]))
    n = int(np.prod(shape))
    elements = st.floats(-1.0, 1.0) if kind == "good" else _floats
    return np.array(draw(st.lists(elements, min_size=n, max_size=n)),
                    dtype=np.float64).reshape(shape)


# -- the solver ---------------------------------------------------------------------------------


@FUZZ
@given(data=st.data(), m=st.integers(1, 3), g1=st.integers(1, 3), g2=st.integers(1, 2))
def test_fuzz_solve(data, m, g1, g2):
    cost = data.draw(_array((m, g1, g2)))
    A = data.draw(_array((m, m)))
    kw = {name: data.draw(_weight) for name in ("beta", "gamma", "eta", "tau")}
    kw["alpha"] = data.draw(st.one_of(st.floats(0.1, 4.0), _number))
    kw["levels"] = data.draw(st.sampled_from([2, 3, 4, 3, 3.0, 5, True, "3"]))
    kw["threshold"] = data.draw(st.sampled_from(["hard", "soft", "none", "hard", "x", 1]))
    kw["pairwise"] = data.draw(st.sampled_from(["reference", "squared", "reference", "abs"]))
    kw["n_out"] = data.draw(st.sampled_from([None, None, 1, 2, 0, 1.5]))
    kw["restarts"] = data.draw(st.sampled_from([1, 1, 2, 0]))
    kw["polish"] = data.draw(st.sampled_from([0, 0, 2, -1]))
    kw["resolve"] = data.draw(st.sampled_from([True, False, True, "yes"]))
    z = _expect_named(lambda: solve(cost, A, rng=np.random.default_rng(0), **kw), SOLVER_ARGS)
    if z is not None:
        n_out = kw["n_out"] or m
        assert z.shape == (n_out, g1, g2, m) and np.isfinite(z).all()
        assert (z >= 0).all() and (z <= 1).all()
        np.testing.assert_allclose(z.sum(-1), 1.0)


@FUZZ
@given(data=st.data(), m=st.integers(1, 2), g=st.integers(1, 2))
def test_fuzz_objective_and_solve_exact(data, m, g):
    cost = data.draw(_array((m, g, g)))
    A = data.draw(_array((m, m)))
    z = data.draw(_array((data.draw(st.integers(1, 2)), g, g, m)))
    kw = {name: data.draw(_weight) for name in ("beta", "gamma", "tau")}
    kw["threshold"] = data.draw(st.sampled_from(["hard", "soft", "none", "?"]))
    f = _expect_named(lambda: objective(cost, z, A, **kw), SOLVER_ARGS)
    assert f is None or np.isfinite(f)
    levels = data.draw(st.sampled_from([2, 3, 3.0, 4, 7]))
    out = _expect_named(lambda: solve_exact(cost, A, levels=levels, **kw), SOLVER_ARGS)
    if out is not None:
        z_opt, f_opt = out
        assert np.isfinite(f_opt) and np.isfinite(z_opt).all()
        np.testing.assert_allclose(z_opt.sum(-1), 1.0)


@FUZZ
@given(data=st.data(), h=st.integers(1, 3), w=st.integers(1, 3), n_labels=st.integers(1, 3))
def test_fuzz_grid_graphcut(data, h, w, n_labels):
    unary = data.draw(_array((h, w, n_labels)))
    pairwise = data.draw(st.one_of(
        st.just(1.0 - np.eye(n_labels)), st.just(1.0 - np.eye(n_labels)), _array((n_labels,) * 2)))
    weight = data.draw(st.one_of(_weight, st.tuples(_array((h, w - 1)), _array((h - 1, w)))))
    init = data.draw(st.one_of(
        st.none(), _array((h, w)),
        st.lists(st.integers(-1, n_labels), min_size=h * w, max_size=h * w).map(
            lambda v: np.array(v).reshape(h, w))))
    max_cycles = data.draw(st.sampled_from([100, 1, 0, 2.0]))
    labels = _expect_named(lambda: grid_graphcut(unary, pairwise, weight=weight, init=init,
                                                 max_cycles=max_cycles), SOLVER_ARGS)
    if labels is not None:
        assert labels.shape == (h, w) and labels.dtype == np.int64
        assert labels.min() >= 0 and labels.max() < n_labels


# -- the mixers ---------------------------------------------------------------------------------

_MIXERS = {
    "mixup": (InputMixup, {"alpha": _number}),
    "cutmix": (CutMix, {"alpha": _number}),
    "mixup3": (MultiInputMixup, {"alpha": _number, "k": st.sampled_from([3, 2, 9, 3.0])}),
    "cutmix4": (MultiCutMix, {"alpha": _number, "k": st.sampled_from([4, 1])}),
    "puzzlemix": (PuzzleMix, {"beta": _weight, "gamma": _weight, "eta": _weight,
                              "n_labels": st.sampled_from([2, 3, 3, 2000, 1.0]),
                              "grid": st.sampled_from([-1, 2, 4, 3, 0])}),
    "comixup": (CoMixup, {"beta": _weight, "gamma": _weight, "eta": _weight, "tau": _weight,
                          "omega": st.one_of(st.floats(0.0, 1.0), _number),
                          "levels": st.sampled_from([2, 3, 4, 3.0]),
                          "grid": st.sampled_from([-1, 2, 4, 3, 0]),
                          "partition": st.sampled_from([2, 20, 0])}),
}


@st.composite
def _tensor(draw, shape, dtype):
    kind = draw(st.sampled_from(["good", "good", "good", "special"]))
    n = int(np.prod(shape))
    elements = st.floats(0.0, 1.0) if kind == "good" else _floats
    values = torch.tensor(draw(st.lists(elements, min_size=n, max_size=n)), dtype=torch.float64)
    return values.reshape(shape).to(dtype)


@FUZZ
@given(data=st.data(), name=st.sampled_from(sorted(_MIXERS)), b=st.integers(1, 4),
       c=st.integers(1, 2), size=st.sampled_from([4, 8, 16, 16]),
       dtype=st.sampled_from([torch.float32, torch.float32, torch.float64, torch.float16,
                              torch.bfloat16, torch.int64]))
def test_fuzz_mixers(data, name, b, c, size, dtype):
    cls, options = _MIXERS[name]
    kw = {key: data.draw(value) for key, value in options.items()}
    num_classes = data.draw(st.sampled_from([3, 3, 1, 0, 2.0]))
    if cls in (PuzzleMix, CoMixup):
        kw["workers"] = 1
    mixer = _expect_named(lambda: cls(num_classes, generator=torch.Generator().manual_seed(0),
                                      **kw), MIXER_ARGS)
    if mixer is None:
        return
    x = data.draw(_tensor((b, c, size, size), dtype))
    y = data.draw(st.one_of(
        st.lists(st.integers(0, 2), min_size=b, max_size=b).map(torch.tensor),
        st.lists(st.integers(-1, 3), min_size=b, max_size=b).map(torch.tensor),
        st.just(torch.zeros(b, dtype=torch.complex64)),
        st.just(torch.full((b, 3), 1 / 3))))
    args = (x, y)
    if mixer.uses_saliency:
        args += (data.draw(st.one_of(_tensor((b, size, size), torch.float32),
                                     _tensor((b, size, size), torch.float32),
                                     st.just(torch.zeros(b, size + 1, size)))),)
    out = _expect_named(lambda: mixer(*args), MIXER_ARGS)
    if out is None:
        return
    x_mix, y_mix = out
    assert x_mix.shape == x.shape and x_mix.dtype == x.dtype
    assert torch.isfinite(x_mix).all() and torch.isfinite(y_mix).all()
    assert y_mix.shape == (b, mixer.num_classes) and (y_mix >= 0).all()
    atol = 1e-2 if dtype in (torch.float16, torch.bfloat16) else 1e-5
    torch.testing.assert_close(y_mix.float().sum(1), torch.ones(b), rtol=0, atol=atol)
