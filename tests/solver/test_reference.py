"""The solver's results are bit-identical to its golden fixture.

``reference_outputs.npz`` was written by ``reference_cases.py`` from the code as it was before
the clipped diversity, the hyperparameters and Algorithm 1's kernel were split into shared
helpers: :func:`comixup.solver.solve` (every ``levels``, ``threshold`` and ``pairwise``, with
restarts, polish, ``n_out`` and a non-square grid), :func:`comixup.solver.objective` and
:func:`comixup.solver.solve_exact` must give exactly the same arrays.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

_spec = importlib.util.spec_from_file_location(
    "solver_reference_cases", Path(__file__).with_name("reference_cases.py"))
reference_cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reference_cases)

with np.load(reference_cases.FIXTURE) as _data:
    EXPECTED = {key: _data[key] for key in _data.files}


@pytest.fixture(scope="module")
def actual():
    return reference_cases.run_cases()


def test_the_same_cases_are_produced(actual):
    assert sorted(actual) == sorted(EXPECTED)


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_output_is_bit_identical(actual, key):
    got, want = actual[key], EXPECTED[key]
    assert got.dtype == want.dtype and got.shape == want.shape, key
    np.testing.assert_array_equal(got, want, err_msg=key)
